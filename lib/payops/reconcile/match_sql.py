"""The SQL of :mod:`payops.reconcile.match` (DuckDB): views, pre-pass, fallback rounds, classification.

Statements run in this order on one connection (``ledger_in``, ``transfers_in``, ``links_in`` registered):

1. ``PREPASS``: one aggregate over ledger ids ∪ transfer keys (``g``: keys that are not exactly one ledger row
   and one transfer) and one over destination payments (``ldp``: those swept by ≥2 payouts) — both small;
   the uniqueness check, the duplicate groups and the fallback's leftovers all come from ``g``;
2. ``DUP``, ``LEFTOVERS``, then ``FALLBACK_ROUND`` until it inserts nothing — all on small tables;
3. ``final_sql()``: one streaming query — transfers keyed (or fallback-paired) to ledger rows by a single
   FULL OUTER JOIN, the payout chain, the category, reasons and actions.
"""

from __future__ import annotations

from payops.money import CURRENCY_EXPONENT


def macros() -> list[str]:
    zero = "|".join(c for c, e in sorted(CURRENCY_EXPONENT.items()) if e == 0)
    three = "|".join(c for c, e in sorted(CURRENCY_EXPONENT.items()) if e == 3)
    return [
        # contains() on a string, not IN (...): DuckDB rewrites IN lists (and list_contains) into mark joins
        # evaluated for every row, even inside a CASE branch no row takes
        f"CREATE TEMP MACRO cexp(c) AS CASE WHEN contains('|{zero}|', '|' || c || '|') THEN 0"
        f" WHEN contains('|{three}|', '|' || c || '|') THEN 3 ELSE 2 END",
        # exact decimal string of minor units, e = cexp(c) (computed once per row): fmt(87550, 'CAD', 2) = '875.50 CAD'
        """CREATE TEMP MACRO fmt(a, c, e) AS CASE WHEN a IS NULL THEN '?' WHEN e = 0 THEN a::VARCHAR || ' ' || c
           ELSE (CASE WHEN a < 0 THEN '-' ELSE '' END) || (abs(a) // (10 ** e)::BIGINT)::VARCHAR || '.'
                || lpad((abs(a) % (10 ** e)::BIGINT)::VARCHAR, e, '0') || ' ' || c END""",
        "CREATE TEMP MACRO d(ts) AS coalesce(strftime(ts, '%Y-%m-%d'), '?')",
    ]


VIEWS = [
    """CREATE TEMP VIEW L AS SELECT ledger_payout_id AS lid, run_id, studio_id, destination AS l_dest,
    amount AS l_amount, currency AS l_cur, expected_at,
    nullif(ledger_transfer_id, '') AS ledger_transfer_id, nullif(manual_transfer_id, '') AS manual_transfer_id
FROM ledger_in""",
    """CREATE TEMP VIEW T AS SELECT transfer_id AS tid, created, amount AS t_amount, currency AS t_cur,
    destination AS t_dest, transfer_group, coalesce(nullif(ledger_payout_id, ''), nullif(transfer_group, '')) AS k,
    source, coalesce(amount_reversed, 0) AS amount_reversed, coalesce(reversed, false) AS reversed,
    destination_payment
FROM transfers_in""",
]

# g: every key that is not exactly one ledger row + one transfer (nl = ledger rows, nt = transfers with that key);
# a NULL key only ever holds ledger rows (their null ids fail the uniqueness check)
PREPASS = [
    """CREATE TEMP TABLE g AS
SELECT key, count(*) FILTER (WHERE s = 0) AS nl, count(*) FILTER (WHERE s = 1) AS nt
FROM (SELECT lid AS key, 0 AS s FROM L UNION ALL SELECT k, 1 FROM T WHERE k IS NOT NULL)
GROUP BY key HAVING nl <> 1 OR nt <> 1 OR key IS NULL""",
    """CREATE TEMP TABLE ldp AS SELECT destination_payment AS dp FROM links_in
WHERE destination_payment IS NOT NULL GROUP BY destination_payment HAVING count(*) > 1""",
]

# = count(*) - count(DISTINCT id) of each input: keys outside g have exactly one ledger row
REPEATS = """SELECT coalesce(sum(nl - (key IS NOT NULL AND nl >= 1)::INT), 0),
    (SELECT count(*) - count(DISTINCT transfer_id) FROM transfers_in), (SELECT count(*) FROM ldp) FROM g"""

DUP = """
CREATE TEMP TABLE dup AS
SELECT T.tid, row_number() OVER w AS dup_rk, count(*) OVER (PARTITION BY T.k) AS dup_n,
       first_value(T.tid) OVER w AS dup_first
FROM T SEMI JOIN (SELECT key AS k FROM g WHERE nl = 1 AND nt > 1) dk USING (k) JOIN L ON L.lid = T.k
WINDOW w AS (PARTITION BY T.k ORDER BY (T.tid = L.manual_transfer_id) IS TRUE DESC,
             (T.tid = L.ledger_transfer_id) IS TRUE DESC, T.created, T.tid)
"""

# ledger rows no transfer keys to; transfers whose key names no ledger row (duplicates' extras always do)
LEFTOVERS = [
    """CREATE TEMP TABLE la AS SELECT lid, l_dest, l_cur, l_amount, expected_at
FROM L SEMI JOIN (SELECT key AS lid FROM g WHERE nl = 1 AND nt = 0) USING (lid)""",
    """CREATE TEMP TABLE ta AS SELECT tid, t_dest, t_cur, t_amount, created
FROM T LEFT JOIN (SELECT key FROM g WHERE nl = 0) gk ON gk.key = T.k
WHERE t_dest IS NOT NULL AND (T.k IS NULL OR gk.key IS NOT NULL)""",
    "CREATE TEMP TABLE fb (lid VARCHAR, tid VARCHAR)",
]

FALLBACK_ROUND = """
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

_LINK_COLS = "destination_payment AS dp, payout_id, payout_status, arrival_date, failure_code"
# the payout per destination payment: the only one, else a paid one over a failed one (Stripe re-sweeps)
_LINKS_UNIQUE = f"(SELECT {_LINK_COLS} FROM links_in WHERE destination_payment IS NOT NULL)"
_LINKS_BEST = f"""(SELECT {_LINK_COLS} FROM links_in ANTI JOIN ldp ON ldp.dp = links_in.destination_payment
    WHERE destination_payment IS NOT NULL
UNION ALL
SELECT {_LINK_COLS} FROM links_in SEMI JOIN ldp ON ldp.dp = links_in.destination_payment
QUALIFY row_number() OVER (PARTITION BY destination_payment ORDER BY
    CASE payout_status WHEN 'paid' THEN 0 WHEN 'in_transit' THEN 1 WHEN 'pending' THEN 2 ELSE 3 END,
    arrival_date DESC NULLS LAST, payout_id) = 1)"""

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

REASON_SQL = f"""CASE category
    WHEN 'MATCHED' THEN CASE WHEN confidence = 'fallback' THEN '{FALLBACK_NOTE}'
        ELSE 'matched on ledger id; paid out to the bank in ' || payout_id END
    ELSE CASE category
    WHEN 'MATCHED_WITHIN_TOLERANCE' THEN 'Stripe moved ' || fmt(net, t_cur, e_t) || ', ledger says '
        || fmt(l_amount, l_cur, e_l) || ': difference ' || fmt(net - l_amount, l_cur, e_l) || ' within tolerance '
        || fmt($tol, l_cur, e_l)
    WHEN 'MISSING_IN_STRIPE' THEN CASE WHEN coalesce(manual_transfer_id, ledger_transfer_id) IS NOT NULL
        THEN 'ledger records transfer ' || coalesce(manual_transfer_id, ledger_transfer_id) || ' for ' || lid
             || ' but Stripe has no such transfer in the period'
        ELSE 'no Stripe transfer for ledger payout ' || lid || ' (' || fmt(l_amount, l_cur, e_l) || ' to '
             || coalesce(l_dest, '?') || ')' END
    WHEN 'MISSING_IN_LEDGER' THEN 'Stripe transfer ' || tid || ' (' || fmt(t_amount, t_cur, e_t) || ' to '
        || coalesce(t_dest, '?') || ', ' || source || ') has no ledger payout'
        || CASE WHEN k IS NOT NULL THEN ' (its ledger id ' || k || ' is not in the ledger for the period)'
           ELSE ' and no ledger id in metadata' END
    WHEN 'DUPLICATE_PAYMENT' THEN CASE WHEN lid IS NOT NULL
        THEN 'ledger payout ' || lid || ' was paid ' || dup_n::VARCHAR || ' times; ' || tid || ' (' || source
             || ') is the one the ledger pairs with'
        ELSE tid || ' (' || source || ', ' || fmt(net, t_cur, e_t) || ') duplicates ' || dup_first
             || ' for ledger payout ' || k END
    WHEN 'CURRENCY_MISMATCH' THEN 'ledger expects ' || fmt(l_amount, l_cur, e_l) || ' but ' || tid || ' moved '
        || fmt(net, t_cur, e_t)
    WHEN 'DESTINATION_MISMATCH' THEN tid || ' went to ' || coalesce(t_dest, '?') || ' but the ledger destination is '
        || coalesce(l_dest, '?')
    WHEN 'REVERSED_FULL' THEN tid || ' was fully reversed (' || fmt(amount_reversed, t_cur, e_t)
        || '): nothing reached the studio for ' || lid
    WHEN 'REVERSED_PARTIAL' THEN fmt(amount_reversed, t_cur, e_t) || ' of ' || tid || ' was reversed: the studio kept '
        || fmt(net, t_cur, e_t) || ', the ledger says ' || fmt(l_amount, l_cur, e_l)
    WHEN 'AMOUNT_MISMATCH' THEN 'Stripe moved ' || fmt(net, t_cur, e_t) || ', ledger says ' || fmt(l_amount, l_cur, e_l)
        || ': difference ' || fmt(net - l_amount, l_cur, e_l) || ' over tolerance ' || fmt($tol, l_cur, e_l)
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
    END || CASE WHEN confidence = 'fallback' THEN ' ({FALLBACK_NOTE})' ELSE '' END END"""

ACTION_SQL = """CASE category
    WHEN 'MATCHED' THEN ''
    WHEN 'MATCHED_WITHIN_TOLERANCE' THEN 'none: within tolerance'
    WHEN 'MISSING_IN_STRIPE' THEN CASE WHEN coalesce(manual_transfer_id, ledger_transfer_id) IS NOT NULL
        THEN 'look up ' || coalesce(manual_transfer_id, ledger_transfer_id) || ' in Stripe; if it never happened, '
             || 'run the manual payout SOP for ' || lid || ' (' || fmt(l_amount, l_cur, e_l) || ')'
        ELSE 'run the manual payout SOP for ' || lid || ' (' || fmt(l_amount, l_cur, e_l) || ' to '
             || coalesce(l_dest, '?') || ')' END
    WHEN 'MISSING_IN_LEDGER' THEN 'find the ledger payout for ' || tid || ' and record it, or reverse ' || tid
        || ' if it was not owed'
    WHEN 'DUPLICATE_PAYMENT' THEN CASE WHEN lid IS NOT NULL
        THEN 'keep ' || tid || '; reverse the ' || (dup_n - 1)::VARCHAR || ' duplicate transfer(s) of ' || lid
        ELSE 'reverse ' || tid || ' (duplicate of ' || dup_first || ')' END
    WHEN 'CURRENCY_MISMATCH' THEN 'reverse ' || tid || ' and re-pay ' || lid || ' in ' || l_cur
    WHEN 'DESTINATION_MISMATCH' THEN 'confirm the studio''s account; reverse ' || tid || ' from '
        || coalesce(t_dest, '?') || ' and re-pay ' || lid || ' to ' || coalesce(l_dest, '?')
    WHEN 'REVERSED_FULL' THEN 're-pay ' || lid || ' (' || fmt(l_amount, l_cur, e_l) || ') with the manual payout SOP, '
        || 'or cancel it in the ledger'
    WHEN 'REVERSED_PARTIAL' THEN 'pay the remaining ' || fmt(l_amount - net, l_cur, e_l) || ' for ' || lid
        || ' or adjust the ledger'
    WHEN 'AMOUNT_MISMATCH' THEN CASE WHEN net < l_amount
        THEN 'pay the shortfall ' || fmt(l_amount - net, l_cur, e_l) || ' for ' || lid || ' or correct the ledger'
        ELSE 'recover the overpayment ' || fmt(net - l_amount, l_cur, e_l) || ' (partial reversal of ' || tid
             || ') or correct the ledger' END
    WHEN 'PAYOUT_FAILED' THEN 'ask the studio to update bank details; re-pay after payout ' || payout_id
        || ' failed (' || coalesce(failure_code, payout_status) || ')'
    WHEN 'TIMING_IN_TRANSIT' THEN CASE
        WHEN payout_status IS NOT NULL AND payout_status NOT IN ('failed', 'canceled')
        THEN 'wait for arrival on ' || d(arrival_date) || '; check again in the next period'
        ELSE 'wait for the studio''s next payout; check again after ' || $cto || ' (next period)' END
    END"""


_MATCHED_REASON = f"""CASE WHEN confidence = 'fallback' THEN '{FALLBACK_NOTE}'
    ELSE 'matched on ledger id; paid out to the bank in ' || payout_id END"""

#: what the reason/action CASEs read beyond the result's own columns (exported on non-MATCHED rows only)
HELPERS = ["lid", "k", "dup_n", "dup_first", "t_amount", "amount_reversed", "l_dest", "t_dest", "l_cur",
           "manual_transfer_id", "ledger_transfer_id", "destination_payment", "source"]
_FROM_RESULT = {"tid": "transfer_id", "net": "stripe_amount", "l_amount": "ledger_amount", "t_cur": "stripe_currency",
                "created": "transfer_created", "payout_id": "payout_id", "payout_status": "payout_status",
                "arrival_date": "arrival_date", "failure_code": "failure_code", "confidence": "confidence",
                "category": "category"}


def final_sql(unique_links: bool) -> str:
    """Every result row: transfers joined to ledger rows by key (first of a duplicate group) or fallback pair.

    Reason and action are filled here for MATCHED rows (nearly all) only; the rest carry ``HELPERS`` (as
    ``_h_<name>``) for ``BREAKS_SQL``: the large CASEs cost per vector, however few of its rows take them.
    """
    links = _LINKS_UNIQUE if unique_links else _LINKS_BEST
    helpers = ",\n    ".join(f"CASE WHEN category <> 'MATCHED' THEN {h} END AS _h_{h}" for h in HELPERS)
    return f"""
WITH tt AS (
    SELECT T.*, d.dup_rk, d.dup_n, d.dup_first, f.lid AS fb_lid,
        coalesce(f.lid, CASE WHEN coalesce(d.dup_rk, 1) = 1 THEN T.k END) AS jk
    FROM T LEFT JOIN dup d ON d.tid = T.tid LEFT JOIN fb f ON f.tid = T.tid
), c AS (
    SELECT L.*, tt.*, tt.t_amount - tt.amount_reversed AS net,
        CASE WHEN tt.fb_lid IS NOT NULL THEN 'fallback'
             WHEN tt.tid IS NOT NULL AND (L.lid IS NOT NULL OR tt.dup_rk > 1) THEN 'key' ELSE 'none' END AS confidence,
        b.payout_id, b.payout_status, b.arrival_date, b.failure_code
    FROM L FULL OUTER JOIN tt ON L.lid = tt.jk
    LEFT JOIN {links} b ON b.dp = tt.destination_payment
), k AS (
    SELECT c.*, {CATEGORY_SQL} AS category FROM c
)
SELECT category,
    coalesce(lid, CASE WHEN dup_rk > 1 THEN k END) AS ledger_payout_id,
    tid AS transfer_id, payout_id, studio_id,
    coalesce(l_dest, t_dest) AS destination,
    coalesce(l_cur, t_cur) AS currency,
    l_amount AS ledger_amount,
    net AS stripe_amount,
    CASE WHEN lid IS NOT NULL AND tid IS NOT NULL AND l_cur = t_cur THEN net - l_amount END AS difference,
    confidence,
    CASE WHEN category = 'MATCHED' THEN {_MATCHED_REASON} END AS reason,
    CASE WHEN category = 'MATCHED' THEN '' END AS suggested_action,
    coalesce(source, '—') AS source,
    run_id, t_cur AS stripe_currency, CASE WHEN dup_n >= 2 THEN dup_first END AS duplicate_of,
    created AS transfer_created, expected_at, payout_status, arrival_date, failure_code,
    coalesce(tid IS NOT NULL AND payout_status = 'paid' AND coalesce(arrival_date < $cend, true) AND net > 0, false)
        AS reached_bank,
    {helpers}
FROM k
"""


#: reason and action of the non-MATCHED result rows (``brk``: those rows of ``final_sql``), in ``brk``'s order
BREAKS_SQL = f"""
WITH k0 AS (
    SELECT {", ".join([*(f"{r} AS {c}" for c, r in _FROM_RESULT.items()), *(f"_h_{h} AS {h}" for h in HELPERS)])}
    FROM brk
), k AS (
    SELECT *, cexp(t_cur) AS e_t, cexp(l_cur) AS e_l FROM k0
)
SELECT {REASON_SQL} AS reason, {ACTION_SQL} AS suggested_action FROM k
"""
