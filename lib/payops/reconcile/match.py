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

Cost at scale: the key join runs once, narrow, on row positions (``STRUCTURE``); counted in numpy it gives
the uniqueness checks and the *candidates* — whole key groups that are not one ledger row + one transfer (a
few in a hundred); duplicate groups, leftovers and the fallback run in SQL on those rows only and change
nothing but positions. The result rows are then put together by position (``_assemble``: a gather per
column, no second join), DuckDB computes the category and derived columns over them (``match_sql.FINAL``),
and the long reason/action CASEs run only on the rows that need text (``_finish``), put in place before the
one conversion to pandas.

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
import pyarrow.compute as pc

from payops.reconcile import match_sql as S
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
            for name, df in frames.items():
                con.register(name, df)
            links = pool.submit(_payouts, con, frames, len(tra))  # next to the statements below, on its own cursor
            lpos, tpos, key_l, tid_repeats = _candidates(con, led, tra, pool)
            con.register("ledger_c", led.iloc[lpos])
            con.register("transfers_c", tra.iloc[tpos])
            for stmt in [S.GROUPS, S.DUP]:
                con.execute(stmt)
            _fallback(con, config.fallback_window_days)
            con.execute(S.ADJ)
            adj = con.sql("SELECT * FROM adj").to_arrow_table()
            asm = _assemble(frames, key_l, adj, links.result(), pool)
            con.register("asm", asm)
            table = con.sql(S.FINAL, params=_params(S.FINAL, params)).to_arrow_table()  # in asm's row order
            con.unregister("asm")
            for name, col in PASS_THROUGH.items():
                table = table.append_column(name, asm[col])
            del asm
            if tid_repeats.result():
                _check_ids(led["ledger_payout_id"], tra["transfer_id"])  # raises, unless two ids' hashes collided
            if big := table.nbytes > _BIG_RESULT:  # the joins' hash tables were bigger still: back before pandas
                _release(alone=True)
            return _finish(con, table, frames, params)
    finally:
        if big:
            _release(alone=False)


def _payouts(con: duckdb.DuckDBPyConnection, frames: dict[str, pd.DataFrame], n_transfers: int) -> np.ndarray:
    """Per transfer position, the position of the payout link that swept its destination payment (-1: none).
    Of two or more (Stripe re-sweeps what a failed payout returned), ``match_sql.PAYOUT_RANK`` picks one.
    Runs on a cursor of its own (of ``con``'s database), so it can run next to ``con``'s statements."""
    links = frames["links_in"]
    cur = con.cursor()
    try:
        for name in ("transfers_in", "links_in"):
            cur.register(name, frames[name])
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


#: the input columns ``asm`` carries, under the names ``match_sql.FINAL`` reads
_ASM_LEDGER = {"ledger_payout_id": "lid", "run_id": "run_id", "studio_id": "studio_id", "destination": "l_dest",
               "amount": "l_amount", "currency": "l_cur", "expected_at": "expected_at"}
_ASM_TRANSFERS = {"transfer_id": "tid", "created": "created", "amount": "t_amount", "currency": "t_cur",
                  "destination": "t_dest", "source": "source", "amount_reversed": "amount_reversed",
                  "reversed": "reversed"}
_ASM_LINKS = ("payout_id", "payout_status", "arrival_date", "failure_code")
_ASM_ADJ = ("dup_rk", "dup_n", "dup_first", "dup_k", "fb_lid")
#: result columns that are ``asm`` columns unchanged (result name → ``asm`` name): not copied through DuckDB
PASS_THROUGH = {"transfer_id": "tid", "payout_id": "payout_id", "studio_id": "studio_id", "ledger_amount": "l_amount",
                "run_id": "run_id", "stripe_currency": "t_cur", "transfer_created": "created",
                "expected_at": "expected_at", "payout_status": "payout_status", "arrival_date": "arrival_date",
                "failure_code": "failure_code", "_lpos": "lpos", "_tpos": "tpos"}


def _assemble(frames: dict[str, pd.DataFrame], key_l: np.ndarray, adj: pa.Table, link: np.ndarray,
              pool: ThreadPoolExecutor) -> pa.Table:
    """The result rows before classification, put together by position — no second join: every transfer in
    input order (its columns as they are), with the ledger row it pairs with (its key's, unless it is a
    duplicate group's extra; or the fallback's), then every ledger row nothing pairs with."""
    led, tra, lnk = frames["ledger_in"], frames["transfers_in"], frames["links_in"]
    n_t = len(tra)
    t_l = key_l.copy()
    a_t = adj["tpos"].to_numpy()
    rk = pc.fill_null(adj["dup_rk"], 1).to_numpy()
    fb = adj["fb_lpos"].is_valid().to_numpy(zero_copy_only=False)
    t_l[a_t[rk > 1]] = -1  # a duplicate group's extras stand alone
    t_l[a_t[fb]] = adj["fb_lpos"].filter(fb).to_numpy()
    used = np.zeros(len(led), dtype=bool)
    used[t_l[t_l >= 0]] = True
    lone = np.flatnonzero(~used)
    n_l = len(lone)

    def index(pos: np.ndarray) -> pa.Array:
        return pa.array(pos, mask=pos < 0)

    def widen(col: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray:  # transfer columns: nulls on the ledger rows
        chunks = col.chunks if isinstance(col, pa.ChunkedArray) else [col]
        return pa.chunked_array([*chunks, pa.nulls(n_l, col.type)], col.type)

    l_at = index(np.concatenate([t_l, lone]))
    ledger = pa.Table.from_pandas(led[list(_ASM_LEDGER)], preserve_index=False)
    transfers = pa.Table.from_pandas(tra[list(_ASM_TRANSFERS)], preserve_index=False)
    links = pa.Table.from_pandas(lnk[list(_ASM_LINKS)], preserve_index=False)
    a_at = np.full(n_t + n_l, -1, dtype=np.int64)
    a_at[a_t] = np.arange(len(a_t))
    b_at, adj_at = index(np.concatenate([link, np.full(n_l, -1)])), index(a_at)
    # the gathers (one cache miss per value where the sides are in different orders) on both cores
    taken = {**{new: pool.submit(ledger[old].take, l_at) for old, new in _ASM_LEDGER.items()},
             **{c: pool.submit(links[c].take, b_at) for c in _ASM_LINKS},
             **{c: pool.submit(adj[c].take, adj_at) for c in _ASM_ADJ}}
    cols: dict[str, Any] = {new: taken[new].result() for new in _ASM_LEDGER.values()}
    cols["lpos"] = l_at
    cols |= {new: widen(transfers[old]) for old, new in _ASM_TRANSFERS.items()}
    cols["tpos"] = index(np.concatenate([np.arange(n_t), np.full(n_l, -1)]))
    cols |= {c: taken[c].result() for c in (*_ASM_LINKS, *_ASM_ADJ)}
    return pa.table(cols)


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
    """A new in-memory DuckDB with the macros and views of ``match_sql`` — bound once, against empty frames of
    the contract's dtypes (each session's frames have the same, ``_conform``): creating them per call cost
    more than matching a thousand rows."""
    db = duckdb.connect()
    cur = db.cursor()
    try:
        for side, columns in (("ledger", LEDGER_COLUMNS), ("transfers", TRANSFER_COLUMNS)):
            empty = _conform(None, columns, side)
            for suffix in ("in", "c", "b"):
                cur.register(f"{side}_{suffix}", empty)
        for stmt in [*S.macros(), *S.views(), *S.views("c"), *S.views("b")]:
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
    on_t, on_l = tp >= 0, lp >= 0
    pair = on_t & on_l
    per_l = np.bincount(lp[pair], minlength=len(ledger))  # transfers keyed to each ledger row
    per_t = np.bincount(tp[pair], minlength=len(transfers))  # ledger rows named by each transfer's key
    lone_l, lone_t = lp[~on_t], tp[~on_l]
    lid, tid = ledger["ledger_payout_id"], transfers["transfer_id"]
    if per_t.max(initial=0) > 1 or lid.isna().any() or tid.isna().any() or lid.iloc[lone_l].duplicated().any():
        _check_ids(lid, tid)
    tid_repeats = pool.submit(_repeats, ht[on_t])
    key_l = np.full(len(transfers), -1, dtype=np.int64)
    key_l[tp[pair]] = lp[pair]
    dup_l = per_l > 1
    dup_t = tp[pair][dup_l[lp[pair]]]
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


def _fallback(con: duckdb.DuckDBPyConnection, window_days: int) -> int:
    """Pair leftovers one-to-one on destination + currency + amount within the window, closest first; how many
    pairs."""
    ((n_la,),), ((n_ta,),), _ = (con.execute(stmt).fetchall() for stmt in S.LEFTOVERS)
    window = float(window_days) * 86400.0
    pairs = 0
    # each round takes the mutually-closest pairs; the globally closest pair is always one, so this ends —
    # at the latest when one side is all paired (no round needed to find that nothing is left)
    while pairs < min(n_la, n_ta):
        ((inserted,),) = con.execute(S.FALLBACK_ROUND, {"window": window}).fetchall()
        if not inserted:
            break
        pairs += int(inserted)
    return pairs


_BRK_COLS = ["category", "stripe_amount", "ledger_amount", "stripe_currency", "transfer_created", "payout_id",
             "payout_status", "arrival_date", "failure_code", "confidence", "_lpos", "_tpos"]


def _finish(con: duckdb.DuckDBPyConnection, table: pa.Table, frames: dict[str, pd.DataFrame],
            params: dict[str, Any]) -> pd.DataFrame:
    """The results as pandas, with reason and action: computed on the rows that need text only (``BREAKS_SQL``,
    their inputs found by position) and put in place; NULL elsewhere (MATCHED by key)."""
    n = table.num_rows
    mask = table["_text"].combine_chunks()
    reason = action = pa.nulls(n, pa.large_string())
    brk = table.select(_BRK_COLS).filter(mask)
    if brk.num_rows:
        con.register("brk", brk.append_column("_i", pa.array(np.arange(brk.num_rows))))
        for side, col in (("ledger", "_lpos"), ("transfers", "_tpos")):
            con.register(f"{side}_b", frames[f"{side}_in"].iloc[pc.drop_null(brk[col]).to_numpy()])
        sql, args = S.BREAKS_SQL, _params(S.BREAKS_SQL, params)
        if brk.num_rows > 20_000:  # many: as Arrow; few: as rows, cheaper (the statement is bound once, not twice)
            texts = con.sql(sql, params=args).to_arrow_table()
            new_reason, new_action = (texts[c].combine_chunks() for c in ("reason", "suggested_action"))
        else:
            rows = con.execute(sql, args).fetchall()
            new_reason, new_action = (pa.array([r[i] for r in rows], pa.large_string()) for i in (0, 1))
        reason, action = _scatter(mask, new_reason), _scatter(mask, new_action)
    at = table.column_names.index("confidence") + 1
    table = table.add_column(at, "reason", reason).add_column(at + 1, "suggested_action", action)
    return _to_pandas(table.drop_columns(["_text", "_lpos", "_tpos"]))


def _scatter(mask: pa.BooleanArray, values: pa.LargeStringArray) -> pa.LargeStringArray:
    """``len(mask)`` strings: ``values`` in order at the ``mask``ed slots, NULL elsewhere — built from
    ``values``' own text buffer and new offsets, so nothing is copied string by string."""
    n, at = len(mask), np.flatnonzero(mask.to_numpy(zero_copy_only=False))
    values = values.cast(pa.large_string())
    offsets = np.frombuffer(values.buffers()[1], np.int64, len(values) + 1, values.offset * 8)
    lengths = np.zeros(n + 1, np.int64)
    lengths[at + 1] = np.diff(offsets)
    valid = np.zeros(n, bool)
    valid[at] = values.is_valid().to_numpy(zero_copy_only=False)
    return pa.LargeStringArray.from_buffers(n, pa.py_buffer(np.cumsum(lengths) + offsets[0]),
                                            values.buffers()[2] or pa.py_buffer(b""),
                                            pa.py_buffer(np.packbits(valid, bitorder="little")))


def _to_pandas(table: pa.Table) -> pd.DataFrame:
    """Arrow → the contract's dtypes directly (pyarrow-backed strings: no object columns, no second pass)."""
    df = table.to_pandas(types_mapper=_ARROW_TO_PANDAS.get, split_blocks=True, self_destruct=True)
    dtypes = {**RESULT_COLUMNS, **EXTRA_COLUMNS}
    wrong = {c: t for c, t in dtypes.items() if str(df[c].dtype) != t}
    if wrong:
        df = df.astype(wrong)
    return df if list(df.columns) == list(dtypes) else df[list(dtypes)]
