"""The SOP end to end on SQLite and on the real PostgreSQL, through the CLI, against the sandbox
and the local Slack/SMTP sinks."""

from __future__ import annotations

import json
from pathlib import Path

import psutil
import pytest
from e2e_helpers import (
    FIN,
    LP,
    OPERATOR,
    OPS,
    SOP_ARGS,
    approved_dry_run,
    cli,
    counts,
    latest_run,
    operator_key,
    stripe_transfers,
)
from sqlalchemy import select

from payops.archive import verify_archive
from payops.db import session_scope
from payops.db.models import LedgerPayout, ManualPayout

pytestmark = [pytest.mark.e2e, pytest.mark.db]


def _platform_cad(sandbox) -> int:  # type: ignore[no-untyped-def]
    bal = sandbox.client().v1.balance.retrieve()
    return sum(b.amount for b in bal.available if b.currency == "cad")


def test_dry_run_moves_nothing_and_is_archived(payops_env) -> None:  # type: ignore[no-untyped-def]
    before = _platform_cad(payops_env.sandbox)
    res = cli("manual-payout", *SOP_ARGS, "--dry-run")
    assert res.exit_code == 0, res.stdout + res.stderr
    assert '"amount": 87550' in res.stdout and "INSERT INTO manual_payouts" in res.stdout
    assert "DRY RUN" in res.stdout and "payops approve" in res.stdout
    assert stripe_transfers(payops_env.sandbox) == []
    assert _platform_cad(payops_env.sandbox) == before
    c = counts()
    assert c["manual_payouts"] == 0 and c["intents"] == 0 and c["runs"] == 1
    assert payops_env.sinks.slack_messages() == [] and payops_env.sinks.emails() == []
    run = latest_run("dry-run")
    folder = Path(run["output_dir"])
    assert sorted(p.name for p in folder.glob("*.ipynb")) == [
        "10-verify.ipynb", "20-transfer.ipynb", "30-audit-insert.ipynb", "40-notify.ipynb", "50-settle.ipynb"]
    assert (folder / "drafts" / "slack.json").exists() and (folder / "drafts" / "email.eml").exists()
    assert (folder / "attachments" / "ledger_payout.csv").exists()
    assert (folder / "manifest.json").exists()
    assert verify_archive(payops_env.output_dir).ok
    assert sorted(p.name for p in folder.glob("*.html")) == [  # every step's HTML, rendered before the seal
        "10-verify.html", "20-transfer.html", "30-audit-insert.html", "40-notify.html", "50-settle.html"]
    sealed = set(json.loads((folder / "manifest.json").read_text())["files"])
    assert {p.name for p in folder.glob("*.html")} <= sealed  # the seal covers the HTML
    kernels = [p for p in psutil.Process().children(recursive=True)
               if p.status() != psutil.STATUS_ZOMBIE and "ipykernel" in " ".join(p.cmdline())]
    assert kernels == []  # every step's kernel (started ahead or not) is gone
    # step 10 shows each approver the statement to sign and the exact commands (read-only text)
    shown = _printed(folder / "10-verify.ipynb")
    assert "payops approval statement v1" in shown and f"run: {run['id']}" in shown
    assert f"payops approve {run['id']} --role finance --key ~/.ssh/id_ed25519" in shown
    assert "ssh-keygen -Y sign -f ~/.ssh/id_ed25519 -n payops-approval" in shown
    with session_scope() as s:
        assert s.get(LedgerPayout, LP).status == "pending"


def _printed(notebook: Path) -> str:
    nb = json.loads(notebook.read_text())
    return "".join("".join(o.get("text", "")) for c in nb["cells"] for o in c.get("outputs", []))


def test_live_after_approvals_pays_exactly_once(payops_env, roster) -> None:  # type: ignore[no-untyped-def]
    before = _platform_cad(payops_env.sandbox)
    dry = approved_dry_run(roster)
    res = cli("runs", "resume", dry, "--live", "--key", operator_key(roster))
    assert res.exit_code == 0, res.stdout + res.stderr
    transfers = stripe_transfers(payops_env.sandbox)
    assert len(transfers) == 1
    tr = transfers[0]
    assert (tr.amount, tr.currency, tr.destination) == (87550, "cad", "acct_test_studio_a")
    assert tr.metadata["approver_ops_id"] == OPS and tr.metadata["approver_finance_id"] == FIN
    assert _platform_cad(payops_env.sandbox) == before - 87550
    live = latest_run("live")
    assert live["status"] == "succeeded" and live["parent_run_id"] == dry
    with session_scope() as s:
        rows = s.scalars(select(ManualPayout)).all()
        assert len(rows) == 1
        mp = rows[0]
        assert (mp.stripe_transfer_id, mp.amount, mp.currency, mp.status) == (tr.id, 87550, "CAD", "settled")
        assert mp.approver_ops_id == OPS and mp.approver_finance_id == FIN and mp.settled_at is not None
        assert mp.archive_manifest_sha256 == live["manifest_sha256"]
        assert s.get(LedgerPayout, LP).status == "paid"
    slack = payops_env.sinks.slack_messages()
    emails = payops_env.sinks.emails()
    assert len(slack) == 1 and len(emails) == 1
    assert tr.id in slack[0]["json"]["text"] and "875.50 CAD" in slack[0]["json"]["text"]
    assert emails[0]["rcpt_tos"] == ["studio-a@example.com"] and tr.id in emails[0]["text"]
    report = verify_archive(payops_env.output_dir)
    assert report.ok, report.problems
    assert report.runs_checked == 2
    show = json.loads(cli("runs", "show", live["id"], "--format", "json").stdout)
    assert [st["status"] for st in show["steps"]] == ["succeeded"] * 5
    assert {a["role"] for a in show["approvals"]} == {"ops", "finance"}
    assert all(a["signed"] for a in show["approvals"]) and show["golive"]["operator"] == OPERATOR
    shown = _printed(Path(live["output_dir"]) / "10-verify.ipynb")
    assert f"[ops] signed by {OPS}" in shown and f"[operator] go-live signed by {OPERATOR}" in shown
    # running the same live command again pays nothing more
    again = cli("manual-payout", *SOP_ARGS, "--live", "--key", operator_key(roster))
    assert again.exit_code != 0
    assert len(stripe_transfers(payops_env.sandbox)) == 1
    assert counts()["manual_payouts"] == 1


def test_live_without_approvals_is_refused_before_anything(payops_env) -> None:  # type: ignore[no-untyped-def]
    res = cli("manual-payout", *SOP_ARGS, "--live")
    assert res.exit_code == 4
    assert "approvals.ops" in res.stderr and "approvals.finance" in res.stderr and "approvals.operator" in res.stderr
    assert counts() == {"runs": 0, "live_runs": 0, "approvals": 0, "manual_payouts": 0, "intents": 0, "golive": 0}
    assert stripe_transfers(payops_env.sandbox) == []


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_live_run_keeps_the_detection_time_of_its_dry_run(payops_env, roster) -> None:  # type: ignore[no-untyped-def]
    """The SLA clock starts when ops started on the incident, so approvals never precede detection."""
    dry = approved_dry_run(roster)
    assert cli("runs", "resume", dry, "--live", "--key", operator_key(roster)).exit_code == 0
    dry_info = json.loads(cli("runs", "show", dry, "--format", "json").stdout)
    live_info = json.loads(cli("runs", "show", latest_run("live")["id"], "--format", "json").stdout)
    assert live_info["detected_at"] == dry_info["detected_at"]
    settle = json.loads((Path(latest_run("live")["output_dir"]) / "results" / "50-settle.json").read_text())
    tl = settle["timeline"]
    assert tl["detected"] <= tl["approved"] <= tl["transferred"] <= tl["paid"]
    assert settle["within_sla"] is True
