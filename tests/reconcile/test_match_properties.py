"""Property tests: every input row lands in exactly one result row, and the totals balance."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, timedelta

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from payops.reconcile.match import reconcile
from payops.reconcile.periods import period_end, transfer_key
from payops.reconcile.schema import Category, ReconConfig
from payops.reconcile.synth import ledger_frame, link_frame, transfer_frame

T0 = datetime(2024, 3, 1, 6, tzinfo=UTC)
CURRENCIES = ["CAD", "USD", "JPY"]
DESTS = ["acct_1", "acct_2", "acct_3"]


@st.composite
def frames(draw: st.DrawFn) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, ReconConfig]:
    n_led = draw(st.integers(0, 8))
    ledger = [{
        "ledger_payout_id": f"lp_{i}", "run_id": draw(st.sampled_from(["run_a", "run_b", None])),
        "studio_id": f"st_{i}", "destination": draw(st.sampled_from(DESTS)),
        "amount": draw(st.sampled_from([100, 250, 1000, 5000])), "currency": draw(st.sampled_from(CURRENCIES)),
        "expected_at": T0 + timedelta(days=draw(st.integers(0, 40))),
        "manual_transfer_id": draw(st.sampled_from([None, "tr_0", "tr_1"])),
    } for i in range(n_led)]
    transfers, links = [], []
    for j in range(draw(st.integers(0, 10))):
        amount = draw(st.sampled_from([100, 250, 1000, 5000, 7]))
        rev_kind = draw(st.sampled_from(["none", "none", "partial", "full"]))
        reversed_amt = {"none": 0, "partial": amount // 2, "full": amount}[rev_kind]
        key = draw(st.sampled_from([f"lp_{i}" for i in range(n_led + 2)] + [None]))
        use_group = draw(st.booleans())
        transfers.append({
            "transfer_id": f"tr_{j}", "created": T0 + timedelta(days=draw(st.integers(0, 45)), hours=1),
            "amount": amount, "currency": draw(st.sampled_from(CURRENCIES)),
            "destination": draw(st.sampled_from(DESTS)), "transfer_group": key,
            "ledger_payout_id": None if use_group else key, "source": draw(st.sampled_from(["automated", "manual"])),
            "amount_reversed": reversed_amt, "reversed": rev_kind == "full" and draw(st.booleans()),
            "destination_payment": f"py_{j}",
        })
        for k in range(draw(st.integers(0, 2))):
            links.append({"destination_payment": f"py_{j}", "payout_id": f"po_{j}_{k}", "account": "acct_1",
                          "payout_status": draw(st.sampled_from(["paid", "failed", "in_transit", "canceled"])),
                          "arrival_date": T0 + timedelta(days=draw(st.integers(0, 45))), "failure_code": None})
    cfg = ReconConfig(period_from=date(2024, 3, 1), period_to=date(2024, 3, 31),
                      tolerance=draw(st.sampled_from([0, 5, 200])), fallback_window_days=draw(st.integers(0, 5)))
    # ledger payouts of February that some transfers may name (lp_n: the first id past the period's ledger)
    other = [{
        "ledger_payout_id": f"lp_{n_led + i}", "run_id": "run_feb", "studio_id": f"st_{n_led + i}",
        "destination": draw(st.sampled_from(DESTS)), "amount": draw(st.sampled_from([100, 250, 1000])),
        "currency": draw(st.sampled_from(CURRENCIES)), "expected_at": T0 - timedelta(days=draw(st.integers(1, 20))),
    } for i in range(draw(st.integers(0, 1)))]
    return ledger_frame(ledger), transfer_frame(transfers), link_frame(links), cfg, ledger_frame(other)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frames())
def test_every_row_once_and_totals_balance(data: tuple) -> None:
    period_ledger, all_transfers, links, cfg, other = data
    res = reconcile(period_ledger, all_transfers, links, cfg, other_period=other)
    r, deferred = res.results, res.deferred
    # every transfer exactly once: in the results, or left to the next period — only if created after the period
    # end and naming no ledger payout of this one (or key-less and paired with none)
    every = Counter(all_transfers["transfer_id"])
    assert Counter(r["transfer_id"].dropna()) + Counter(deferred["transfer_id"]) == every
    assert (deferred["created"] >= period_end(cfg)).all()
    assert not deferred["ledger_payout_id"].isin(set(period_ledger["ledger_payout_id"])).any()
    transfers = all_transfers[~all_transfers["transfer_id"].isin(set(deferred["transfer_id"]))]
    # the other period's rows that the kept transfers name count like the period's, and say which period they are of
    assert res.other_period_ids == set(other["ledger_payout_id"]) & set(transfer_key(transfers).dropna())
    ledger = pd.concat([period_ledger, other[other["ledger_payout_id"].isin(res.other_period_ids)]],
                       ignore_index=True)
    of_other = r["ledger_payout_id"].isin(res.other_period_ids).fillna(False).astype(bool)
    assert r.loc[of_other, "reason"].str.contains(r"belongs to an earlier period \(expected 2024-02-\d\d\), paid "
                                                  r"in this one$", regex=True).all()

    # every ledger row exactly once as a ledger side (ledger_amount present) ...
    ledger_side = r[r["ledger_amount"].notna()]
    assert Counter(ledger_side["ledger_payout_id"]) == Counter(ledger["ledger_payout_id"])
    # ... and a ledger id appears elsewhere only on DUPLICATE_PAYMENT extra-transfer rows
    extra = r[r["ledger_amount"].isna() & r["ledger_payout_id"].notna()]
    assert set(extra["category"]) <= {"DUPLICATE_PAYMENT"}
    assert extra["transfer_id"].notna().all() and extra["duplicate_of"].notna().all()
    assert set(extra["ledger_payout_id"]) <= set(r.loc[r["category"] == "DUPLICATE_PAYMENT", "ledger_payout_id"])
    # every row: at least one side, one category from Category, a confidence
    assert (r["transfer_id"].notna() | r["ledger_payout_id"].notna()).all()
    assert set(r["category"]) <= {str(c) for c in Category}
    assert r["category"].notna().all() and set(r["confidence"]) <= {"key", "fallback", "none"}
    # totals balance, overall and per currency
    assert int(r["ledger_amount"].fillna(0).sum()) == int(ledger["amount"].sum())
    net = transfers["amount"] - transfers["amount_reversed"]
    assert int(r["stripe_amount"].fillna(0).sum()) == int(net.sum())
    for cur in CURRENCIES:
        assert int(r.loc[r["currency"] == cur, "ledger_amount"].fillna(0).sum()) == int(
            ledger.loc[ledger["currency"] == cur, "amount"].sum())
        assert int(r.loc[r["stripe_currency"] == cur, "stripe_amount"].fillna(0).sum()) == int(
            net[transfers["currency"] == cur].sum())
    # duplicates: each ledger id with ≥2 DUPLICATE rows has exactly one ledger side
    dup = r[r["category"] == "DUPLICATE_PAYMENT"]
    for _, g in dup.groupby("ledger_payout_id"):
        assert len(g) >= 2 and g["ledger_amount"].notna().sum() == 1
    # clean rows are clean
    clean = r[r["category"].isin(["MATCHED", "MATCHED_WITHIN_TOLERANCE"])]
    assert (clean["difference"].abs() <= cfg.tolerance).all() and clean["reached_bank"].all()
