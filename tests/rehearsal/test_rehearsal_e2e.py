"""A full rehearsal end to end (kernels, sandbox, sinks), twice in a row in the same rehearsal database,
on SQLite and on PostgreSQL (a ``rehearsal`` schema next to production's): every criterion passes, a fresh
ledger payout each time, nothing written to the production database, nothing posted to #payments-alerts."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from rehearsal_helpers import ALIAS, REHEARSAL_HOOK_PATH
from sqlalchemy import create_engine, func, select, text
from typer.testing import CliRunner

from payops.cli import app
from payops.db import session_scope
from payops.db.models import LedgerPayout, ManualPayout, OpsFlag, RunbookRun

pytestmark = [pytest.mark.e2e, pytest.mark.db, pytest.mark.slow]


def _production_counts() -> dict[str, int]:
    with session_scope() as s:
        return {"runs": s.scalar(select(func.count()).select_from(RunbookRun)) or 0,
                "manual": s.scalar(select(func.count()).select_from(ManualPayout)) or 0,
                "ledger": s.scalar(select(func.count()).select_from(LedgerPayout)) or 0,
                "flags": s.scalar(select(func.count()).select_from(OpsFlag)) or 0}


def test_two_rehearsals_in_a_row_pass_every_criterion(rehearsal_env, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                      request: pytest.FixtureRequest) -> None:
    env = rehearsal_env
    before = _production_counts()
    outcomes = []
    for ticket in ("REH-2027-Q1", "REH-2027-Q1b"):
        res = CliRunner().invoke(app, ["rehearse", "--unattended", "--ticket", ticket, "--settle-wait", "60s",
                                       "--action", "Rotate the rehearsal roster keys=Security"],
                                 catch_exceptions=False)
        assert res.exit_code == 0, res.output
        assert "PASS" in res.output and "FAIL" not in res.output, res.output
        assert "report: " in res.output
        report = Path(res.output.split("report: ")[1].split()[0])
        assert report.name == "90-wrap-up.html" and report.exists()
        outcomes.append(report)

    # nothing in production: no run, no audit row, no ledger payout, no switch touched; no #payments-alerts post
    assert _production_counts() == before
    paths = {m["path"] for m in env.sinks.slack_messages()}
    assert paths == {REHEARSAL_HOOK_PATH}, paths
    posts = [m["json"] for m in env.sinks.slack_messages()]
    assert all(m.get("channel", "#payments-rehearsal") == "#payments-rehearsal" for m in posts)
    slack = [m for m in posts if "Manual payout" in str(m.get("blocks"))]  # the SOP's own notice, once each
    assert len(slack) == 2
    assert all("This is a rehearsal in Stripe test mode" in m["text"] for m in slack)
    assert all("[REHEARSAL]" in m["blocks"][0]["text"]["text"] for m in slack)
    mails = env.sinks.emails()
    assert len(mails) == 2 and all(m["rcpt_tos"] == [ALIAS] and "[REHEARSAL]" in m["subject"] for m in mails)

    # the rehearsal database: two rehearsals, two fresh ledger payouts paid by hand, switch back on
    url = os.environ["PAYOPS_REHEARSAL_DATABASE_URL"]
    eng = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    with eng.connect() as conn:
        rows = conn.execute(text("SELECT ledger_payout_id, is_rehearsal, stripe_transfer_id FROM manual_payouts")).all()
        runs = conn.execute(text("SELECT params_json FROM runbook_runs WHERE sop = 'rehearsal'")).scalars().all()
        flag = conn.execute(text("SELECT enabled FROM ops_flags WHERE name = 'payout_cycle_disabled'")).scalar_one()
    eng.dispose()
    assert len(rows) == 2 and len({r[0] for r in rows}) == 2 and all(r[1] for r in rows)
    assert all(r[2].startswith("tr_") for r in rows)
    assert sorted(json.loads(p)["ticket"] for p in runs) == ["REH-2027-Q1", "REH-2027-Q1b"]
    assert not flag  # the automation is switched back on
    for tr in {r[2] for r in rows}:
        assert env.sandbox.client().v1.transfers.retrieve(tr).metadata["is_rehearsal"] == "true"
    # archived and chained like any run, in the rehearsal's own archive (re-verifying the signed approvals)
    from payops.approvals.evidence import verify_run_approvals
    from payops.archive import verify_archive

    rehearsal_archive = Path(os.environ["PAYOPS_REHEARSAL_OUTPUT_DIR"])
    verified = verify_archive(rehearsal_archive, run_checks=(verify_run_approvals,))
    assert verified.ok, verified.problems
    assert verified.runs_checked >= 2 * 4  # per rehearsal: its own run, the cycle's, the SOP's dry and live runs
    assert not env.output_dir.exists() or not list(env.output_dir.rglob("manifest.json"))
    if env.db_url.startswith("sqlite"):  # the report as a person sees it (once: the HTML is the same either way)
        _look_at_report(outcomes[-1], request, tmp_path)


def _look_at_report(html: Path, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    import io
    import shutil

    from PIL import Image
    from playwright.sync_api import sync_playwright

    chromium, args = request.getfixturevalue("chromium"), request.getfixturevalue("chromium_args")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium), args=args)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(html.as_uri(), wait_until="load")
            text = page.inner_text("body")
            shot = page.screenshot(full_page=True)
        finally:
            browser.close()
    for words in ("Fallback rehearsal — step 90: wrap up and report", "REH-2027-Q1b: PASSED — 4/4 criteria",
                  "Stripe transfer created from the SOP's payload with no edits", "manual transfer", "finish",
                  "Rotate the rehearsal roster keys", "Security"):
        assert words in text, f"{words!r} is not on the page"
    assert text.count("PASS") >= 4 and "FAIL" not in text and "Traceback" not in text
    keep = Path(__file__).resolve().parents[2] / "var" / "rehearsal-report.png"
    keep.parent.mkdir(exist_ok=True)
    (tmp_path / "report.png").write_bytes(shot)
    shutil.copy(tmp_path / "report.png", keep)  # var/ is git-ignored: the last screenshot, to look at
    image = Image.open(io.BytesIO(shot)).convert("RGB")
    colours = image.resize((160, max(1, image.height // 8))).getcolors(maxcolors=1 << 16)
    assert colours is None or len(colours) > 20, "the screenshot is (nearly) one colour: nothing rendered"
