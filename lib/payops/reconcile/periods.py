"""Which period a transfer belongs to: the rules at the edges of a reconciliation period.

A period's reconciliation pulls the transfers created in the period *plus a cut-off margin* (to see
this period's payouts that were paid late), and the transfers its ledger records by id wherever they
fall. Two kinds of transfer are therefore not simply "this period's":

- **Deferred** — created after the period end (in the margin, or later) and paying no ledger payout of
  this period: typically the next cycle's automated transfers (the 1st's cycle sits in the margin of the
  month before). They are the next period's business: they are left out of this period's results (counted
  there, not twice) and listed in :attr:`~payops.reconcile.match.ReconResult.deferred` with the reason.
  A keyed one is known before matching (its ledger id is not among this period's ledger payouts); a
  key-less one only after the fallback found no ledger payout of this period for it.
- **Of another period** — created in the period but naming a ledger payout of an earlier period (a cycle
  paid after its cut-off, by the manual fallback say) or a later one: that ledger payout is loaded by id
  (``load_ledger.load_ledger_ids`` of :func:`other_period_keys`) and matched like the period's own, and the
  row's reason says which period the ledger payout belongs to.

Everything here is a pure function over the frames of :mod:`payops.reconcile.schema`.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from payops.reconcile.schema import ReconConfig

__all__ = ["DEFERRED_COLUMNS", "deferred_frame", "empty_deferred", "later_period", "note_other_period",
           "other_period_keys", "period_end", "transfer_key"]

#: the columns of ``ReconResult.deferred``
DEFERRED_COLUMNS: dict[str, str] = {
    "transfer_id": "string", "created": "datetime64[us, UTC]", "amount": "int64", "currency": "string",
    "destination": "string", "ledger_payout_id": "string", "source": "string", "reason": "string",
}


def transfer_key(transfers: pd.DataFrame) -> pd.Series:
    """The ledger payout a transfer names: ``metadata.ledger_payout_id``, else ``transfer_group`` (an empty one
    names none) — exactly the key the matcher joins on (``match_sql``), byte for byte (the loaders already
    turned blank values into NULL)."""
    def named(col: str) -> pd.Series:
        s = transfers[col].astype("string")
        return s.mask(s == "")

    return named("ledger_payout_id").fillna(named("transfer_group"))


def period_end(config: ReconConfig) -> datetime:
    """The first instant after ``period_to`` in the config's timezone, as UTC."""
    start_of_next = datetime.combine(config.period_to + timedelta(days=1), time(0), tzinfo=ZoneInfo(config.timezone))
    return start_of_next.astimezone(UTC)


def later_period(transfers: pd.DataFrame, ledger_ids: pd.Series, config: ReconConfig) -> np.ndarray:
    """Boolean mask over ``transfers``: created after the period end and naming a ledger payout that is not
    among ``ledger_ids`` (this period's) — the next period's transfers, known before matching. Cheap when no
    transfer is late (one comparison of timestamps)."""
    late = (transfers["created"] >= period_end(config)).to_numpy(dtype=bool, na_value=False)
    if not late.any():
        return late
    key = transfer_key(transfers[late])
    named_elsewhere = (key.notna() & ~key.isin(ledger_ids.dropna())).to_numpy(dtype=bool)
    out = np.zeros(len(transfers), dtype=bool)
    out[np.flatnonzero(late)[named_elsewhere]] = True
    return out


def other_period_keys(transfers: pd.DataFrame, ledger: pd.DataFrame, config: ReconConfig) -> list[str]:
    """The ledger ids that the period's transfers (not the deferred ones) name and ``ledger`` (the period's
    ledger payouts) lacks: the ledger payouts of other periods to load by id."""
    if transfers.empty:
        return []
    keep = ~later_period(transfers, ledger["ledger_payout_id"], config)
    key = transfer_key(transfers[keep]).dropna()
    known = set(ledger["ledger_payout_id"].dropna())
    return sorted({str(k) for k in key.unique()} - known)


def deferred_frame(transfers: pd.DataFrame, reason: str) -> pd.DataFrame:
    """``transfers`` (TRANSFER_COLUMNS) as rows of ``ReconResult.deferred`` with ``reason`` and their key."""
    out = transfers[["transfer_id", "created", "amount", "currency", "destination", "source"]].copy()
    out["ledger_payout_id"] = transfer_key(transfers)
    out["reason"] = reason
    return out[list(DEFERRED_COLUMNS)].astype(DEFERRED_COLUMNS).reset_index(drop=True)


def empty_deferred() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series([], dtype=t) for c, t in DEFERRED_COLUMNS.items()})


def note_other_period(results: pd.DataFrame, other: pd.DataFrame, config: ReconConfig) -> None:
    """Say on each result row of a ledger payout of another period which period that is (appended to
    ``reason``, in place) — the ledger side and, on a duplicate, each extra transfer carrying the ledger id."""
    expected = other.set_index("ledger_payout_id")["expected_at"].dt.tz_convert(config.timezone).dt.date
    rows = results["ledger_payout_id"].isin(expected.index).fillna(False).to_numpy(dtype=bool)
    if not rows.any():
        return
    day = results.loc[rows, "ledger_payout_id"].map(expected)
    note = pd.Series([_note(d, config.period_from) for d in day], index=day.index, dtype="string")
    reason = results.loc[rows, "reason"]
    results.loc[rows, "reason"] = reason.where(reason.isna(), reason + "; ").fillna("") + note


def _note(expected: date, period_from: date) -> str:
    when = "an earlier" if expected < period_from else "a later"
    return f"the ledger payout belongs to {when} period (expected {expected.isoformat()}), paid in this one"
