"""CLI paths around the SOP: missing schema, archive tampering, the SOP's script, secrets in
artifacts, a failed bank payout, and a settlement that outlasts its wait then finishes later."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from e2e_helpers import LP, SOP_ARGS, cli, counts, latest_run, stripe_transfers
from sqlalchemy import select

from approval_helpers import signed_live_args
from payops import db
from payops.config import get_settings
from payops.db import session_scope
from payops.db.models import LedgerPayout, ManualPayout

pytestmark = [pytest.mark.e2e, pytest.mark.db]
sqlite_only = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
ROOT = Path(__file__).resolve().parents[2]


def test_missing_schema_says_run_db_upgrade(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAYOPS_DATABASE_URL", db_url)
    get_settings(fresh=True)
    res = cli("manual-payout", *SOP_ARGS, "--dry-run")
    assert res.exit_code == 11
    assert "payops db upgrade" in res.stderr and "Traceback" not in res.stderr + res.stdout
    assert cli("db", "upgrade").exit_code == 0
    head = db.head_revision()
    assert cli("db", "current").stdout.startswith(f"current {head} · head {head}")


@sqlite_only
def test_archive_verify_names_the_tampered_file(payops_env) -> None:  # type: ignore[no-untyped-def]
    assert cli("manual-payout", *SOP_ARGS, "--dry-run").exit_code == 0
    ok = cli("archive", "verify")
    assert ok.exit_code == 0 and "chain intact" in ok.stdout
    folder = Path(latest_run()["output_dir"])
    assert cli("archive", "verify", str(folder)).exit_code == 0
    nb = folder / "20-transfer.ipynb"
    data = bytearray(nb.read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit, in the middle of the executed notebook
    nb.write_bytes(bytes(data))
    bad = cli("archive", "verify")
    assert bad.exit_code == 9
    assert "20-transfer.ipynb" in bad.stderr


@sqlite_only
def test_sop_script_keeps_its_command_line(payops_env) -> None:  # type: ignore[no-untyped-def]
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "manual_payout.py"), *SOP_ARGS, "--dry-run"],
                          env=os.environ.copy(), capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    assert '"transfer_group": "22222222-2222-2222-2222-222222222222"' in proc.stdout
    assert "INSERT INTO manual_payouts" in proc.stdout and "archive:" in proc.stdout
    assert stripe_transfers(payops_env.sandbox) == []


@sqlite_only
def test_configured_secret_in_an_artifact_refuses_the_seal(payops_env, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # a (silly) SMTP password that the run will print: the scanner must refuse to seal
    monkeypatch.setenv("PAYOPS_SMTP_PASSWORD", "automated payout failed")
    get_settings(fresh=True)
    res = cli("manual-payout", *SOP_ARGS, "--dry-run")
    assert res.exit_code == 9, res.stdout + res.stderr
    assert "automated payout failed" not in res.stderr  # the finding is redacted
    run = latest_run()
    assert not (Path(run["output_dir"]) / "manifest.json").exists()
    chain = payops_env.output_dir / "CHAIN.jsonl"
    assert not chain.exists() or run["id"] not in chain.read_text()
    show = json.loads(cli("runs", "show", run["id"], "--format", "json").stdout)
    assert show["error"].startswith("archive not sealed")


@sqlite_only
def test_failed_bank_payout_is_reported_loudly(payops_env, roster, tmp_path) -> None:  # type: ignore[no-untyped-def]
    payops_env.sandbox.set_faults(payout_failure={"account": "acct_test_studio_a", "failure_code": "account_closed",
                                                  "count": 1})
    res = cli(*signed_live_args(roster, SOP_ARGS, tmp_path / "sigs"))
    assert res.exit_code == 5
    assert "STUDIO BANK PAYOUT FAILED" in res.stderr and "account_closed" in res.stderr
    assert latest_run("live")["failed_step"] == "50-settle"
    with session_scope() as s:
        assert s.scalar(select(ManualPayout.status)) == "failed"
        assert s.get(LedgerPayout, LP).status == "failed"
    assert len(stripe_transfers(payops_env.sandbox)) == 1


@sqlite_only
def test_settle_waits_then_finishes_later(payops_env, roster, tmp_path) -> None:  # type: ignore[no-untyped-def]
    payops_env.sandbox.set_faults(payout_delay_seconds=3600)
    res = cli(*signed_live_args(roster, SOP_ARGS, tmp_path / "sigs"), "--wait", "2s")
    assert res.exit_code == 8, res.stdout + res.stderr
    assert "payops settle" in res.stderr
    run = latest_run("live")
    with session_scope() as s:
        assert s.scalar(select(ManualPayout.settled_at)) is None
    payops_env.sandbox.advance_clock(3700)
    done = cli("settle", run["id"], "--wait", "30s")
    assert done.exit_code == 0, done.stdout + done.stderr
    assert "paid" in done.stdout
    with session_scope() as s:
        mp = s.scalar(select(ManualPayout))
        assert mp.status == "settled" and mp.settled_at is not None
    show = json.loads(cli("runs", "show", run["id"], "--format", "json").stdout)
    assert show["status"] == "succeeded" and show["steps"][-1]["attempts"] == 2
    assert counts()["manual_payouts"] == 1 and len(stripe_transfers(payops_env.sandbox)) == 1
    again = cli("settle", run["id"])
    assert again.exit_code == 0 and "already settled" in again.stdout


@sqlite_only
def test_relative_sqlite_url_and_output_dir_work_end_to_end(payops_env, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The default URL is relative (sqlite:///var/payops.db): kernels must see the same database."""
    work = tmp_path / "ops-host"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("PAYOPS_DATABASE_URL", "sqlite:///var/payops.db")
    monkeypatch.setenv("PAYOPS_OUTPUT_DIR", "outputs")
    get_settings(fresh=True)
    assert cli("db", "upgrade").exit_code == 0
    assert cli("sandbox", "seed", "--db").exit_code == 0
    res = cli("manual-payout", *SOP_ARGS, "--dry-run")
    assert res.exit_code == 0, res.stdout + res.stderr
    assert (work / "var" / "payops.db").exists()
    assert list((work / "outputs" / "manual_payout").glob("*/*/manifest.json"))


@sqlite_only
def test_rehearsal_run_is_marked_everywhere(payops_env, roster, tmp_path) -> None:  # type: ignore[no-untyped-def]
    args = ["--params-file", str(ROOT / "params" / "manual_payout" / "rehearsal-example.yaml"), "--rehearsal"]
    res = cli(*signed_live_args(roster, args, tmp_path / "sigs"))
    assert res.exit_code == 0, res.stdout + res.stderr
    run = latest_run("rehearsal")
    assert run["status"] == "succeeded"
    (tr,) = stripe_transfers(payops_env.sandbox)
    assert tr.metadata["is_rehearsal"] == "true" and tr.metadata["incident_id"] == "INC-REHEARSAL-001"
    with session_scope() as s:
        assert s.scalar(select(ManualPayout.is_rehearsal)) is True
    (slack,) = payops_env.sinks.slack_messages()
    (email,) = payops_env.sinks.emails()
    assert "REHEARSAL" in slack["json"]["text"] and "REHEARSAL" in email["subject"]
    assert "rehearsal" in email["text"].lower()
