"""The result rows of :mod:`payops.reconcile.match`, by row position — in numpy and pyarrow, not SQL.

After the key join (``match._candidates``: per transfer the ledger row its key names, and the *candidates*):

1. ``pairs``: over the candidates only (a few in a hundred rows), the duplicate groups' ranks and the
   fallback's one-to-one pairs — what changes which ledger row a transfer pairs with;
2. ``rows``: every result row put together by position — each transfer in input order with the ledger row it
   pairs with and its payout link, then every ledger row nothing pairs with — a pyarrow gather per column (no
   second join), and classified: the category (``CATEGORY``, in precedence order) and the derived columns from
   integer and boolean arrays; no text (``match_text`` writes it for the rows ``Rows.text`` lists).

Why not SQL: on a million rows DuckDB's classification pass cost ~0.12 s, most of it materialising strings that
are coalesces of columns already gathered and the category CASE itself; here a category is a small integer
code and its text comes from a 12-entry dictionary. On a few thousand candidate rows the duplicate and fallback
statements cost DuckDB's fixed per-statement price (~4 ms each, plus one per fallback round).

Exactness: every comparison is on the exact values (integer minor units, the strings themselves; amounts that
would overflow int64 raise, as DuckDB's arithmetic did), NULLs compare as in SQL (``IS DISTINCT FROM`` where
the SQL said so), and orderings follow the SQL ``ORDER BY``s (strings by bytes, NULL timestamps last; fallback
distances as DuckDB's ``epoch()`` doubles).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from payops.reconcile.schema import Category

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
_NONE = np.empty(0, dtype=np.int64)

#: the categories in precedence order (a row takes the first whose condition holds; see ``_category``)
CATEGORY: list[Category] = [
    Category.MISSING_IN_STRIPE,         # no transfer
    Category.DUPLICATE_PAYMENT,         # in a duplicate group (two or more transfers keyed to one ledger row)
    Category.MISSING_IN_LEDGER,         # no ledger row
    Category.CURRENCY_MISMATCH,         # currencies distinct (NULL-safe)
    Category.DESTINATION_MISMATCH,      # destinations distinct (NULL-safe)
    Category.REVERSED_FULL,             # reversed, or amount_reversed > 0 and >= the amount
    Category.REVERSED_PARTIAL,          # amount_reversed > 0
    Category.AMOUNT_MISMATCH,           # |net - ledger amount| > tolerance
    Category.PAYOUT_FAILED,             # payout failed or canceled
    Category.TIMING_IN_TRANSIT,         # created after the period, payout not (yet) paid, or arriving after the cut-off
    Category.MATCHED_WITHIN_TOLERANCE,  # net <> ledger amount
    Category.MATCHED,
]
_MATCHED = CATEGORY.index(Category.MATCHED)
_MISSING_IN_STRIPE = CATEGORY.index(Category.MISSING_IN_STRIPE)
_CATEGORY_TEXT = pa.array([str(c) for c in CATEGORY], pa.large_string())
_CONFIDENCE_TEXT = pa.array(["key", "fallback", "none"], pa.large_string())
#: payout statuses the category reads (their index: 0 paid, 1-2 failed)
_STATUS = pa.array(["paid", "failed", "canceled"], pa.large_string())

#: ledger columns gathered into the result unchanged
_LEDGER_OUT = ("studio_id", "run_id", "expected_at")
#: payout-link columns gathered into the result unchanged
_LINK_OUT = ("payout_id", "payout_status", "arrival_date", "failure_code")


@dataclass
class Inputs:
    """The conformed frames (``match._conform``) and the same columns as Arrow (zero-copy: pandas' strings are
    pyarrow-backed) — numbers are read from the frames as numpy, strings gathered from the tables."""

    led: pd.DataFrame
    tra: pd.DataFrame
    lnk: pd.DataFrame
    ledger: pa.Table
    transfers: pa.Table
    links: pa.Table

    @classmethod
    def of(cls, frames: dict[str, pd.DataFrame]) -> Inputs:
        led, tra, lnk = frames["ledger_in"], frames["transfers_in"], frames["links_in"]
        return cls(led, tra, lnk, *(pa.Table.from_pandas(df, preserve_index=False) for df in (led, tra, lnk)))

    def tables(self) -> dict[str, pa.Table]:
        """The tables under the names the SQL reads."""
        return {"ledger_in": self.ledger, "transfers_in": self.transfers, "links_in": self.links}


@dataclass
class Pairs:
    """How the candidates change the key join's pairing, by row position.

    ``dup_t``: the transfers of every ledger row keyed by two or more, with ``dup_rk`` (1: the one the ledger
    row pairs with), ``dup_n`` (the group's size) and ``dup_first`` (the position of the group's rank 1);
    ``fb_t``/``fb_l``: the transfers and ledger rows the fallback paired."""

    dup_t: np.ndarray
    dup_rk: np.ndarray
    dup_n: np.ndarray
    dup_first: np.ndarray
    fb_t: np.ndarray
    fb_l: np.ndarray


def pairs(x: Inputs, lpos: np.ndarray, tpos: np.ndarray, key_l: np.ndarray, window_days: int) -> Pairs:
    """Duplicate ranks and fallback pairs, from the candidates (``lpos``/``tpos``, see ``match._candidates``)
    and the key join's pairing ``key_l``: the candidate transfers whose key names a ledger row are exactly the
    duplicate groups; the others, and the candidate ledger rows no transfer keys to, are the leftovers."""
    keyed = key_l[tpos] >= 0
    dup_t, lone_t = tpos[keyed], tpos[~keyed]
    in_group = np.zeros(len(x.led), bool)
    in_group[key_l[dup_t]] = True
    dup = _duplicates(x, dup_t, key_l[dup_t])
    fb_t, fb_l = _fallback(x, lpos[~in_group[lpos]], lone_t, window_days)
    return Pairs(*dup, fb_t, fb_l)


def _duplicates(x: Inputs, dup_t: np.ndarray, group: np.ndarray) -> tuple[np.ndarray, ...]:
    """Rank each duplicate group's transfers: the ledger row's ``manual_transfer_id`` first, then its
    ``ledger_transfer_id`` (an empty id names none), then the earliest ``created`` (NULL last), then the
    transfer id (in byte order). Returns ``dup_t`` in rank order per group, rank, group size, rank 1's position."""
    if not len(dup_t):
        return _NONE, _NONE, _NONE, _NONE
    g, t = pa.array(group), pa.array(dup_t)
    tid = x.transfers["transfer_id"].take(t)

    def not_named(col: str) -> pa.ChunkedArray:  # NOT (tid = nullif(the ledger row's id, '')) IS TRUE
        ids = x.ledger[col].take(g)
        return pc.invert(pc.fill_null(pc.and_(pc.equal(tid, ids), pc.not_equal(ids, "")), False))

    order = pc.sort_indices(
        pa.table({"g": g, "m": not_named("manual_transfer_id"), "l": not_named("ledger_transfer_id"),
                  "c": x.transfers["created"].take(t), "t": tid}),
        sort_keys=[(c, "ascending", "at_end") for c in "gmlct"]).to_numpy()
    ranked, grp = dup_t[order], group[order]
    start = np.flatnonzero(_first_of_runs(grp))
    size = np.diff(np.append(start, len(grp)))
    which = np.repeat(np.arange(len(start)), size)
    return ranked, np.arange(len(grp)) - start[which] + 1, size[which], ranked[start][which]


def _fallback(x: Inputs, la: np.ndarray, lone_t: np.ndarray, window_days: int) -> tuple[np.ndarray, np.ndarray]:
    """Pair the leftover transfers (no key, or a key naming no ledger row; with a destination) with the ledger
    rows no transfer keys to, one-to-one, on destination + currency + amount within the window: in rounds,
    each taking the pairs that are each other's closest (``|epoch(created) - epoch(expected_at)|``, ties by the
    other side's id) among the rows not yet paired. The globally closest pair is always mutual, so every round
    pairs at least one until none is left. Returns (transfer, ledger) positions."""
    ta = lone_t[_valid(x.transfers["destination"].take(pa.array(lone_t)))]
    if not len(la) or not len(ta):
        return _NONE, _NONE
    # the candidate pairs: same destination, currency (NULL equals nothing) and amount, both times known
    keys = [pc.dictionary_encode(pa.concat_arrays([side[c].take(pa.array(at)).combine_chunks().cast(pa.large_string())
                                                   for side, at in ((x.ledger, la), (x.transfers, ta))]))
            for c in ("destination", "currency")]  # one code per distinct string (exact)
    ok = np.logical_and.reduce([_valid(k) for k in keys])
    codes = [np.asarray(k.indices.fill_null(-1)) for k in keys]
    amounts = np.concatenate([x.led["amount"].to_numpy()[la], x.tra["amount"].to_numpy()[ta]])
    (l_us, l_ok), (t_us, t_ok) = _us(x.led["expected_at"]), _us(x.tra["created"])
    ok &= np.concatenate([l_ok[la], t_ok[ta]])
    pl, pt = _equal_keys([*codes, amounts], ok, len(la))
    sec_l, sec_t = epoch(l_us[la]), epoch(t_us[ta])
    dist = np.abs(sec_t[pt] - sec_l[pl])
    near = dist <= float(window_days) * 86400.0
    pl, pt, dist = pl[near], pt[near], dist[near]
    rank_l = _rank(x.ledger["ledger_payout_id"].take(pa.array(la)))
    rank_t = _rank(x.transfers["transfer_id"].take(pa.array(ta)))
    by_l = np.lexsort((rank_t[pt], dist, pl))  # each ledger row's candidates, closest first
    by_t = np.lexsort((rank_l[pl], dist, pt))
    used_l, used_t = np.zeros(len(la), bool), np.zeros(len(ta), bool)
    taken = np.zeros(len(pl), bool)
    while taken.sum() < min(len(la), len(ta)):
        live = ~used_l[pl] & ~used_t[pt]
        o1, o2 = by_l[live[by_l]], by_t[live[by_t]]
        best = np.zeros(len(pl), np.int8)
        best[o1[_first_of_runs(pl[o1])]] += 1
        best[o2[_first_of_runs(pt[o2])]] += 1
        new = best == 2
        if not new.any():
            break
        taken |= new
        used_l[pl[new]] = used_t[pt[new]] = True
    return ta[pt[taken]], la[pl[taken]]


def _equal_keys(keys: list[np.ndarray], ok: np.ndarray, n_l: int) -> tuple[np.ndarray, np.ndarray]:
    """Every (i, j) whose integer ``keys`` are all equal, ``i`` among the first ``n_l`` rows (the ledger side) and
    ``j`` among the rest (numbered from 0), both ``ok``: rows grouped by their keys, then each ledger row with
    every transfer of its group."""
    _, group = np.unique(np.stack(keys, axis=1), axis=0, return_inverse=True)
    group = np.where(ok, group.ravel(), -1)
    g_l, g_t = group[:n_l], group[n_l:]
    by = np.argsort(g_t, kind="stable")
    lo, hi = np.searchsorted(g_t[by], g_l, "left"), np.searchsorted(g_t[by], g_l, "right")
    count = np.where(g_l >= 0, hi - lo, 0)
    start = np.cumsum(count) - count
    return np.repeat(np.arange(n_l), count), by[np.repeat(lo - start, count) + np.arange(count.sum())]


def _rank(ids: pa.ChunkedArray) -> np.ndarray:
    """Each (distinct) id's rank in byte order."""
    rank = np.empty(len(ids), np.int64)
    rank[pc.sort_indices(ids).to_numpy()] = np.arange(len(ids))
    return rank


def _first_of_runs(keys: np.ndarray) -> np.ndarray:
    """Where each run of equal values in ``keys`` starts, as a boolean mask."""
    first = np.ones(len(keys), bool)
    first[1:] = keys[1:] != keys[:-1]
    return first


@dataclass
class Rows:
    """The result rows (``table``: RESULT_COLUMNS + EXTRA_COLUMNS but reason and action, in that order) and
    what ``match._finish`` needs to write the text of the rows that need it: their positions (``text``: not
    MATCHED, or matched by the fallback), per row the ledger row it pairs with (``l_at``) and its duplicate
    group's size (``dup_n``, 0: none)."""

    table: pa.Table
    text: np.ndarray
    l_at: np.ndarray
    dup_n: np.ndarray
    n_t: int


def rows(x: Inputs, key_l: np.ndarray, p: Pairs, link: np.ndarray, params: dict[str, Any],
         pool: ThreadPoolExecutor) -> Rows:
    """Every transfer in input order with the ledger row it pairs with — its key's, unless it is a duplicate
    group's extra (alone, showing the ledger id as evidence) or paired by the fallback — then every ledger row
    nothing pairs with; classified. ``link``: per transfer, the position of its payout link (-1: none).

    Computed per transfer (the ledger-only rows are MISSING_IN_STRIPE with no transfer columns, appended as
    constant or NULL chunks); columns that are a transfer column as it is are that column, not a copy."""
    n_t, n_led = len(x.tra), len(x.led)
    extra = np.zeros(n_t, bool)
    extra[p.dup_t[p.dup_rk > 1]] = True
    t_l = np.where(extra, -1, key_l)
    t_l[p.fb_t] = p.fb_l
    paired = t_l >= 0
    used = np.zeros(n_led, bool)
    used[t_l[paired]] = True
    lone = np.flatnonzero(~used)
    pad = len(lone)
    l_at = np.concatenate([t_l, lone])  # the ledger row each result row pairs with (-1: none)

    def index(pos: np.ndarray) -> pa.Array:
        return pa.array(pos, mask=pos < 0)

    def then(col: pa.ChunkedArray | pa.Array, rest: pa.Array) -> pa.ChunkedArray:  # transfer rows, then the rest
        chunks = col.chunks if isinstance(col, pa.ChunkedArray) else [col]
        return pa.chunked_array([*chunks, rest.cast(col.type)], col.type)

    def nulls(col: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray:  # a transfer column: NULL on the ledger rows
        return then(col, pa.nulls(pad, col.type))

    l_idx, b_idx = index(l_at), index(np.concatenate([link, np.full(pad, -1)]))
    # the gathers (one cache miss per value where the sides are in different orders) on both cores, next to the
    # arithmetic below; first what the category needs
    taken = {"payout_status": pool.submit(x.links["payout_status"].take, b_idx),
             **{c: pool.submit(_either, x.ledger[c], l_idx, x.transfers[c], n_t) for c in ("destination", "currency")},
             "ledger_payout_id": pool.submit(_ledger_ids, x, key_l, t_l, lone),
             **{c: pool.submit(x.ledger[c].take, l_idx) for c in _LEDGER_OUT},
             **{c: pool.submit(x.links[c].take, b_idx) for c in _LINK_OUT if c != "payout_status"}}

    # amounts, exact in int64 minor units
    t_amount, t_rev = x.tra["amount"].to_numpy(), x.tra["amount_reversed"].to_numpy()
    net = _sub(t_amount, t_rev, "amount - amount_reversed")
    l_amount = _at(x.led["amount"].to_numpy(), l_at)
    diff = _sub(np.where(paired, net, 0), l_amount[:n_t], "stripe_amount - ledger_amount")
    if np.any(diff == np.iinfo(np.int64).min):  # abs() of it overflows
        raise ValueError("stripe_amount - ledger_amount overflows int64 minor units")
    created, created_ok = _us(x.tra["created"])
    arrival, arrival_ok = _us(x.lnk["arrival_date"])
    arrival, arrival_ok = _at(arrival, link), _at(arrival_ok, link, False)
    status = taken["payout_status"].result().slice(0, n_t)
    status = np.asarray(pc.index_in(status, value_set=_STATUS.cast(status.type)).fill_null(-1))
    paid, cend = status == 0, _micros(params["cend"])
    (destination, dest_ne), (currency, cur_ne) = (taken[c].result() for c in ("destination", "currency"))
    dup_n = np.zeros(n_t, np.int64)
    dup_n[p.dup_t] = p.dup_n
    fb = np.zeros(n_t, bool)
    fb[p.fb_t] = True
    code = _category({  # per transfer: the first that holds, in CATEGORY's order (MATCHED if none)
        Category.DUPLICATE_PAYMENT: dup_n >= 2,
        Category.MISSING_IN_LEDGER: ~paired,
        Category.CURRENCY_MISMATCH: cur_ne,
        Category.DESTINATION_MISMATCH: dest_ne,
        Category.REVERSED_FULL: x.tra["reversed"].to_numpy() | ((t_rev > 0) & (t_rev >= t_amount)),
        Category.REVERSED_PARTIAL: t_rev > 0,
        Category.AMOUNT_MISMATCH: np.abs(diff) > int(params["tol"]),
        Category.PAYOUT_FAILED: status >= 1,  # failed, canceled
        Category.TIMING_IN_TRANSIT: (created_ok & (created >= _micros(params["pend"]))) | ~paid
                                    | (arrival_ok & (arrival >= cend)),
        Category.MATCHED_WITHIN_TOLERANCE: diff != 0,
    })
    # 'fallback'; 'key': paired with its ledger row, or a duplicate's extra; 'none': alone (every ledger-only row)
    confidence = np.where(fb, 1, np.where(paired | extra, 0, 2)).astype(np.int8)
    first = np.full(n_t, -1, np.int64)
    first[p.dup_t] = p.dup_first
    got = {c: f.result() for c, f in taken.items()}
    source = x.transfers["source"]
    dash = pa.array(np.full(pad, "—"), pa.large_string())
    table = pa.table({
        "category": then(_CATEGORY_TEXT.take(pa.array(code)),
                         _CATEGORY_TEXT.take(pa.array(np.full(pad, _MISSING_IN_STRIPE, np.int8)))),
        "ledger_payout_id": got["ledger_payout_id"],
        "transfer_id": nulls(x.transfers["transfer_id"]),
        "payout_id": got["payout_id"],
        "studio_id": got["studio_id"],
        "destination": destination,
        "currency": currency,
        "ledger_amount": pa.array(l_amount, mask=l_at < 0),
        "stripe_amount": nulls(pa.array(net)),
        "difference": nulls(pa.array(diff, mask=~(paired & ~cur_ne) | ~_valid(currency)[:n_t])),  # same currency
        "confidence": then(_CONFIDENCE_TEXT.take(pa.array(confidence)),
                           _CONFIDENCE_TEXT.take(pa.array(np.full(pad, 2, np.int8)))),
        "source": then(pc.fill_null(source, "—") if source.null_count else source, dash),
        "run_id": got["run_id"],
        "stripe_currency": nulls(x.transfers["currency"]),
        "duplicate_of": nulls(scatter(dup_n >= 2, x.transfers["transfer_id"].take(pa.array(first[dup_n >= 2])))),
        "transfer_created": nulls(x.transfers["created"]),
        "expected_at": got["expected_at"],
        "payout_status": got["payout_status"],
        "arrival_date": got["arrival_date"],
        "failure_code": got["failure_code"],
        "reached_bank": np.concatenate([paid & (~arrival_ok | (arrival < cend)) & (net > 0), np.zeros(pad, bool)]),
    })
    text = np.flatnonzero(np.concatenate([(code != _MATCHED) | fb, np.ones(pad, bool)]))
    return Rows(table, text, l_at, np.concatenate([dup_n, np.zeros(pad, np.int64)]), n_t)


def _either(lv: pa.ChunkedArray, l_idx: pa.Array, tv: pa.ChunkedArray, n_t: int) -> tuple[pa.ChunkedArray, np.ndarray]:
    """From the ledger's column ``lv``, the ledger row of each result row (``l_idx``, NULL: none) and the
    transfers' column ``tv``: ``coalesce(the ledger's, the transfer's)`` per row, and per transfer row whether
    the two are DISTINCT (NULL-safe; read only where the row is paired). The transfer rows are ``tv`` itself —
    no copy — unless some need the ledger's value (it differs, or the transfer's is NULL): then one sequential
    pass picks either."""
    g = lv.take(l_idx)
    l_ok, t_ok = _valid(g)[:n_t], _valid(tv)
    same = np.asarray(pc.fill_null(pc.equal(g.slice(0, n_t), tv), False), dtype=bool)
    distinct = (l_ok != t_ok) | (l_ok & t_ok & ~same)
    patch = l_ok & distinct  # the ledger's value, not the transfer's
    head = pc.if_else(pa.array(patch), g.slice(0, n_t), tv.cast(g.type)) if patch.any() else tv.cast(g.type)
    return pa.chunked_array([*head.chunks, *g.slice(n_t).chunks], g.type), distinct


def _ledger_ids(x: Inputs, key_l: np.ndarray, t_l: np.ndarray, lone: np.ndarray) -> pa.ChunkedArray:
    """The ledger id each row shows: a transfer keyed to a ledger row (paired with it, or a duplicate's extra
    showing it as evidence) shows its key — equal to the ledger row's id byte for byte, as the key join matched
    them — so where the key is the transfer's own ``ledger_payout_id`` (not NULL or empty) that column is used
    as it is: no gather by position, which costs a cache miss a row when the two sides are in different orders.
    The ledger's id is gathered where the key is the ``transfer_group``, where the fallback paired the row, and
    for the ledger-only rows; NULL on the transfers paired with nothing."""
    ids, meta = x.ledger["ledger_payout_id"], x.transfers["ledger_payout_id"].cast(pa.large_string())
    own = (key_l >= 0) & _valid(meta) & np.asarray(pc.fill_null(pc.not_equal(meta, ""), False), dtype=bool)
    shows = np.where(key_l >= 0, key_l, t_l)  # the ledger row whose id a transfer row shows (-1: none)
    need = ~own & (shows >= 0)
    head = pc.if_else(pa.array(own), meta, scatter(need, ids.take(pa.array(shows[need])))) if need.any() else \
        pc.if_else(pa.array(own), meta, pa.scalar(None, pa.large_string()))
    tail = ids.take(pa.array(lone)).cast(pa.large_string())
    return pa.chunked_array([*(head.chunks if isinstance(head, pa.ChunkedArray) else [head]), *tail.chunks])


def _category(conditions: dict[Category, np.ndarray]) -> np.ndarray:
    """Per transfer row, the index in ``CATEGORY`` of the first category whose condition holds (``MATCHED`` if
    none); ``conditions``: every category a transfer row can take but MATCHED, in ``CATEGORY``'s order."""
    assert list(conditions) == CATEGORY[1:-1], "conditions out of precedence order"
    code = np.full(len(conditions[Category.DUPLICATE_PAYMENT]), _MATCHED, np.int8)
    for category, holds in reversed(conditions.items()):
        code[holds] = CATEGORY.index(category)
    return code


def scatter(mask: np.ndarray, values: pa.Array | pa.ChunkedArray) -> pa.LargeStringArray:
    """``len(mask)`` strings: ``values`` in order at the ``mask``ed slots, NULL elsewhere — built from
    ``values``' own text buffer and new offsets, so nothing is copied string by string."""
    mask = np.asarray(mask, dtype=bool)
    n, at = len(mask), np.flatnonzero(mask)
    values = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    values = values.cast(pa.large_string())
    offsets = np.frombuffer(values.buffers()[1], np.int64, len(values) + 1, values.offset * 8)
    lengths = np.zeros(n + 1, np.int64)
    lengths[at + 1] = np.diff(offsets)
    valid = np.zeros(n, bool)
    valid[at] = _valid(values)
    return pa.LargeStringArray.from_buffers(n, pa.py_buffer(np.cumsum(lengths) + offsets[0]),
                                            values.buffers()[2] or pa.py_buffer(b""),
                                            pa.py_buffer(np.packbits(valid, bitorder="little")))


def _valid(a: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """Where ``a`` is not NULL, as a numpy bool array."""
    return np.asarray(a.is_valid(), dtype=bool) if a.null_count else np.ones(len(a), bool)


def _us(s: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """A ``datetime64[us, UTC]`` column (``match._conform``) as int64 microseconds since the epoch, and where it
    is not NaT."""
    v = s.array.asi8
    return v, v != np.iinfo(np.int64).min


def _micros(ts: datetime) -> int:
    return (ts - _EPOCH) // _US


def epoch(us: np.ndarray) -> np.ndarray:
    """DuckDB's ``epoch()`` of a TIMESTAMPTZ (ICU: the whole milliseconds, then the microseconds), bit for bit:
    the fallback orders by these doubles, so its ties and its window are those of the SQL it replaced."""
    return (us // 1000).astype(np.float64) / 1000.0 + (us % 1000).astype(np.float64) / 1e6


def _at(values: np.ndarray, pos: np.ndarray, fill: Any = 0) -> np.ndarray:
    """``values[pos]``, ``fill`` where ``pos`` is -1 (no row)."""
    if not len(values):
        return np.full(len(pos), fill, dtype=values.dtype)
    out = values[pos]  # -1 reads the last value: overwritten below
    out[pos < 0] = fill
    return out


def _sub(a: np.ndarray, b: np.ndarray, what: str) -> np.ndarray:
    """``a - b`` in int64, raising where it overflows (DuckDB's BIGINT arithmetic raised there too) — checked
    value by value only when some magnitude reaches 2**62 (below, no difference of two can overflow)."""
    d = a - b
    if not all(len(v) == 0 or (v.min() > -(2**62) and v.max() < 2**62) for v in (a, b)) \
            and np.any(((a ^ b) & (a ^ d)) < 0):
        raise ValueError(f"{what} overflows int64 minor units")
    return d
