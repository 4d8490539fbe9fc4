"""The SQL of :mod:`payops.reconcile.match` (DuckDB): views, the key join, the payout-link join.

``views()`` are created once per database. The statements, on a cursor with ``ledger_in``,
``transfers_in``, ``links_in`` registered (each with its row position ``_pos``):

1. ``STRUCTURE``: the key join on row positions only (which ledger row each transfer's key names) and the
   transfer ids' hashes — ``match`` counts them (numpy) for the uniqueness checks and the *candidates*, and
   keeps the positions: this is the only key join; ``PAYOUT_LINKS`` (transfer → payout link, by position)
   runs next to it on a cursor of its own;
2. (not SQL) ``match_rows``: duplicate ranks and the fallback on the candidates, then the result rows put
   together by position and classified;
3. (not SQL) ``match_text``: reason and action of the rows that need one.

Candidates: the ledger rows no transfer keys to, the transfers whose key names no ledger row (or that have
none), and every ledger row two or more transfers key to with those transfers — whole key groups, exactly
(from the positions ``STRUCTURE`` returns, not from hashes).
"""

from __future__ import annotations

_KEY = "coalesce(nullif(ledger_payout_id, ''), nullif(transfer_group, ''))"


def views() -> list[str]:
    """``L``/``T`` over ``ledger_in``/``transfers_in`` (the key join's sides).

    Created once per database (``match._database``): a view names the frames, and each cursor reads the frames
    it registered under those names."""
    return [
        """CREATE OR REPLACE VIEW L AS SELECT ledger_payout_id AS lid, _pos AS lpos FROM ledger_in""",
        f"""CREATE OR REPLACE VIEW T AS SELECT transfer_id AS tid, {_KEY} AS k, _pos AS tpos FROM transfers_in""",
    ]


#: every pair the key join makes, by row position (-1: none), and each row's transfer id hash (hash(NULL) on
#: ledger rows no transfer keys to)
STRUCTURE = """SELECT coalesce(lpos, -1) AS lp, coalesce(tpos, -1) AS tp, hash(tid) AS ht
FROM (SELECT lid, lpos FROM L) l FULL OUTER JOIN (SELECT k, tid, tpos FROM T) t ON l.lid = t.k"""

#: every (transfer, payout link) pair sharing a destination payment, by row position; a transfer on two rows
#: had its funds swept by two payouts (Stripe re-sweeps what a failed payout returned): ``match`` picks one
PAYOUT_LINKS = """SELECT t._pos AS tp, b._pos AS bp
FROM (SELECT destination_payment, _pos FROM transfers_in WHERE destination_payment IS NOT NULL) t
JOIN (SELECT destination_payment, _pos FROM links_in WHERE destination_payment IS NOT NULL) b
    ON b.destination_payment = t.destination_payment"""

#: of two payouts sweeping one destination payment, the one that counts: paid over in transit over pending over
#: failed/canceled, then the latest arrival, then the payout id
PAYOUT_RANK = {"paid": 0, "in_transit": 1, "pending": 2}
