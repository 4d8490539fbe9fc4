"""Reason and suggested action of the result rows that need text (:mod:`payops.reconcile.match`), in pyarrow.

``texts(brk, params, day)``: ``brk`` holds, per row that needs text (not MATCHED, or matched by the fallback),
its result, ledger and transfer columns (``match._breaks``; names in ``match_sql.BRK_*``). The rows are taken
category by category, and each category's texts are put together column-wise (``_cat``: NULL if any part is
NULL, as SQL's ``||``), then put back in ``brk``'s order. The rows MATCHED by key need no text: NULL.

Why not SQL: DuckDB spent ~10 ms binding the long reason/action CASEs whatever the row count (a sixth of a
1,000-row match), and ~35 ms executing them on the ~13k text rows of a 1M-row match; here a category's
template costs a few pyarrow calls over its rows only.

Formatting is DuckDB's, exactly: an amount is ``fmt`` — the exact decimal of the minor units by the currency's
exponent (``cexp``: 0, 2 or 3), a space, the currency — ``'?'`` when the amount is NULL; a date is
``strftime('%Y-%m-%d')`` in UTC, ``'?'`` when NULL. ``tests/reconcile/test_match_text.py`` holds both against
DuckDB.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from payops.money import CURRENCY_EXPONENT

FALLBACK_NOTE = "matched on destination + amount + date: no ledger id in metadata"

_STR = pa.large_string()
_ZERO = "|" + "|".join(c for c, e in sorted(CURRENCY_EXPONENT.items()) if e == 0) + "|"
_THREE = "|" + "|".join(c for c, e in sorted(CURRENCY_EXPONENT.items()) if e == 3) + "|"
#: timestamps pyarrow's strftime formats as DuckDB does (years 1-9999, microseconds since the epoch); others
#: (never seen in practice) are formatted by DuckDB itself (``day``)
_DAY_RANGE = (-62_135_596_800_000_000, 253_402_300_799_999_999)

#: ``brk`` (``match._breaks``), one row per result row that needs text: the names the templates read → the
#: columns of the result row, of the ledger row it pairs with (NULL: none), of its transfer (NULL: none), as
#: they are; and ``dup_n``, the row's duplicate group's size (NULL: none)
BRK_RESULT = {"net": "stripe_amount", "l_amount": "ledger_amount", "t_cur": "stripe_currency",
              "created": "transfer_created", "payout_id": "payout_id", "payout_status": "payout_status",
              "arrival_date": "arrival_date", "failure_code": "failure_code", "confidence": "confidence",
              "category": "category", "dup_first": "duplicate_of"}
BRK_LEDGER = {"lid": "ledger_payout_id", "l_dest": "destination", "l_cur": "currency",
              "l_manual": "manual_transfer_id", "l_ledger_tid": "ledger_transfer_id"}
BRK_TRANSFERS = {"tid": "transfer_id", "t_lpid": "ledger_payout_id", "t_group": "transfer_group",
                 "t_amount": "amount", "t_rev": "amount_reversed", "t_dest": "destination",
                 "destination_payment": "destination_payment", "source": "source"}

Part = pa.Array | pa.Scalar | str
Day = Callable[[pa.Array], pa.Array]


def cexp(currency: str | None) -> int:
    """The currency's exponent as ``match_sql``'s ``cexp`` macro had it: 0 or 3 when listed (by substring,
    ``'|' || c || '|'``), else 2 (also for NULL)."""
    if currency is None:
        return 2
    return 0 if f"|{currency}|" in _ZERO else 3 if f"|{currency}|" in _THREE else 2


def fmt(amount: pa.Array, currency: pa.Array, exp: np.ndarray) -> pa.Array:
    """``'875.50 CAD'``: the exact decimal of int64 minor units with ``exp`` digits after the point (none for 0),
    as DuckDB prints ``(a * 0.01)::VARCHAR`` / ``a::VARCHAR``; ``'?'`` for a NULL amount, NULL for a NULL currency."""
    a = pc.fill_null(amount, 0).to_numpy(zero_copy_only=False).astype(np.int64)
    neg = a < 0
    mag = np.where(neg, (~a).astype(np.uint64) + np.uint64(1), a.astype(np.uint64))  # |a|, INT64_MIN too
    scale = (np.uint64(10) ** exp.astype(np.uint64)).astype(np.uint64)
    whole, frac = mag // scale, mag % scale
    digits = pc.utf8_slice_codeunits(pa.array(frac + scale).cast(_STR), 1)  # 10^e + frac: zero-padded, 1 dropped
    text = _cat(pa.array(np.where(neg, "-", ""), _STR), pa.array(whole).cast(_STR),
                pa.array(np.where(exp > 0, ".", ""), _STR), digits, " ", currency)
    return pc.if_else(amount.is_null(), pa.scalar("?", _STR), text)


def day_in_range(ts: pa.Array) -> np.ndarray:
    """Where ``ts`` (timestamp[us, UTC]) is one pyarrow formats as DuckDB does."""
    us = pc.fill_null(ts.cast(pa.int64()), 0).to_numpy(zero_copy_only=False)
    return (us >= _DAY_RANGE[0]) & (us <= _DAY_RANGE[1])


def _text(p: Part) -> pa.Array | pa.Scalar:
    return pa.scalar(p, _STR) if isinstance(p, str) else p if p.type == _STR else p.cast(_STR)


def _cat(*parts: Part) -> pa.Array:
    """SQL ``a || b || ...`` over arrays (and literals): NULL where any part is NULL."""
    return pc.binary_join_element_wise(*map(_text, parts), pa.scalar("", _STR))


def _when(cond: pa.Array, then: Part, other: Part) -> pa.Array:
    """SQL ``CASE WHEN cond THEN then ELSE other END`` (a NULL condition takes ``other``)."""
    return pc.if_else(pc.fill_null(cond, False), _text(then), _text(other))


def _or(value: pa.Array, default: str) -> pa.Array:
    """SQL ``coalesce(value, default)``."""
    return pc.fill_null(_text(value), default)


def _nullif_empty(value: pa.Array) -> pa.Array:
    return pc.if_else(pc.equal(value, ""), pa.scalar(None, value.type), value)


class _Rows:
    """The rows ``at`` of ``brk`` (one category's): its columns by name (``r.tid``, gathered when first read —
    a template reads a few of them), and what the SQL derived from them."""

    def __init__(self, brk: pa.Table, at: np.ndarray, params: dict[str, Any], day: Day) -> None:
        self._t, self._at, self._p, self._day = brk, pa.array(at), params, day
        self.n = len(at)

    def __getattr__(self, name: str) -> pa.Array:  # a column of ``brk`` (kept: read once)
        if name.startswith("_") or name not in self._t.column_names:
            raise AttributeError(name)
        value = self._t[name].take(self._at).combine_chunks()
        setattr(self, name, value)
        return value

    def const(self, text: str) -> pa.Array:
        return pa.array([text] * self.n, _STR)

    def param(self, name: str) -> Any:
        return self._p[name]

    @cached_property
    def k(self) -> pa.Array:  # the transfer's key: its ledger_payout_id metadata, else its transfer_group
        return pc.coalesce(_nullif_empty(self.t_lpid), _nullif_empty(self.t_group))

    @cached_property
    def recorded(self) -> pa.Array:  # coalesce(manual_transfer_id, ledger_transfer_id), empty ids as NULL
        return pc.coalesce(_nullif_empty(self.l_manual), _nullif_empty(self.l_ledger_tid))

    def _exp(self, currency: pa.Array) -> np.ndarray:
        values = currency.to_pylist()
        known = {c: cexp(c) for c in set(values)}
        return np.array([known[c] for c in values], dtype=np.int64)

    @cached_property
    def e_t(self) -> np.ndarray:
        return self._exp(self.t_cur)

    @cached_property
    def e_l(self) -> np.ndarray:
        return self._exp(self.l_cur)

    def _l(self, amount: pa.Array) -> pa.Array:  # an amount in the ledger's currency
        return fmt(amount, self.l_cur, self.e_l)

    @cached_property
    def f_net(self) -> pa.Array:
        return fmt(self.net, self.t_cur, self.e_t)

    @cached_property
    def f_t(self) -> pa.Array:
        return fmt(self.t_amount, self.t_cur, self.e_t)

    @cached_property
    def f_rev(self) -> pa.Array:
        return fmt(pc.fill_null(self.t_rev, 0), self.t_cur, self.e_t)

    @cached_property
    def f_l(self) -> pa.Array:
        return self._l(self.l_amount)

    @cached_property
    def f_diff(self) -> pa.Array:  # the amounts fit (match_rows raised otherwise)
        return self._l(pc.subtract(self.net, self.l_amount))

    @cached_property
    def f_short(self) -> pa.Array:
        return self._l(pc.subtract(self.l_amount, self.net))

    @cached_property
    def f_tol(self) -> pa.Array:
        return self._l(pa.array(np.full(self.n, int(self.param("tol")), np.int64)))

    def d(self, ts: pa.Array) -> pa.Array:
        return _or(self._day(ts), "?")


Texts = tuple[pa.Array, pa.Array]


def _within_tolerance(r: _Rows) -> Texts:
    return (_cat("Stripe moved ", r.f_net, ", ledger says ", r.f_l, ": difference ", r.f_diff, " within tolerance ",
                 r.f_tol),
            r.const("none: within tolerance"))


def _missing_in_stripe(r: _Rows) -> Texts:
    named = r.recorded.is_valid()
    return (_when(named, _cat("ledger records transfer ", r.recorded, " for ", r.lid,
                              " but Stripe has no such transfer in the period"),
                  _cat("no Stripe transfer for ledger payout ", r.lid, " (", r.f_l, " to ", _or(r.l_dest, "?"), ")")),
            _when(named, _cat("look up ", r.recorded, " in Stripe; if it never happened, ",
                              "run the manual payout SOP for ", r.lid, " (", r.f_l, ")"),
                  _cat("run the manual payout SOP for ", r.lid, " (", r.f_l, " to ", _or(r.l_dest, "?"), ")")))


def _missing_in_ledger(r: _Rows) -> Texts:
    return (_cat("Stripe transfer ", r.tid, " (", r.f_t, " to ", _or(r.t_dest, "?"), ", ", r.source,
                 ") has no ledger payout",
                 _when(r.k.is_valid(), _cat(" (its ledger id ", r.k, " is not in the ledger for the period)"),
                       " and no ledger id in metadata")),
            _cat("find the ledger payout for ", r.tid, " and record it, or reverse ", r.tid, " if it was not owed"))


def _duplicate(r: _Rows) -> Texts:
    pairs = r.lid.is_valid()
    return (_when(pairs, _cat("ledger payout ", r.lid, " was paid ", r.dup_n.cast(_STR), " times; ", r.tid, " (",
                              r.source, ") is the one the ledger pairs with"),
                  _cat(r.tid, " (", r.source, ", ", r.f_net, ") duplicates ", r.dup_first, " for ledger payout ",
                       r.k)),
            _when(pairs, _cat("keep ", r.tid, "; reverse the ", pc.subtract(r.dup_n, 1).cast(_STR),
                              " duplicate transfer(s) of ", r.lid),
                  _cat("reverse ", r.tid, " (duplicate of ", r.dup_first, ")")))


def _currency(r: _Rows) -> Texts:
    return (_cat("ledger expects ", r.f_l, " but ", r.tid, " moved ", r.f_net),
            _cat("reverse ", r.tid, " and re-pay ", r.lid, " in ", r.l_cur))


def _destination(r: _Rows) -> Texts:
    return (_cat(r.tid, " went to ", _or(r.t_dest, "?"), " but the ledger destination is ", _or(r.l_dest, "?")),
            _cat("confirm the studio's account; reverse ", r.tid, " from ", _or(r.t_dest, "?"), " and re-pay ", r.lid,
                 " to ", _or(r.l_dest, "?")))


def _reversed_full(r: _Rows) -> Texts:
    return (_cat(r.tid, " was fully reversed (", r.f_rev, "): nothing reached the studio for ", r.lid),
            _cat("re-pay ", r.lid, " (", r.f_l, ") with the manual payout SOP, ", "or cancel it in the ledger"))


def _reversed_partial(r: _Rows) -> Texts:
    return (_cat(r.f_rev, " of ", r.tid, " was reversed: the studio kept ", r.f_net, ", the ledger says ", r.f_l),
            _cat("pay the remaining ", r.f_short, " for ", r.lid, " or adjust the ledger"))


def _amount(r: _Rows) -> Texts:
    return (_cat("Stripe moved ", r.f_net, ", ledger says ", r.f_l, ": difference ", r.f_diff, " over tolerance ",
                 r.f_tol),
            _when(pc.less(r.net, r.l_amount),
                  _cat("pay the shortfall ", r.f_short, " for ", r.lid, " or correct the ledger"),
                  _cat("recover the overpayment ", r.f_diff, " (partial reversal of ", r.tid,
                       ") or correct the ledger")))


def _payout_failed(r: _Rows) -> Texts:
    return (_cat("payout ", r.payout_id, " of ", r.tid, " to the studio's bank ", r.payout_status, " (",
                 _or(r.failure_code, "no failure code"), "): the money is back on ", _or(r.t_dest, "?")),
            _cat("ask the studio to update bank details; re-pay after payout ", r.payout_id, " failed (",
                 pc.coalesce(r.failure_code, r.payout_status), ")"))


def _timing(r: _Rows) -> Texts:
    late = pc.greater_equal(r.created, pa.scalar(r.param("pend"), r.created.type))
    status = r.payout_status
    reason = _when(late, _cat(r.tid, " was created ", r.d(r.created), ", after the period end ", r.param("pto")),
                   _when(status.is_null(), _cat("no payout has swept ", pc.coalesce(r.destination_payment, r.tid),
                                                " yet: the money is still on ", _or(r.t_dest, "?"), "'s balance"),
                         _when(pc.not_equal(status, "paid"),
                               _cat("payout ", r.payout_id, " is ", status, ", arrival ", r.d(r.arrival_date)),
                               _cat("payout ", r.payout_id, " arrives ", r.d(r.arrival_date), ", after the cut-off ",
                                    r.param("cto")))))
    coming = pc.and_(status.is_valid(), pc.invert(pc.is_in(status, pa.array(["failed", "canceled"]))))
    return (reason, _when(coming, _cat("wait for arrival on ", r.d(r.arrival_date), "; check again in the next period"),
                          _cat("wait for the studio's next payout; check again after ", r.param("cto"),
                               " (next period)")))


def _matched(r: _Rows) -> Texts:  # by the fallback (MATCHED by key needs no text)
    return (_when(pc.equal(r.confidence, "fallback"), FALLBACK_NOTE, pa.scalar(None, _STR)),
            pa.nulls(r.n, _STR))


_TEMPLATES: dict[str, Callable[[_Rows], Texts]] = {
    "MATCHED": _matched,
    "MATCHED_WITHIN_TOLERANCE": _within_tolerance,
    "MISSING_IN_STRIPE": _missing_in_stripe,
    "MISSING_IN_LEDGER": _missing_in_ledger,
    "DUPLICATE_PAYMENT": _duplicate,
    "CURRENCY_MISMATCH": _currency,
    "DESTINATION_MISMATCH": _destination,
    "REVERSED_FULL": _reversed_full,
    "REVERSED_PARTIAL": _reversed_partial,
    "AMOUNT_MISMATCH": _amount,
    "PAYOUT_FAILED": _payout_failed,
    "TIMING_IN_TRANSIT": _timing,
}


def texts(brk: pa.Table, params: dict[str, Any], day: Day) -> Texts:
    """(reason, suggested_action) per row of ``brk``, in its order. A reason that is not MATCHED's ends in
    ``' (<FALLBACK_NOTE>)'`` when the row was matched by the fallback. ``day``: ``strftime(ts, '%Y-%m-%d')`` in
    UTC for the timestamps pyarrow does not format as DuckDB (``day_in_range``)."""
    category = pc.dictionary_encode(brk["category"].combine_chunks())
    code, names = np.asarray(category.indices.fill_null(-1)), category.dictionary.to_pylist()
    order, reasons, actions = [], [], []
    for name, template in _TEMPLATES.items():
        at = np.flatnonzero(code == names.index(name)) if name in names else []
        if not len(at):
            continue
        rows = _Rows(brk, at, params, lambda ts: _day(ts, day))
        reason, action = template(rows)
        if name != "MATCHED":
            reason = _cat(reason, _when(pc.equal(rows.confidence, "fallback"), f" ({FALLBACK_NOTE})", ""))
        order.append(at)
        reasons.append(reason.cast(_STR))
        actions.append(action.cast(_STR))
    n = brk.num_rows
    if not order:
        return pa.nulls(n, _STR), pa.nulls(n, _STR)
    at = np.concatenate(order)
    if len(at) < n:  # a category no template knows (none): NULL, as the SQL CASE had it
        rest = np.setdiff1d(np.arange(n), at)
        at = np.concatenate([at, rest])
        reasons.append(pa.nulls(len(rest), _STR))
        actions.append(pa.nulls(len(rest), _STR))
    back = np.empty(n, np.int64)
    back[at] = np.arange(n)
    return (pa.concat_arrays(reasons).take(pa.array(back)), pa.concat_arrays(actions).take(pa.array(back)))


def _day(ts: pa.Array, day: Day) -> pa.Array:
    """``strftime(ts, '%Y-%m-%d')`` as DuckDB (UTC): pyarrow's for years 1-9999, ``day``'s for any other."""
    ok = day_in_range(ts)
    out = pc.strftime(pc.if_else(pa.array(ok), ts, pa.scalar(0, pa.int64()).cast(ts.type)),
                      format="%Y-%m-%d").cast(_STR)  # NULL stays NULL
    odd = np.flatnonzero(~ok & np.asarray(ts.is_valid(), dtype=bool))
    if not len(odd):
        return out
    mask = np.zeros(len(ts), bool)
    mask[odd] = True
    return pc.replace_with_mask(out, pa.array(mask), day(ts.take(pa.array(odd))).cast(_STR))
