"""When payout cycles happen: cron expressions in ``PAYOUT_TIMEZONE``, evaluated by croniter.

A *slot* is one scheduled instant (timezone-aware, in the payout time zone); a cycle's
``cycle_date`` is the slot's local calendar date. Nothing here reads a clock: ``now`` is always
passed in, so the scheduler, ``payops schedule next`` and the tests agree.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from payops.config import Settings
from payops.errors import ConfigError

EPSILON = timedelta(seconds=1)


def zone(settings: Settings) -> ZoneInfo:
    try:
        return ZoneInfo(settings.payout_timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"PAYOUT_TIMEZONE {settings.payout_timezone!r} is not an IANA time zone "
                          "(e.g. UTC, America/Toronto)") from None


def check_cron(expr: str, env_var: str) -> str:
    if not croniter.is_valid(expr):
        raise ConfigError(f"{env_var} {expr!r} is not a valid cron expression (e.g. '0 6 1,15 * *')")
    return expr


def next_slots(expr: str, tz: ZoneInfo, after: datetime, count: int) -> list[datetime]:
    """The ``count`` slots strictly after ``after`` (aware datetimes in ``tz``)."""
    it = croniter(expr, after.astimezone(tz))
    return [it.get_next(datetime) for _ in range(count)]


def previous_slot(expr: str, tz: ZoneInfo, at_or_before: datetime) -> datetime:
    """The latest slot at or before ``at_or_before``."""
    it = croniter(expr, (at_or_before + EPSILON).astimezone(tz))
    return it.get_prev(datetime)


def slots_between(expr: str, tz: ZoneInfo, start: datetime, end: datetime) -> list[datetime]:
    """Slots with ``start < slot <= end``."""
    out: list[datetime] = []
    it = croniter(expr, start.astimezone(tz))
    while True:
        slot = it.get_next(datetime)
        if slot > end:
            return out
        out.append(slot)


def payout_expr(settings: Settings) -> str:
    return check_cron(settings.payout_schedule_cron, "PAYOUT_SCHEDULE_CRON")


def cycle_slot(settings: Settings, cycle_date: date) -> datetime | None:
    """The payout slot falling on ``cycle_date`` (local date in PAYOUT_TIMEZONE), or None if that day
    has no cycle."""
    tz = zone(settings)
    day_start = datetime.combine(cycle_date, time(0), tzinfo=tz)
    found = slots_between(payout_expr(settings), tz, day_start - EPSILON, day_start + timedelta(days=1) - EPSILON)
    return found[0] if found else None


def current_cycle_date(settings: Settings, now: datetime | None = None) -> date:
    """The cycle date of the latest payout slot at or before ``now`` (what a run without --cycle-date pays)."""
    now = now or datetime.now(UTC)
    return previous_slot(payout_expr(settings), zone(settings), now).date()


def next_cycle_dates(settings: Settings, after: datetime, count: int = 1) -> list[date]:
    return [s.date() for s in next_slots(payout_expr(settings), zone(settings), after, count)]
