"""The data contract of reconciliation: the frames the loaders produce and the matcher consumes.

Amounts are int64 minor units, currencies upper-case ISO, timestamps timezone-aware UTC. Loaders
(``load_ledger``, ``load_stripe``) are adapters at the edges; ``match`` and ``classify`` are pure
functions over these frames.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import TYPE_CHECKING

from payops.money import CURRENCY_EXPONENT

if TYPE_CHECKING:
    import pandas as pd

    from payops.errors import FieldProblem


class Category(StrEnum):
    MATCHED = "MATCHED"
    MATCHED_WITHIN_TOLERANCE = "MATCHED_WITHIN_TOLERANCE"
    MISSING_IN_STRIPE = "MISSING_IN_STRIPE"
    MISSING_IN_LEDGER = "MISSING_IN_LEDGER"
    AMOUNT_MISMATCH = "AMOUNT_MISMATCH"
    CURRENCY_MISMATCH = "CURRENCY_MISMATCH"
    DESTINATION_MISMATCH = "DESTINATION_MISMATCH"
    DUPLICATE_PAYMENT = "DUPLICATE_PAYMENT"
    REVERSED_FULL = "REVERSED_FULL"
    REVERSED_PARTIAL = "REVERSED_PARTIAL"
    TIMING_IN_TRANSIT = "TIMING_IN_TRANSIT"
    PAYOUT_FAILED = "PAYOUT_FAILED"


#: categories that are not breaks
CLEAN = frozenset({Category.MATCHED, Category.MATCHED_WITHIN_TOLERANCE})

# --- input frames (column → dtype as pandas / DuckDB see them) ------------------------------------
#: one row per ledger payout expected to be paid in the period (ledger_payouts ⟕ manual_payouts ⟕ studios)
LEDGER_COLUMNS: dict[str, str] = {
    "ledger_payout_id": "string",      # = Stripe transfer_group / metadata.ledger_payout_id
    "run_id": "string",                # payout_runs.id (null for ad-hoc rows)
    "studio_id": "string",
    "destination": "string",           # the studio's connected account on record (acct_…)
    "amount": "int64",                 # net, minor units
    "currency": "string",              # upper-case ISO
    "status": "string",                # scheduled · pending · transferred · paid · failed · manual
    "expected_at": "datetime64[us, UTC]",  # when the cycle ran (cycle date 06:00 in PAYOUT_TIMEZONE)
    "ledger_transfer_id": "string",    # ledger_payouts.stripe_transfer_id (null when unpaid)
    "manual_transfer_id": "string",    # manual_payouts.stripe_transfer_id (null when no fallback)
}

#: one row per Stripe transfer created in the period plus the cut-off margin
TRANSFER_COLUMNS: dict[str, str] = {
    "transfer_id": "string",
    "created": "datetime64[us, UTC]",
    "amount": "int64",
    "currency": "string",              # upper-case
    "destination": "string",
    "transfer_group": "string",
    "ledger_payout_id": "string",      # metadata.ledger_payout_id
    "source": "string",                # "manual" (metadata.source = payops-manual-fallback) · "automated"
    "amount_reversed": "int64",
    "reversed": "bool",
    "destination_payment": "string",   # py_… on the connected account
}

#: one row per destination payment swept by a connected-account payout
PAYOUT_LINK_COLUMNS: dict[str, str] = {
    "destination_payment": "string",
    "payout_id": "string",
    "account": "string",
    "payout_status": "string",         # pending · in_transit · paid · failed · canceled
    "arrival_date": "datetime64[us, UTC]",
    "failure_code": "string",
}

#: the matcher's output: every ledger row and every transfer lands in exactly one row
RESULT_COLUMNS: dict[str, str] = {
    "category": "string",
    "ledger_payout_id": "string",
    "transfer_id": "string",
    "payout_id": "string",
    "studio_id": "string",
    "destination": "string",
    "currency": "string",
    "ledger_amount": "Int64",
    "stripe_amount": "Int64",          # transfer amount minus amount reversed
    "difference": "Int64",             # stripe_amount - ledger_amount
    "confidence": "string",            # key · fallback · none
    "reason": "string",                # why the row is what it is; NULL on rows MATCHED by key (nothing to explain)
    "suggested_action": "string",      # what to do; NULL on MATCHED rows
    "source": "string",                # automated · manual · —
}


@dataclass(frozen=True)
class ReconConfig:
    period_from: date
    period_to: date                     # inclusive
    tolerance: int = 0                  # minor units
    cutoff_margin_days: int = 3         # Stripe objects pulled beyond period_to, to see what was still in transit
    fallback_window_days: int = 3       # destination + amount + date window for key-less transfers
    timezone: str = "UTC"


def currency_problem(values: pd.Series, field: str, where: str) -> FieldProblem | None:
    """A problem naming ``field`` if a value of ``values`` (any case, blanks skipped) is not an ISO 4217 currency
    Stripe settles in — the first such value and its row (1-based) — else None. For export files."""
    from payops.errors import FieldProblem

    text = values.astype("string").str.strip().str.upper()
    bad = text.notna() & (text != "") & ~text.isin(list(CURRENCY_EXPONENT))
    if not bad.any():
        return None
    first = int(bad.to_numpy(dtype=bool).argmax())
    return FieldProblem(field, f"{values.iloc[first]!r} (row {first + 1} of {where}) is not an ISO 4217 currency "
                               f"Stripe settles in ({int(bad.sum())} row(s))")
