"""The monthly reconciliation job: the previous month reconciled through the real runner against the sandbox,
Slack told how it went, and the slot recorded failed when unexplained breaks exceed PAYOPS_RECON_MAX_UNEXPLAINED —
so a scheduled reconciliation alerts."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest
from sched_helpers import FakeClock, utc
from sqlalchemy import select

from payops.config import get_settings
from payops.db import session_scope
from payops.db.models import RunbookRun, ScheduledExecution
from payops.reconcile import store
from payops.reconcile.run import previous_month
from payops.scheduler import RECONCILIATION, Scheduler, default_registry

pytestmark = [pytest.mark.e2e, pytest.mark.db, pytest.mark.slow]


@pytest.fixture()
def recon_settings(payops_env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("PAYOPS_RECON_CACHE_DIR", str(tmp_path / "recon-cache"))
    return payops_env


def _tick(settings, hour_utc: int = 9):  # type: ignore[no-untyped-def]
    clock = FakeClock(utc(2026, 12, 4, hour_utc, 0, 20))  # the 4th, 09:00 local: November's cut-off margin is over
    return Scheduler(settings, clock=clock, jobs=[default_registry().get(RECONCILIATION)]).tick()


@pytest.mark.parametrize("db_url", ["sqlite", "postgresql"], indirect=True)
def test_over_the_threshold_the_slot_fails_and_slack_hears_it(recon_settings) -> None:  # type: ignore[no-untyped-def]
    (ex,) = _tick(recon_settings.settings).executions
    assert (ex.job, ex.status, ex.exit_code) == (RECONCILIATION, "failed", 10), ex
    assert "ReconciliationBreaks" in (ex.error or "") and ex.run_id
    assert "exceed PAYOPS_RECON_MAX_UNEXPLAINED 0" in (ex.error or "")
    with session_scope(recon_settings.settings) as s:
        row = s.scalar(select(ScheduledExecution).where(ScheduledExecution.job == RECONCILIATION))
        assert row is not None and row.status == "failed" and row.runbook_run_id == ex.run_id
        run = s.get(RunbookRun, ex.run_id)
        assert run is not None and run.sop == "reconciliation"
        params = json.loads(run.params_json)
    assert (params["period_from"], params["period_to"], params["max_unexplained"]) == ("2026-11-01", "2026-11-30", 0)
    assert (Path(run.output_dir) / "manifest.json").is_file()  # archived and sealed like every run
    breaks = store.breaks_of(ex.run_id)
    assert breaks and all(b["explanation"] is None for b in breaks)
    (msg,) = recon_settings.sinks.slack_messages()
    text = msg["json"]["text"]
    assert text.startswith(":rotating_light: Reconciliation 2026-11-01..2026-11-30: ")
    assert f"{len(breaks)} unexplained break(s), over the threshold 0" in text
    assert "MISSING_IN_STRIPE" in text and ex.run_id in text and f"payops recon signoff {ex.run_id}" in text


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_within_the_threshold_it_succeeds_and_says_so(recon_settings, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("PAYOPS_RECON_MAX_UNEXPLAINED", "50")
    monkeypatch.setenv("PAYOUT_TIMEZONE", "America/Toronto")
    settings = get_settings(fresh=True)
    assert _tick(settings).executions == []  # 09:00 UTC is 04:00 in Toronto: not due yet
    (ex,) = _tick(settings, hour_utc=14).executions
    assert ex.status == "succeeded" and ex.run_id, ex
    with session_scope(settings) as s:
        params = json.loads(s.get(RunbookRun, ex.run_id).params_json)  # type: ignore[union-attr]
    assert params["timezone"] == "America/Toronto" and params["max_unexplained"] == 50
    (msg,) = recon_settings.sinks.slack_messages()
    assert msg["json"]["text"].startswith(":white_check_mark: Reconciliation 2026-11-01..2026-11-30: ")
    assert msg["json"]["channel"] == settings.slack_channel


def test_previous_month() -> None:
    assert previous_month(date(2026, 12, 4)) == (date(2026, 11, 1), date(2026, 11, 30))
    assert previous_month(date(2027, 1, 1)) == (date(2026, 12, 1), date(2026, 12, 31))
    assert previous_month(date(2028, 3, 31)) == (date(2028, 2, 1), date(2028, 2, 29))
