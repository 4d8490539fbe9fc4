"""The SQL of :mod:`payops.reconcile.match` (DuckDB): views, the key join, the payout-link join, the texts.

``macros()`` and ``views()`` are created once per database. The statements, on a cursor with ``ledger_in``,
``transfers_in``, ``links_in`` registered (each with its row position ``_pos``):

1. ``STRUCTURE``: the key join on row positions only (which ledger row each transfer's key names) and the
   transfer ids' hashes — ``match`` counts them (numpy) for the uniqueness checks and the *candidates*, and
   keeps the positions: this is the only key join; ``PAYOUT_LINKS`` (transfer → payout link, by position)
   runs next to it on a cursor of its own;
2. (not SQL) ``match_rows``: duplicate ranks and the fallback on the candidates, then the result rows put
   together by position and classified;
3. ``BREAKS_SQL``: reason and action of the rows that need one (``brk``: not MATCHED, or matched by the
   fallback; their result, ledger and transfer columns, ``match._breaks``).

Candidates: the ledger rows no transfer keys to, the transfers whose key names no ledger row (or that have
none), and every ledger row two or more transfers key to with those transfers — whole key groups, exactly
(from the positions ``STRUCTURE`` returns, not from hashes).
"""

from __future__ import annotations

from payops.money import CURRENCY_EXPONENT


def macros() -> list[str]:
    zero = "|".join(c for c, e in sorted(CURRENCY_EXPONENT.items()) if e == 0)
    three = "|".join(c for c, e in sorted(CURRENCY_EXPONENT.items()) if e == 3)
    return [
        # contains() on a string, not IN (...): DuckDB rewrites IN lists (and list_contains) into mark joins
        # evaluated for every row, even inside a CASE branch no row takes
        f"CREATE OR REPLACE MACRO cexp(c) AS CASE WHEN contains('|{zero}|', '|' || c || '|') THEN 0"
        f" WHEN contains('|{three}|', '|' || c || '|') THEN 3 ELSE 2 END",
        # exact decimal string of minor units, e = cexp(c) (computed once per row): fmt(87550, 'CAD', 2) = '875.50 CAD'
        # (BIGINT * 0.01 is a DECIMAL(22,2): exact, and its text keeps the trailing zeros)
        """CREATE OR REPLACE MACRO fmt(a, c, e) AS CASE WHEN a IS NULL THEN '?' WHEN e = 0 THEN a::VARCHAR || ' ' || c
           WHEN e = 3 THEN (a * 0.001)::VARCHAR || ' ' || c ELSE (a * 0.01)::VARCHAR || ' ' || c END""",
        "CREATE OR REPLACE MACRO d(ts) AS coalesce(strftime(ts, '%Y-%m-%d'), '?')",
    ]


_KEY = "coalesce(nullif(ledger_payout_id, ''), nullif(transfer_group, ''))"


def views() -> list[str]:
    """``L``/``T`` over ``ledger_in``/``transfers_in`` (the key join's sides).

    Created once per database (``match._database``), like the macros: a view names the frames, and each
    cursor reads the frames it registered under those names."""
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

FALLBACK_NOTE = "matched on destination + amount + date: no ledger id in metadata"

#: formatted amounts the reason/action texts use (``fmt`` once per row, not once per mention)
AMOUNTS = {"f_net": "fmt(net, t_cur, e_t)", "f_l": "fmt(l_amount, l_cur, e_l)",
           "f_diff": "fmt(net - l_amount, l_cur, e_l)", "f_short": "fmt(l_amount - net, l_cur, e_l)",
           "f_tol": "fmt($tol, l_cur, e_l)", "f_t": "fmt(t_amount, t_cur, e_t)",
           "f_rev": "fmt(amount_reversed, t_cur, e_t)"}

#: the reason of a row that needs one: not MATCHED, or MATCHED by the fallback (MATCHED by key: none, NULL)
REASON_SQL = f"""CASE WHEN category = 'MATCHED' THEN CASE WHEN confidence = 'fallback' THEN '{FALLBACK_NOTE}' END
    ELSE CASE category
    WHEN 'MATCHED_WITHIN_TOLERANCE' THEN 'Stripe moved ' || f_net || ', ledger says ' || f_l || ': difference '
        || f_diff || ' within tolerance ' || f_tol
    WHEN 'MISSING_IN_STRIPE' THEN CASE WHEN coalesce(manual_transfer_id, ledger_transfer_id) IS NOT NULL
        THEN 'ledger records transfer ' || coalesce(manual_transfer_id, ledger_transfer_id) || ' for ' || lid
             || ' but Stripe has no such transfer in the period'
        ELSE 'no Stripe transfer for ledger payout ' || lid || ' (' || f_l || ' to ' || coalesce(l_dest, '?') || ')'
        END
    WHEN 'MISSING_IN_LEDGER' THEN 'Stripe transfer ' || tid || ' (' || f_t || ' to ' || coalesce(t_dest, '?') || ', '
        || source || ') has no ledger payout'
        || CASE WHEN k IS NOT NULL THEN ' (its ledger id ' || k || ' is not in the ledger for the period)'
           ELSE ' and no ledger id in metadata' END
    WHEN 'DUPLICATE_PAYMENT' THEN CASE WHEN lid IS NOT NULL
        THEN 'ledger payout ' || lid || ' was paid ' || dup_n::VARCHAR || ' times; ' || tid || ' (' || source
             || ') is the one the ledger pairs with'
        ELSE tid || ' (' || source || ', ' || f_net || ') duplicates ' || dup_first || ' for ledger payout ' || k END
    WHEN 'CURRENCY_MISMATCH' THEN 'ledger expects ' || f_l || ' but ' || tid || ' moved ' || f_net
    WHEN 'DESTINATION_MISMATCH' THEN tid || ' went to ' || coalesce(t_dest, '?') || ' but the ledger destination is '
        || coalesce(l_dest, '?')
    WHEN 'REVERSED_FULL' THEN tid || ' was fully reversed (' || f_rev || '): nothing reached the studio for ' || lid
    WHEN 'REVERSED_PARTIAL' THEN f_rev || ' of ' || tid || ' was reversed: the studio kept ' || f_net
        || ', the ledger says ' || f_l
    WHEN 'AMOUNT_MISMATCH' THEN 'Stripe moved ' || f_net || ', ledger says ' || f_l || ': difference ' || f_diff
        || ' over tolerance ' || f_tol
    WHEN 'PAYOUT_FAILED' THEN 'payout ' || payout_id || ' of ' || tid || ' to the studio''s bank ' || payout_status
        || ' (' || coalesce(failure_code, 'no failure code') || '): the money is back on ' || coalesce(t_dest, '?')
    WHEN 'TIMING_IN_TRANSIT' THEN CASE
        WHEN created >= $pend THEN tid || ' was created ' || d(created) || ', after the period end ' || $pto
        WHEN payout_status IS NULL THEN 'no payout has swept ' || coalesce(destination_payment, tid)
             || ' yet: the money is still on ' || coalesce(t_dest, '?') || '''s balance'
        WHEN payout_status <> 'paid'
        THEN 'payout ' || payout_id || ' is ' || payout_status || ', arrival ' || d(arrival_date)
        ELSE 'payout ' || payout_id || ' arrives ' || d(arrival_date) || ', after the cut-off ' || $cto END
    END || CASE WHEN confidence = 'fallback' THEN ' ({FALLBACK_NOTE})' ELSE '' END END"""

#: the suggested action of a row that is not MATCHED (NULL on MATCHED rows: nothing to do)
ACTION_SQL = """CASE category
    WHEN 'MATCHED_WITHIN_TOLERANCE' THEN 'none: within tolerance'
    WHEN 'MISSING_IN_STRIPE' THEN CASE WHEN coalesce(manual_transfer_id, ledger_transfer_id) IS NOT NULL
        THEN 'look up ' || coalesce(manual_transfer_id, ledger_transfer_id) || ' in Stripe; if it never happened, '
             || 'run the manual payout SOP for ' || lid || ' (' || f_l || ')'
        ELSE 'run the manual payout SOP for ' || lid || ' (' || f_l || ' to ' || coalesce(l_dest, '?') || ')' END
    WHEN 'MISSING_IN_LEDGER' THEN 'find the ledger payout for ' || tid || ' and record it, or reverse ' || tid
        || ' if it was not owed'
    WHEN 'DUPLICATE_PAYMENT' THEN CASE WHEN lid IS NOT NULL
        THEN 'keep ' || tid || '; reverse the ' || (dup_n - 1)::VARCHAR || ' duplicate transfer(s) of ' || lid
        ELSE 'reverse ' || tid || ' (duplicate of ' || dup_first || ')' END
    WHEN 'CURRENCY_MISMATCH' THEN 'reverse ' || tid || ' and re-pay ' || lid || ' in ' || l_cur
    WHEN 'DESTINATION_MISMATCH' THEN 'confirm the studio''s account; reverse ' || tid || ' from '
        || coalesce(t_dest, '?') || ' and re-pay ' || lid || ' to ' || coalesce(l_dest, '?')
    WHEN 'REVERSED_FULL' THEN 're-pay ' || lid || ' (' || f_l || ') with the manual payout SOP, '
        || 'or cancel it in the ledger'
    WHEN 'REVERSED_PARTIAL' THEN 'pay the remaining ' || f_short || ' for ' || lid || ' or adjust the ledger'
    WHEN 'AMOUNT_MISMATCH' THEN CASE WHEN net < l_amount
        THEN 'pay the shortfall ' || f_short || ' for ' || lid || ' or correct the ledger'
        ELSE 'recover the overpayment ' || f_diff || ' (partial reversal of ' || tid || ') or correct the ledger' END
    WHEN 'PAYOUT_FAILED' THEN 'ask the studio to update bank details; re-pay after payout ' || payout_id
        || ' failed (' || coalesce(failure_code, payout_status) || ')'
    WHEN 'TIMING_IN_TRANSIT' THEN CASE
        WHEN payout_status IS NOT NULL AND payout_status NOT IN ('failed', 'canceled')
        THEN 'wait for arrival on ' || d(arrival_date) || '; check again in the next period'
        ELSE 'wait for the studio''s next payout; check again after ' || $cto || ' (next period)' END
    END"""


#: ``brk``, one row per result row that needs text (``match._breaks``): the names the CASEs read → the columns
#: of the result row, of the ledger row it pairs with (NULL: none), of its transfer (NULL: none), as they are —
#: ``BREAKS_SQL`` derives what the views did (the key, the empty ids as NULL)
BRK_RESULT = {"net": "stripe_amount", "l_amount": "ledger_amount", "t_cur": "stripe_currency",
              "created": "transfer_created", "payout_id": "payout_id", "payout_status": "payout_status",
              "arrival_date": "arrival_date", "failure_code": "failure_code", "confidence": "confidence",
              "category": "category", "dup_first": "duplicate_of"}  # and dup_n, the duplicate group's size
BRK_LEDGER = {"lid": "ledger_payout_id", "l_dest": "destination", "l_cur": "currency",
              "l_manual": "manual_transfer_id", "l_ledger_tid": "ledger_transfer_id"}
BRK_TRANSFERS = {"tid": "transfer_id", "t_lpid": "ledger_payout_id", "t_group": "transfer_group",
                 "t_amount": "amount", "t_rev": "amount_reversed", "t_dest": "destination",
                 "destination_payment": "destination_payment", "source": "source"}

#: reason and action of the result rows that need text, in ``brk``'s order (a projection: insertion order kept)
BREAKS_SQL = f"""
WITH k0 AS (
    SELECT *, {_KEY.replace("ledger_payout_id", "t_lpid").replace("transfer_group", "t_group")} AS k,
        nullif(l_manual, '') AS manual_transfer_id, nullif(l_ledger_tid, '') AS ledger_transfer_id,
        coalesce(t_rev, 0) AS amount_reversed, cexp(t_cur) AS e_t, cexp(l_cur) AS e_l
    FROM brk
), k AS (
    SELECT *, {", ".join(f"{v} AS {n}" for n, v in AMOUNTS.items())} FROM k0
)
SELECT {REASON_SQL} AS reason, {ACTION_SQL} AS suggested_action FROM k
"""
