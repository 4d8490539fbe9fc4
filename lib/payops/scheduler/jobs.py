"""What the scheduler runs, and when: schedules (cron in PAYOUT_TIMEZONE, optionally shifted) and jobs.

A *job* is a name, a schedule, a callable and whether it catches up on slots missed while no
scheduler was running. The default registry holds payops' four jobs; tests (and future features)
build their own :class:`JobRegistry` or pass a list of :class:`Job` to the scheduler.

A job callable receives a :class:`JobContext` and returns whatever its runbook returns: an object
(or mapping) with ``run_id`` and ``status``, or ``None``. It signals failure by raising (a
PayopsError, which may carry ``run_id``) or by returning a status in :data:`FAILED_STATUSES`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from payops.config import Settings
from payops.cycle.slots import check_cron, next_slots, payout_expr, slots_between, zone
from payops.errors import FieldProblem, ParamsInvalid

FAILED_STATUSES = frozenset({"failed", "partial", "error", "interrupted"})

PAYOUT_CYCLE = "payout-cycle"
PRE_RUN_CHECK = "pre-run-check"
POST_RUN_CHECK = "post-run-check"
REHEARSAL = "rehearsal"
RECONCILIATION = "reconciliation"
MONITOR_CHECK = "monitor-check"


@dataclass(frozen=True)
class Slot:
    """One due instant of one job. ``at`` is when the job runs (UTC); ``anchor`` is the cron instant
    it derives from, in PAYOUT_TIMEZONE (a pre-run check's anchor is its payout slot)."""

    at: datetime
    anchor: datetime

    @property
    def cycle_date(self) -> date:
        """The local calendar date of the anchor: the payout cycle this slot belongs to."""
        return self.anchor.date()


def _second_of_repeated_hour(slot: datetime) -> bool:
    """True for the second occurrence of a wall-clock time that happens twice when clocks fall back."""
    return slot.fold == 1 and slot.replace(fold=0).utcoffset() != slot.utcoffset()


@dataclass(frozen=True)
class Schedule:
    """A cron expression evaluated in PAYOUT_TIMEZONE, shifted by ``offset`` (real elapsed time).

    A wall-clock time that happens twice when clocks fall back fires once (the first time); one that
    does not exist when clocks spring forward fires at the next existing minute (croniter's rule).
    """

    expr: str
    env_var: str = "cron expression"
    offset: timedelta = timedelta(0)

    def validate(self) -> Schedule:
        check_cron(self.expr, self.env_var)
        return self

    def _slot(self, anchor: datetime) -> Slot:
        return Slot(at=anchor.astimezone(UTC) + self.offset, anchor=anchor)

    def between(self, tz: ZoneInfo, start: datetime, end: datetime) -> list[Slot]:
        """Slots with ``start < slot.at <= end``."""
        anchors = slots_between(self.expr, tz, start.astimezone(UTC) - self.offset, end.astimezone(UTC) - self.offset)
        return [self._slot(a) for a in anchors if not _second_of_repeated_hour(a)]

    def upcoming(self, tz: ZoneInfo, after: datetime, count: int) -> list[Slot]:
        """The ``count`` slots strictly after ``after``."""
        out: list[Slot] = []
        cursor = after.astimezone(UTC) - self.offset
        while len(out) < count:
            batch = next_slots(self.expr, tz, cursor, count - len(out) + 1)
            out.extend(self._slot(a) for a in batch if not _second_of_repeated_hour(a))
            cursor = batch[-1]
        return out[:count]


ScheduleSpec = Schedule | Callable[[Settings], Schedule]


@dataclass(frozen=True)
class JobContext:
    """Everything a job callable gets."""

    job: str
    slot: Slot
    settings: Settings
    now: datetime
    owner: str
    late: timedelta

    @property
    def cycle_date(self) -> date:
        return self.slot.cycle_date


JobFunc = Callable[[JobContext], Any]


@dataclass(frozen=True)
class Job:
    """A named, scheduled callable. ``catch_up``: run slots missed while no scheduler was running
    (within the scheduler's catch-up window) instead of recording them as ``missed``. ``coalesce``: of the
    slots that came due while no scheduler was running, only the newest counts (run when within the
    window) — for a job that looks at the state *now*, like the 5-minute monitor check, where running or
    listing the 72 slots of a six-hour gap would say nothing one run does not."""

    name: str
    schedule: ScheduleSpec
    run: JobFunc
    catch_up: bool = False
    description: str = ""
    coalesce: bool = False

    def schedule_for(self, settings: Settings) -> Schedule:
        """The job's schedule under ``settings`` (validated: a bad cron is a ConfigError)."""
        spec = self.schedule if isinstance(self.schedule, Schedule) else self.schedule(settings)
        return spec.validate()


class JobRegistry:
    """An ordered set of jobs by name (the order breaks ties between slots due at the same instant)."""

    def __init__(self, jobs: Iterable[Job] = ()) -> None:
        self._jobs: dict[str, Job] = {}
        for job in jobs:
            self.register(job)

    def register(self, job: Job) -> Job:
        """Add ``job``; a second job with the same name is refused."""
        if job.name in self._jobs:
            raise ValueError(f"a job called {job.name!r} is already registered")
        if not job.name or len(job.name) > 64:
            raise ValueError(f"job name {job.name!r} must be 1-64 characters (scheduled_executions.job)")
        self._jobs[job.name] = job
        return job

    def job(self, name: str, schedule: ScheduleSpec, *, catch_up: bool = False,
            description: str = "") -> Callable[[JobFunc], JobFunc]:
        """Decorator form of :meth:`register`."""

        def deco(fn: JobFunc) -> JobFunc:
            self.register(Job(name, schedule, fn, catch_up=catch_up, description=description or (fn.__doc__ or "")))
            return fn

        return deco

    def get(self, name: str) -> Job:
        """The job called ``name``; ParamsInvalid naming the known jobs otherwise."""
        try:
            return self._jobs[name]
        except KeyError:
            raise ParamsInvalid(FieldProblem("--job", f"unknown job {name!r}; known: {', '.join(self._jobs)}")) \
                from None

    def names(self) -> list[str]:
        return list(self._jobs)

    def __iter__(self) -> Iterator[Job]:
        return iter(self._jobs.values())

    def __len__(self) -> int:
        return len(self._jobs)


# --- payops' own jobs --------------------------------------------------------------------------------
def payout_schedule(settings: Settings) -> Schedule:
    return Schedule(payout_expr(settings), "PAYOUT_SCHEDULE_CRON")


def pre_run_schedule(settings: Settings) -> Schedule:
    return Schedule(payout_expr(settings), "PAYOUT_SCHEDULE_CRON",
                    offset=-timedelta(minutes=settings.pre_run_check_minutes_before))


def post_run_schedule(settings: Settings) -> Schedule:
    return Schedule(payout_expr(settings), "PAYOUT_SCHEDULE_CRON",
                    offset=timedelta(minutes=settings.post_run_check_minutes_after))


def rehearsal_schedule(settings: Settings) -> Schedule:
    """PAYOPS_REHEARSAL_CRON — refused (ConfigError naming the dates) when a slot in the next ten years falls
    less than 7 days before a live cycle."""
    from datetime import UTC, datetime

    from payops.rehearsal.schedule import check_rule

    check_rule(settings, datetime.now(UTC))
    return Schedule(settings.rehearsal_schedule_cron, "PAYOPS_REHEARSAL_CRON")


def recon_schedule(settings: Settings) -> Schedule:
    return Schedule(settings.recon_schedule_cron, "PAYOPS_RECON_CRON")


def monitor_schedule(settings: Settings) -> Schedule:
    return Schedule(settings.monitor_schedule_cron, "PAYOPS_MONITOR_CRON")


def run_payout_cycle(ctx: JobContext) -> Any:
    """The automated payout cycle for the slot's local date, live, through the runner."""
    from payops.cycle.runbook import run_cycle_runbook

    return run_cycle_runbook(ctx.cycle_date, live=True, settings=ctx.settings, trigger="scheduler")


def run_pre_run_check(ctx: JobContext) -> Any:
    """The pre-run check notebook for the coming cycle."""
    from payops.checks import run_check

    return run_check("pre-run", cycle_date=ctx.cycle_date, settings=ctx.settings)


def run_post_run_check(ctx: JobContext) -> Any:
    """The post-run check notebook for the cycle that just ran."""
    from payops.checks import run_check

    return run_check("post-run", cycle_date=ctx.cycle_date, settings=ctx.settings)


def run_rehearsal_job(ctx: JobContext) -> Any:
    """The quarterly fallback rehearsal's dry part (steps 1–6, in the rehearsal world), then a message to
    #payments-rehearsal with what each person runs next; never live."""
    from payops.scheduler.rehearsal import start_rehearsal

    return start_rehearsal(ctx.settings, slot=ctx.slot.anchor)


def run_reconciliation_job(ctx: JobContext) -> Any:
    """The monthly reconciliation of the month before the slot's date; Slack hears how it went."""
    from payops.reconcile.run import run_monthly

    return run_monthly(ctx.cycle_date, ctx.settings)


def run_monitor_check(ctx: JobContext) -> Any:
    """``payops monitor check`` at the slot: alerts sent and remembered; a failed delivery fails the slot."""
    from payops.monitor.check import scheduled_check

    return scheduled_check(ctx.settings, at=ctx.now)


def default_registry() -> JobRegistry:
    """payops' jobs: the payout cycle (catches up), its pre-/post-run checks (do not), the rehearsal
    (catches up: it only starts a dry run and asks people to continue), the monthly reconciliation (catches
    up: it only reads and reports), the monitoring check every 5 minutes (does not catch up: the next check sees
    everything)."""
    return JobRegistry([
        Job(PRE_RUN_CHECK, pre_run_schedule, run_pre_run_check,
            description="pre-run check, PAYOPS_PRE_RUN_MINUTES_BEFORE before each payout slot"),
        Job(PAYOUT_CYCLE, payout_schedule, run_payout_cycle, catch_up=True,
            description="automated payout cycle (live), at each PAYOUT_SCHEDULE_CRON slot"),
        Job(POST_RUN_CHECK, post_run_schedule, run_post_run_check,
            description="post-run check, PAYOPS_POST_RUN_MINUTES_AFTER after each payout slot"),
        Job(REHEARSAL, rehearsal_schedule, run_rehearsal_job, catch_up=True,
            description="quarterly manual payout fallback rehearsal (dry run; humans go live)"),
        Job(RECONCILIATION, recon_schedule, run_reconciliation_job, catch_up=True,
            description="reconciliation of the previous month (PAYOPS_RECON_CRON); Slack; fails over "
                        "PAYOPS_RECON_MAX_UNEXPLAINED"),
        Job(MONITOR_CHECK, monitor_schedule, run_monitor_check, coalesce=True,
            description="monitoring rules every 5 minutes (PAYOPS_MONITOR_CRON): PagerDuty, Slack, Jira, email"),
    ])


def as_registry(jobs: JobRegistry | Iterable[Job] | None) -> JobRegistry:
    """``None`` → the default registry; a list of jobs → a registry of them."""
    if jobs is None:
        return default_registry()
    if isinstance(jobs, JobRegistry):
        return jobs
    return JobRegistry(jobs)


def payout_zone(settings: Settings) -> ZoneInfo:
    """PAYOUT_TIMEZONE as a ZoneInfo (ConfigError when it is not an IANA zone)."""
    return zone(settings)
