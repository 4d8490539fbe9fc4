"""What the rules, the dashboards and the Prometheus endpoint read: one snapshot of the database at a time.

Contract:

1. :func:`load_snapshot` is the one adapter between the database and the monitor. It runs a handful of
   aggregate queries (per run and status, per currency, the latest payout per studio) — never a row per
   ledger payout into Python — so a year of history for 10,000 studios costs what those aggregates cost.
2. Everything it returns is plain frozen data (no ORM objects, no session): the rules in
   :mod:`payops.monitor.rules` are pure functions of a :class:`Snapshot` and the thresholds, and the
   dashboards draw the same snapshot.
3. ``at`` is the time the rules are evaluated at (``--at``): rows created after it (runs started, transfers
   made, scheduler slots, credentials issued) are left out; state that has no history (a ledger payout's
   current status, earnings allocated since) is read as it is now.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import and_, exists, func, select
from sqlalchemy.orm import Session

from payops.db.models import (
    Credential,
    LedgerPayout,
    ManualPayout,
    PayoutRun,
    RunbookRun,
    RunbookStep,
    ScheduledExecution,
    Studio,
    StudioEarning,
    TransferIntent,
)
from payops.monitor.thresholds import Thresholds

PROCESSED = ("transferred", "paid", "manual")  # money left for the studio
UNPAID = ("scheduled", "pending", "failed")  # a studio still waiting
AUTOMATED_DONE = ("transferred", "paid")
PAYOUT_CYCLE_JOB = "payout-cycle"
BAD_SLOT = ("failed", "interrupted", "missed")
AFTER_TRANSFER_STEPS = ("30-audit-insert", "40-notify", "50-settle")


@dataclass(frozen=True)
class RunFact:
    """One automated payout run (``payout_runs``) with its ledger payouts counted by outcome."""

    run_id: str
    cycle_date: date
    status: str
    started_at: datetime | None
    finished_at: datetime | None
    scheduled: int  # ledger payouts planned (studios scheduled)
    processed: int  # transferred · paid · manual
    unpaid: int  # scheduled · pending · failed
    failure_reason: str | None = None
    runbook_run_id: str | None = None
    runbook_status: str | None = None
    runbook_failed_step: str | None = None
    runbook_error: str | None = None
    paid_totals: dict[str, int] = field(default_factory=dict)  # currency → net transferred (automated)
    retries: int = 0  # transfer attempts beyond the first, over the run's intents

    def duration(self, at: datetime) -> timedelta | None:
        """How long it ran (until ``at`` while still running)."""
        if self.started_at is None:
            return None
        end = self.finished_at if self.finished_at is not None else (at if self.status == "running" else None)
        return None if end is None else end - self.started_at


@dataclass(frozen=True)
class SlotFact:
    """A payout-cycle slot the scheduler did not run to success (failed · interrupted · missed)."""

    slot_at: datetime
    cycle_date: date  # the slot's local date in PAYOUT_TIMEZONE
    status: str
    error: str | None
    runbook_run_id: str | None


@dataclass(frozen=True)
class FallbackUse:
    """A live manual payout (not a rehearsal) whose transfer exists (``transfer_intents`` created)."""

    run_id: str
    ledger_payout_id: str
    incident_id: str
    studio_id: str
    studio_name: str
    amount: int
    currency: str
    transfer_id: str | None
    transferred_at: datetime
    detected_at: datetime | None
    run_status: str
    run_active: bool  # the run is executing now (status running under a lease that has not expired)
    audit_row: bool  # manual_payouts has the run's row
    notified: bool  # step 40-notify succeeded
    settled: bool  # the audit row says settled or failed (the bank payout's outcome is known)

    @property
    def missing(self) -> list[str]:
        """What the run has not recorded yet, in SOP order."""
        return [what for what, done in (("audit row", self.audit_row), ("notifications", self.notified),
                                        ("settlement", self.settled)) if not done]


@dataclass(frozen=True)
class CredentialFact:
    name: str
    kind: str
    expires_at: datetime | None
    rotation_due_at: datetime | None
    rotation_due_reason: str | None
    issued_at: datetime | None
    rotated_at: datetime | None
    owner: str | None


@dataclass(frozen=True)
class StudioReserve:
    """A studio's reserve: held now (its latest payout's), and what the next cycle's run rate projects."""

    studio_id: str
    name: str
    currency: str
    minimum: int
    reserve_now: int
    last_gross: int
    last_cycle: date | None
    known_gross: int  # earnings not yet allocated, earned up to ``at``


@dataclass(frozen=True)
class Snapshot:
    at: datetime
    runs: list[RunFact]
    bad_slots: list[SlotFact]
    fallback: list[FallbackUse]
    automated_volume: dict[str, int]  # currency → automated net in the fallback window
    credentials: list[CredentialFact]
    reserves: list[StudioReserve]
    held_by_reserve: dict[str, tuple[int, int]]  # currency → (unpaid payouts under the studio minimum, their net)
    prev_cycle_at: datetime | None
    next_cycle_at: datetime | None


def fallback_window(at: datetime, th: Thresholds) -> tuple[datetime, datetime]:
    """The rolling window ``(at - N days, at]``: a manual payout exactly N days old is out."""
    return at - timedelta(days=th.fallback_window_days), at


# --- loaders ---------------------------------------------------------------------------------------------
def _runs(s: Session, at: datetime) -> list[RunFact]:
    rows = s.execute(select(PayoutRun).where(PayoutRun.started_at.is_not(None), PayoutRun.started_at <= at)
                     .order_by(PayoutRun.cycle_date)).scalars().all()
    if not rows:
        return []
    counts = s.execute(select(LedgerPayout.run_id, LedgerPayout.status, LedgerPayout.currency, func.count(),
                              func.sum(LedgerPayout.net))
                       .join(PayoutRun, PayoutRun.id == LedgerPayout.run_id)
                       .where(PayoutRun.started_at <= at)
                       .group_by(LedgerPayout.run_id, LedgerPayout.status, LedgerPayout.currency)).all()
    per: dict[str, dict[str, Any]] = {}
    for run_id, status, currency, n, net in counts:
        c = per.setdefault(run_id, {"scheduled": 0, "processed": 0, "unpaid": 0, "totals": {}})
        c["scheduled"] += int(n)
        if status in PROCESSED:
            c["processed"] += int(n)
        if status in UNPAID:
            c["unpaid"] += int(n)
        if status in AUTOMATED_DONE:
            c["totals"][currency] = c["totals"].get(currency, 0) + int(net or 0)
    rb_ids = [r.runbook_run_id for r in rows if r.runbook_run_id]
    rb = {r.id: r for r in s.execute(select(RunbookRun.id, RunbookRun.status, RunbookRun.failed_step, RunbookRun.error)
                                     .where(RunbookRun.id.in_(rb_ids))).all()} if rb_ids else {}
    retries = {rid: n for rid, n in s.execute(
        select(TransferIntent.run_id, func.sum(TransferIntent.attempts - 1))
        .where(TransferIntent.run_id.in_(rb_ids), TransferIntent.attempts > 1)
        .group_by(TransferIntent.run_id)).all()} if rb_ids else {}
    out = []
    for r in rows:
        c = per.get(r.id, {"scheduled": 0, "processed": 0, "unpaid": 0, "totals": {}})
        info = rb.get(r.runbook_run_id) if r.runbook_run_id else None
        out.append(RunFact(
            run_id=r.id, cycle_date=r.cycle_date, status=r.status, started_at=r.started_at, finished_at=r.finished_at,
            scheduled=c["scheduled"] or int(r.studios_scheduled or 0),
            processed=c["processed"], unpaid=c["unpaid"], failure_reason=r.failure_reason,
            runbook_run_id=r.runbook_run_id, runbook_status=info.status if info else None,
            runbook_failed_step=info.failed_step if info else None, runbook_error=info.error if info else None,
            paid_totals=c["totals"], retries=int(retries.get(r.runbook_run_id, 0) or 0) if r.runbook_run_id else 0))
    return out


def _bad_slots(s: Session, at: datetime, settings: Any) -> list[SlotFact]:
    from payops.cycle.slots import zone

    tz = zone(settings)
    rows = s.execute(select(ScheduledExecution).where(
        ScheduledExecution.job == PAYOUT_CYCLE_JOB, ScheduledExecution.status.in_(BAD_SLOT),
        ScheduledExecution.slot_at <= at).order_by(ScheduledExecution.slot_at)).scalars().all()
    return [SlotFact(r.slot_at, r.slot_at.astimezone(tz).date(), r.status, r.error, r.runbook_run_id) for r in rows]


def _manual_intents() -> Any:
    """transfer_intents of live (not rehearsal) manual payout runs whose transfer exists."""
    return (select(TransferIntent, RunbookRun)
            .join(RunbookRun, RunbookRun.id == TransferIntent.run_id)
            .where(RunbookRun.sop == "manual_payout", RunbookRun.mode == "live", TransferIntent.status == "created"))


def _fallback(s: Session, at: datetime) -> list[FallbackUse]:
    rows = s.execute(_manual_intents().where(TransferIntent.updated_at <= at)).all()
    if not rows:
        return []
    run_ids = [rr.id for _ti, rr in rows]
    audit = {m.run_id: m for m in s.execute(select(ManualPayout).where(ManualPayout.run_id.in_(run_ids))).scalars()}
    notified = set(s.execute(select(RunbookStep.run_id).where(
        RunbookStep.run_id.in_(run_ids), RunbookStep.step == "40-notify", RunbookStep.status == "succeeded")).scalars())
    out = []
    for ti, rr in rows:
        params = json.loads(rr.params_json)
        mp = audit.get(rr.id)
        out.append(FallbackUse(
            run_id=rr.id, ledger_payout_id=ti.ledger_payout_id, incident_id=str(params.get("incident_id", "")),
            studio_id=str(params.get("studio_id", "")), studio_name=str(params.get("studio_name", "")),
            amount=int(ti.amount), currency=ti.currency.upper(), transfer_id=ti.stripe_transfer_id,
            transferred_at=ti.updated_at, detected_at=rr.detected_at, run_status=rr.status,
            run_active=rr.status == "running" and rr.lease_expires_at is not None and rr.lease_expires_at > at,
            audit_row=mp is not None, notified=rr.id in notified,
            settled=mp is not None and (mp.settled_at is not None or mp.status in ("settled", "failed"))))
    return sorted(out, key=lambda f: f.transferred_at)


def _automated_volume(s: Session, at: datetime, th: Thresholds) -> dict[str, int]:
    start, end = fallback_window(at, th)
    manual = exists().where(TransferIntent.ledger_payout_id == LedgerPayout.id,
                            RunbookRun.id == TransferIntent.run_id, RunbookRun.sop == "manual_payout")
    rows = s.execute(select(LedgerPayout.currency, func.sum(LedgerPayout.net))
                     .join(PayoutRun, PayoutRun.id == LedgerPayout.run_id)
                     .where(PayoutRun.started_at > start, PayoutRun.started_at <= end,
                            LedgerPayout.status.in_(AUTOMATED_DONE), ~manual)
                     .group_by(LedgerPayout.currency)).all()
    return {cur.upper(): int(total or 0) for cur, total in rows}


def _credentials(s: Session, at: datetime) -> list[CredentialFact]:
    rows = s.execute(select(Credential).where(
        (Credential.created_at.is_(None)) | (Credential.created_at <= at)).order_by(Credential.name)).scalars().all()
    return [CredentialFact(c.name, c.kind, c.expires_at, c.rotation_due_at, c.rotation_due_reason, c.issued_at,
                           c.rotated_at, c.owner) for c in rows]


def _reserves(s: Session, at: datetime) -> list[StudioReserve]:
    studios = s.execute(select(Studio.id, Studio.name, Studio.currency, Studio.reserve_minimum)
                        .where(Studio.reserve_minimum > 0)).all()
    if not studios:
        return []
    ranked = (select(LedgerPayout.studio_id, LedgerPayout.currency, LedgerPayout.reserve, LedgerPayout.gross,
                     PayoutRun.cycle_date,
                     func.row_number().over(partition_by=LedgerPayout.studio_id,
                                            order_by=(PayoutRun.cycle_date.desc(), LedgerPayout.id)).label("rn"))
              .join(PayoutRun, PayoutRun.id == LedgerPayout.run_id)
              .where(PayoutRun.started_at <= at, LedgerPayout.status.in_(PROCESSED))
              .join(Studio, and_(Studio.id == LedgerPayout.studio_id, Studio.reserve_minimum > 0))
              .subquery())
    latest = {r.studio_id: r for r in s.execute(select(ranked).where(ranked.c.rn == 1)).all()}
    earned = {(sid, cur.upper()): int(total or 0) for sid, cur, total in s.execute(
        select(StudioEarning.studio_id, StudioEarning.currency, func.sum(StudioEarning.amount))
        .where(StudioEarning.ledger_payout_id.is_(None), StudioEarning.earned_at <= at)
        .group_by(StudioEarning.studio_id, StudioEarning.currency)).all()}
    out = []
    for sid, name, currency, minimum in studios:
        last = latest.get(sid)
        cur = currency.upper()
        out.append(StudioReserve(
            studio_id=sid, name=name, currency=cur, minimum=int(minimum),
            reserve_now=int(last.reserve) if last is not None and last.currency.upper() == cur else 0,
            last_gross=int(last.gross) if last is not None and last.currency.upper() == cur else 0,
            last_cycle=last.cycle_date if last is not None else None, known_gross=earned.get((sid, cur), 0)))
    return out


def _held_by_reserve(s: Session) -> dict[str, tuple[int, int]]:
    rows = s.execute(select(LedgerPayout.currency, func.count(), func.sum(LedgerPayout.net))
                     .join(Studio, Studio.id == LedgerPayout.studio_id)
                     .where(LedgerPayout.status.in_(UNPAID), LedgerPayout.reserve < Studio.reserve_minimum)
                     .group_by(LedgerPayout.currency)).all()
    return {cur.upper(): (int(n), int(net or 0)) for cur, n, net in rows}


def _cycle_bounds(settings: Any, at: datetime) -> tuple[datetime | None, datetime | None]:
    from payops.cycle.slots import next_slots, payout_expr, previous_slot, zone

    expr, tz = payout_expr(settings), zone(settings)
    return previous_slot(expr, tz, at).astimezone(UTC), next_slots(expr, tz, at, 1)[0].astimezone(UTC)


def load_snapshot(s: Session, at: datetime, th: Thresholds, settings: Any) -> Snapshot:
    """Everything the rules need, as of ``at`` (aware)."""
    if at.tzinfo is None:
        raise ValueError("load_snapshot needs an aware datetime")
    at = at.astimezone(UTC)
    prev_at, next_at = _cycle_bounds(settings, at)
    return Snapshot(
        at=at, runs=_runs(s, at), bad_slots=_bad_slots(s, at, settings), fallback=_fallback(s, at),
        automated_volume=_automated_volume(s, at, th), credentials=_credentials(s, at), reserves=_reserves(s, at),
        held_by_reserve=_held_by_reserve(s), prev_cycle_at=prev_at, next_cycle_at=next_at)
