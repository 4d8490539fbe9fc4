"""The generators: planted expectations are self-consistent; bulk data has the contract's shape."""

from __future__ import annotations

from payops.reconcile.match import reconcile
from payops.reconcile.schema import LEDGER_COLUMNS, PAYOUT_LINK_COLUMNS, TRANSFER_COLUMNS
from payops.reconcile.synth import bulk_dataset, planted_dataset


def _dtypes(df, cols) -> dict:  # type: ignore[no-untyped-def]
    return {c: ("string" if str(t) == "str" else str(t)) for c, t in df.dtypes.items() if c in cols}


def test_planted_contract_and_totals() -> None:
    p = planted_dataset(n_clean=30, per_category=2)
    assert _dtypes(p.ledger, LEDGER_COLUMNS) == LEDGER_COLUMNS
    assert _dtypes(p.transfers, TRANSFER_COLUMNS) == TRANSFER_COLUMNS
    assert _dtypes(p.links, PAYOUT_LINK_COLUMNS) == PAYOUT_LINK_COLUMNS
    assert p.expected["ledger_amount"].sum() == p.ledger["amount"].sum()
    kept = p.transfers[~p.transfers["transfer_id"].isin(p.deferred)]
    assert len(p.deferred) == 3 and len(kept) == len(p.transfers) - 3
    assert p.expected["stripe_amount"].sum() == (kept["amount"] - kept["amount_reversed"]).sum()
    assert p.expected["count"].sum() == len(p.ledger) + len(kept) - (
        p.expected.query("category not in ['MISSING_IN_STRIPE', 'MISSING_IN_LEDGER']")["count"].sum()
        - p.expected.query("category == 'DUPLICATE_PAYMENT'")["count"].sum() / 2
    )


def test_planted_is_deterministic() -> None:
    a, b = planted_dataset(seed=3), planted_dataset(seed=3)
    assert a.ledger.equals(b.ledger) and a.transfers.equals(b.transfers) and a.expected.equals(b.expected)


def test_bulk_dataset_shape_and_breaks() -> None:
    ledger, transfers, links, cfg = bulk_dataset(20_000, break_rate=0.05)
    assert len(ledger) == len(transfers) == len(links) == 20_000
    assert _dtypes(ledger, LEDGER_COLUMNS) == LEDGER_COLUMNS
    assert _dtypes(transfers, TRANSFER_COLUMNS) == TRANSFER_COLUMNS
    res = reconcile(ledger, transfers, links, cfg)
    r = res.results
    assert r["transfer_id"].notna().sum() == 20_000 and r["ledger_amount"].notna().sum() == 20_000
    share = len(res.breaks()) / len(r)
    assert 0.02 < share < 0.12
    assert {"AMOUNT_MISMATCH", "DUPLICATE_PAYMENT", "PAYOUT_FAILED", "REVERSED_PARTIAL"} <= set(r["category"])
    assert (r["confidence"] == "fallback").any()
