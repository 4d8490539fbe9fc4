"""The single-host scheduler: finds due slots, claims each one in the database, runs it, records it.

Never twice for the same slot: a slot is claimed by INSERTing its ``scheduled_executions`` row
(status ``running``) before the job runs; the unique ``(job, slot_at)`` makes any second claim fail
— after a restart, or from a second scheduler started by mistake. A row left ``running`` by a dead
scheduler becomes ``interrupted`` and is never re-run: a person resumes the runbook run.

After downtime (measured from the last heartbeat's ``through``), slots that came due while no
scheduler was running are run late when their job catches up and they are within the catch-up
window; otherwise they are recorded ``missed``. Slots no more than ``grace`` late count as on time.
"""

from __future__ import annotations

import logging
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import FrameType
from typing import Any

import psutil
from rich.console import Console
from rich.markup import escape
from rich.traceback import Traceback
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from payops.config import Settings
from payops.db import session_scope
from payops.db.models import ScheduledExecution
from payops.errors import PayopsError
from payops.runstate import lease_owner
from payops.scheduler import status as hb
from payops.scheduler.jobs import (
    FAILED_STATUSES,
    Job,
    JobContext,
    JobRegistry,
    Schedule,
    Slot,
    as_registry,
    payout_zone,
)

CATCH_UP_WINDOW = timedelta(hours=6)
ON_TIME_GRACE = timedelta(minutes=5)
RUNNING_TIMEOUT = timedelta(hours=12)
MAX_MISSED_PER_JOB = 500  # slots older than the window recorded as missed per job and tick
log = logging.getLogger("payops.scheduler")


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Execution:
    """What one tick did with one slot: ``running`` → succeeded · failed; or missed · interrupted."""

    job: str
    slot_at: datetime
    status: str
    run_id: str | None = None
    error: str | None = None
    late: timedelta = timedelta(0)
    exit_code: int = 0


@dataclass
class TickReport:
    now: datetime
    executions: list[Execution] = field(default_factory=list)
    skipped: list[tuple[str, datetime]] = field(default_factory=list)  # claimed by someone else
    interrupted: list[Execution] = field(default_factory=list)

    @property
    def failed(self) -> list[Execution]:
        return [e for e in self.executions if e.status == "failed"]

    def ran(self, job: str | None = None) -> list[Execution]:
        return [e for e in self.executions if e.status in ("succeeded", "failed") and job in (None, e.job)]


def error_text(exc: BaseException) -> str:
    """``Type: message`` plus any notes — what the execution row records."""
    notes = getattr(exc, "__notes__", None) or []
    return "; ".join([f"{type(exc).__name__}: {exc}", *map(str, notes)])[:4000]


def owner_gone(owner: str | None) -> bool:
    """True when ``owner`` (host:pid) is a process on this host that no longer exists."""
    host, _, pid = (owner or "").rpartition(":")
    return host == socket.gethostname() and pid.isdigit() and not psutil.pid_exists(int(pid))


class Scheduler:
    """Runs the jobs' due slots exactly once. ``tick(now)`` does one pass; ``run_forever()`` polls.

    ``clock`` returns aware UTC datetimes (default: the system clock); ``sleep(seconds)`` waits (default:
    until the next poll or a stop signal). Both are injectable so tests never wait. ``jobs``: a
    :class:`JobRegistry` or a list of :class:`Job` (default: payops' jobs). ``catch_up_window``,
    ``grace`` and ``running_timeout`` are parameters, not settings.
    """

    def __init__(
        self, settings: Settings, *, clock: Callable[[], datetime] | None = None,
        sleep: Callable[[float], Any] | None = None, jobs: JobRegistry | Iterable[Job] | None = None,
        poll_seconds: float = hb.DEFAULT_POLL_SECONDS, catch_up_window: timedelta = CATCH_UP_WINDOW,
        grace: timedelta = ON_TIME_GRACE, running_timeout: timedelta = RUNNING_TIMEOUT, owner: str | None = None,
        console: Console | None = None,
    ) -> None:
        if poll_seconds <= 0:
            raise ValueError("poll_seconds must be positive")
        self.settings = settings
        self.clock = clock or utc_now
        self._stop = threading.Event()
        self.sleep = sleep or self._stop.wait
        self.jobs = as_registry(jobs)
        self.poll_seconds = float(poll_seconds)
        self.catch_up_window, self.grace, self.running_timeout = catch_up_window, grace, running_timeout
        self.owner = (owner or lease_owner())[:128]
        self.console = console
        self.tz = payout_zone(settings)
        self.schedules: dict[str, Schedule] = {j.name: j.schedule_for(settings) for j in self.jobs}  # ConfigError
        self._started: datetime | None = None
        self._through: datetime | None = None  # slots up to here are handled
        self._tick_since: datetime | None = None
        self._signals = 0

    # -- logging -------------------------------------------------------------------------------------
    def _say(self, level: int, text: str, style: str = "", exc: BaseException | None = None) -> None:
        """One log line: on the Rich console when there is one, else through ``logging``."""
        if self.console is None:
            log.log(level, text, exc_info=exc)
            return
        stamp = f"[dim]{self.clock():%Y-%m-%d %H:%M:%S}Z[/]"
        body = escape(text)
        self.console.print(f"{stamp} [{style}]{body}[/]" if style else f"{stamp} {body}", soft_wrap=True)
        if exc is not None:
            self.console.print(Traceback.from_exception(type(exc), exc, exc.__traceback__))

    def _slot_label(self, job: str, slot: Slot) -> str:
        local = slot.at.astimezone(self.tz)
        return f"{job} @ {local:%Y-%m-%d %H:%M %Z}" + ("" if self.tz.key == "UTC" else f" ({slot.at:%H:%M} UTC)")

    # -- one pass ------------------------------------------------------------------------------------
    def tick(self, now: datetime | None = None) -> TickReport:
        """Claim and run every slot due in (last seen, now]; record interrupted runs; heartbeat."""
        now = now or self.clock()
        if now.tzinfo is None:
            raise ValueError("tick() needs an aware datetime")
        now = now.astimezone(UTC)
        report = TickReport(now)
        since = self._through if self._through is not None else self._start(now)
        self._tick_since = since
        report.interrupted = self._sweep_interrupted(now)
        self._heartbeat(now, through=since)
        for job, slot in self._due(since, now):
            late = now - slot.at
            if self._should_run(job, slot, now):
                self._run(job, slot, late, report)
            else:
                self._record_missed(job, slot, late, report)
        self._through = max(now, since)
        self._heartbeat(now, through=self._through)
        return report

    def _start(self, now: datetime) -> datetime:
        """First tick: resume from the previous scheduler's ``through``, or look back one window."""
        self._started = now
        prev = hb.read_heartbeat(self.settings)
        if prev is not None and prev.running and prev.owner != self.owner and now - prev.at <= hb.stale_after(
                prev.poll_seconds):
            self._say(logging.WARNING, f"another scheduler ({prev.owner}) heartbeat {prev.at:%H:%M:%S}Z: two "
                      "schedulers are running; each slot still runs once (the database decides)", "yellow")
        since = prev.through if prev is not None and prev.through is not None else now - self.catch_up_window
        self._say(logging.INFO, f"scheduler {self.owner} started: PAYOUT_TIMEZONE {self.tz.key}, poll "
                  f"{self.poll_seconds:g} s, slots since {since:%Y-%m-%d %H:%M:%S}Z", "bold")
        for name, sched in self.schedules.items():
            self._say(logging.INFO, f"  next {self._slot_label(name, sched.upcoming(self.tz, now, 1)[0])}")
        return min(since, now)

    def _due(self, since: datetime, now: datetime) -> list[tuple[Job, Slot]]:
        order = {name: i for i, name in enumerate(self.jobs.names())}
        recent_from = max(since, now - self.catch_up_window)
        out: list[tuple[Job, Slot]] = []
        for job in self.jobs:
            sched = self.schedules[job.name]
            slots: list[Slot] = []
            if since < recent_from:  # long downtime: older slots are only ever recorded as missed; bounded
                old = sched.upcoming(self.tz, since, MAX_MISSED_PER_JOB + 1)
                old = [s for s in old if s.at <= recent_from]
                if len(old) > MAX_MISSED_PER_JOB and not job.coalesce:
                    self._say(logging.WARNING, f"{job.name}: more than {MAX_MISSED_PER_JOB} slots missed since "
                              f"{since:%Y-%m-%d}; recording the first {MAX_MISSED_PER_JOB}", "yellow")
                slots.extend(old[:MAX_MISSED_PER_JOB])
            slots.extend(sched.between(self.tz, recent_from, now))
            if job.coalesce:  # only the newest slot due by start counts; those it supersedes are not recorded
                assert self._started is not None
                gap = [s for s in slots if s.at <= self._started]
                slots = gap[-1:] + [s for s in slots if s.at > self._started]
            out.extend((job, s) for s in slots)
        return sorted(out, key=lambda js: (js[1].at, order[js[0].name]))

    def _came_due_while_up(self, slot: Slot) -> bool:
        assert self._started is not None
        return slot.at > self._started - self.grace

    def _should_run(self, job: Job, slot: Slot, now: datetime) -> bool:
        if now - slot.at > self.catch_up_window:
            return False
        return self._came_due_while_up(slot) or job.catch_up or job.coalesce

    # -- claiming and recording ------------------------------------------------------------------------
    def _claim(self, job: str, slot: Slot, **values: Any) -> int | None:
        """INSERT the slot's row; None when another scheduler (or an earlier run) already has it."""
        try:
            with session_scope(self.settings) as s:
                row = ScheduledExecution(job=job, slot_at=slot.at, owner=self.owner, **values)
                s.add(row)
                s.flush()
                return row.id
        except IntegrityError:
            return None

    def _finish(self, row_id: int, **values: Any) -> None:
        with session_scope(self.settings) as s:
            s.execute(update(ScheduledExecution).where(ScheduledExecution.id == row_id).values(
                finished_at=self.clock(), **values))

    def _record_missed(self, job: Job, slot: Slot, late: timedelta, report: TickReport) -> None:
        why = ("older than the catch-up window" if late > self.catch_up_window
               else "came due while no scheduler was running and this job does not catch up")
        error = f"not run: {why} ({self.catch_up_window}); due {slot.at:%Y-%m-%d %H:%M}Z"
        if self._claim(job.name, slot, status="missed", finished_at=self.clock(), error=error) is None:
            report.skipped.append((job.name, slot.at))
            return
        report.executions.append(Execution(job.name, slot.at, "missed", error=error, late=late))
        self._say(logging.WARNING, f"{self._slot_label(job.name, slot)} missed — {error}", "yellow")

    def _run(self, job: Job, slot: Slot, late: timedelta, report: TickReport) -> None:
        label = self._slot_label(job.name, slot)
        row_id = self._claim(job.name, slot, status="running", started_at=self.clock())
        if row_id is None:
            report.skipped.append((job.name, slot.at))
            self._say(logging.INFO, f"{label}: already claimed (another scheduler or an earlier run) — skipped",
                      "dim")
            return
        lateness = f" late by {str(late).split('.')[0]} (catch-up)" if late > self.grace else ""
        self._say(logging.INFO, f"{label}: running{lateness}", "cyan")
        ctx = JobContext(job=job.name, slot=slot, settings=self.settings, now=self.clock(), owner=self.owner,
                         late=late)
        t0 = time.monotonic()
        ex = Execution(job.name, slot.at, "running", late=late)
        try:
            with self._pulse(job.name):
                result = job.run(ctx)
        except Exception as exc:  # noqa: BLE001 — recorded and logged, then the loop goes on to other jobs
            ex.status, ex.error = "failed", error_text(exc)
            ex.run_id = getattr(exc, "run_id", None)
            ex.exit_code = exc.exit_code if isinstance(exc, PayopsError) else 1
            if not isinstance(exc, PayopsError):  # a bug or an outage: keep the traceback in the log
                self._say(logging.ERROR, f"{label} raised {type(exc).__name__}", "red", exc=exc)
        except BaseException as exc:  # Ctrl-C / SystemExit mid-job: never re-run; a person decides
            self._finish(row_id, status="interrupted", error=f"interrupted while running: {error_text(exc)}")
            raise
        else:
            ex.run_id = _field(result, "run_id")
            status = _field(result, "status")
            ex.status = "failed" if status in FAILED_STATUSES else "succeeded"
            if ex.status == "failed":
                ex.error, ex.exit_code = f"{job.name} finished with status {status}", 1
        took = f"{time.monotonic() - t0:.1f} s"
        run = f" run {ex.run_id}" if ex.run_id else ""
        if ex.status == "succeeded":
            self._say(logging.INFO, f"{label}: succeeded{run} ({took})", "green")
        else:
            self._say(logging.ERROR, f"{label}: FAILED{run} ({took}): {ex.error}", "bold red")
        self._finish(row_id, status=ex.status, runbook_run_id=ex.run_id, error=ex.error)
        report.executions.append(ex)

    def _sweep_interrupted(self, now: datetime) -> list[Execution]:
        """Rows left ``running`` by a dead scheduler (gone from this host, or running too long)."""
        out: list[Execution] = []
        with session_scope(self.settings) as s:
            rows = list(s.scalars(select(ScheduledExecution).where(ScheduledExecution.status == "running")))
            for row in rows:
                if owner_gone(row.owner):
                    why = f"its scheduler {row.owner} is gone"
                elif row.started_at is not None and now - row.started_at > self.running_timeout:
                    why = f"running for more than {self.running_timeout}"
                else:
                    continue
                error = (f"interrupted: {why}; not re-run (never twice) — check the job's runbook run "
                         "(`payops runs list`) and resume it by hand")
                res = s.execute(update(ScheduledExecution).where(
                    ScheduledExecution.id == row.id, ScheduledExecution.status == "running").values(
                    status="interrupted", finished_at=now, error=error))
                if res.rowcount == 1:  # type: ignore[attr-defined]
                    out.append(Execution(row.job, row.slot_at, "interrupted", row.runbook_run_id, error))
        for ex in out:
            self._say(logging.ERROR, f"{ex.job} @ {ex.slot_at:%Y-%m-%d %H:%M}Z: {ex.error}", "bold red")
        return out

    # -- heartbeat -------------------------------------------------------------------------------------
    def _heartbeat(self, now: datetime, *, through: datetime | None, job_running: str | None = None,
                   running: bool = True) -> None:
        nxt = {name: sched.upcoming(self.tz, now, 1)[0] for name, sched in self.schedules.items()}
        hb.write_heartbeat(self.settings, owner=self.owner, at=now, poll_seconds=self.poll_seconds, through=through,
                           next_slots=nxt, job_running=job_running, running=running)

    @contextmanager
    def _pulse(self, job: str) -> Iterator[None]:
        """Keep the heartbeat fresh while a long job runs (the go-live checks read it meanwhile)."""
        done = threading.Event()

        def beat() -> None:
            while not done.wait(self.poll_seconds):
                try:
                    self._heartbeat(self.clock(), through=self._tick_since, job_running=job)
                except Exception as exc:  # noqa: BLE001 — logged; the job itself goes on
                    log.warning("heartbeat during %s failed: %s", job, error_text(exc))

        thread = threading.Thread(target=beat, name=f"payops-scheduler-pulse-{job}", daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join()

    # -- the loop ---------------------------------------------------------------------------------------
    def stop(self) -> None:
        """Ask ``run_forever`` to return after the current job (thread- and signal-safe)."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self._signals += 1
        if self._signals > 1:
            raise KeyboardInterrupt  # a second signal: stop now (the running slot becomes interrupted)
        self._say(logging.WARNING, f"{signal.Signals(signum).name}: stopping after the current job "
                  "(send it again to stop now)", "yellow")
        self.stop()

    def _delay(self, now: datetime) -> float:
        """Until the next poll, or the next slot if sooner."""
        nxt = min((s.upcoming(self.tz, now, 1)[0].at for s in self.schedules.values()), default=None)
        delay = self.poll_seconds if nxt is None else min(self.poll_seconds, (nxt - now).total_seconds())
        return max(delay, 0.05)

    def run_forever(self, *, handle_signals: bool = True, max_ticks: int | None = None) -> None:
        """Tick every poll interval until stopped (SIGTERM/SIGINT: after the current job).

        A failing first tick (no schema, bad configuration) raises; later failures (a database
        outage) are logged and retried at the next poll — the heartbeat goes stale meanwhile.
        """
        previous: dict[int, Any] = {}
        if handle_signals and threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                previous[sig] = signal.signal(sig, self._on_signal)
        ticks = 0
        try:
            while not self._stop.is_set():
                try:
                    self.tick()
                except Exception as exc:
                    if ticks == 0:
                        raise
                    self._say(logging.ERROR, f"tick failed, retrying at the next poll: {error_text(exc)}", "red",
                              exc=exc)
                ticks += 1
                if self._stop.is_set() or (max_ticks is not None and ticks >= max_ticks):
                    break
                self.sleep(self._delay(self.clock()))
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            if ticks:
                try:
                    self._heartbeat(self.clock(), through=self._through, running=False)
                except Exception as exc:  # noqa: BLE001 — stopping anyway; the heartbeat just goes stale
                    log.warning("final heartbeat failed: %s", error_text(exc))
            self._say(logging.INFO, f"scheduler {self.owner} stopped", "bold")


def _field(result: Any, name: str) -> Any:
    if result is None:
        return None
    if isinstance(result, dict):
        return result.get(name)
    return getattr(result, name, None)
