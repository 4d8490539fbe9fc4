"""Match ledger payouts to Stripe transfers and classify every row — in DuckDB (SQL in :mod:`.match_sql`).

``reconcile(ledger, transfers, links, config)`` is a pure function over the frames of
:mod:`payops.reconcile.schema`. Every ledger row and every transfer lands in exactly one result row,
and every result row has exactly one :class:`~payops.reconcile.schema.Category`:

1. key: a transfer's ``ledger_payout_id`` (metadata), else its ``transfer_group``, names the ledger row;
2. duplicates: when ≥2 transfers key to one ledger row, the ledger row pairs with the first (its
   ``manual_transfer_id``, else its ``ledger_transfer_id``, else the earliest) and every row involved
   — the pair and each extra transfer alone (carrying the ledger id as evidence) — is DUPLICATE_PAYMENT;
3. fallback: a transfer left unmatched pairs with an unmatched ledger row of the same destination,
   currency and amount created within ``fallback_window_days`` of ``expected_at`` (closest first,
   one-to-one), ``confidence="fallback"``;
4. the chain transfer → destination payment → payout is followed (a ``paid`` payout wins over a
   failed one for the same destination payment, as Stripe re-sweeps failed funds);
5. pairs are classified by the precedence in ``match_sql.CATEGORY_SQL``.

Cost at scale: a few small-output aggregates (uniqueness, duplicate groups, leftovers, re-swept payments), the
fallback on the leftovers only, then one streaming FULL OUTER JOIN + payout join straight to Arrow; the long
reason/action CASEs run only on non-MATCHED rows (``_fill_breaks``).

Result rows are not in any particular order (sort for presentation).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from payops.reconcile import match_sql as S
from payops.reconcile.schema import (
    CLEAN,
    LEDGER_COLUMNS,
    PAYOUT_LINK_COLUMNS,
    RESULT_COLUMNS,
    TRANSFER_COLUMNS,
    ReconConfig,
)

__all__ = ["EXTRA_COLUMNS", "ReconResult", "break_key", "period_bounds", "reconcile"]

#: columns beyond the contract's RESULT_COLUMNS
EXTRA_COLUMNS: dict[str, str] = {
    "run_id": "string",
    "stripe_currency": "string",        # the transfer's currency (differs from ``currency`` only on CURRENCY_MISMATCH)
    "duplicate_of": "string",           # on DUPLICATE_PAYMENT rows: the transfer the ledger row pairs with
    "transfer_created": "datetime64[us, UTC]",
    "expected_at": "datetime64[us, UTC]",
    "payout_status": "string",
    "arrival_date": "datetime64[us, UTC]",
    "failure_code": "string",
    "reached_bank": "bool",             # a paid payout swept the transfer's destination payment by the cut-off
}


_ARROW_TO_PANDAS = {pa.string(): pd.StringDtype(), pa.large_string(): pd.StringDtype(), pa.int64(): pd.Int64Dtype()}


@dataclass
class ReconResult:
    """The matcher's output: ``results`` (RESULT_COLUMNS + EXTRA_COLUMNS) and the config it ran with."""

    results: pd.DataFrame
    config: ReconConfig

    def breaks(self) -> pd.DataFrame:
        """Rows whose category is not clean, sorted by category, ledger id, transfer id."""
        clean = {str(c) for c in CLEAN}
        out = self.results[~self.results["category"].isin(clean)]
        return out.sort_values(["category", "ledger_payout_id", "transfer_id"], na_position="last").reset_index(
            drop=True
        )

    def counts(self) -> pd.DataFrame:
        """category, currency, count, ledger_amount, stripe_amount (python ints; nulls count as 0)."""
        r = self.results
        if r.empty:
            return pd.DataFrame(columns=["category", "currency", "count", "ledger_amount", "stripe_amount"])
        g = (
            r.assign(ledger_amount=r["ledger_amount"].fillna(0), stripe_amount=r["stripe_amount"].fillna(0))
            .groupby(["category", "currency"], observed=True, dropna=False)
            .agg(
                count=("category", "size"),
                ledger_amount=("ledger_amount", "sum"),
                stripe_amount=("stripe_amount", "sum"),
            )
            .reset_index()
        )
        for col in ("count", "ledger_amount", "stripe_amount"):
            g[col] = g[col].astype("int64")
        return g.sort_values(["category", "currency"]).reset_index(drop=True)


def break_key(row: Any) -> str:
    """Stable identity of a break across runs: ``category:ledger_payout_id:transfer_id`` ('-' for none)."""

    def part(name: str) -> str:
        v = row[name]
        return "-" if v is None or v is pd.NA or (isinstance(v, float) and v != v) or v == "" else str(v)

    return f"{part('category')}:{part('ledger_payout_id')}:{part('transfer_id')}"


def period_bounds(config: ReconConfig) -> tuple[datetime, datetime]:
    """(end of ``period_to`` in the config's timezone, that plus the cut-off margin), both UTC."""
    tz = ZoneInfo(config.timezone)
    end = datetime.combine(config.period_to + timedelta(days=1), time(0), tzinfo=tz).astimezone(UTC)
    return end, end + timedelta(days=config.cutoff_margin_days)


def _params(sql: str, params: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in params.items() if f"${k}" in sql}


def _conform(df: pd.DataFrame | None, columns: dict[str, str], name: str) -> pd.DataFrame:
    """The contract's columns in the contract's dtypes (extra columns dropped); a clear error if any is missing."""
    if df is None:
        df = pd.DataFrame({c: pd.Series([], dtype="object") for c in columns})
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{name} frame is missing column(s) {missing}; see payops.reconcile.schema")
    out = df[list(columns)]
    wrong = {c: t for c, t in columns.items()
             if str(out[c].dtype) != t and not (t == "string" and out[c].dtype == "str")}
    if wrong:
        out = out.astype(wrong)
    return out


def reconcile(
    ledger: pd.DataFrame, transfers: pd.DataFrame, links: pd.DataFrame | None, config: ReconConfig
) -> ReconResult:
    """Match and classify; see the module docstring. Inputs follow schema.*_COLUMNS (extra columns ignored)."""
    pend, cend = period_bounds(config)
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.execute("SET arrow_large_buffer_size = true")  # large_string: what pandas' pyarrow strings hold
        con.register("ledger_in", _conform(ledger, LEDGER_COLUMNS, "ledger"))
        con.register("transfers_in", _conform(transfers, TRANSFER_COLUMNS, "transfers"))
        con.register("links_in", _conform(links, PAYOUT_LINK_COLUMNS, "links"))
        for stmt in [*S.macros(), *S.VIEWS, *S.PREPASS]:
            con.execute(stmt)
        dl, dt, repeated_links = con.execute(S.REPEATS).fetchone()  # type: ignore[misc]
        if dl or dt:
            raise ValueError(f"input ids must be unique: {dl} repeated ledger_payout_id, {dt} repeated transfer_id")
        con.execute(S.DUP)
        _fallback(con, config.fallback_window_days)
        params = {"tol": int(config.tolerance), "pend": pend, "cend": cend, "pto": config.period_to.isoformat(),
                  "cto": (config.period_to + timedelta(days=config.cutoff_margin_days)).isoformat()}
        final = S.final_sql(unique_links=not repeated_links)
        table = _fill_breaks(con, con.sql(final, params=_params(final, params)).to_arrow_table(), params)
        results = _to_pandas(table)
    finally:
        con.close()
    return ReconResult(results=results, config=config)


def _fallback(con: duckdb.DuckDBPyConnection, window_days: int) -> None:
    """Pair leftovers one-to-one on destination + currency + amount within the window, closest first."""
    for stmt in S.LEFTOVERS:
        con.execute(stmt)
    window = float(window_days) * 86400.0
    # each round takes the mutually-closest pairs; the globally closest pair is always one, so this ends
    while True:
        inserted = con.execute(S.FALLBACK_ROUND, {"window": window}).fetchone()
        if not inserted or not inserted[0]:
            break


def _fill_breaks(con: duckdb.DuckDBPyConnection, table: pa.Table, params: dict[str, Any]) -> pa.Table:
    """Reason and action of the non-MATCHED rows, computed on those rows only, put in place; helpers dropped."""
    helpers = [c for c in table.column_names if c.startswith("_h_")]
    mask = pc.not_equal(table["category"], "MATCHED")
    brk = table.filter(mask)
    if brk.num_rows:
        con.register("brk", brk)
        filled = con.sql(S.BREAKS_SQL, params=_params(S.BREAKS_SQL, params)).to_arrow_table()
        for name in ("reason", "suggested_action"):
            table = table.set_column(table.column_names.index(name), name,
                                     _put(table[name], mask, filled[name].combine_chunks()))
    return table.drop_columns(helpers)


def _put(col: pa.ChunkedArray, mask: pa.ChunkedArray, values: pa.Array) -> pa.ChunkedArray:
    """``col`` with its ``mask``ed slots replaced by ``values`` in order, chunk by chunk."""
    flat, chunks, row, at = mask.combine_chunks(), [], 0, 0
    for c in col.chunks:
        m = flat.slice(row, len(c))
        n = pc.sum(m).as_py() or 0
        chunks.append(pc.replace_with_mask(c, m, values.slice(at, n)) if n else c)
        row, at = row + len(c), at + n
    return pa.chunked_array(chunks, type=col.type)


def _to_pandas(table: pa.Table) -> pd.DataFrame:
    """Arrow → the contract's dtypes directly (pyarrow-backed strings: no object columns, no second pass)."""
    df = table.to_pandas(types_mapper=_ARROW_TO_PANDAS.get)
    dtypes = {**RESULT_COLUMNS, **EXTRA_COLUMNS}
    wrong = {c: t for c, t in dtypes.items() if str(df[c].dtype) != t}
    if wrong:
        df = df.astype(wrong)
    return df[list(dtypes)]
