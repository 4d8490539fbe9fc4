"""Seed the reference ledger with the demo world (``payops sandbox seed --db``).

Idempotent: re-seeding leaves existing rows as they are (a manual payout already made against the
rehearsal ledger payout is never undone by a re-seed; use ``--reset`` for that).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from payops import demo_data
from payops.config import Settings, get_settings
from payops.cycle import engine
from payops.cycle.plan import plan_cycle
from payops.db import session_scope
from payops.db.models import (
    Approval,
    LedgerPayout,
    ManualPayout,
    PayoutRun,
    PayoutSkip,
    RunbookRun,
    RunbookStep,
    Studio,
    StudioEarning,
    TransferIntent,
)
from payops.ids import payout_run_id


@dataclass
class SeedReport:
    studios: int
    payout_runs: int
    ledger_payouts: int


def seed_ledger(settings: Settings | None = None, *, reset: bool = False) -> SeedReport:
    """The demo world in the ledger (``payops.demo_data``): studios, their earnings, five past cycles
    planned by the payout cycle's own code (``engine.write_plan``) and marked paid as the sandbox seed
    pays them, the failed 2026-11-15 cycle with its two pending ledger payouts, the planted
    reconciliation rows, and earnings due for the next cycle (left unallocated)."""
    settings = settings or get_settings()
    added = SeedReport(0, 0, 0)
    with session_scope(settings) as s:
        if reset:
            for model in (ManualPayout, TransferIntent, Approval, RunbookStep, RunbookRun, StudioEarning, PayoutSkip,
                          LedgerPayout, PayoutRun, Studio):
                s.execute(delete(model))
            s.flush()
        for st in demo_data.STUDIOS:
            if s.get(Studio, st.studio_id) is None:
                s.add(Studio(
                    id=st.studio_id, name=st.name, email=st.email, stripe_account_id=st.account_id,
                    currency=st.currency, reserve_minimum=st.reserve_minimum,
                    charges_enabled=st.charges_enabled, payouts_enabled=st.payouts_enabled,
                ))
                added.studios += 1
        s.flush()
        for e in demo_data.demo_earnings():
            if s.get(StudioEarning, e.earning_id) is None:
                s.add(StudioEarning(id=e.earning_id, studio_id=e.studio.studio_id, amount=e.amount,
                                    currency=e.currency, earned_at=e.earned_at, source="sale", source_ref=e.source_ref))
        s.flush()
        for cycle in demo_data.HISTORY_CYCLES:
            if s.get(PayoutRun, payout_run_id(cycle)) is None:
                added.payout_runs += 1
                added.ledger_payouts += _pay_history_cycle(s, cycle)
        added.payout_runs += _failed_cycle(s)
        for h in [*demo_data.demo_history(), *demo_data.recon_demo_ledger()]:
            if s.get(LedgerPayout, h.ledger_payout_id) is None:
                s.add(_ledger_row(h))  # the failed cycle's fixed rows and the planted reconciliation breaks
                added.ledger_payouts += 1
        s.flush()
        for e in demo_data.failed_cycle_earnings():
            s.execute(update(StudioEarning).where(StudioEarning.id == e.earning_id)
                      .values(ledger_payout_id=e.ledger_payout_id))
    return added


def _pay_history_cycle(s: Session, cycle: date) -> int:
    """Plan ``cycle`` with the cycle's own code over the earnings then due, then record what Stripe did
    (the same transfers and payouts the sandbox's demo seed holds)."""
    cutoff = datetime(cycle.year, cycle.month, cycle.day, 6, 0, tzinfo=UTC)
    studios, earnings = engine.load_facts(s, cutoff)
    plan = plan_cycle(cycle, cutoff, studios, earnings, demo_data.demo_policy())
    engine.write_plan(s, plan, cutoff, runbook_run_id=None)
    for p in plan.payouts:
        lp = p.ledger_payout_id
        s.execute(update(LedgerPayout).where(LedgerPayout.id == lp).values(
            status="paid", stripe_transfer_id=demo_data.stable_id("tr", lp),
            stripe_destination_payment_id=demo_data.stable_id("py", lp, length=14),
            stripe_payout_id=demo_data.stable_id("po", lp), created_at=cutoff - timedelta(minutes=3)))
    s.execute(update(PayoutRun).where(PayoutRun.id == plan.run_id).values(
        status="completed", finished_at=cutoff + timedelta(minutes=3), studios_paid=len(plan.payouts)))
    return len(plan.payouts)


def _failed_cycle(s: Session) -> int:
    cycle = demo_data.FAILED_CYCLE
    if s.get(PayoutRun, payout_run_id(cycle)) is not None:
        return 0
    start = datetime(cycle.year, cycle.month, cycle.day, 6, 0, tzinfo=UTC)
    rows = [h for h in demo_data.demo_history() if h.cycle_date == cycle]
    s.add(PayoutRun(id=payout_run_id(cycle), cycle_date=cycle, status="failed", started_at=start,
                    finished_at=start + timedelta(minutes=1), studios_scheduled=len(rows), studios_paid=0,
                    failure_reason="automated payouts failed (the rehearsal scenario): ledger payouts left pending "
                                   "for the manual fallback"))
    s.flush()
    return 1


def _ledger_row(h: demo_data.HistoricPayout) -> LedgerPayout:
    return LedgerPayout(
        id=h.ledger_payout_id, run_id=h.run_id, studio_id=h.studio.studio_id, gross=h.gross, fee=h.fee,
        reserve=h.reserve, net=h.net, currency=h.currency, status=h.status, stripe_transfer_id=h.transfer_id,
        created_at=h.transferred_at - timedelta(minutes=5))


def ledger_counts(settings: Settings | None = None) -> dict[str, int]:
    with session_scope(settings) as s:
        return {
            "studios": len(s.scalars(select(Studio.id)).all()),
            "payout_runs": len(s.scalars(select(PayoutRun.id)).all()),
            "ledger_payouts": len(s.scalars(select(LedgerPayout.id)).all()),
            "seeded_at": int(datetime.now(UTC).timestamp()),
        }
