"""The quarterly rehearsal job: a dry-run manual payout rehearsal through the real runner (notebooks
executed against the sandbox), announced on Slack with the commands to continue — never live."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
from sched_helpers import FakeClock, utc
from sqlalchemy import select, update
from typer.testing import CliRunner

from payops import demo_data
from payops.cli import app
from payops.db import session_scope
from payops.db.models import LedgerPayout, ManualPayout, RunbookRun, ScheduledExecution, TransferIntent
from payops.scheduler import REHEARSAL, Scheduler, default_registry

pytestmark = [pytest.mark.e2e, pytest.mark.db, pytest.mark.slow]
OPERATOR = "aaaaaaaa-0000-4000-8000-000000000001"


def test_the_rehearsal_job_starts_a_dry_run_and_asks_humans_to_continue(payops_env) -> None:  # type: ignore[no-untyped-def]
    settings = payops_env.settings
    clock = FakeClock(utc(2026, 4, 14, 14, 0, 20))  # second Tuesday of April, 14:00 UTC
    sched = Scheduler(settings, clock=clock, jobs=[default_registry().get(REHEARSAL)])
    report = sched.tick()
    (ex,) = report.executions
    assert (ex.job, ex.slot_at, ex.status, ex.error) == (REHEARSAL, utc(2026, 4, 14, 14), "succeeded", None)

    with session_scope(settings) as s:
        run = s.get(RunbookRun, ex.run_id)
        assert run is not None
        assert (run.sop, run.mode, run.status) == ("manual_payout", "dry-run", "succeeded")
        params = json.loads(run.params_json)
        row = s.scalar(select(ScheduledExecution).where(ScheduledExecution.job == REHEARSAL))
        assert row is not None and row.runbook_run_id == run.id and row.status == "succeeded"
        assert s.scalar(select(ManualPayout)) is None and s.scalar(select(TransferIntent)) is None
    assert params["is_rehearsal"] is True and params["dry_run"] is True and params["operator"] == OPERATOR
    assert params["ledger_payout_id"] == demo_data.REHEARSAL_LEDGER_PAYOUT_ID
    assert (Path(run.output_dir) / "manifest.json").exists()
    assert list(payops_env.sandbox.client().v1.transfers.list(
        {"transfer_group": demo_data.REHEARSAL_LEDGER_PAYOUT_ID}).data) == []

    (msg,) = payops_env.sinks.slack_messages()
    text = msg["json"]["text"]
    assert "rehearsal" in text and run.id in text
    assert f"payops approve {run.id} --role ops" in text and f"payops runs resume {run.id} --live" in text
    assert "never goes live" in text
    # an empty roster is said before anyone needs it
    assert "Approver roster: ops 0, finance 0" in text and "Enroll before going live: ops, finance, operator" in text

    # the next quarter's tick does not run this slot again
    assert sched.tick(clock.advance(minutes=1)).executions == []


def test_a_failed_rehearsal_dry_run_is_recorded_and_announced(payops_env) -> None:  # type: ignore[no-untyped-def]
    settings = payops_env.settings
    with session_scope(settings) as s:  # last quarter's rehearsal went live: the ledger payout is paid
        s.execute(update(LedgerPayout).where(LedgerPayout.id == demo_data.REHEARSAL_LEDGER_PAYOUT_ID)
                  .values(status="paid", stripe_transfer_id="tr_previous_rehearsal"))
    clock = FakeClock(utc(2026, 4, 14, 14, 0, 20))
    report = Scheduler(settings, clock=clock, jobs=[default_registry().get(REHEARSAL)]).tick()
    (ex,) = report.executions
    assert ex.status == "failed" and ex.run_id is not None
    assert "10-verify" in (ex.error or "") and "PreconditionFailed" in (ex.error or "")
    with session_scope(settings) as s:
        row = s.scalar(select(ScheduledExecution).where(ScheduledExecution.job == REHEARSAL))
        assert row is not None and row.status == "failed" and row.runbook_run_id == ex.run_id
    (msg,) = payops_env.sinks.slack_messages()
    assert f"Its dry run {ex.run_id} FAILED" in msg["json"]["text"]


def test_the_rehearsal_message_commands_take_it_live_with_generated_keys(payops_env, roster) -> None:  # type: ignore[no-untyped-def]
    """The Slack message's commands, run as written by the people they name — each with their own key
    (test-only keys generated for this test) — take the rehearsal live, once."""
    settings = payops_env.settings
    clock = FakeClock(utc(2026, 4, 14, 14, 0, 20))
    (ex,) = Scheduler(settings, clock=clock, jobs=[default_registry().get(REHEARSAL)]).tick().executions
    assert ex.status == "succeeded"
    (msg,) = payops_env.sinks.slack_messages()
    text = msg["json"]["text"]
    assert "Approver roster: ops 1, finance 1 with keys; operator Oscar Operator enrolled." in text
    assert "Enroll before" not in text
    commands = [ln.split("#")[0].strip() for ln in text.splitlines() if ln.startswith("  payops ")]
    assert [c.split()[1] for c in commands] == ["approve", "approve", "runs"]
    who = {"--role ops": "ops", "--role finance": "finance", "resume": "operator"}
    for cmd in commands:
        member = next(m for k, m in who.items() if k in cmd)
        args = shlex.split(cmd.replace("~/.ssh/id_ed25519", str(roster[member].key_path)))[1:]
        res = CliRunner().invoke(app, [*args, *(["--yes"] if args[0] == "approve" else [])], catch_exceptions=False)
        assert res.exit_code == 0, res.stdout + res.stderr
    (tr,) = payops_env.sandbox.client().v1.transfers.list({"transfer_group": demo_data.REHEARSAL_LEDGER_PAYOUT_ID}).data
    assert tr.metadata["is_rehearsal"] == "true"
    assert (tr.metadata["approver_ops_id"], tr.metadata["approver_finance_id"], tr.metadata["operator"]) == (
        roster["ops"].person_id, roster["finance"].person_id, OPERATOR)
