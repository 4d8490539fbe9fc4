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

import hashlib
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

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

_NS = uuid.UUID("6f1d2c1e-0000-4000-8000-00000000a11e")


def stable_uuid(*parts: object) -> str:
    """Deterministic UUID for seeded rows (same inputs → same id on every machine)."""
    return str(uuid.uuid5(_NS, ":".join(str(p) for p in parts)))


def stable_id(prefix: str, *parts: object, length: int = 24) -> str:
    """Deterministic Stripe-looking id: ``tr_…``, ``po_…``."""
    digest = hashlib.sha256(":".join(str(p) for p in parts).encode()).hexdigest()
    return f"{prefix}_{digest[:length]}"


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


def _split(gross: int) -> tuple[int, int, int]:
    fee = gross * 15 // 100
    reserve = gross * 10 // 100
    return fee, reserve, gross - fee - reserve


def demo_history() -> list[HistoricPayout]:
    """Past cycles (all paid), then the failed 2026-11-15 cycle with its unpaid ledger payouts."""
    out: list[HistoricPayout] = []
    for i, cycle in enumerate(HISTORY_CYCLES):
        run_id = stable_uuid("payout_run", cycle)
        for studio, base in ((STUDIO_A, 98_000), (STUDIO_B, 64_000)):
            gross = base + 1_250 * i
            fee, reserve, net = _split(gross)
            lp = stable_uuid("ledger_payout", cycle, studio.studio_id)
            out.append(HistoricPayout(
                lp, run_id, cycle, studio, gross, fee, reserve, net, studio.currency, "paid",
                stable_id("tr", lp), stable_id("po", lp), "paid",
            ))
    run_id = stable_uuid("payout_run", FAILED_CYCLE)
    out.append(HistoricPayout(
        REHEARSAL_LEDGER_PAYOUT_ID, run_id, FAILED_CYCLE, STUDIO_A, REHEARSAL_GROSS, REHEARSAL_FEE,
        REHEARSAL_RESERVE, REHEARSAL_NET, "CAD", "pending", None, None, None,
    ))
    fee, reserve, net = _split(54_000)
    out.append(HistoricPayout(
        STUDIO_B_PENDING_LEDGER_PAYOUT_ID, run_id, FAILED_CYCLE, STUDIO_B, 54_000, fee, reserve, net,
        "USD", "pending", None, None, None,
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
        fee, reserve, net = _split(gross)
        lp = stable_uuid("ledger_payout", RECON_CYCLE, studio.studio_id)
        return HistoricPayout(lp, RECON_RUN_ID, RECON_CYCLE, studio, gross, fee, reserve, net, studio.currency,
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
