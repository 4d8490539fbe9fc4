"""Seed the reference ledger with the demo world (``payops sandbox seed --db``).

Idempotent: re-seeding leaves existing rows as they are (a manual payout already made against the
rehearsal ledger payout is never undone by a re-seed; use ``--reset`` for that).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select

from payops import demo_data
from payops.config import Settings, get_settings
from payops.db import session_scope
from payops.db.models import (
    Approval,
    LedgerPayout,
    ManualPayout,
    PayoutRun,
    RunbookRun,
    RunbookStep,
    Studio,
    TransferIntent,
)


@dataclass
class SeedReport:
    studios: int
    payout_runs: int
    ledger_payouts: int


def seed_ledger(settings: Settings | None = None, *, reset: bool = False) -> SeedReport:
    """Insert the demo studios, payout runs and ledger payouts (from ``payops.demo_data``)."""
    settings = settings or get_settings()
    added = SeedReport(0, 0, 0)
    with session_scope(settings) as s:
        if reset:
            for model in (ManualPayout, TransferIntent, Approval, RunbookStep, RunbookRun, LedgerPayout,
                          PayoutRun, Studio):
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
        history = demo_data.demo_history()
        for run in demo_data.payout_runs():
            if s.get(PayoutRun, run["id"]) is None:
                items = [h for h in history if h.run_id == run["id"]]
                started = items[0].transferred_at - timedelta(minutes=2)
                s.add(PayoutRun(
                    id=run["id"], cycle_date=run["cycle_date"], status=run["status"], started_at=started,
                    finished_at=started + timedelta(minutes=3), studios_scheduled=run["studios_scheduled"],
                    studios_paid=run["studios_paid"], total=sum(h.net for h in items if h.status == "paid"),
                ))
                added.payout_runs += 1
        s.flush()
        for h in [*history, *demo_data.recon_demo_ledger()]:  # + the planted reconciliation breaks
            if s.get(LedgerPayout, h.ledger_payout_id) is None:
                s.add(LedgerPayout(
                    id=h.ledger_payout_id, run_id=h.run_id, studio_id=h.studio.studio_id, gross=h.gross,
                    fee=h.fee, reserve=h.reserve, net=h.net, currency=h.currency, status=h.status,
                    stripe_transfer_id=h.transfer_id, created_at=h.transferred_at - timedelta(minutes=5),
                ))
                added.ledger_payouts += 1
    return added


def ledger_counts(settings: Settings | None = None) -> dict[str, int]:
    with session_scope(settings) as s:
        return {
            "studios": len(s.scalars(select(Studio.id)).all()),
            "payout_runs": len(s.scalars(select(PayoutRun.id)).all()),
            "ledger_payouts": len(s.scalars(select(LedgerPayout.id)).all()),
            "seeded_at": int(datetime.now(UTC).timestamp()),
        }
