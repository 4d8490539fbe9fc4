"""The scheduler's heartbeat (an ``ops_flags`` row), whether it is armed, its history and next slots.

Each tick upserts ``ops_flags(name="scheduler_heartbeat")``: ``enabled`` (False once stopped),
``set_by`` (host:pid), ``set_at`` (the tick's time) and ``reason``, a JSON object with the owner,
the poll interval, ``through`` (the instant up to which slots were handled: where the next scheduler
resumes after a restart), the job running now, and each job's next slot. The pre-run and go-live
checks call :func:`scheduler_status`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from payops.config import Settings
from payops.db import session_scope
from payops.db.models import OpsFlag, ScheduledExecution
from payops.scheduler.jobs import Job, JobRegistry, Slot, as_registry, payout_zone

HEARTBEAT_FLAG = "scheduler_heartbeat"
DEFAULT_POLL_SECONDS = 30.0
MIN_STALE_AFTER = timedelta(minutes=5)


@dataclass(frozen=True)
class Heartbeat:
    """The last heartbeat as stored."""

    owner: str | None
    at: datetime
    running: bool  # False once the scheduler stopped gracefully
    poll_seconds: float
    through: datetime | None
    job_running: str | None
    next: dict[str, str]


def stale_after(poll_seconds: float) -> timedelta:
    """A heartbeat older than three poll intervals, and at least five minutes, means no live scheduler."""
    return max(timedelta(seconds=3 * poll_seconds), MIN_STALE_AFTER)


def _iso(dt: datetime | None) -> str | None:
    return dt.astimezone(UTC).isoformat() if dt else None


def _parse(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text).astimezone(UTC) if text else None


def write_heartbeat(settings: Settings, *, owner: str, at: datetime, poll_seconds: float, through: datetime | None,
                    next_slots: dict[str, Slot], job_running: str | None = None, running: bool = True) -> None:
    """Upsert the heartbeat row (a second scheduler inserting at the same moment is retried once)."""
    reason = json.dumps({
        "owner": owner, "poll_seconds": poll_seconds, "through": _iso(through), "job_running": job_running,
        "next": {name: _iso(slot.at) for name, slot in next_slots.items()},
    }, sort_keys=True)
    for attempt in (1, 2):
        try:
            with session_scope(settings) as s:
                row = s.get(OpsFlag, HEARTBEAT_FLAG)
                if row is None:
                    s.add(OpsFlag(name=HEARTBEAT_FLAG, enabled=running, set_by=owner[:64], set_at=at, reason=reason))
                else:
                    row.enabled, row.set_by, row.set_at, row.reason = running, owner[:64], at, reason
            return
        except IntegrityError:
            if attempt == 2:
                raise


def read_heartbeat(settings: Settings) -> Heartbeat | None:
    """The stored heartbeat, or None when no scheduler ever ran against this database."""
    with session_scope(settings) as s:
        row = s.get(OpsFlag, HEARTBEAT_FLAG)
        if row is None:
            return None
        enabled, set_by, set_at, reason = row.enabled, row.set_by, row.set_at, row.reason
    try:
        data: dict[str, Any] = json.loads(reason or "{}")
    except ValueError:
        data = {}
    return Heartbeat(
        owner=data.get("owner") or set_by, at=set_at, running=bool(enabled),
        poll_seconds=float(data.get("poll_seconds") or DEFAULT_POLL_SECONDS), through=_parse(data.get("through")),
        job_running=data.get("job_running"), next=dict(data.get("next") or {}),
    )


def next_slot_per_job(settings: Settings, now: datetime, jobs: Iterable[Job]) -> dict[str, Slot]:
    """Each job's first slot strictly after ``now``."""
    tz = payout_zone(settings)
    return {job.name: job.schedule_for(settings).upcoming(tz, now, 1)[0] for job in jobs}


def upcoming(settings: Settings, now: datetime, *, count: int = 5, jobs: JobRegistry | Iterable[Job] | None = None,
             job: str | None = None) -> list[tuple[str, Slot]]:
    """The next ``count`` slots of each job (or of ``job`` only), in time order."""
    registry = as_registry(jobs)
    selected = [registry.get(job)] if job else list(registry)
    tz = payout_zone(settings)
    order = {name: i for i, name in enumerate(registry.names())}
    rows = [(j.name, slot) for j in selected for slot in j.schedule_for(settings).upcoming(tz, now, count)]
    return sorted(rows, key=lambda r: (r[1].at, order[r[0]]))


def scheduler_status(settings: Settings, now: datetime | None = None, *,
                     jobs: JobRegistry | Iterable[Job] | None = None) -> dict[str, Any]:
    """Whether a scheduler is armed, for the pre-run and go-live checks.

    ``armed`` is True when the heartbeat is younger than three poll intervals (at least five minutes)
    and the scheduler has not stopped. Returns ``armed``, ``owner``, ``last_heartbeat`` (ISO UTC or
    None), ``age_seconds``, ``stale_after_seconds``, ``job_running``, ``next`` (job → next slot,
    ISO UTC, from the current settings) and ``detail`` (one sentence for a check's report).
    """
    now = (now or datetime.now(UTC)).astimezone(UTC)
    hb = read_heartbeat(settings)
    registry = as_registry(jobs)
    nxt = {name: _iso(slot.at) for name, slot in next_slot_per_job(settings, now, registry).items()}
    if hb is None:
        return {"armed": False, "owner": None, "last_heartbeat": None, "age_seconds": None,
                "stale_after_seconds": stale_after(DEFAULT_POLL_SECONDS).total_seconds(), "job_running": None,
                "next": nxt, "detail": "no scheduler has ever run against this database: start `payops scheduler run`"}
    age = now - hb.at
    limit = stale_after(hb.poll_seconds)
    armed = hb.running and age <= limit
    if armed:
        detail = f"armed: heartbeat {max(age.total_seconds(), 0):.0f} s ago from {hb.owner}"
    elif not hb.running:
        detail = f"not armed: the scheduler {hb.owner} stopped at {hb.at:%Y-%m-%d %H:%M:%S}Z"
    else:
        detail = (f"not armed: last heartbeat from {hb.owner} was {age.total_seconds() / 60:.1f} min ago "
                  f"(stale after {limit.total_seconds() / 60:.0f} min) — is `payops scheduler run` running?")
    return {"armed": armed, "owner": hb.owner, "last_heartbeat": _iso(hb.at), "age_seconds": age.total_seconds(),
            "stale_after_seconds": limit.total_seconds(), "job_running": hb.job_running if armed else None,
            "next": nxt, "detail": detail}


def history(settings: Settings, *, limit: int = 20, job: str | None = None) -> list[dict[str, Any]]:
    """Recorded executions, latest slot first."""
    q = select(ScheduledExecution).order_by(ScheduledExecution.slot_at.desc(), ScheduledExecution.id.desc())
    if job:
        q = q.where(ScheduledExecution.job == job)
    with session_scope(settings) as s:
        return [{"id": r.id, "job": r.job, "slot_at": r.slot_at, "status": r.status, "owner": r.owner,
                 "runbook_run_id": r.runbook_run_id, "started_at": r.started_at, "finished_at": r.finished_at,
                 "error": r.error} for r in s.scalars(q.limit(limit))]
