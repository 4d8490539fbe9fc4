"""`payops scheduler run --once | status` and `payops schedule history` through typer's CliRunner on the
scheduler's own apps (payops.cli mounts them)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from sched_helpers import make_job, utc
from typer.testing import CliRunner

from payops.config import Settings
from payops.errors import ChecksFailed
from payops.scheduler import JobRegistry, engine, jobs
from payops.scheduler.cli import schedule_app, scheduler_app
from payops.scheduler.status import write_heartbeat

pytestmark = pytest.mark.db


def test_run_once_status_and_history(sched_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    ok, ok_rec = make_job("ok-job", "0 6 * * *", result={"run_id": "run-ok", "status": "succeeded"})
    bad, _ = make_job("bad-job", "0 6 * * *", raises=ChecksFailed("1 check(s) failed: webhook_url"))
    registry = JobRegistry([ok, bad])
    monkeypatch.setattr(jobs, "default_registry", lambda: registry)
    monkeypatch.setattr(engine, "utc_now", lambda: utc(2026, 3, 1, 6, 0, 10))
    runner = CliRunner()

    never = runner.invoke(scheduler_app, ["status"])
    assert never.exit_code == 1 and "ever run" in never.stdout and "ever run" in never.stderr

    res = runner.invoke(scheduler_app, ["run", "--once"])
    assert res.exit_code == ChecksFailed.exit_code, res.stdout + res.stderr
    assert "ok-job @ 2026-03-01 06:00 UTC: succeeded run run-ok" in res.stdout
    assert "bad-job @ 2026-03-01 06:00 UTC: FAILED" in res.stdout
    assert "2 job(s) run, 1 failed" in res.stdout
    assert "ChecksFailed: 1 check(s) failed: webhook_url" in res.stderr
    assert len(ok_rec.calls) == 1
    again = runner.invoke(scheduler_app, ["run", "--once"])  # same instant, new process: nothing runs twice
    assert again.exit_code == 0 and "0 job(s) run" in again.stdout and len(ok_rec.calls) == 1

    hist = runner.invoke(schedule_app, ["history", "--limit", "5"], env={"COLUMNS": "160"})
    assert hist.exit_code == 0, hist.stdout + hist.stderr
    lines = [line for line in hist.stdout.splitlines() if "2026-03-01 06:00" in line]
    assert len(lines) == 2
    assert any("ok-job" in line and "succeeded" in line and "run-ok" in line for line in lines)
    assert any("bad-job" in line and "failed" in line and "ChecksFailed" in line for line in lines)

    rows = json.loads(runner.invoke(schedule_app, ["history", "--json"]).stdout)
    assert [(r["job"], r["status"], r["runbook_run_id"]) for r in rows] == [
        ("bad-job", "failed", None), ("ok-job", "succeeded", "run-ok")]
    assert all(r["owner"] and r["started_at"] and r["finished_at"] for r in rows)

    stale = runner.invoke(scheduler_app, ["status"])  # last heartbeat: the fake March morning
    assert stale.exit_code == 1 and "not armed" in stale.stdout

    write_heartbeat(sched_settings, owner="opshost:9", at=datetime.now(UTC), poll_seconds=30, through=None,
                    next_slots={})
    armed = runner.invoke(scheduler_app, ["status", "--json"])
    assert armed.exit_code == 0, armed.stdout + armed.stderr
    info = json.loads(armed.stdout)
    assert info["armed"] is True and info["owner"] == "opshost:9" and set(info["next"]) == {"ok-job", "bad-job"}


def test_cli_refuses_bad_options(sched_settings: Settings) -> None:
    runner = CliRunner()
    res = runner.invoke(scheduler_app, ["run", "--once", "--poll-seconds", "0"])
    assert res.exit_code == 2 and "--poll-seconds" in res.stderr
    res = runner.invoke(schedule_app, ["next", "--count", "0"])
    assert res.exit_code == 2 and "--count" in res.stderr
    res = runner.invoke(schedule_app, ["history"])
    assert res.exit_code == 0 and "no scheduled executions" in res.stdout
