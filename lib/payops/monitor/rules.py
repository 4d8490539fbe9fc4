"""The five alert rules: pure functions of a :class:`~payops.monitor.facts.Snapshot` and the thresholds.

Each rule returns the conditions that hold at ``snapshot.at``; a condition is identified by its ``key`` (the
dedup key: the same condition seen by the next check has the same key) and says what must be sent, once,
while it is open (``actions``: ``(channel, action)`` pairs, in sending order). Nothing here reads a clock,
the database or the network, so every threshold is tested on both sides and at the exact boundary.

======================  ==========================================================  ================  ========
rule                    fires when (defaults)                                       channels          severity
======================  ==========================================================  ================  ========
automation_failure      a payout run failed with studios unpaid, its runbook run    PagerDuty         SEV-2
                        exited non-zero, it ran longer than 30 min, or it
                        processed fewer than 90% of the studios scheduled; or the
                        scheduler's payout-cycle slot failed/was missed with no run
money_moved             a live manual payout's transfer exists but its audit row,   PagerDuty         SEV-2
                        notifications or settlement are still missing 10 min on
fallback_volume         more than 1 manual payout in a rolling 30 days, or the      Slack + one Jira  SEV-3
                        fallback's CAD above 5% of the automated CAD volume         ticket
credential_expiry       30 / 14 / 7 days left (each step once), 3 days left         Slack; PagerDuty  SEV-3 /
                        (page), overdue (a reminder a day until rotated)            at 3 days         SEV-2
reserve_breach          a studio's reserve (now, or projected for the next cycle)   email + Ops       SEV-3 /
                        below its minimum, or under the 20% buffer above it         Slack channel     SEV-4
======================  ==========================================================  ================  ========

Boundaries: "longer than", "fewer than", "more than" and "above" are strict (exactly 30 min, 90%, 1 payout or
5% does not fire); "N days left" and "10 minutes after" fire at the instant they are reached. A manual payout
exactly 30 days old has left the rolling window.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from payops.money import Money
from payops.monitor.facts import CredentialFact, RunFact, Snapshot, StudioReserve, fallback_window
from payops.monitor.thresholds import Thresholds, pct

AUTOMATION, MONEY_MOVED, FALLBACK, CREDENTIAL, RESERVE = (
    "automation_failure", "money_moved", "fallback_volume", "credential_expiry", "reserve_breach")
RULES = (AUTOMATION, MONEY_MOVED, FALLBACK, CREDENTIAL, RESERVE)
PAGE = ("pagerduty", "trigger")
CREDENTIAL_KINDS = {
    "apple_pay_processing_cert": "Apple Pay payment-processing certificate",
    "apple_pay_merchant_identity_cert": "Apple Pay merchant identity certificate",
    "stripe_restricted_key": "Stripe restricted key",
    "webhook_signing_secret": "Stripe webhook signing secret",
}
DAY = timedelta(days=1)


@dataclass(frozen=True)
class Condition:
    """One condition that holds now. ``actions`` are sent once each while it is open."""

    rule: str
    key: str
    severity: str  # SEV-2 pages; SEV-3 / SEV-4 do not
    summary: str
    details: dict[str, Any] = field(default_factory=dict)
    actions: tuple[tuple[str, str], ...] = ()

    @property
    def pages(self) -> bool:
        return self.severity == "SEV-2"


def money(amount: int, currency: str) -> str:
    return Money(amount, currency).format()


def _minutes(td: timedelta) -> str:
    return f"{td.total_seconds() / 60:.0f} min"


def _span(td: timedelta) -> str:
    """A duration as people say it: ``25 min``, ``5.5 h``, ``3.2 days``."""
    seconds = abs(td.total_seconds())
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h" if seconds < 2 * 86400 else f"{seconds / 86400:.1f} days"


# --- automation failure -----------------------------------------------------------------------------------
def run_reasons(run: RunFact, at: datetime, th: Thresholds, latest: bool) -> list[str]:
    """Why one payout run counts as an automation failure (empty: it does not)."""
    reasons = []
    if run.status == "failed" and run.unpaid > 0:
        why = f" ({run.failure_reason})" if run.failure_reason else ""
        reasons.append(f"failed{why}: {run.unpaid} of {run.scheduled} ledger payouts unpaid")
    if run.runbook_status == "failed":
        reasons.append(f"its runbook run {run.runbook_run_id} exited non-zero at {run.runbook_failed_step or '?'}: "
                       f"{(run.runbook_error or 'no error recorded')[:300]}")
    took = run.duration(at)
    limit = timedelta(minutes=th.max_run_minutes)
    if took is not None and took > limit:
        if run.status == "running":
            reasons.append(f"running for {_minutes(took)} (longer than {th.max_run_minutes} min)")
        elif latest:
            reasons.append(f"took {_minutes(took)} (longer than {th.max_run_minutes} min)")
    if run.status != "running" and run.scheduled > 0 and run.processed * 10_000 < th.min_processed_bps * run.scheduled:
        reasons.append(f"processed {run.processed} of {run.scheduled} studios scheduled "
                       f"({run.processed / run.scheduled:.1%}, fewer than {pct(th.min_processed_bps)})")
    return reasons


def _cycle_key(cycle_date: Any) -> str:
    return f"automation_failure:cycle:{cycle_date}"


def automation_failure(snap: Snapshot, th: Thresholds) -> list[Condition]:
    out: list[Condition] = []
    latest = max(snap.runs, key=lambda r: (r.started_at or snap.at, r.cycle_date)) if snap.runs else None
    for run in snap.runs:
        reasons = run_reasons(run, snap.at, th, latest is run)
        if not reasons:
            continue
        fix = (f"payops runs resume {run.runbook_run_id} --live" if run.runbook_status == "failed" else
               f"pay the unpaid studios by hand (payops manual-payout …) or fix and re-run "
               f"`payops payout-cycle run --cycle-date {run.cycle_date} --live`")
        out.append(Condition(
            AUTOMATION, _cycle_key(run.cycle_date), "SEV-2",
            f"Payout cycle {run.cycle_date}: " + "; ".join(reasons),
            {"cycle_date": str(run.cycle_date), "payout_run_id": run.run_id, "status": run.status,
             "reasons": reasons, "scheduled": run.scheduled, "processed": run.processed, "unpaid": run.unpaid,
             "runbook_run_id": run.runbook_run_id, "next_step": fix},
            (PAGE,)))
    ran = {r.cycle_date for r in snap.runs}
    completed_after = [r.cycle_date for r in snap.runs if r.status in ("completed", "partial")]
    seen: set[str] = set()
    for slot in snap.bad_slots:
        if slot.cycle_date in ran or any(d > slot.cycle_date for d in completed_after):
            continue
        key = _cycle_key(slot.cycle_date)
        if key in seen:
            continue
        seen.add(key)
        reason = (f"the scheduler's payout-cycle slot {slot.slot_at:%Y-%m-%d %H:%M}Z {slot.status}"
                  + (f": {slot.error[:300]}" if slot.error else "") + " and no payout run exists for it")
        out.append(Condition(
            AUTOMATION, key, "SEV-2", f"Payout cycle {slot.cycle_date}: {reason}",
            {"cycle_date": str(slot.cycle_date), "slot_at": slot.slot_at.isoformat(), "status": slot.status,
             "reasons": [reason], "next_step": f"payops payout-cycle run --cycle-date {slot.cycle_date} --live"},
            (PAGE,)))
    return out


# --- money moved, record missing ------------------------------------------------------------------------------
def money_moved(snap: Snapshot, th: Thresholds) -> list[Condition]:
    out = []
    limit = timedelta(minutes=th.record_missing_minutes)
    for use in snap.fallback:
        missing = use.missing
        if use.run_active:  # someone is following the bank payout right now: only a missing record counts
            missing = [m for m in missing if m != "settlement"]
        elapsed = snap.at - use.transferred_at
        if not missing or elapsed < limit:
            continue
        command = f"payops runs resume {use.run_id}"
        summary = (f"Money moved, record missing: live manual payout run {use.run_id} ({use.incident_id}, "
                   f"{money(use.amount, use.currency)} to {use.studio_name}) transferred {use.transfer_id} "
                   f"{_minutes(elapsed)} ago, but its {', '.join(missing)} "
                   f"{'is' if len(missing) == 1 else 'are'} still missing — finish it: `{command}` (repeating the "
                   "same approved `payops manual-payout … --live` command resumes it too)")
        out.append(Condition(
            MONEY_MOVED, f"money_moved:run:{use.run_id}", "SEV-2", summary,
            {"run_id": use.run_id, "incident_id": use.incident_id, "studio": use.studio_name,
             "ledger_payout_id": use.ledger_payout_id, "transfer_id": use.transfer_id,
             "amount": money(use.amount, use.currency), "transferred_at": use.transferred_at.isoformat(),
             "missing": missing, "command": command},
            (PAGE,)))
    return out


# --- fallback volume --------------------------------------------------------------------------------------
def fallback_in_window(snap: Snapshot, th: Thresholds) -> list[Any]:
    start, end = fallback_window(snap.at, th)
    return [u for u in snap.fallback if start < u.transferred_at <= end]


def fallback_volume(snap: Snapshot, th: Thresholds) -> list[Condition]:
    uses = fallback_in_window(snap, th)
    listed = [{"run_id": u.run_id, "incident_id": u.incident_id, "studio": u.studio_name,
               "amount": money(u.amount, u.currency), "transferred_at": u.transferred_at.isoformat()} for u in uses]
    actions = (("jira", "ticket"), ("slack", "notify"))
    out = []
    days = th.fallback_window_days
    if len(uses) > th.fallback_max_count:
        out.append(Condition(
            FALLBACK, "fallback_volume:count", "SEV-3",
            f"Fallback volume: {len(uses)} manual payouts in the last {days} days (more than "
            f"{th.fallback_max_count}): " + ", ".join(f"{u.incident_id} {money(u.amount, u.currency)} to "
                                                        f"{u.studio_name}" for u in uses),
            {"count": len(uses), "max_count": th.fallback_max_count, "window_days": days, "payouts": listed},
            actions))
    cur = th.fallback_currency
    manual = sum(u.amount for u in uses if u.currency == cur)
    automated = snap.automated_volume.get(cur, 0)
    if manual > 0 and manual * 10_000 > th.fallback_max_share_bps * automated:
        share = (f"with no automated {cur} volume in the window" if automated == 0 else
                 f"{manual / automated:.1%} of the automated {money(automated, cur)}")
        out.append(Condition(
            FALLBACK, f"fallback_volume:share:{cur}", "SEV-3",
            f"Fallback volume: {money(manual, cur)} paid by hand in the last {days} days, {share} "
            f"(above {pct(th.fallback_max_share_bps)})",
            {"currency": cur, "manual": manual, "automated": automated, "max_share_bps": th.fallback_max_share_bps,
             "window_days": days, "payouts": [x for x, u in zip(listed, uses, strict=True) if u.currency == cur]},
            actions))
    return out


# --- credential expiry ------------------------------------------------------------------------------------
def credential_deadline(c: CredentialFact, th: Thresholds) -> tuple[datetime, str] | None:
    """The earliest date by which the credential must be replaced, and what sets it."""
    found = []
    if c.expires_at is not None:
        found.append((c.expires_at, "expires"))
    if c.rotation_due_at is not None:
        found.append((c.rotation_due_at, "rotation due"))
    if c.kind == "webhook_signing_secret" and c.issued_at is not None:
        found.append((c.issued_at + timedelta(days=th.webhook_secret_max_age_days),
                      f"reaches {th.webhook_secret_max_age_days} days of age"))
    return min(found, key=lambda x: x[0]) if found else None


def days_left(deadline: datetime, at: datetime) -> float:
    return (deadline - at) / DAY


def credential_step(left: float, th: Thresholds) -> int | None:
    """The most urgent step reached (30, 14, 7 or 3 by default), None when more than 30 days are left."""
    reached = [d for d in th.steps if left <= d]
    return min(reached) if reached else None


def credential_expiry(snap: Snapshot, th: Thresholds) -> list[Condition]:
    out = []
    for c in snap.credentials:
        found = credential_deadline(c, th)
        if found is None:
            continue
        deadline, what = found
        left = days_left(deadline, snap.at)
        step = credential_step(left, th)
        if step is None:
            continue
        label = CREDENTIAL_KINDS.get(c.kind, c.kind)
        paging = step <= th.page_days
        actions: list[tuple[str, str]] = [("slack", f"reminder-{step}d")]
        if paging:
            actions.append(PAGE)
        overdue_hours = -left * 24
        if overdue_hours >= th.overdue_reminder_hours:
            actions.append(("slack", f"overdue-{int(overdue_hours // th.overdue_reminder_hours)}"))
        when = (f"{what} {deadline:%Y-%m-%d %H:%M}Z, {_span(deadline - snap.at)} left" if left >= 0
                else f"{what} {deadline:%Y-%m-%d %H:%M}Z, OVERDUE by {_span(deadline - snap.at)}")
        why = f" ({c.rotation_due_reason})" if c.rotation_due_reason and what == "rotation due" else ""
        out.append(Condition(
            CREDENTIAL, f"credential_expiry:{c.name}:{deadline:%Y-%m-%dT%H:%M}", "SEV-2" if paging else "SEV-3",
            f"Credential {c.name} ({label}) {when}{why} — replace it, then record it: "
            f"`payops credentials rotate {c.name}`",
            {"name": c.name, "kind": c.kind, "deadline": deadline.isoformat(), "what": what,
             "days_left": round(left, 2), "step": step, "owner": c.owner, "reason": c.rotation_due_reason},
            tuple(actions)))
    return out


# --- reserve breach ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ReserveLevel:
    studio: StudioReserve
    projected_gross: int
    projected_reserve: int

    @property
    def level(self) -> int:
        return min(self.studio.reserve_now, self.projected_reserve)

    def below_minimum(self) -> bool:
        return self.level < self.studio.minimum

    def under_buffer(self, th: Thresholds) -> bool:
        return self.level * 10_000 < self.studio.minimum * (10_000 + th.reserve_buffer_bps)


def reserve_levels(snap: Snapshot, th: Thresholds) -> list[ReserveLevel]:
    """Each studio's projected reserve after the next cycle: the payout policy's reserve on the gross it will
    pay — earnings so far plus the last cycle's gross for the part of the cycle still to come (run rate)."""
    out = []
    if snap.prev_cycle_at is None or snap.next_cycle_at is None:
        return out
    cycle_s = max(int((snap.next_cycle_at - snap.prev_cycle_at).total_seconds()), 1)
    remaining_s = max(int((snap.next_cycle_at - snap.at).total_seconds()), 0)
    for r in snap.reserves:
        gross = r.known_gross + r.last_gross * remaining_s // cycle_s
        out.append(ReserveLevel(r, gross, th.policy.split(gross).reserve))
    return out


def reserve_breach(snap: Snapshot, th: Thresholds) -> list[Condition]:
    out = []
    for lv in reserve_levels(snap, th):
        r = lv.studio
        below = lv.below_minimum()
        if not below and not lv.under_buffer(th):
            continue
        kind = "below its minimum" if below else f"under the {pct(th.reserve_buffer_bps)} buffer above its minimum"
        out.append(Condition(
            RESERVE, f"reserve_breach:{r.studio_id}", "SEV-3" if below else "SEV-4",
            f"Reserve {kind}: {r.name} holds {money(r.reserve_now, r.currency)}, projected "
            f"{money(lv.projected_reserve, r.currency)} after the next cycle; minimum "
            f"{money(r.minimum, r.currency)}",
            {"studio_id": r.studio_id, "studio": r.name, "currency": r.currency, "reserve_now": r.reserve_now,
             "projected_reserve": lv.projected_reserve, "projected_gross": lv.projected_gross,
             "minimum": r.minimum, "kind": "below_minimum" if below else "under_buffer"},
            (("email", "notify-below" if below else "notify-buffer"),
             ("slack_ops", "notify-below" if below else "notify-buffer"))))
    return out


RULE_FUNCS = {AUTOMATION: automation_failure, MONEY_MOVED: money_moved, FALLBACK: fallback_volume,
              CREDENTIAL: credential_expiry, RESERVE: reserve_breach}


def evaluate(snap: Snapshot, th: Thresholds) -> list[Condition]:
    """Every condition that holds at ``snap.at``, rule by rule."""
    return [c for rule in RULES for c in RULE_FUNCS[rule](snap, th)]
