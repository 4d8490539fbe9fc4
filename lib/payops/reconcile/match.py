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

Cost at scale: one pass of 64-bit hashes over the ids and keys, sorted in numpy, finds the *candidates* —
rows whose key, transfer id or destination payment may be shared (nearly all keys are one ledger row + one
transfer); the uniqueness checks, duplicate groups, leftovers, fallback and re-swept payments then run in SQL
on those rows only (exact: every row sharing a value is a candidate; see ``match_sql`` for the one case a
hash collision could hide, which is checked). Then one streaming FULL OUTER JOIN + payout join straight to
Arrow; the long reason/action CASEs run only on the non-MATCHED rows (``_finish``), whose texts are put in
place before the one conversion to pandas.

Result rows are not in any particular order (sort for presentation).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import duckdb
import numpy as np
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
    """The contract's columns in the contract's dtypes (extra columns dropped) and the row position ``_pos``;
    a clear error if any is missing."""
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
    return out.assign(_pos=np.arange(len(out), dtype=np.int64))


def reconcile(
    ledger: pd.DataFrame, transfers: pd.DataFrame, links: pd.DataFrame | None, config: ReconConfig
) -> ReconResult:
    """Match and classify; see the module docstring. Inputs follow schema.*_COLUMNS (extra columns ignored)."""
    pend, cend = period_bounds(config)
    params = {"tol": int(config.tolerance), "pend": pend, "cend": cend, "pto": config.period_to.isoformat(),
              "cto": (config.period_to + timedelta(days=config.cutoff_margin_days)).isoformat()}
    frames = {
        "ledger_in": _conform(ledger, LEDGER_COLUMNS, "ledger"),
        "transfers_in": _conform(transfers, TRANSFER_COLUMNS, "transfers"),
        "links_in": _conform(links, PAYOUT_LINK_COLUMNS, "links"),
    }
    # a hash collision can hide a leftover pair (see match_sql): then again, with every key a candidate
    results = _run(frames, config, params, exact_keys=False)
    if results is None:
        results = _run(frames, config, params, exact_keys=True)
    assert results is not None
    return ReconResult(results=results, config=config)


def _run(frames: dict[str, pd.DataFrame], config: ReconConfig, params: dict[str, Any],
         exact_keys: bool) -> pd.DataFrame | None:
    """The results, or None when the check of the candidates fails (only possible unless ``exact_keys``)."""
    led, tra, lnk = frames.values()
    with _session() as con:
        for name, df in frames.items():
            con.register(name, df)
        for stmt in [*S.macros(), *S.views()]:
            con.execute(stmt)
        lpos, tpos, tid_pos, link_pos = _candidates(con, lnk, exact_keys)
        con.register("ledger_c", led if exact_keys else led.iloc[lpos])
        con.register("transfers_c", tra if exact_keys else tra.iloc[tpos])
        for stmt in [*S.views("c"), S.GROUPS]:
            con.execute(stmt)
        ((dl,),) = con.execute(S.REPEATED_LEDGER_IDS).fetchall()
        dt = len(tid_pos) - tra["transfer_id"].iloc[tid_pos].nunique()  # NULLs count as repeats
        if dl or dt:
            raise ValueError(f"input ids must be unique: {dl} repeated ledger_payout_id, {dt} repeated transfer_id")
        dps = lnk["destination_payment"].iloc[link_pos].dropna()
        ldp = dps[dps.duplicated()].unique()  # destination payments swept by ≥2 payouts
        con.register("ldp", pd.DataFrame({"dp": ldp}))
        con.execute(S.DUP)
        _fallback(con, config.fallback_window_days)
        con.execute(S.ADJ)
        ((unpaired,),) = con.execute(S.UNPAIRED).fetchall()
        final = S.final_sql(unique_links=not len(ldp))
        table = con.sql(final, params=_params(final, params)).to_arrow_table()
        # a hash collision leaves one more ledger row (and transfer) unpaired than the candidates say (match_sql)
        if not exact_keys and (table["transfer_id"].null_count != unpaired or table.num_rows != len(tra) + unpaired):
            return None
        if table.nbytes > 1 << 30:  # the joins' hash tables were bigger still: back before pandas needs more
            _release(alone=True)
        return _finish(con, table, frames, params)


_DB: duckdb.DuckDBPyConnection | None = None
_DB_PID = 0
_DB_SESSIONS = 0
_DB_LOCK = threading.Lock()


@contextmanager
def _session() -> Iterator[duckdb.DuckDBPyConnection]:
    """A cursor on this process's in-memory DuckDB: its own settings, temp tables and registered frames, all
    gone on close. Opening a database costs tens of ms, a cursor next to nothing (re-opened after a fork).
    When the last open session closes, the memory DuckDB keeps for reuse goes back (``_release``): nothing is
    held between calls."""
    global _DB, _DB_PID, _DB_SESSIONS
    with _DB_LOCK:
        if _DB is None or _DB_PID != os.getpid():
            _DB, _DB_PID, _DB_SESSIONS = duckdb.connect(), os.getpid(), 0
        con = _DB.cursor()
        _DB_SESSIONS += 1
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.execute("SET arrow_large_buffer_size = true")  # large_string: what pandas' pyarrow strings hold
        yield con
    finally:
        con.close()
        with _DB_LOCK:
            _DB_SESSIONS -= 1
        _release(alone=False)


def _release(alone: bool) -> None:
    """Give the memory DuckDB keeps for reuse back to the system — when no session is open, or (``alone``) only
    the caller's, with no query running. A moment's ``memory_limit`` just above what is in use (temp tables)
    evicts the cache without pushing any data out to disk."""
    with _DB_LOCK:
        if _DB is None or _DB_PID != os.getpid() or _DB_SESSIONS != (1 if alone else 0):
            return
        ((limit, used),) = _DB.execute("SELECT current_setting('memory_limit'), "
                                       "(SELECT coalesce(sum(memory_usage_bytes), 0) FROM duckdb_memory())").fetchall()
        try:
            _DB.execute(f"SET memory_limit = '{int(used) + (64 << 20)}B'")
        except duckdb.Error:
            pass  # nothing to give back, then
        finally:
            _DB.execute(f"SET memory_limit = '{limit}'")


def _candidates(con: duckdb.DuckDBPyConnection, links: pd.DataFrame, exact_keys: bool) -> tuple[np.ndarray, ...]:
    """Positions of the ledger rows and transfers whose key, the transfers whose id, and the payout links whose
    destination payment may be shared with another row (by 64-bit hash; NULLs always), each ascending.

    The links' hashes and the sorts run on a second thread (own cursor) next to the ledger's and transfers'.
    """
    ((null,),) = con.execute("SELECT hash(NULL::VARCHAR)").fetchall()
    null = np.uint64(null)
    with ThreadPoolExecutor(1) as pool:
        link_pos = pool.submit(_links_shared, con.cursor(), links, null)
        hl = con.execute(S.HASH_LEDGER).fetchnumpy()["h"]
        th = con.execute(S.HASH_TRANSFERS).fetchnumpy()
        tid_pos = pool.submit(_shared, th["ht"], null)
        if exact_keys:
            lpos, tpos = np.arange(len(hl)), np.arange(len(th["hk"]))
        else:
            lpos, tpos = _irregular_keys(hl, th["hk"], null)
        return lpos, tpos, tid_pos.result(), link_pos.result()


def _links_shared(cur: duckdb.DuckDBPyConnection, links: pd.DataFrame, null: np.uint64) -> np.ndarray:
    """``_shared`` of the links' destination payments, on (and then closing) its own cursor."""
    try:
        cur.register("links_in", links)
        return _shared(cur.execute(S.HASH_LINKS).fetchnumpy()["h"], null)
    finally:
        cur.close()


def _shared(h: np.ndarray, null: np.uint64) -> np.ndarray:
    """Positions whose hash occurs more than once, or is NULL's."""
    s = np.sort(h)
    dup = s[1:][s[1:] == s[:-1]]
    return np.flatnonzero(np.isin(h, np.append(np.unique(dup), null)))


def _irregular_keys(hl: np.ndarray, hk: np.ndarray, null: np.uint64) -> tuple[np.ndarray, np.ndarray]:
    """Ledger and transfer positions whose key is not surely "one ledger row + one transfer".

    Each row is a uint64 (the hash's high bits, its position in ledger ⧺ transfers in the low bits); sorted,
    equal keys are neighbours, ledger rows first. A row is regular when its key's run is exactly one ledger
    row then one transfer; everything else (and NULL keys) is a candidate.
    """
    n_l, n = len(hl), len(hl) + len(hk)
    bits = np.uint64(max(n.bit_length(), 1))
    low = np.uint64((1 << int(bits)) - 1)
    v = np.concatenate([hl, hk])
    cand = v == null
    v &= ~low
    v |= np.arange(n, dtype=np.uint64)
    v.sort()
    pos = np.bitwise_and(v, low).view(np.int64)
    v >>= bits
    eq = np.empty(n + 1, dtype=bool)  # eq[i + 1]: row i has the same key as row i + 1 (sorted order)
    eq[0] = eq[-1] = False
    np.equal(v[1:], v[:-1], out=eq[1:-1])
    start = eq[1:-1] & ~eq[:-2] & ~eq[2:]  # a run of exactly two rows starts at i ...
    start &= (pos[:-1] < n_l) & (pos[1:] >= n_l)  # ... a ledger row, then a transfer
    irregular = np.ones(n, dtype=bool)
    irregular[:-1] &= ~start
    irregular[1:] &= ~start
    cand[pos[irregular]] = True
    return np.flatnonzero(cand[:n_l]), np.flatnonzero(cand[n_l:])


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


_BRK_COLS = ["category", "stripe_amount", "ledger_amount", "stripe_currency", "transfer_created", "payout_id",
             "payout_status", "arrival_date", "failure_code", "confidence", "_lpos", "_tpos"]


def _finish(con: duckdb.DuckDBPyConnection, table: pa.Table, frames: dict[str, pd.DataFrame],
            params: dict[str, Any]) -> pd.DataFrame:
    """The results as pandas; reason and action of the non-MATCHED rows computed on those rows only
    (``BREAKS_SQL``, their inputs found by position) and put in place."""
    mask = pc.not_equal(table["category"], "MATCHED").combine_chunks()
    reason, action = table["reason"], _blank(table.num_rows)
    brk = table.select(_BRK_COLS).filter(mask)
    if brk.num_rows:
        con.register("brk", brk.append_column("_i", pa.array(np.arange(brk.num_rows))))
        for side, col in (("ledger", "_lpos"), ("transfers", "_tpos")):
            con.register(f"{side}_b", frames[f"{side}_in"].iloc[pc.drop_null(brk[col]).to_numpy()])
        for stmt in S.views("b"):
            con.execute(stmt)
        sql, args = S.BREAKS_SQL, _params(S.BREAKS_SQL, params)
        if brk.num_rows > 20_000:  # many: as Arrow; few: as rows, cheaper (the statement is bound once, not twice)
            texts = con.sql(sql, params=args).to_arrow_table()
            new_reason, new_action = (texts[c].combine_chunks() for c in ("reason", "suggested_action"))
        else:
            rows = con.execute(sql, args).fetchall()
            new_reason, new_action = (pa.array([r[i] for r in rows], pa.large_string()) for i in (0, 1))
        reason = _put(reason, mask, new_reason)
        action = pc.replace_with_mask(action, mask, new_action)
    at = table.column_names.index("reason")
    table = table.set_column(at, "reason", reason).add_column(at + 1, "suggested_action", action)
    return _to_pandas(table.drop_columns(["_lpos", "_tpos"]))


def _blank(n: int) -> pa.Array:
    """``n`` empty strings (large_string), without building them one by one."""
    return pa.LargeStringArray.from_buffers(n, pa.py_buffer(np.zeros(n + 1, dtype=np.int64)), pa.py_buffer(b""))


def _put(col: pa.ChunkedArray | pa.Array, mask: pa.Array, values: pa.Array) -> pa.ChunkedArray | pa.Array:
    """``col`` with its ``mask``ed slots replaced by ``values``, in order (scattered, then one ``if_else``)."""
    return pc.if_else(mask, pc.replace_with_mask(pa.nulls(len(mask), pa.large_string()), mask, values), col)


def _to_pandas(table: pa.Table) -> pd.DataFrame:
    """Arrow → the contract's dtypes directly (pyarrow-backed strings: no object columns, no second pass)."""
    df = table.to_pandas(types_mapper=_ARROW_TO_PANDAS.get, split_blocks=True, self_destruct=True)
    dtypes = {**RESULT_COLUMNS, **EXTRA_COLUMNS}
    wrong = {c: t for c, t in dtypes.items() if str(df[c].dtype) != t}
    if wrong:
        df = df.astype(wrong)
    return df if list(df.columns) == list(dtypes) else df[list(dtypes)]
