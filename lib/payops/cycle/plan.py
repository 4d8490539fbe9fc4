"""Who a cycle pays, how much, and who it skips and why. Pure: data in, a plan out.

Rules, per studio:

- eligible: it has a connected account with ``charges_enabled`` and ``payouts_enabled``;
- its earnings earned before the cycle's slot (and not yet allocated to an earlier ledger payout)
  are summed per currency; the studio's own currency is paid, earnings in any other currency are
  carried (no FX here) with the reason;
- gross → fee, reserve, net by :class:`~payops.cycle.policy.PayoutPolicy`; a net below the minimum
  payout is skipped and carried to the next cycle with the reason;
- ids are derived (:mod:`payops.ids`): a re-run names the same payout run and ledger payouts.

Every earning row lands in exactly one place: a planned payout or a skip (a test checks it).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from payops.cycle.policy import PayoutPolicy
from payops.ids import ledger_payout_id, payout_run_id
from payops.money import totals_by_currency

KEY_PREFIX = "payout-cycle"


@dataclass(frozen=True)
class StudioFacts:
    studio_id: str
    name: str
    stripe_account_id: str | None
    currency: str  # upper-case ISO
    charges_enabled: bool
    payouts_enabled: bool


@dataclass(frozen=True)
class Earning:
    id: str
    studio_id: str
    amount: int
    currency: str  # upper-case ISO
    earned_at: datetime


@dataclass(frozen=True)
class PlannedPayout:
    ledger_payout_id: str
    studio_id: str
    studio_name: str
    destination: str
    currency: str
    gross: int
    fee: int
    reserve: int
    net: int
    earning_ids: tuple[str, ...]


@dataclass(frozen=True)
class Skip:
    studio_id: str
    studio_name: str
    currency: str
    gross: int
    net: int
    code: str  # below_threshold · not_eligible · no_account · currency · unknown_studio
    reason: str
    earning_ids: tuple[str, ...]


@dataclass
class CyclePlan:
    cycle_date: date
    run_id: str
    cutoff: datetime
    policy: PayoutPolicy
    payouts: list[PlannedPayout] = field(default_factory=list)
    skips: list[Skip] = field(default_factory=list)

    def totals(self) -> dict[str, int]:
        """Net to transfer per currency."""
        return totals_by_currency((p.currency, p.net) for p in self.payouts)

    def rows(self) -> list[dict[str, object]]:
        """One row per studio and currency (payouts then skips), for a table."""
        rows: list[dict[str, object]] = [
            {"studio": p.studio_name, "studio_id": p.studio_id, "currency": p.currency, "gross": p.gross,
             "fee": p.fee, "reserve": p.reserve, "net": p.net, "decision": "pay", "reason": "",
             "ledger_payout_id": p.ledger_payout_id}
            for p in self.payouts]
        rows += [{"studio": s.studio_name, "studio_id": s.studio_id, "currency": s.currency, "gross": s.gross,
                  "fee": None, "reserve": None, "net": s.net, "decision": f"skip: {s.code}", "reason": s.reason,
                  "ledger_payout_id": None} for s in self.skips]
        return rows


def _money(amount: int, currency: str) -> str:
    from payops.money import Money

    return Money(amount, currency).format()


def plan_cycle(cycle_date: date, cutoff: datetime, studios: Iterable[StudioFacts], earnings: Iterable[Earning],
               policy: PayoutPolicy) -> CyclePlan:
    """The plan for one cycle from the studios and their unallocated earnings (any order)."""
    plan = CyclePlan(cycle_date=cycle_date, run_id=payout_run_id(cycle_date), cutoff=cutoff, policy=policy)
    by_id = {s.studio_id: s for s in studios}
    groups: dict[tuple[str, str], list[Earning]] = defaultdict(list)
    for e in earnings:
        if e.earned_at < cutoff:
            groups[(e.studio_id, e.currency)].append(e)
    for (studio_id, currency), rows in sorted(groups.items()):
        ids = tuple(sorted(e.id for e in rows))
        gross = sum(e.amount for e in rows)
        studio = by_id.get(studio_id)
        if studio is None:
            plan.skips.append(Skip(studio_id, "?", currency, gross, gross, "unknown_studio",
                                   f"earnings for studio {studio_id}, which is not in studios", ids))
            continue
        split = policy.split(gross)
        skip = _skip_reason(studio, currency, split.net, policy)
        if skip is not None:
            code, reason = skip
            plan.skips.append(Skip(studio_id, studio.name, currency, gross, split.net, code, reason, ids))
            continue
        plan.payouts.append(PlannedPayout(
            ledger_payout_id=ledger_payout_id(cycle_date, studio_id), studio_id=studio_id, studio_name=studio.name,
            destination=studio.stripe_account_id or "", currency=currency, gross=split.gross, fee=split.fee,
            reserve=split.reserve, net=split.net, earning_ids=ids))
    return plan


def _skip_reason(studio: StudioFacts, currency: str, net: int, policy: PayoutPolicy) -> tuple[str, str] | None:
    if not studio.stripe_account_id:
        return "no_account", "no connected Stripe account; carried to the next cycle"
    if not (studio.charges_enabled and studio.payouts_enabled):
        missing = [n for n, ok in (("charges_enabled", studio.charges_enabled),
                                   ("payouts_enabled", studio.payouts_enabled)) if not ok]
        return "not_eligible", (f"{studio.stripe_account_id} is not ready ({' and '.join(missing)} false: "
                                "onboarding incomplete); carried to the next cycle")
    if currency != studio.currency:
        return "currency", (f"earnings in {currency}, but the studio is paid in {studio.currency}; carried "
                            "until Finance converts them")
    if net < policy.min_threshold or net <= 0:
        return "below_threshold", (f"net {_money(net, currency)} is below the minimum payout "
                                   f"{_money(policy.min_threshold, currency)}; carried to the next cycle")
    return None


def idempotency_key(ledger_payout_id: str) -> str:
    return f"{KEY_PREFIX}:{ledger_payout_id}"


def transfer_request(*, ledger_payout_id: str, run_id: str, studio_id: str, cycle_date: date, net: int,
                     currency: str, destination: str) -> dict[str, Any]:
    """The exact transfer the cycle sends for one ledger payout (the demo seed builds its history with it)."""
    return {
        "amount": net, "currency": currency.lower(), "destination": destination, "transfer_group": ledger_payout_id,
        "description": f"Payout cycle {cycle_date.isoformat()} · ledger payout {ledger_payout_id}",
        "metadata": {"ledger_payout_id": ledger_payout_id, "run_id": run_id, "studio_id": studio_id,
                     "source": "automated", "cycle_date": cycle_date.isoformat()},
    }
