"""Match ledger payouts to Stripe transfers and classify every row — the joins in DuckDB (:mod:`.match_sql`), the
rest in numpy/pyarrow (:mod:`.match_rows`, :mod:`.match_text`).

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
5. pairs are classified by the precedence in ``match_rows.CATEGORY``.

Cost at scale: the key join runs once, narrow, on row positions (``match_sql.STRUCTURE``); counted in numpy it
gives the uniqueness checks and the *candidates* — whole key groups that are not one ledger row + one transfer
(a few in a hundred); duplicate ranks and the fallback are computed on those rows only, in numpy
(``match_rows.pairs``), and change nothing but positions. The result rows are then put together by position and
classified in numpy/pyarrow (``match_rows.rows``: a gather per column, no second join, the category as a small
integer code); reason and action are written per category only for the rows that need text (``match_text``),
while the rest is converted to pandas (``_finish``).

Result rows are not in any particular order (sort for presentation); today: the transfers in input order, then
the ledger rows nothing paired with.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from payops.reconcile import match_rows as R
from payops.reconcile import match_sql as S
from payops.reconcile import match_text as T
from payops.reconcile import periods
from payops.reconcile.schema import (
    CLEAN,
    LEDGER_COLUMNS,
    PAYOUT_LINK_COLUMNS,
    RESULT_COLUMNS,
    TRANSFER_COLUMNS,
    Category,
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
    """The matcher's output: ``results`` (RESULT_COLUMNS + EXTRA_COLUMNS), the config it ran with, and what it
    left to other periods."""

    results: pd.DataFrame
    config: ReconConfig
    #: transfers created after the period end that pay no ledger payout of this period (``periods.DEFERRED_COLUMNS``)
    deferred: pd.DataFrame = field(default_factory=periods.empty_deferred)
    #: the ledger payouts of other periods that this period's transfers paid (``reconcile``'s ``other_period``)
    other_period_ids: frozenset[str] = frozenset()

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
    end = periods.period_end(config)
    return end, end + timedelta(days=config.cutoff_margin_days)


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
    ledger: pd.DataFrame, transfers: pd.DataFrame, links: pd.DataFrame | None, config: ReconConfig,
    other_period: pd.DataFrame | None = None,
) -> ReconResult:
    """Match and classify; see the module docstring. Inputs follow schema.*_COLUMNS (extra columns ignored).

    ``ledger`` is the period's ledger payouts. ``other_period``: ledger payouts of other periods that the
    period's transfers name (``load_ledger.load_ledger_ids`` of ``periods.other_period_keys``) — matched like the
    period's own, their rows' reason says which period they belong to. Transfers created after the period end
    that pay no ledger payout of this period are the next period's: not in ``results`` but in ``deferred``
    (:mod:`payops.reconcile.periods`)."""
    pend, cend = period_bounds(config)
    params = {"tol": int(config.tolerance), "pend": pend, "cend": cend, "pto": config.period_to.isoformat(),
              "cto": (config.period_to + timedelta(days=config.cutoff_margin_days)).isoformat()}
    led = _conform(ledger, LEDGER_COLUMNS, "ledger")
    tra = _conform(transfers, TRANSFER_COLUMNS, "transfers")
    deferred = [periods.empty_deferred()]
    later = periods.later_period(tra, led["ledger_payout_id"], config)
    if later.any():
        deferred.append(periods.deferred_frame(tra[later], f"created after the period end {config.period_to}, for a "
                                                           "ledger payout of another period: the next period's"))
        tra = tra[~later].assign(_pos=np.arange(int((~later).sum()), dtype=np.int64))
    other = None
    if other_period is not None and len(other_period):
        other = _conform(other_period, LEDGER_COLUMNS, "other_period")
        named = periods.transfer_key(tra)
        other = other[~other["ledger_payout_id"].isin(led["ledger_payout_id"].dropna())
                      & other["ledger_payout_id"].isin(named.dropna().unique())]
        led = pd.concat([led, other], ignore_index=True).assign(_pos=np.arange(len(led) + len(other), dtype=np.int64))
    frames = {"ledger_in": led, "transfers_in": tra, "links_in": _conform(links, PAYOUT_LINK_COLUMNS, "links")}
    results = _run(frames, config, params)
    if (tra["created"] >= pend).any():  # key-less and created after the end: the next period's unless paired here
        alone = (results["category"] == str(Category.MISSING_IN_LEDGER)) & (results["transfer_created"] >= pend)
        if alone.any():
            ids = results.loc[alone, "transfer_id"]
            deferred.append(periods.deferred_frame(tra[tra["transfer_id"].isin(ids)], "created after the period end "
                                                   f"{config.period_to} with no ledger id, and no ledger payout of "
                                                   "this period matches it: the next period's"))
            results = results[~alone.to_numpy(dtype=bool)].reset_index(drop=True)
    if other is not None and len(other):
        periods.note_other_period(results, other, config)
    out = pd.concat(deferred, ignore_index=True) if len(deferred) > 1 else deferred[0]
    ids = frozenset(other["ledger_payout_id"].dropna()) if other is not None else frozenset()
    return ReconResult(results=results, config=config, deferred=out, other_period_ids=ids)


def _run(frames: dict[str, pd.DataFrame], config: ReconConfig, params: dict[str, Any]) -> pd.DataFrame:
    led, tra = frames["ledger_in"], frames["transfers_in"]
    big = False
    try:
        with _session() as con, ThreadPoolExecutor(2) as pool:
            x = R.Inputs.of(frames)
            for name, table in x.tables().items():  # Arrow, not the frames: DuckDB scans it faster
                con.register(name, table)
            links = pool.submit(_payouts, con, x)  # next to the statements below, on its own cursor
            lpos, tpos, key_l, tid_repeats = _candidates(con, led, tra, pool)
            pairs = R.pairs(x, lpos, tpos, key_l, config.fallback_window_days)
            rows = R.rows(x, key_l, pairs, links.result(), params, pool)
            if tid_repeats.result():
                _check_ids(led["ledger_payout_id"], tra["transfer_id"])  # raises, unless two ids' hashes collided
            if big := rows.table.nbytes > _BIG_RESULT:  # the joins' hash tables were bigger still: back before pandas
                _release(alone=True)
            return _finish(con, rows, x, params, pool)
    finally:
        if big:
            _release(alone=False)


def _payouts(con: duckdb.DuckDBPyConnection, x: R.Inputs) -> np.ndarray:
    """Per transfer position, the position of the payout link that swept its destination payment (-1: none).
    Of two or more (Stripe re-sweeps what a failed payout returned), ``match_sql.PAYOUT_RANK`` picks one.
    Runs on a cursor of its own (of ``con``'s database), so it can run next to ``con``'s statements."""
    links, n_transfers = x.lnk, len(x.tra)
    cur = con.cursor()
    try:
        for name, table in x.tables().items():
            cur.register(name, table)
        p = cur.sql(S.PAYOUT_LINKS).to_arrow_table()
    finally:
        cur.close()
    tp, bp = (p[c].combine_chunks().to_numpy() for c in ("tp", "bp"))
    best = np.full(n_transfers, -1, dtype=np.int64)
    many = np.bincount(tp, minlength=n_transfers)[tp] > 1
    best[tp[~many]] = bp[~many]
    if many.any():
        cand = links.iloc[bp[many]][["payout_status", "arrival_date", "payout_id"]].assign(tp=tp[many], bp=bp[many])
        cand["rank"] = cand["payout_status"].map(S.PAYOUT_RANK).fillna(len(S.PAYOUT_RANK)).astype("int64")
        cand = cand.sort_values(["tp", "rank", "arrival_date", "payout_id"], ascending=[True, True, False, True],
                                na_position="last").drop_duplicates("tp")
        best[cand["tp"].to_numpy()] = cand["bp"].to_numpy()
    return best


#: a result this large (Arrow bytes) gives DuckDB's memory back during the call and after it
_BIG_RESULT = 1 << 30

_DB: duckdb.DuckDBPyConnection | None = None
_DB_PID = 0
_DB_SESSIONS = 0
_DB_LOCK = threading.Lock()


@contextmanager
def _session() -> Iterator[duckdb.DuckDBPyConnection]:
    """A cursor on this process's in-memory DuckDB: its own settings, temp tables and registered frames, all
    gone on close. Opening a database costs tens of ms, a cursor next to nothing (re-opened after a fork).
    The memory DuckDB's allocator keeps for reuse stays between calls (given back and faulted in again, it
    made the next 1M-row match ~0.14 s slower, with twice the page faults), unless a result was over
    ``_BIG_RESULT`` (``_release``)."""
    global _DB, _DB_PID, _DB_SESSIONS
    with _DB_LOCK:
        if _DB is None or _DB_PID != os.getpid():
            _DB, _DB_PID, _DB_SESSIONS = _database(), os.getpid(), 0
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


def _database() -> duckdb.DuckDBPyConnection:
    """A new in-memory DuckDB with the views of ``match_sql`` — bound once, against empty frames of
    the contract's dtypes (each session's frames have the same, ``_conform``): creating them per call cost
    more than matching a thousand rows."""
    db = duckdb.connect()
    cur = db.cursor()
    try:
        for side, columns in (("ledger", LEDGER_COLUMNS), ("transfers", TRANSFER_COLUMNS)):
            empty = _conform(None, columns, side)
            cur.register(f"{side}_in", empty)
        for stmt in S.views():
            cur.execute(stmt)
    finally:
        cur.close()
    return db


def _release(alone: bool) -> None:
    """Give the memory DuckDB keeps for reuse back to the system — when no session is open, or (``alone``) only
    the caller's, with no query running. A moment's ``memory_limit`` just above what is in use (temp tables)
    evicts the cache without pushing any data out to disk."""
    with _DB_LOCK:
        if _DB is None or _DB_PID != os.getpid() or _DB_SESSIONS != (1 if alone else 0):
            return
        ((used,),) = _DB.execute("SELECT coalesce(sum(memory_usage_bytes), 0) FROM duckdb_memory()").fetchall()
        try:
            _DB.execute(f"SET memory_limit = '{int(used) + (64 << 20)}B'")
        except duckdb.Error:
            pass  # nothing to give back, then
        finally:
            # the default (this private database never sets one); current_setting's text is rounded, so
            # setting that back would lower the limit a little every time
            _DB.execute("RESET memory_limit")


def _candidates(con: duckdb.DuckDBPyConnection, ledger: pd.DataFrame, transfers: pd.DataFrame,
                pool: ThreadPoolExecutor) -> tuple[np.ndarray, np.ndarray, np.ndarray, Future[bool]]:
    """Positions (ascending) of the candidate ledger rows and transfers (see ``match_sql``), per transfer the
    position of the ledger row its key names (-1: none), and whether the transfer ids' hashes repeat (computed
    on ``pool``, next to the statements that follow; if so, ``_check_ids`` decides). Raises ValueError on a
    missing or repeated ledger id, or a missing transfer id.

    From the key join's positions alone (``STRUCTURE``), counted: a transfer on two rows names a repeated
    ledger id; a ledger row on two rows is paid more than once."""
    s = con.sql(S.STRUCTURE).to_arrow_table()  # no NULLs (coalesce): each column one zero-copy numpy view
    lp, tp, ht = (s[c].combine_chunks().to_numpy() for c in ("lp", "tp", "ht"))
    on_t = tp >= 0
    tid_repeats = pool.submit(_repeats, ht[on_t])
    on_l = lp >= 0
    pair = on_t & on_l
    lpp, tpp = lp[pair], tp[pair]
    per_l = np.bincount(lpp, minlength=len(ledger))  # transfers keyed to each ledger row
    per_t = np.bincount(tpp, minlength=len(transfers))  # ledger rows named by each transfer's key
    lone_l, lone_t = lp[~on_t], tp[~on_l]
    lid, tid = ledger["ledger_payout_id"], transfers["transfer_id"]
    if per_t.max(initial=0) > 1 or lid.isna().any() or tid.isna().any() or lid.iloc[lone_l].duplicated().any():
        _check_ids(lid, tid)
    key_l = np.full(len(transfers), -1, dtype=np.int64)
    key_l[tpp] = lpp
    dup_l = per_l > 1
    dup_t = tpp[dup_l[lpp]]
    return np.union1d(lone_l, np.flatnonzero(dup_l)), np.union1d(lone_t, dup_t), key_l, tid_repeats


def _check_ids(lid: pd.Series, tid: pd.Series) -> None:
    """Raise on missing or repeated ids (a NULL counts as a repeat), with how many of each."""
    dl = int(lid.isna().sum() + lid.dropna().duplicated().sum())
    dt = int(tid.isna().sum() + tid.dropna().duplicated().sum())
    if dl or dt:
        raise ValueError(f"input ids must be unique: {dl} repeated ledger_payout_id, {dt} repeated transfer_id")


def _repeats(h: np.ndarray) -> bool:
    """Whether a value occurs twice in ``h`` (uint64 hashes): counted by their top bits, then only the values
    whose count is shared sorted (a few in ten) — no sort of them all."""
    if len(h) < 2:
        return False
    bits = min(max(len(h).bit_length() + 2, 8), 26)
    b = (h >> np.uint64(64 - bits)).astype(np.intp)
    s = np.sort(h[np.bincount(b, minlength=1 << bits)[b] > 1])
    return bool(np.any(s[1:] == s[:-1]))


def _finish(con: duckdb.DuckDBPyConnection, rows: R.Rows, x: R.Inputs, params: dict[str, Any],
            pool: ThreadPoolExecutor) -> pd.DataFrame:
    """The results as pandas, with reason and action: written (``match_text``) for the rows that need text only
    and put in place; NULL elsewhere (MATCHED by key). The other columns are converted to pandas on the pool
    meanwhile (after ``_breaks`` read them: the conversion releases the table's buffers as it goes)."""
    table, at, n = rows.table, rows.text, rows.table.num_rows
    brk = _breaks(rows, x, pool) if len(at) else None
    frame = pool.submit(_to_pandas, table)
    reason = action = pa.nulls(n, pa.large_string())
    if brk is not None:
        new_reason, new_action = T.texts(brk, params, lambda ts: _day(con, ts))
        mask = np.zeros(n, bool)
        mask[at] = True
        reason, action = _scatter(mask, new_reason), _scatter(mask, new_action)
    df = frame.result()
    i = df.columns.get_loc("confidence") + 1
    for j, (name, values) in enumerate((("reason", reason), ("suggested_action", action))):
        df.insert(i + j, name, pa.chunked_array([values]).to_pandas(types_mapper=_ARROW_TO_PANDAS.get))
    return df


def _day(con: duckdb.DuckDBPyConnection, ts: pa.Array) -> pa.Array:
    """DuckDB's ``strftime(ts, '%Y-%m-%d')`` (the session is in UTC), for the dates ``match_text`` leaves to it."""
    con.register("_days", pa.table({"ts": ts}))
    try:
        return con.sql("SELECT strftime(ts, '%Y-%m-%d') AS d FROM _days").to_arrow_table()["d"].combine_chunks()
    finally:
        con.unregister("_days")


def _breaks(rows: R.Rows, x: R.Inputs, pool: ThreadPoolExecutor) -> pa.Table:
    """``brk``: what ``match_text`` reads of the rows that need text (``T.BRK_RESULT`` of the result row,
    ``T.BRK_LEDGER`` of the ledger row it pairs with, ``T.BRK_TRANSFERS`` of its transfer), in result order —
    gathered on both cores (a cache miss a value: the rows are spread over the result)."""
    at = rows.text
    l_at, t_at = rows.l_at[at], np.where(at < rows.n_t, at, -1)
    li, ti = pa.array(l_at, mask=l_at < 0), pa.array(t_at, mask=t_at < 0)
    dup_n = rows.dup_n[at]
    cols = {name: pool.submit(_pick, rows.table[c], at) for name, c in T.BRK_RESULT.items()}
    cols |= {name: pool.submit(x.ledger[c].take, li) for name, c in T.BRK_LEDGER.items()}
    cols |= {name: pool.submit(x.transfers[c].take, ti) for name, c in T.BRK_TRANSFERS.items()}
    return pa.table({**{name: f.result() for name, f in cols.items()}, "dup_n": pa.array(dup_n, mask=dup_n == 0)})


def _pick(col: pa.ChunkedArray, at: np.ndarray) -> pa.ChunkedArray:
    """``col.take(at)`` for ascending ``at``, chunk by chunk: a take across chunks would first concatenate them
    (the result's transfer and ledger-only parts are chunks of their own)."""
    ends = np.cumsum([len(c) for c in col.chunks])
    cut = np.searchsorted(at, ends)
    parts = [c.take(pa.array(at[lo:hi] - (end - len(c))))
             for c, lo, hi, end in zip(col.chunks, [0, *cut[:-1]], cut, ends, strict=True) if hi > lo]
    return pa.chunked_array(parts, col.type)


#: kept under this name: the tests and ``R.rows`` use the one scatter
_scatter = R.scatter


def _to_pandas(table: pa.Table) -> pd.DataFrame:
    """Arrow → the contract's dtypes directly (pyarrow-backed strings: no object columns, no second pass), for
    the contract's columns ``table`` has, in the contract's order."""
    df = table.to_pandas(types_mapper=_ARROW_TO_PANDAS.get, split_blocks=True, self_destruct=True)
    dtypes = {c: t for c, t in {**RESULT_COLUMNS, **EXTRA_COLUMNS}.items() if c in df.columns}
    wrong = {c: t for c, t in dtypes.items() if str(df[c].dtype) != t}
    if wrong:
        df = df.astype(wrong)
    return df if list(df.columns) == list(dtypes) else df[list(dtypes)]
