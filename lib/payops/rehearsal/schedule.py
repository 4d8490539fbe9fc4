"""When rehearsals happen: the quarterly slot, its 7-day rule, and its export for the Ops calendar.

- :func:`too_close` — the slots of a rehearsal rule (``PAYOPS_REHEARSAL_CRON``) over the next ``years``
  that fall less than 7 days before the next live cycle (``PAYOUT_SCHEDULE_CRON``), each with that cycle.
- :func:`check_rule` — a :class:`ConfigError` naming those dates (the scheduler refuses such a rule).
  The default, the first Tuesday of Feb/May/Aug/Nov at 14:00, falls on days 1–7: after the 1st's cycle
  and at least 7 days 16 hours before the 15th's.
- :func:`ics` — the "Payments Fallback Rehearsal" events (45 minutes, the three participant roles, the
  ticket) with the ``icalendar`` package; :func:`cron_lines` — equivalent crontab lines.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from payops.config import Settings
from payops.cycle import slots
from payops.errors import ConfigError
from payops.rehearsal.params import default_ticket

MIN_LEAD = timedelta(days=7)
DURATION = timedelta(minutes=45)
TITLE = "Payments Fallback Rehearsal"
ROLES = ("Operator (runs payops rehearse)", "Ops approver", "Finance approver")
YEARS = 10


def rehearsal_slots(settings: Settings, after: datetime, *, years: int = YEARS) -> list[datetime]:
    """The rule's slots in ``(after, after + years]`` (aware, in PAYOUT_TIMEZONE)."""
    expr = slots.check_cron(settings.rehearsal_schedule_cron, "PAYOPS_REHEARSAL_CRON")
    return slots.slots_between(expr, slots.zone(settings), after, after + timedelta(days=366 * years))


def next_cycle_after(settings: Settings, at: datetime) -> datetime:
    (nxt,) = slots.next_slots(slots.payout_expr(settings), slots.zone(settings), at, 1)
    return nxt


def too_close(settings: Settings, after: datetime, *, years: int = YEARS) -> list[tuple[datetime, datetime]]:
    """(rehearsal slot, next live cycle) pairs less than 7 days apart."""
    out = []
    for slot in rehearsal_slots(settings, after, years=years):
        cycle = next_cycle_after(settings, slot)
        if cycle - slot < MIN_LEAD:
            out.append((slot, cycle))
    return out


def check_rule(settings: Settings, after: datetime, *, years: int = YEARS) -> None:
    """Refuse a rehearsal rule whose slots are not all at least 7 days before a live cycle."""
    bad = too_close(settings, after, years=years)
    if bad:
        shown = ", ".join(f"{s:%Y-%m-%d %H:%M} (cycle {c:%Y-%m-%d %H:%M})" for s, c in bad[:6])
        raise ConfigError(f"PAYOPS_REHEARSAL_CRON {settings.rehearsal_schedule_cron!r} puts rehearsals less than 7 "
                          f"days before a live cycle ({settings.payout_schedule_cron!r}) on {len(bad)} date(s) in the "
                          f"next {years} years: {shown}{' …' if len(bad) > 6 else ''}")


def ics(settings: Settings, after: datetime, *, count: int = 4) -> bytes:
    """An iCalendar file with the next ``count`` rehearsals for the shared Ops calendar."""
    from icalendar import Calendar, Event, vCalAddress, vText

    cal = Calendar()
    cal.add("prodid", "-//payops//fallback rehearsal//EN")
    cal.add("version", "2.0")
    cal.add("x-wr-calname", "Payments Ops")
    for slot in rehearsal_slots(settings, after)[:count]:
        ticket = default_ticket(slot.date())
        ev = Event()
        ev.add("uid", f"{ticket}@payops")
        ev.add("summary", f"{TITLE} {ticket}")
        ev.add("dtstart", slot)
        ev.add("dtend", slot + DURATION)
        ev.add("dtstamp", after)
        ev.add("categories", ["payments-ops", "rehearsal"])
        ev.add("description", f"Ticket {ticket}. Quarterly manual payout fallback rehearsal in Stripe test mode "
                              f"(45-minute SLA). Operator: payops rehearse --ticket {ticket}; ops and finance "
                              "approvers sign with payops approve RUN --role ops|finance --key … Roles: "
                              + "; ".join(ROLES) + ".")
        for role in ROLES:
            who = vCalAddress("mailto:" + settings.rehearsal_email_to)
            who.params["ROLE"] = vText("REQ-PARTICIPANT")
            who.params["CN"] = vText(role)
            ev.add("attendee", who, encode=0)
        cal.add_component(ev)
    return cal.to_ical()


def cron_lines(settings: Settings) -> list[str]:
    """Crontab lines equivalent to the scheduler's rehearsal job (TZ = PAYOUT_TIMEZONE)."""
    expr = slots.check_cron(settings.rehearsal_schedule_cron, "PAYOPS_REHEARSAL_CRON")
    return [f"CRON_TZ={settings.payout_timezone}",
            f"{expr} payops rehearse --dry-part   # {TITLE}: the dry part; people approve, then "
            "payops rehearse --continue RUN_ID"]
