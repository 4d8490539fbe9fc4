"""The quarterly rehearsal job: a dry-run manual payout rehearsal through the real runner (notebooks
executed against the sandbox), announced on Slack with the commands to continue — never live."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sched_helpers import FakeClock, utc
from sqlalchemy import select, update

from payops import demo_data
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
