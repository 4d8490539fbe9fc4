"""The fixed demo/rehearsal world: one source for the Stripe sandbox seed and the ledger seed.

Everything here is documented in the README ("The sandbox seeds"). The IDs are stable so that the
rehearsal playbook's example command works verbatim:

    payops manual-payout --studio-id 11111111-1111-1111-1111-111111111111 \
        --studio-name "Test Studio A" --ledger-payout-id 22222222-2222-2222-2222-222222222222 \
        --incident-id INC-REHEARSAL-001 --amount 875.50 --reserve-after 120.00 \
        --reason "automated payout failed" --destination-account acct_test_studio_a --dry-run

Planted reconciliation breaks (``recon_demo_breaks()``; all in the 2026-10-15 cycle, on top of the
history above, which they leave unchanged; ``payops recon --from 2026-09-01 --to 2026-11-30`` finds
them):

- DUPLICATE_PAYMENT — an extra *manual* fallback transfer (``metadata.source =
  payops-manual-fallback``) of Studio B's already paid 2026-10-15 ledger payout (``RECON_DUP_TRANSFER``);
- REVERSED_PARTIAL — Studio D's automated 2026-10-15 transfer, 150.00 of 600.00 CAD reversed
  (``RECON_REVERSED_LEDGER_ID`` / ``RECON_REVERSED_TRANSFER``);
- PAYOUT_FAILED — Studio E's automated 2026-10-15 transfer reached its account, but the bank payout
  failed with ``account_closed`` (``RECON_FAILED_LEDGER_ID`` / ``RECON_FAILED_PAYOUT``);
- MISSING_IN_LEDGER — a 123.45 CAD transfer to Studio D on 2026-10-20 with no ledger row, no metadata
  and no transfer group (``RECON_ORPHAN_TRANSFER``);
- MISSING_IN_STRIPE — Studio C's 2026-10-15 ledger payout marked ``transferred`` with a transfer id
  Stripe does not have (``RECON_MISSING_LEDGER_ID``).

(The two pending ledger payouts of the failed 2026-11-15 cycle also show up, as MISSING_IN_STRIPE,
until the manual fallback pays them.) Studios D and E exist only for these planted breaks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from payops.ids import stable_id, stable_uuid

# --- keys (test mode only; these exact strings exist only in the sandbox) ----------------------
PLATFORM_KEY = "sk_test_payops_platform"
FALLBACK_KEY = "rk_test_payops_fallback"
READONLY_KEY = "rk_test_payops_readonly"
WEBHOOK_SECRET = "whsec_payops_sandbox_demo"  # noqa: S105 — sandbox-only test secret
RESTRICTED_KEYS: dict[str, dict[str, str]] = {
    # resource → "read" | "write" (write implies read). Anything not listed → 403.
    FALLBACK_KEY: {"transfers": "write", "balance": "read"},
    READONLY_KEY: {
        "transfers": "read", "balance": "read", "balance_transactions": "read", "payouts": "read",
        "accounts": "read", "events": "read",
    },
}

PLATFORM_ACCOUNT = "acct_test_platform"
PLATFORM_BALANCE = {"cad": 25_000_000, "usd": 10_000_000}  # minor units available
PLATFORM_PENDING = {"cad": 150_000, "usd": 50_000}


@dataclass(frozen=True)
class DemoStudio:
    studio_id: str
    name: str
    email: str
    account_id: str
    currency: str  # upper-case ISO
    country: str
    reserve_minimum: int  # minor units
    charges_enabled: bool = True
    payouts_enabled: bool = True


STUDIO_A = DemoStudio(
    "11111111-1111-1111-1111-111111111111", "Test Studio A", "studio-a@example.com",
    "acct_test_studio_a", "CAD", "CA", 10_000,
)
STUDIO_B = DemoStudio(
    "33333333-3333-3333-3333-333333333333", "Test Studio B", "studio-b@example.com",
    "acct_test_studio_b", "USD", "US", 5_000,
)
# Onboarding incomplete: cannot receive transfers (tests the "destination can receive" check).
STUDIO_C = DemoStudio(
    "55555555-5555-5555-5555-555555555555", "Test Studio C (onboarding)", "studio-c@example.com",
    "acct_test_studio_c", "CAD", "CA", 0, charges_enabled=False, payouts_enabled=False,
)
# Studios D and E exist for the planted reconciliation breaks (see the module docstring).
STUDIO_D = DemoStudio(
    "66666666-6666-6666-6666-666666666666", "Test Studio D (recon)", "studio-d@example.com",
    "acct_test_studio_d", "CAD", "CA", 0,
)
STUDIO_E = DemoStudio(
    "77777777-7777-7777-7777-777777777777", "Test Studio E (recon)", "studio-e@example.com",
    "acct_test_studio_e", "USD", "US", 0,
)
STUDIOS = (STUDIO_A, STUDIO_B, STUDIO_C, STUDIO_D, STUDIO_E)

# The rehearsal playbook's example: the 2026-11-15 automated cycle failed and left this unpaid.
REHEARSAL_LEDGER_PAYOUT_ID = "22222222-2222-2222-2222-222222222222"
REHEARSAL_NET = 87_550  # 875.50 CAD
REHEARSAL_RESERVE = 12_000  # 120.00 CAD left in reserve after the payout
REHEARSAL_GROSS = 115_000
REHEARSAL_FEE = 15_450  # 1150.00 - 154.50 fee - 120.00 reserve = 875.50
STUDIO_B_PENDING_LEDGER_PAYOUT_ID = "44444444-4444-4444-4444-444444444444"
FAILED_CYCLE = date(2026, 11, 15)

@dataclass(frozen=True)
class HistoricPayout:
    """One ledger payout of a past automated cycle and what Stripe did with it."""

    ledger_payout_id: str
    run_id: str
    cycle_date: date
    studio: DemoStudio
    gross: int
    fee: int
    reserve: int
    net: int
    currency: str
    status: str  # ledger status: paid · pending · failed
    transfer_id: str | None  # the automated transfer, if one was made
    payout_id: str | None  # the connected account's bank payout that settled it
    payout_status: str | None  # paid · failed
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def transferred_at(self) -> datetime:
        return datetime(self.cycle_date.year, self.cycle_date.month, self.cycle_date.day, 6, 2, tzinfo=UTC)


HISTORY_CYCLES = (
    date(2026, 9, 1), date(2026, 9, 15), date(2026, 10, 1), date(2026, 10, 15), date(2026, 11, 1),
)
# the next cycle after today (2026-11-23); its earnings are in the seed, unpaid (``due_earnings()``)
NEXT_CYCLE = date(2026, 12, 1)


@dataclass(frozen=True)
class DemoEarning:
    """A row of ``studio_earnings``: what a studio earned, and the ledger payout that paid it, if any."""

    earning_id: str
    studio: DemoStudio
    amount: int
    currency: str
    earned_at: datetime
    source_ref: str
    ledger_payout_id: str | None = None  # set for the earnings the fixed 2026-11-15 rows hold


def _at(d: date, hour: int = 12) -> datetime:
    return datetime(d.year, d.month, d.day, hour, 0, tzinfo=UTC)


def _sales(studio: DemoStudio, cycle: date, gross: int, tag: str, ledger_payout_id: str | None = None,
           days: tuple[int, int] = (9, 3)) -> list[DemoEarning]:
    """``gross`` as two sales, ``days`` before ``cycle`` (so inside that cycle's window)."""
    first = gross * 3 // 5
    out = []
    for n, (amount, before) in enumerate(((first, days[0]), (gross - first, days[1]))):
        ref = f"demo:{tag}:{cycle.isoformat()}:{studio.studio_id}:{n}"
        out.append(DemoEarning(stable_uuid("earning", ref), studio, amount, studio.currency,
                               _at(cycle - timedelta(days=before)), ref, ledger_payout_id))
    return out


def history_earnings() -> list[DemoEarning]:
    """The sales behind the five paid cycles: A from 980.00 CAD, B from 640.00 USD, +12.50 a cycle."""
    out: list[DemoEarning] = []
    for i, cycle in enumerate(HISTORY_CYCLES):
        out += _sales(STUDIO_A, cycle, 98_000 + 1_250 * i, "history")
        out += _sales(STUDIO_B, cycle, 64_000 + 1_250 * i, "history")
    return out


def failed_cycle_earnings() -> list[DemoEarning]:
    """The sales behind the failed 2026-11-15 cycle's two pending ledger payouts (fixed rows, below)."""
    return [*_sales(STUDIO_A, FAILED_CYCLE, REHEARSAL_GROSS, "failed", REHEARSAL_LEDGER_PAYOUT_ID),
            *_sales(STUDIO_B, FAILED_CYCLE, 54_000, "failed", STUDIO_B_PENDING_LEDGER_PAYOUT_ID)]


def due_earnings() -> list[DemoEarning]:
    """Unpaid, for the next cycle (2026-12-01): A, B and E are paid; D nets below the minimum payout and
    C has not finished onboarding, so both are skipped and carried."""
    due = ((STUDIO_A, 104_500), (STUDIO_B, 70_000), (STUDIO_E, 52_000), (STUDIO_D, 800), (STUDIO_C, 25_000))
    return [e for studio, gross in due for e in _sales(studio, NEXT_CYCLE, gross, "due", days=(14, 11))]


def demo_earnings() -> list[DemoEarning]:
    return [*history_earnings(), *failed_cycle_earnings(), *due_earnings()]


DEMO_POLICY_ENV = {"PLATFORM_FEE_PERCENT": "15", "PAYOUT_RESERVE_PERCENT": "10", "PAYOUT_MIN_THRESHOLD_CENTS": "1000"}


def demo_policy() -> Any:
    """The policy the demo history was paid under (the defaults of ``Settings``)."""
    from payops.cycle.policy import PayoutPolicy

    return PayoutPolicy(fee_bps=1500, reserve_bps=1000, min_threshold=1000, default_currency="CAD")


def studio_facts(studio: DemoStudio) -> Any:
    from payops.cycle.plan import StudioFacts

    return StudioFacts(studio.studio_id, studio.name, studio.account_id, studio.currency, studio.charges_enabled,
                       studio.payouts_enabled)


def plan_history_cycle(cycle: date) -> Any:
    """The payout cycle's own planner over the demo earnings due at ``cycle`` — the history is its output."""
    from payops.cycle.plan import Earning, plan_cycle

    cutoff = datetime(cycle.year, cycle.month, cycle.day, 6, 0, tzinfo=UTC)
    earned = [Earning(e.earning_id, e.studio.studio_id, e.amount, e.currency, e.earned_at)
              for e in history_earnings() if e.earned_at < cutoff and e.earned_at >= _window_start(cycle)]
    return plan_cycle(cycle, cutoff, [studio_facts(st) for st in STUDIOS], earned, demo_policy())


def _window_start(cycle: date) -> datetime:
    """Earnings of earlier cycles were allocated by then: only this cycle's window is unallocated."""
    i = HISTORY_CYCLES.index(cycle)
    prev = HISTORY_CYCLES[i - 1] if i else date(2026, 8, 1)
    return datetime(prev.year, prev.month, prev.day, 6, 0, tzinfo=UTC)


def demo_history() -> list[HistoricPayout]:
    """Past cycles as the cycle's planner decided them (all paid), then the failed 2026-11-15 cycle
    with its two pending ledger payouts (fixed rows: the rehearsal playbook's example names them)."""
    out: list[HistoricPayout] = []
    by_id = {st.studio_id: st for st in STUDIOS}
    for cycle in HISTORY_CYCLES:
        plan = plan_history_cycle(cycle)
        for p in plan.payouts:
            out.append(HistoricPayout(
                p.ledger_payout_id, plan.run_id, cycle, by_id[p.studio_id], p.gross, p.fee, p.reserve, p.net,
                p.currency, "paid", stable_id("tr", p.ledger_payout_id), stable_id("po", p.ledger_payout_id), "paid",
            ))
    run_id = stable_uuid("payout_run", FAILED_CYCLE)
    out.append(HistoricPayout(
        REHEARSAL_LEDGER_PAYOUT_ID, run_id, FAILED_CYCLE, STUDIO_A, REHEARSAL_GROSS, REHEARSAL_FEE,
        REHEARSAL_RESERVE, REHEARSAL_NET, "CAD", "pending", None, None, None,
    ))
    split = demo_policy().split(54_000)
    out.append(HistoricPayout(
        STUDIO_B_PENDING_LEDGER_PAYOUT_ID, run_id, FAILED_CYCLE, STUDIO_B, 54_000, split.fee, split.reserve,
        split.net, "USD", "pending", None, None, None,
    ))
    return out


def payout_runs() -> list[dict[str, object]]:
    """One row per cycle in the history, with totals derived from it."""
    runs: dict[str, dict[str, object]] = {}
    for hp in demo_history():
        r = runs.setdefault(hp.run_id, {
            "id": hp.run_id, "cycle_date": hp.cycle_date, "studios_scheduled": 0, "studios_paid": 0,
            "status": "completed" if hp.cycle_date != FAILED_CYCLE else "failed",
        })
        r["studios_scheduled"] = int(r["studios_scheduled"]) + 1  # type: ignore[call-overload]
        if hp.status == "paid":
            r["studios_paid"] = int(r["studios_paid"]) + 1  # type: ignore[call-overload]
    return list(runs.values())


# --- planted reconciliation breaks (2026-10-15 cycle) ----------------------------------------------
RECON_CYCLE = date(2026, 10, 15)
RECON_RUN_ID = stable_uuid("payout_run", RECON_CYCLE)
RECON_DUP_LEDGER_ID = stable_uuid("ledger_payout", RECON_CYCLE, STUDIO_B.studio_id)
RECON_DUP_TRANSFER = stable_id("tr", "recon", "duplicate-manual")
RECON_REVERSED_LEDGER_ID = stable_uuid("ledger_payout", RECON_CYCLE, STUDIO_D.studio_id)
RECON_REVERSED_TRANSFER = stable_id("tr", RECON_REVERSED_LEDGER_ID)
RECON_FAILED_LEDGER_ID = stable_uuid("ledger_payout", RECON_CYCLE, STUDIO_E.studio_id)
RECON_FAILED_TRANSFER = stable_id("tr", RECON_FAILED_LEDGER_ID)
RECON_FAILED_PAYOUT = stable_id("po", RECON_FAILED_LEDGER_ID)
RECON_ORPHAN_TRANSFER = stable_id("tr", "recon", "orphan")
RECON_MISSING_LEDGER_ID = stable_uuid("ledger_payout", RECON_CYCLE, STUDIO_C.studio_id)


@dataclass(frozen=True)
class PlantedTransfer:
    """A Stripe transfer planted for reconciliation, with what happened after it."""

    transfer_id: str
    studio: DemoStudio
    amount: int
    created: datetime
    metadata: dict[str, str]
    transfer_group: str | None
    reversed_amount: int = 0
    payout_id: str | None = None
    payout_failure: str | None = None  # a failure code → the bank payout failed


def recon_demo_ledger() -> list[HistoricPayout]:
    """The planted ledger rows (studios C, D, E in the 2026-10-15 cycle)."""
    def row(studio: DemoStudio, gross: int, status: str, tr: str | None) -> HistoricPayout:
        sp = demo_policy().split(gross)
        lp = stable_uuid("ledger_payout", RECON_CYCLE, studio.studio_id)
        return HistoricPayout(lp, RECON_RUN_ID, RECON_CYCLE, studio, gross, sp.fee, sp.reserve, sp.net, studio.currency,
                              status, tr, None, None)

    return [
        row(STUDIO_D, 80_000, "paid", RECON_REVERSED_TRANSFER),      # net 600.00 CAD
        row(STUDIO_E, 50_000, "paid", RECON_FAILED_TRANSFER),        # net 375.00 USD
        row(STUDIO_C, 40_000, "transferred", stable_id("tr", RECON_MISSING_LEDGER_ID)),  # not in Stripe
    ]


def recon_demo_transfers() -> list[PlantedTransfer]:
    """The planted Stripe transfers (see the module docstring)."""
    at = datetime(2026, 10, 15, 6, 2, tzinfo=UTC)
    dup = next(h for h in demo_history() if h.ledger_payout_id == RECON_DUP_LEDGER_ID)
    led = {h.studio.studio_id: h for h in recon_demo_ledger()}
    d, e = led[STUDIO_D.studio_id], led[STUDIO_E.studio_id]

    def auto(h: HistoricPayout) -> dict[str, str]:
        return {"ledger_payout_id": h.ledger_payout_id, "run_id": h.run_id, "studio_id": h.studio.studio_id,
                "source": "automated", "cycle_date": h.cycle_date.isoformat()}

    return [
        PlantedTransfer(RECON_DUP_TRANSFER, STUDIO_B, dup.net, datetime(2026, 10, 16, 14, 5, tzinfo=UTC),
                        {"ledger_payout_id": dup.ledger_payout_id, "studio_id": STUDIO_B.studio_id,
                         "source": "payops-manual-fallback", "incident_id": "INC-RECON-DEMO-DUP"},
                        dup.ledger_payout_id, payout_id=stable_id("po", "recon", "duplicate-manual")),
        PlantedTransfer(RECON_REVERSED_TRANSFER, STUDIO_D, d.net, at, auto(d), d.ledger_payout_id,
                        reversed_amount=15_000, payout_id=stable_id("po", d.ledger_payout_id)),
        PlantedTransfer(RECON_FAILED_TRANSFER, STUDIO_E, e.net, at, auto(e), e.ledger_payout_id,
                        payout_id=RECON_FAILED_PAYOUT, payout_failure="account_closed"),
        PlantedTransfer(RECON_ORPHAN_TRANSFER, STUDIO_D, 12_345, datetime(2026, 10, 20, 9, 30, tzinfo=UTC), {},
                        None, payout_id=stable_id("po", "recon", "orphan")),
    ]
