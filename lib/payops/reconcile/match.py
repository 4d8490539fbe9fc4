"""Match ledger payouts to Stripe transfers and classify every row — in DuckDB, one pass of SQL.

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
5. pairs are classified by the precedence in ``CATEGORY_SQL``.

Result rows are not in any particular order (sort for presentation).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import duckdb
import pandas as pd

from payops.money import CURRENCY_EXPONENT
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


# --- SQL -----------------------------------------------------------------------------------------
def _macros() -> list[str]:
    zero = "|".join(c for c, e in sorted(CURRENCY_EXPONENT.items()) if e == 0)
    three = "|".join(c for c, e in sorted(CURRENCY_EXPONENT.items()) if e == 3)
    return [
        # contains() on a string, not IN (...): DuckDB rewrites IN lists (and list_contains) into mark joins
        # evaluated for every row, even inside a CASE branch no row takes
        f"CREATE TEMP MACRO cexp(c) AS CASE WHEN contains('|{zero}|', '|' || c || '|') THEN 0"
        f" WHEN contains('|{three}|', '|' || c || '|') THEN 3 ELSE 2 END",
        # exact decimal string of minor units: fmt(87550, 'CAD') = '875.50 CAD'
        """CREATE TEMP MACRO fmt(a, c) AS CASE WHEN a IS NULL THEN '?' WHEN cexp(c) = 0 THEN a::VARCHAR || ' ' || c
           ELSE (CASE WHEN a < 0 THEN '-' ELSE '' END) || (abs(a) // (10 ** cexp(c))::BIGINT)::VARCHAR || '.'
                || lpad((abs(a) % (10 ** cexp(c))::BIGINT)::VARCHAR, cexp(c), '0') || ' ' || c END""",
        "CREATE TEMP MACRO d(ts) AS coalesce(strftime(ts, '%Y-%m-%d'), '?')",
    ]


_VIEWS = """
CREATE TEMP VIEW L AS SELECT ledger_payout_id AS lid, run_id, studio_id, destination AS l_dest,
    amount AS l_amount, currency AS l_cur, status AS l_status, expected_at,
    nullif(ledger_transfer_id, '') AS ledger_transfer_id, nullif(manual_transfer_id, '') AS manual_transfer_id
FROM ledger_in;
CREATE TEMP VIEW T AS SELECT transfer_id AS tid, created, amount AS t_amount, currency AS t_cur,
    destination AS t_dest, transfer_group, coalesce(nullif(ledger_payout_id, ''), nullif(transfer_group, '')) AS k,
    source, coalesce(amount_reversed, 0) AS amount_reversed, coalesce(reversed, false) AS reversed,
    destination_payment
FROM transfers_in;
"""

_T_COLS = ["tid", "created", "t_amount", "t_cur", "t_dest", "transfer_group", "k", "source",
           "amount_reversed", "reversed", "destination_payment"]

_DUP = """
CREATE TEMP TABLE dup AS
WITH dk AS (SELECT k FROM T WHERE k IS NOT NULL GROUP BY k HAVING count(*) > 1)
SELECT T.tid, row_number() OVER w AS dup_rk, count(*) OVER (PARTITION BY T.k) AS dup_n,
       first_value(T.tid) OVER w AS dup_first
FROM T SEMI JOIN dk USING (k) JOIN L ON L.lid = T.k
WINDOW w AS (PARTITION BY T.k ORDER BY (T.tid = L.manual_transfer_id) IS TRUE DESC,
             (T.tid = L.ledger_transfer_id) IS TRUE DESC, T.created, T.tid)
"""

_JOIN = """
CREATE TEMP TABLE j AS
SELECT L.*, t.*
FROM L FULL OUTER JOIN (
    SELECT T.*, d.dup_rk, d.dup_n, d.dup_first, CASE WHEN coalesce(d.dup_rk, 1) = 1 THEN T.k END AS jk
    FROM T LEFT JOIN dup d USING (tid)
) t ON L.lid = t.jk
"""

_FALLBACK_ROUND = """
INSERT INTO fb
SELECT lid, tid FROM (
    SELECT la.lid, ta.tid,
        row_number() OVER (PARTITION BY la.lid ORDER BY abs(epoch(ta.created) - epoch(la.expected_at)), ta.tid) AS r1,
        row_number() OVER (PARTITION BY ta.tid ORDER BY abs(epoch(ta.created) - epoch(la.expected_at)), la.lid) AS r2
    FROM la JOIN ta ON la.l_dest = ta.t_dest AND la.l_cur = ta.t_cur AND la.l_amount = ta.t_amount
    WHERE abs(epoch(ta.created) - epoch(la.expected_at)) <= $window
      AND la.lid NOT IN (SELECT lid FROM fb) AND ta.tid NOT IN (SELECT tid FROM fb)
) WHERE r1 = 1 AND r2 = 1
"""

_LINKS = """
CREATE TEMP TABLE bl AS
SELECT destination_payment AS dp, payout_id, payout_status, arrival_date, failure_code FROM links_in
WHERE destination_payment IS NOT NULL
QUALIFY row_number() OVER (PARTITION BY destination_payment ORDER BY
    CASE payout_status WHEN 'paid' THEN 0 WHEN 'in_transit' THEN 1 WHEN 'pending' THEN 2 ELSE 3 END,
    arrival_date DESC NULLS LAST, payout_id) = 1
"""

CATEGORY_SQL = """CASE
    WHEN tid IS NULL THEN 'MISSING_IN_STRIPE'
    WHEN dup_n >= 2 THEN 'DUPLICATE_PAYMENT'
    WHEN lid IS NULL THEN 'MISSING_IN_LEDGER'
    WHEN t_cur IS DISTINCT FROM l_cur THEN 'CURRENCY_MISMATCH'
    WHEN t_dest IS DISTINCT FROM l_dest THEN 'DESTINATION_MISMATCH'
    WHEN reversed OR (amount_reversed > 0 AND amount_reversed >= t_amount) THEN 'REVERSED_FULL'
    WHEN amount_reversed > 0 THEN 'REVERSED_PARTIAL'
    WHEN abs(net - l_amount) > $tol THEN 'AMOUNT_MISMATCH'
    WHEN payout_status IN ('failed', 'canceled') THEN 'PAYOUT_FAILED'
    WHEN created >= $pend OR payout_status IS DISTINCT FROM 'paid' OR arrival_date >= $cend THEN 'TIMING_IN_TRANSIT'
    WHEN net <> l_amount THEN 'MATCHED_WITHIN_TOLERANCE'
    ELSE 'MATCHED' END"""

_FALLBACK_NOTE = "matched on destination + amount + date: no ledger id in metadata"

_REASON_SQL = f"""CASE category
    WHEN 'MATCHED' THEN CASE WHEN confidence = 'fallback' THEN '{_FALLBACK_NOTE}'
        ELSE 'matched on ledger id; paid out to the bank in ' || payout_id END
    WHEN 'MATCHED_WITHIN_TOLERANCE' THEN 'Stripe moved ' || fmt(net, t_cur) || ', ledger says ' || fmt(l_amount, l_cur)
        || ': difference ' || fmt(net - l_amount, l_cur) || ' within tolerance ' || fmt($tol, l_cur)
    WHEN 'MISSING_IN_STRIPE' THEN CASE WHEN coalesce(manual_transfer_id, ledger_transfer_id) IS NOT NULL
        THEN 'ledger records transfer ' || coalesce(manual_transfer_id, ledger_transfer_id) || ' for ' || lid
             || ' but Stripe has no such transfer in the period'
        ELSE 'no Stripe transfer for ledger payout ' || lid || ' (' || fmt(l_amount, l_cur) || ' to '
             || coalesce(l_dest, '?') || ')' END
    WHEN 'MISSING_IN_LEDGER' THEN 'Stripe transfer ' || tid || ' (' || fmt(t_amount, t_cur) || ' to '
        || coalesce(t_dest, '?') || ', ' || source || ') has no ledger payout'
        || CASE WHEN k IS NOT NULL THEN ' (its ledger id ' || k || ' is not in the ledger for the period)'
           ELSE ' and no ledger id in metadata' END
    WHEN 'DUPLICATE_PAYMENT' THEN CASE WHEN lid IS NOT NULL
        THEN 'ledger payout ' || lid || ' was paid ' || dup_n::VARCHAR || ' times; ' || tid || ' (' || source
             || ') is the one the ledger pairs with'
        ELSE tid || ' (' || source || ', ' || fmt(net, t_cur) || ') duplicates ' || dup_first
             || ' for ledger payout ' || k END
    WHEN 'CURRENCY_MISMATCH' THEN 'ledger expects ' || fmt(l_amount, l_cur) || ' but ' || tid || ' moved '
        || fmt(net, t_cur)
    WHEN 'DESTINATION_MISMATCH' THEN tid || ' went to ' || coalesce(t_dest, '?') || ' but the ledger destination is '
        || coalesce(l_dest, '?')
    WHEN 'REVERSED_FULL' THEN tid || ' was fully reversed (' || fmt(amount_reversed, t_cur)
        || '): nothing reached the studio for ' || lid
    WHEN 'REVERSED_PARTIAL' THEN fmt(amount_reversed, t_cur) || ' of ' || tid || ' was reversed: the studio kept '
        || fmt(net, t_cur) || ', the ledger says ' || fmt(l_amount, l_cur)
    WHEN 'AMOUNT_MISMATCH' THEN 'Stripe moved ' || fmt(net, t_cur) || ', ledger says ' || fmt(l_amount, l_cur)
        || ': difference ' || fmt(net - l_amount, l_cur) || ' over tolerance ' || fmt($tol, l_cur)
    WHEN 'PAYOUT_FAILED' THEN 'payout ' || payout_id || ' of ' || tid || ' to the studio''s bank ' || payout_status
        || ' (' || coalesce(failure_code, 'no failure code') || '): the money is back on ' || coalesce(t_dest, '?')
    WHEN 'TIMING_IN_TRANSIT' THEN CASE
        WHEN created >= $pend THEN tid || ' was created ' || d(created) || ', after the period end '
             || $pto
        WHEN payout_status IS NULL THEN 'no payout has swept ' || coalesce(destination_payment, tid)
             || ' yet: the money is still on ' || coalesce(t_dest, '?') || '''s balance'
        WHEN payout_status <> 'paid'
        THEN 'payout ' || payout_id || ' is ' || payout_status || ', arrival ' || d(arrival_date)
        ELSE 'payout ' || payout_id || ' arrives ' || d(arrival_date) || ', after the cut-off ' || $cto END
    END || CASE WHEN confidence = 'fallback' AND category <> 'MATCHED' THEN ' ({_FALLBACK_NOTE})' ELSE '' END"""

_ACTION_SQL = """CASE category
    WHEN 'MATCHED' THEN ''
    WHEN 'MATCHED_WITHIN_TOLERANCE' THEN 'none: within tolerance'
    WHEN 'MISSING_IN_STRIPE' THEN CASE WHEN coalesce(manual_transfer_id, ledger_transfer_id) IS NOT NULL
        THEN 'look up ' || coalesce(manual_transfer_id, ledger_transfer_id) || ' in Stripe; if it never happened, '
             || 'run the manual payout SOP for ' || lid || ' (' || fmt(l_amount, l_cur) || ')'
        ELSE 'run the manual payout SOP for ' || lid || ' (' || fmt(l_amount, l_cur) || ' to ' || coalesce(l_dest, '?')
             || ')' END
    WHEN 'MISSING_IN_LEDGER' THEN 'find the ledger payout for ' || tid || ' and record it, or reverse ' || tid
        || ' if it was not owed'
    WHEN 'DUPLICATE_PAYMENT' THEN CASE WHEN lid IS NOT NULL
        THEN 'keep ' || tid || '; reverse the ' || (dup_n - 1)::VARCHAR || ' duplicate transfer(s) of ' || lid
        ELSE 'reverse ' || tid || ' (duplicate of ' || dup_first || ')' END
    WHEN 'CURRENCY_MISMATCH' THEN 'reverse ' || tid || ' and re-pay ' || lid || ' in ' || l_cur
    WHEN 'DESTINATION_MISMATCH' THEN 'confirm the studio''s account; reverse ' || tid || ' from '
        || coalesce(t_dest, '?') || ' and re-pay ' || lid || ' to ' || coalesce(l_dest, '?')
    WHEN 'REVERSED_FULL' THEN 're-pay ' || lid || ' (' || fmt(l_amount, l_cur) || ') with the manual payout SOP, '
        || 'or cancel it in the ledger'
    WHEN 'REVERSED_PARTIAL' THEN 'pay the remaining ' || fmt(l_amount - net, l_cur) || ' for ' || lid
        || ' or adjust the ledger'
    WHEN 'AMOUNT_MISMATCH' THEN CASE WHEN net < l_amount
        THEN 'pay the shortfall ' || fmt(l_amount - net, l_cur) || ' for ' || lid || ' or correct the ledger'
        ELSE 'recover the overpayment ' || fmt(net - l_amount, l_cur) || ' (partial reversal of ' || tid
             || ') or correct the ledger' END
    WHEN 'PAYOUT_FAILED' THEN 'ask the studio to update bank details; re-pay after payout ' || payout_id
        || ' failed (' || coalesce(failure_code, payout_status) || ')'
    WHEN 'TIMING_IN_TRANSIT' THEN CASE
        WHEN payout_status IS NOT NULL AND payout_status NOT IN ('failed', 'canceled')
        THEN 'wait for arrival on ' || d(arrival_date) || '; check again in the next period'
        ELSE 'wait for the studio''s next payout; check again after ' || $cto || ' (next period)' END
    END"""


def _classified_sql() -> str:
    """The result rows with their category (materialised once, so the reason CASEs read a column)."""
    tcols = ",\n    ".join(f"CASE WHEN f.tid IS NOT NULL THEN f.{c} ELSE j.{c} END AS {c}" for c in _T_COLS)
    return f"""
CREATE TEMP TABLE k AS
WITH r AS (
    SELECT j.lid, j.run_id, j.studio_id, j.l_dest, j.l_amount, j.l_cur, j.expected_at,
        j.ledger_transfer_id, j.manual_transfer_id, j.dup_rk, j.dup_n, j.dup_first,
        {tcols},
        CASE WHEN f.tid IS NOT NULL THEN 'fallback' WHEN j.tid IS NOT NULL AND (j.lid IS NOT NULL OR j.dup_rk > 1)
             THEN 'key' ELSE 'none' END AS confidence
    FROM j LEFT JOIN fbt f ON j.lid = f.fb_lid
    WHERE NOT (j.lid IS NULL AND j.tid IN (SELECT tid FROM fb))
), c AS (
    SELECT r.*, r.t_amount - r.amount_reversed AS net, b.payout_id, b.payout_status, b.arrival_date, b.failure_code
    FROM r LEFT JOIN bl b ON b.dp = r.destination_payment
)
SELECT c.*, {CATEGORY_SQL} AS category FROM c
"""


_FINAL_SQL = f"""
SELECT category,
    coalesce(lid, CASE WHEN dup_rk > 1 THEN k END) AS ledger_payout_id,
    tid AS transfer_id, payout_id, studio_id,
    coalesce(l_dest, t_dest) AS destination,
    coalesce(l_cur, t_cur) AS currency,
    l_amount AS ledger_amount,
    net AS stripe_amount,
    CASE WHEN lid IS NOT NULL AND tid IS NOT NULL AND l_cur = t_cur THEN net - l_amount END AS difference,
    confidence,
    {_REASON_SQL} AS reason,
    {_ACTION_SQL} AS suggested_action,
    coalesce(source, '—') AS source,
    run_id, t_cur AS stripe_currency, CASE WHEN dup_n >= 2 THEN dup_first END AS duplicate_of,
    created AS transfer_created, expected_at, payout_status, arrival_date, failure_code,
    coalesce(tid IS NOT NULL AND payout_status = 'paid' AND coalesce(arrival_date < $cend, true) AND net > 0, false)
        AS reached_bank
FROM k
"""


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


def _check_unique(con: duckdb.DuckDBPyConnection) -> None:
    dl, dt = con.execute(
        "SELECT (SELECT count(*) - count(DISTINCT ledger_payout_id) FROM ledger_in),"
        " (SELECT count(*) - count(DISTINCT transfer_id) FROM transfers_in)"
    ).fetchone()  # type: ignore[misc]
    if dl or dt:
        raise ValueError(f"input ids must be unique: {dl} repeated ledger_payout_id, {dt} repeated transfer_id")


def reconcile(
    ledger: pd.DataFrame, transfers: pd.DataFrame, links: pd.DataFrame | None, config: ReconConfig
) -> ReconResult:
    """Match and classify; see the module docstring. Inputs follow schema.*_COLUMNS (extra columns ignored)."""
    pend, cend = period_bounds(config)
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.register("ledger_in", _conform(ledger, LEDGER_COLUMNS, "ledger"))
        con.register("transfers_in", _conform(transfers, TRANSFER_COLUMNS, "transfers"))
        con.register("links_in", _conform(links, PAYOUT_LINK_COLUMNS, "links"))
        _check_unique(con)
        for stmt in [*_macros(), *_VIEWS.split(";")]:
            if stmt.strip():
                con.execute(stmt)
        con.execute(_DUP)
        con.execute(_JOIN)
        _fallback(con, config.fallback_window_days)
        con.execute(_LINKS)
        params = {"tol": int(config.tolerance), "pend": pend, "cend": cend, "pto": config.period_to.isoformat(),
                  "cto": (config.period_to + timedelta(days=config.cutoff_margin_days)).isoformat()}
        classified = _classified_sql()
        con.execute(classified, _params(classified, params))
        results = _to_pandas(con.sql(_FINAL_SQL, params=_params(_FINAL_SQL, params)).to_arrow_table())
    finally:
        con.close()
    return ReconResult(results=results, config=config)


def _fallback(con: duckdb.DuckDBPyConnection, window_days: int) -> None:
    """Pair leftovers one-to-one on destination + currency + amount within the window, closest first."""
    con.execute("CREATE TEMP TABLE la AS SELECT lid, l_dest, l_cur, l_amount, expected_at FROM j WHERE tid IS NULL")
    con.execute(
        "CREATE TEMP TABLE ta AS SELECT tid, t_dest, t_cur, t_amount, created FROM j "
        "WHERE lid IS NULL AND dup_rk IS NULL AND t_dest IS NOT NULL"
    )
    con.execute("CREATE TEMP TABLE fb (lid VARCHAR, tid VARCHAR)")
    window = float(window_days) * 86400.0
    # each round takes the mutually-closest pairs; the globally closest pair is always one, so this ends
    while True:
        inserted = con.execute(_FALLBACK_ROUND, {"window": window}).fetchone()
        if not inserted or not inserted[0]:
            break
    con.execute(
        f"CREATE TEMP TABLE fbt AS SELECT fb.lid AS fb_lid, {', '.join('T.' + c for c in _T_COLS)} "
        "FROM fb JOIN T ON T.tid = fb.tid"
    )


def _to_pandas(table: Any) -> pd.DataFrame:
    df = table.to_pandas()
    dtypes = {**RESULT_COLUMNS, **EXTRA_COLUMNS}
    wrong = {c: t for c, t in dtypes.items() if str(df[c].dtype) != t}
    if wrong:
        df = df.astype(wrong)
    return df[list(dtypes)]

