"""The SQL of :mod:`payops.reconcile.match` (DuckDB): views, key structure, fallback rounds, classification, text.

``macros()`` and ``views()`` are created once per database. The other statements run in this order on one
cursor (``ledger_in``, ``transfers_in``, ``links_in`` registered, each with its row position ``_pos``;
``ledger_c``, ``transfers_c``: the *candidate* rows, see below):

1. ``STRUCTURE``: the key join on row positions only (which ledger row each transfer's key names) and the
   transfer ids' hashes — ``match`` counts them (numpy) for the uniqueness checks and the candidates, and
   keeps the positions: this is the only key join; ``PAYOUT_LINKS`` (transfer → payout link, by position)
   runs next to it on a cursor of its own;
2. over the candidates only: ``GROUPS`` (``g``, their keys), ``DUP``, ``LEFTOVERS``, then ``FALLBACK_ROUND``
   until it inserts nothing, then ``ADJ`` (by transfer position: the duplicates' ranks and the fallback pairs);
3. ``FINAL``: over ``asm`` — the result rows put together by position in ``match._assemble`` from 1. and 2.
   (no join) — the category and the derived columns; no text;
4. ``BREAKS_SQL``: reason and action of the rows that need one (``brk``: not MATCHED, or matched by the
   fallback), their inputs found by row position (``ledger_b``, ``transfers_b``).

Candidates: the ledger rows no transfer keys to, the transfers whose key names no ledger row (or that have
none), and every ledger row two or more transfers key to with those transfers — whole key groups, exactly
(from the positions ``STRUCTURE`` returns, not from hashes), so the small statements are exact.
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


def views(suffix: str = "") -> list[str]:
    """``L``/``T`` over ``ledger_in``/``transfers_in``; ``Lc``/``Tc`` over ``ledger_c``/``transfers_c``, and so on.

    Created once per database (``match._database``), like the macros: a view names the frames, and each
    cursor reads the frames it registered under those names."""
    ledger, transfers = (f"ledger_{suffix}", f"transfers_{suffix}") if suffix else ("ledger_in", "transfers_in")
    return [
        f"""CREATE OR REPLACE VIEW L{suffix} AS
SELECT ledger_payout_id AS lid, run_id, studio_id, destination AS l_dest, amount AS l_amount, currency AS l_cur,
    expected_at, nullif(ledger_transfer_id, '') AS ledger_transfer_id,
    nullif(manual_transfer_id, '') AS manual_transfer_id, _pos AS lpos
FROM {ledger}""",
        f"""CREATE OR REPLACE VIEW T{suffix} AS
SELECT transfer_id AS tid, created, amount AS t_amount, currency AS t_cur, destination AS t_dest, transfer_group,
    {_KEY} AS k, source, coalesce(amount_reversed, 0) AS amount_reversed, coalesce(reversed, false) AS reversed,
    destination_payment, _pos AS tpos
FROM {transfers}""",
    ]


#: every pair the key join makes, by row position (-1: none), and each row's transfer id hash (hash(NULL) on
#: ledger rows no transfer keys to)
STRUCTURE = """SELECT coalesce(lpos, -1) AS lp, coalesce(tpos, -1) AS tp, hash(tid) AS ht
FROM (SELECT lid, lpos FROM L) l FULL OUTER JOIN (SELECT k, tid, tpos FROM T) t ON l.lid = t.k"""

# g: the candidates' keys (nl = ledger rows, nt = transfers with that key): none is one ledger row + one transfer
GROUPS = """CREATE TEMP TABLE g AS
SELECT key, count(*) FILTER (WHERE s = 0) AS nl, count(*) FILTER (WHERE s = 1) AS nt
FROM (SELECT lid AS key, 0 AS s FROM Lc UNION ALL SELECT k, 1 FROM Tc WHERE k IS NOT NULL)
GROUP BY key HAVING nl <> 1 OR nt <> 1 OR key IS NULL"""

DUP = """
CREATE TEMP TABLE dup AS
SELECT Tc.tpos, row_number() OVER w AS dup_rk, count(*) OVER (PARTITION BY Tc.k) AS dup_n,
       first_value(Tc.tid) OVER w AS dup_first, Tc.k AS dup_k
FROM Tc SEMI JOIN (SELECT key AS k FROM g WHERE nl = 1 AND nt > 1) dk USING (k) JOIN Lc ON Lc.lid = Tc.k
WINDOW w AS (PARTITION BY Tc.k ORDER BY (Tc.tid = Lc.manual_transfer_id) IS TRUE DESC,
             (Tc.tid = Lc.ledger_transfer_id) IS TRUE DESC, Tc.created, Tc.tid)
"""

# ledger rows no transfer keys to; transfers whose key names no ledger row (duplicates' extras always do)
LEFTOVERS = [
    """CREATE TEMP TABLE la AS SELECT lid, lpos, l_dest, l_cur, l_amount, expected_at
FROM Lc SEMI JOIN (SELECT key AS lid FROM g WHERE nl = 1 AND nt = 0) USING (lid)""",
    """CREATE TEMP TABLE ta AS SELECT tid, tpos, t_dest, t_cur, t_amount, created
FROM Tc LEFT JOIN (SELECT key FROM g WHERE nl = 0) gk ON gk.key = Tc.k
WHERE t_dest IS NOT NULL AND (Tc.k IS NULL OR gk.key IS NOT NULL)""",
    "CREATE TEMP TABLE fb (lid VARCHAR, lpos BIGINT, tid VARCHAR, tpos BIGINT)",
]

FALLBACK_ROUND = """
INSERT INTO fb
SELECT lid, lpos, tid, tpos FROM (
    SELECT la.lid, la.lpos, ta.tid, ta.tpos,
        row_number() OVER (PARTITION BY la.lid ORDER BY abs(epoch(ta.created) - epoch(la.expected_at)), ta.tid) AS r1,
        row_number() OVER (PARTITION BY ta.tid ORDER BY abs(epoch(ta.created) - epoch(la.expected_at)), la.lid) AS r2
    FROM la JOIN ta ON la.l_dest = ta.t_dest AND la.l_cur = ta.t_cur AND la.l_amount = ta.t_amount
    WHERE abs(epoch(ta.created) - epoch(la.expected_at)) <= $window
      AND la.lid NOT IN (SELECT lid FROM fb) AND ta.tid NOT IN (SELECT tid FROM fb)
) WHERE r1 = 1 AND r2 = 1
"""

#: per transfer position: its rank in a duplicate group, or the ledger row the fallback paired it with
ADJ = """CREATE TEMP TABLE adj AS SELECT tpos, dup_rk, dup_n, dup_first, dup_k, NULL::VARCHAR AS fb_lid,
    NULL::BIGINT AS fb_lpos FROM dup
UNION ALL SELECT tpos, NULL, NULL, NULL, NULL, lid, lpos FROM fb"""

#: every (transfer, payout link) pair sharing a destination payment, by row position; a transfer on two rows
#: had its funds swept by two payouts (Stripe re-sweeps what a failed payout returned): ``match`` picks one
PAYOUT_LINKS = """SELECT t._pos AS tp, b._pos AS bp
FROM (SELECT destination_payment, _pos FROM transfers_in WHERE destination_payment IS NOT NULL) t
JOIN (SELECT destination_payment, _pos FROM links_in WHERE destination_payment IS NOT NULL) b
    ON b.destination_payment = t.destination_payment"""

#: of two payouts sweeping one destination payment, the one that counts: paid over in transit over pending over
#: failed/canceled, then the latest arrival, then the payout id
PAYOUT_RANK = {"paid": 0, "in_transit": 1, "pending": 2}

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


#: the computed result columns of every row of ``asm``, in its order: one row per transfer (in input order) and
#: one per ledger row nothing paired with, each carrying the columns of its ledger row (by the pair's position),
#: transfer, payout link and ``adj`` row — put together by position in ``match._assemble``, so the key join runs
#: once (``STRUCTURE``); the columns passed through unchanged (``match.PASS_THROUGH``) are taken from ``asm`` as
#: they are. No text: ``_text`` marks the rows that need a reason (``BREAKS_SQL``, run on those rows only: its
#: large CASEs cost per vector, however few of its rows take them).
FINAL = f"""
WITH c AS (
    SELECT *, t_amount - amount_reversed AS net,
        CASE WHEN fb_lid IS NOT NULL THEN 'fallback'
             WHEN tid IS NOT NULL AND (lid IS NOT NULL OR dup_rk > 1) THEN 'key' ELSE 'none' END AS confidence
    FROM asm
), k AS (
    SELECT c.*, {CATEGORY_SQL} AS category FROM c
)
SELECT category,
    coalesce(lid, CASE WHEN dup_rk > 1 THEN dup_k END) AS ledger_payout_id,
    coalesce(l_dest, t_dest) AS destination,
    coalesce(l_cur, t_cur) AS currency,
    net AS stripe_amount,
    CASE WHEN lid IS NOT NULL AND tid IS NOT NULL AND l_cur = t_cur THEN net - l_amount END AS difference,
    confidence,
    coalesce(source, '—') AS source,
    CASE WHEN dup_n >= 2 THEN dup_first END AS duplicate_of,
    coalesce(tid IS NOT NULL AND payout_status = 'paid' AND coalesce(arrival_date < $cend, true) AND net > 0, false)
        AS reached_bank,
    category <> 'MATCHED' OR confidence = 'fallback' AS _text
FROM k
"""


#: what the reason/action CASEs read from the result's own columns (``brk``: its rows that need text, numbered ``_i``)
_FROM_RESULT = {"net": "stripe_amount", "l_amount": "ledger_amount", "t_cur": "stripe_currency",
                "created": "transfer_created", "payout_id": "payout_id", "payout_status": "payout_status",
                "arrival_date": "arrival_date", "failure_code": "failure_code", "confidence": "confidence",
                "category": "category"}
#: ... and from their input rows (``Lb``/``Tb``: those rows, by position) and ``adj``
_FROM_INPUTS = {"Lb": ["lid", "l_dest", "l_cur", "manual_transfer_id", "ledger_transfer_id"],
                "Tb": ["tid", "k", "t_amount", "amount_reversed", "t_dest", "destination_payment", "source"],
                "adj": ["dup_n", "dup_first"]}

_BRK_COLS = ", ".join([*(f"brk.{r} AS {c}" for c, r in _FROM_RESULT.items()),
                       *(f"{t}.{c}" for t, cs in _FROM_INPUTS.items() for c in cs)])

#: reason and action of the result rows that need text, in ``brk``'s order
BREAKS_SQL = f"""
WITH k0 AS (
    SELECT brk._i, {_BRK_COLS}, cexp(brk.stripe_currency) AS e_t, cexp(Lb.l_cur) AS e_l
    FROM brk LEFT JOIN Lb ON Lb.lpos = brk._lpos LEFT JOIN Tb ON Tb.tpos = brk._tpos
    LEFT JOIN adj ON adj.tpos = brk._tpos
), k AS (
    SELECT *, {", ".join(f"{v} AS {n}" for n, v in AMOUNTS.items())} FROM k0
)
SELECT {REASON_SQL} AS reason, {ACTION_SQL} AS suggested_action FROM k ORDER BY _i
"""
