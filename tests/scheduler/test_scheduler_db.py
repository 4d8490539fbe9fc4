"""The scheduler against SQLite and the real PostgreSQL: each slot once (restarts, two schedulers),
catch-up vs missed, interrupted rows, failures recorded, the heartbeat and scheduler_status."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
from datetime import date, timedelta

import pytest
from sched_helpers import FakeClock, make_job, utc
from sqlalchemy import delete, select

from payops.config import Settings
from payops.db import session_scope
from payops.db.models import OpsFlag, ScheduledExecution
from payops.errors import ChecksFailed
from payops.scheduler import HEARTBEAT_FLAG, JobRegistry, Scheduler, history, scheduler_status

pytestmark = pytest.mark.db


def _rows(settings: Settings, job: str | None = None) -> list[ScheduledExecution]:
    with session_scope(settings) as s:
        q = select(ScheduledExecution).order_by(ScheduledExecution.slot_at, ScheduledExecution.job)
        if job:
            q = q.where(ScheduledExecution.job == job)
        return list(s.scalars(q))


def test_a_due_slot_runs_exactly_once_and_is_recorded(sched_settings: Settings) -> None:
    job, rec = make_job("cycle", "0 6 * * *", result={"run_id": "run-1", "status": "completed"})
    clock = FakeClock(utc(2026, 3, 1, 5, 59, 30))
    sched = Scheduler(sched_settings, clock=clock, jobs=[job], owner="opshost:4242")
    assert sched.tick().executions == []  # nothing due yet
    report = sched.tick(clock.set(utc(2026, 3, 1, 6, 0, 10)))
    assert [(e.job, e.slot_at, e.status, e.run_id) for e in report.executions] == [
        ("cycle", utc(2026, 3, 1, 6), "succeeded", "run-1")]
    assert rec.slots == [utc(2026, 3, 1, 6)] and rec.calls[0].cycle_date == date(2026, 3, 1)
    assert rec.calls[0].late == timedelta(seconds=10)
    assert sched.tick(clock.advance(seconds=30)).executions == []
    (row,) = _rows(sched_settings)
    assert (row.job, row.slot_at, row.status, row.owner, row.runbook_run_id, row.error) == (
        "cycle", utc(2026, 3, 1, 6), "succeeded", "opshost:4242", "run-1", None)
    assert row.started_at == utc(2026, 3, 1, 6, 0, 10) and row.finished_at == utc(2026, 3, 1, 6, 0, 10)
    assert len(rec.calls) == 1


def test_a_restarted_scheduler_does_not_run_the_slot_again(sched_settings: Settings) -> None:
    job, rec = make_job("cycle", "0 6 * * *", catch_up=True)
    clock = FakeClock(utc(2026, 3, 1, 6, 0, 5))
    Scheduler(sched_settings, clock=clock, jobs=[job]).tick()
    assert len(rec.calls) == 1
    # a new process resumes where the heartbeat says the last one stopped: nothing new is due
    again = Scheduler(sched_settings, clock=clock, jobs=[job]).tick(clock.advance(minutes=2))
    assert again.executions == [] and again.skipped == []
    # even when it has to look back (heartbeat gone), the database refuses the second claim
    with session_scope(sched_settings) as s:
        s.execute(delete(OpsFlag).where(OpsFlag.name == HEARTBEAT_FLAG))
    third = Scheduler(sched_settings, clock=clock, jobs=[job]).tick(clock.advance(minutes=1))
    assert third.executions == [] and third.skipped == [("cycle", utc(2026, 3, 1, 6))]
    assert len(rec.calls) == 1 and len(_rows(sched_settings)) == 1


def test_two_schedulers_ticking_concurrently_run_each_slot_once(sched_settings: Settings) -> None:
    calls: list[tuple[str, object]] = []
    lock = threading.Lock()

    def job_fn(ctx):  # type: ignore[no-untyped-def]
        with lock:
            calls.append((ctx.owner, ctx.slot.at))

    from payops.scheduler import Job, Schedule

    jobs = JobRegistry([Job("every-minute", Schedule("* * * * *"), job_fn)])
    now = utc(2026, 3, 1, 6, 0, 30)
    scheds = [Scheduler(sched_settings, clock=lambda: now, jobs=jobs, owner=f"otherhost:{i}",
                        catch_up_window=timedelta(minutes=30)) for i in (1, 2)]
    barrier = threading.Barrier(2)
    reports: list[object] = [None, None]
    errors: list[BaseException] = []

    def go(i: int) -> None:
        try:
            barrier.wait()
            reports[i] = scheds[i].tick()
        except BaseException as exc:  # noqa: BLE001 — re-raised in the main thread by the assert below
            errors.append(exc)

    threads = [threading.Thread(target=go, args=(i,)) for i in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    slots = [slot for _, slot in calls]
    assert len(slots) == len(set(slots)) == 5  # within the 5-minute grace: 06:00, 05:59 … 05:56
    rows = _rows(sched_settings)
    assert len(rows) == 30 and len({r.slot_at for r in rows}) == 30  # one row per slot
    assert sum(r.status == "succeeded" for r in rows) == 5 and sum(r.status == "missed" for r in rows) == 25
    done = [(e.job, e.slot_at) for r in reports for e in r.executions]  # type: ignore[attr-defined]
    assert len(done) == len(set(done)) == 30  # each slot recorded by exactly one of the two


def test_a_coalescing_job_runs_the_newest_slot_of_a_gap_and_records_none_it_supersedes(
        sched_settings: Settings) -> None:
    every5, rec = make_job("every5", "*/5 * * * *", coalesce=True)
    daily, daily_rec = make_job("daily", "0 9 * * *")  # the same gap, without coalesce: recorded missed
    jobs = JobRegistry([every5, daily])
    clock = FakeClock(utc(2026, 3, 1, 12, 2))
    report = Scheduler(sched_settings, clock=clock, jobs=jobs).tick()  # fresh: looks back six hours
    assert [(e.job, e.slot_at, e.status) for e in report.executions] == [
        ("daily", utc(2026, 3, 1, 9), "missed"), ("every5", utc(2026, 3, 1, 12, 0), "succeeded")]
    assert rec.slots == [utc(2026, 3, 1, 12, 0)] and daily_rec.calls == []
    sched = Scheduler(sched_settings, clock=clock, jobs=jobs)  # down 12:02 → 13:31: 18 slots in the gap
    report = sched.tick(clock.set(utc(2026, 3, 1, 13, 31)))
    assert [(e.job, e.slot_at, e.status) for e in report.executions] == [
        ("every5", utc(2026, 3, 1, 13, 30), "succeeded")]
    report = sched.tick(clock.set(utc(2026, 3, 1, 13, 41)))  # while up, every slot still runs
    assert [e.slot_at for e in report.executions] == [utc(2026, 3, 1, 13, 35), utc(2026, 3, 1, 13, 40)]
    rows = _rows(sched_settings)
    assert sorted((r.job, r.status) for r in rows) == [("daily", "missed")] + [("every5", "succeeded")] * 4


def test_catch_up_within_the_window_and_missed_outside(sched_settings: Settings) -> None:
    cycle, cycle_rec = make_job("cycle", "0 6,10 * * *", catch_up=True)
    check, check_rec = make_job("check", "0 9 * * *")
    late_check, late_rec = make_job("late-check", "58 12 * * *")
    jobs = JobRegistry([cycle, check, late_check])
    clock = FakeClock(utc(2026, 3, 1, 0, 0))
    Scheduler(sched_settings, clock=clock, jobs=jobs).run_forever(max_ticks=1, handle_signals=False)
    # down from 00:00 until 13:00
    report = Scheduler(sched_settings, clock=clock, jobs=jobs).tick(clock.set(utc(2026, 3, 1, 13, 0)))
    got = {(e.job, e.slot_at.hour): e.status for e in report.executions}
    assert got == {("cycle", 6): "missed", ("check", 9): "missed", ("cycle", 10): "succeeded",
                   ("late-check", 12): "succeeded"}
    assert cycle_rec.slots == [utc(2026, 3, 1, 10)] and cycle_rec.calls[0].late == timedelta(hours=3)
    assert check_rec.calls == [] and late_rec.slots == [utc(2026, 3, 1, 12, 58)]
    missed = {r.job: r for r in _rows(sched_settings) if r.status == "missed"}
    assert missed["cycle"].started_at is None and "older than the catch-up window" in (missed["cycle"].error or "")
    assert "does not catch up" in (missed["check"].error or "")
    assert [h["status"] for h in history(sched_settings, limit=2)] == ["succeeded", "succeeded"]


def test_a_long_downtime_records_every_missed_slot_once(sched_settings: Settings) -> None:
    cycle, rec = make_job("cycle", "0 6 * * *", catch_up=True)
    clock = FakeClock(utc(2026, 1, 1))
    Scheduler(sched_settings, clock=clock, jobs=[cycle]).tick()
    report = Scheduler(sched_settings, clock=clock, jobs=[cycle]).tick(clock.set(utc(2026, 1, 31, 8)))
    statuses = [e.status for e in report.executions]
    assert statuses == ["missed"] * 30 + ["succeeded"] and rec.slots == [utc(2026, 1, 31, 6)]


def _dead_pid() -> int:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True)
    return int(proc.stdout)


def test_a_row_left_running_by_a_dead_scheduler_is_interrupted_not_rerun(sched_settings: Settings) -> None:
    job, rec = make_job("cycle", "0 6 * * *", catch_up=True)
    host = socket.gethostname()
    rows = {
        "dead-here": (utc(2026, 3, 1, 6), f"{host}:{_dead_pid()}", utc(2026, 3, 1, 6)),
        "old-elsewhere": (utc(2026, 2, 27, 6), "otherhost:1", utc(2026, 2, 27, 6)),
        "fresh-elsewhere": (utc(2026, 2, 28, 6), "otherhost:2", utc(2026, 3, 1, 5)),
        "alive-here": (utc(2026, 2, 26, 6), f"{host}:{os.getpid()}", utc(2026, 3, 1, 5)),
    }
    with session_scope(sched_settings) as s:
        for key, (slot, owner, started) in rows.items():
            s.add(ScheduledExecution(job="cycle", slot_at=slot, status="running", owner=owner, started_at=started,
                                     runbook_run_id=None, error=key))
    clock = FakeClock(utc(2026, 3, 1, 6, 0, 30))
    report = Scheduler(sched_settings, clock=clock, jobs=[job]).tick()
    assert rec.calls == []  # never twice: the 06:00 slot is someone's (interrupted) run
    assert sorted(e.slot_at for e in report.interrupted) == [utc(2026, 2, 27, 6), utc(2026, 3, 1, 6)]
    assert report.skipped == [("cycle", utc(2026, 3, 1, 6))]
    by_slot = {r.slot_at: r for r in _rows(sched_settings)}
    assert by_slot[utc(2026, 3, 1, 6)].status == "interrupted"
    assert "is gone" in (by_slot[utc(2026, 3, 1, 6)].error or "")
    assert by_slot[utc(2026, 2, 27, 6)].status == "interrupted"
    assert by_slot[utc(2026, 2, 28, 6)].status == "running"  # another host, not too old: left alone
    assert by_slot[utc(2026, 2, 26, 6)].status == "running"  # this very process: alive


def test_a_failed_job_is_recorded_with_its_error_and_the_other_jobs_still_run(
        sched_settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    err = ChecksFailed("2 check(s) failed: stripe_key, webhook_url")
    err.run_id = "run-checks-1"  # type: ignore[attr-defined]
    boom, _ = make_job("a-check", "0 5 * * *", raises=err)
    bug, _ = make_job("b-bug", "0 5 * * *", raises=RuntimeError("kaboom"))
    bad, _ = make_job("c-status", "0 5 * * *", result={"run_id": "run-cycle-1", "status": "failed"})
    fine, fine_rec = make_job("d-fine", "0 5 * * *", result=type("R", (), {"run_id": "run-ok", "status": "ok"})())
    clock = FakeClock(utc(2026, 3, 1, 5, 0, 20))
    with caplog.at_level(logging.INFO, logger="payops.scheduler"):
        report = Scheduler(sched_settings, clock=clock, jobs=[boom, bug, bad, fine]).tick()
    assert len(fine_rec.calls) == 1
    assert [(e.job, e.status) for e in report.executions] == [
        ("a-check", "failed"), ("b-bug", "failed"), ("c-status", "failed"), ("d-fine", "succeeded")]
    assert report.executions[0].exit_code == ChecksFailed.exit_code
    rows = {r.job: r for r in _rows(sched_settings)}
    assert rows["a-check"].error == "ChecksFailed: 2 check(s) failed: stripe_key, webhook_url"
    assert rows["a-check"].runbook_run_id == "run-checks-1"
    assert rows["b-bug"].error == "RuntimeError: kaboom" and rows["b-bug"].finished_at is not None
    assert rows["c-status"].runbook_run_id == "run-cycle-1" and "status failed" in (rows["c-status"].error or "")
    assert rows["d-fine"].status == "succeeded" and rows["d-fine"].runbook_run_id == "run-ok"
    text = caplog.text
    assert "a-check" in text and "FAILED" in text and "kaboom" in text and "Traceback" in text


def test_heartbeat_and_scheduler_status(sched_settings: Settings) -> None:
    job, _ = make_job("cycle", "0 6 1,15 * *")
    jobs = JobRegistry([job])
    t0 = utc(2026, 3, 2, 12, 0)
    never = scheduler_status(sched_settings, t0, jobs=jobs)
    assert never["armed"] is False and never["owner"] is None and "ever run" in never["detail"]
    assert never["next"] == {"cycle": "2026-03-15T06:00:00+00:00"}

    clock = FakeClock(t0)
    sched = Scheduler(sched_settings, clock=clock, jobs=jobs, owner="opshost:77")
    sched.tick()
    with session_scope(sched_settings) as s:
        flag = s.get(OpsFlag, HEARTBEAT_FLAG)
        assert flag is not None and flag.enabled and flag.set_by == "opshost:77" and flag.set_at == t0
        reason = json.loads(flag.reason or "{}")
    assert reason["next"] == {"cycle": "2026-03-15T06:00:00+00:00"} and reason["through"] == t0.isoformat()

    st = scheduler_status(sched_settings, t0 + timedelta(minutes=1), jobs=jobs)
    assert st["armed"] is True and st["owner"] == "opshost:77" and st["last_heartbeat"] == t0.isoformat()
    assert st["age_seconds"] == 60 and st["stale_after_seconds"] == 300
    assert scheduler_status(sched_settings, t0 + timedelta(minutes=6), jobs=jobs)["armed"] is False
    # default registry: every payops job has a next slot
    assert set(scheduler_status(sched_settings, t0)["next"]) == {
        "pre-run-check", "payout-cycle", "post-run-check", "rehearsal", "reconciliation", "monitor-check"}

    slow = Scheduler(sched_settings, clock=clock, jobs=jobs, owner="opshost:78", poll_seconds=300)
    slow.tick(clock.advance(minutes=1))
    assert scheduler_status(sched_settings, clock.now + timedelta(minutes=14), jobs=jobs)["armed"] is True
    assert scheduler_status(sched_settings, clock.now + timedelta(minutes=16), jobs=jobs)["armed"] is False

    slow.stop()
    slow.run_forever(handle_signals=False)  # already stopping: no tick, nothing changes
    Scheduler(sched_settings, clock=clock, jobs=jobs, owner="opshost:79").run_forever(max_ticks=1,
                                                                                      handle_signals=False)
    stopped = scheduler_status(sched_settings, clock.now, jobs=jobs)
    assert stopped["armed"] is False and "stopped" in stopped["detail"] and stopped["owner"] == "opshost:79"


def test_run_forever_polls_with_the_injected_sleep_and_stops_on_sigterm(sched_settings: Settings) -> None:
    job, rec = make_job("every-5", "*/5 * * * *")
    clock = FakeClock(utc(2026, 3, 1, 6, 0, 1))
    sched = Scheduler(sched_settings, clock=clock, sleep=clock.sleep, jobs=[job], poll_seconds=30)

    def on_sleep(c: FakeClock) -> None:
        if c.now >= utc(2026, 3, 1, 6, 20, 30):
            os.kill(os.getpid(), signal.SIGTERM)

    clock.on_sleep = on_sleep
    before = signal.getsignal(signal.SIGTERM)
    sched.run_forever()
    assert signal.getsignal(signal.SIGTERM) is before
    assert rec.slots == [utc(2026, 3, 1, 6, m) for m in (0, 5, 10, 15, 20)]
    assert max(clock.slept) <= 30 and sched.stopping
    assert scheduler_status(sched_settings, clock.now, jobs=[job])["armed"] is False  # stopped gracefully
