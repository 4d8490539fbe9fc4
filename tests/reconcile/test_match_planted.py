"""The planted dataset is recovered exactly, and each rule / the precedence order on hand-built cases."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pandas as pd
import pytest

from payops.reconcile.match import break_key, reconcile
from payops.reconcile.schema import Category, ReconConfig
from payops.reconcile.synth import ledger_frame, link_frame, planted_dataset, transfer_frame

CFG = ReconConfig(period_from=date(2024, 3, 1), period_to=date(2024, 3, 31), tolerance=100)
T0 = datetime(2024, 3, 15, 6, tzinfo=UTC)


def test_planted_dataset_is_recovered_exactly() -> None:
    p = planted_dataset()
    result = reconcile(p.ledger, p.transfers, p.links, p.config)
    got = result.counts()
    pd.testing.assert_frame_equal(got, p.expected, check_dtype=False)
    assert sorted(result.deferred["transfer_id"]) == sorted(p.deferred) and len(p.deferred) == 4
    assert set(p.expected["category"]) == {str(c) for c in Category}
    assert set(p.expected["currency"]) == {"CAD", "USD", "EUR"}
    fallback = result.results[result.results["confidence"] == "fallback"]
    assert len(fallback) == 3 and set(fallback["category"]) == {"MATCHED"}
    assert all("no ledger id in metadata" in r for r in fallback["reason"])


@pytest.mark.parametrize("seed,per", [(1, 1), (2, 4), (11, 2)])
def test_planted_other_seeds(seed: int, per: int) -> None:
    p = planted_dataset(n_clean=60, seed=seed, per_category=per, currencies=("JPY", "KWD", "CAD"))
    result = reconcile(p.ledger, p.transfers, p.links, p.config)
    pd.testing.assert_frame_equal(result.counts(), p.expected, check_dtype=False)
    assert sorted(result.deferred["transfer_id"]) == sorted(p.deferred)


# --- hand-built cases ------------------------------------------------------------------------------
def led(lid: str = "lp_1", amount: int = 10_000, **kw: Any) -> dict[str, Any]:
    return {"ledger_payout_id": lid, "run_id": "run_1", "studio_id": "st_1", "destination": "acct_1",
            "amount": amount, "currency": "CAD", "expected_at": T0, **kw}


def tr(tid: str = "tr_1", amount: int = 10_000, key: str | None = "lp_1", **kw: Any) -> dict[str, Any]:
    return {"transfer_id": tid, "created": T0 + timedelta(minutes=5), "amount": amount, "currency": "CAD",
            "destination": "acct_1", "transfer_group": key, "ledger_payout_id": key,
            "destination_payment": f"py_{tid}", **kw}


def link(tid: str = "tr_1", status: str = "paid", arrival: datetime | None = None, **kw: Any) -> dict[str, Any]:
    return {"destination_payment": f"py_{tid}", "payout_id": f"po_{tid}", "account": "acct_1",
            "payout_status": status, "arrival_date": arrival or T0 + timedelta(days=2), **kw}


def run(ledgers: list[dict], transfers: list[dict], links: list[dict] | None = None, cfg: ReconConfig = CFG):
    links = [link(t["transfer_id"]) for t in transfers] if links is None else links
    return reconcile(ledger_frame(ledgers), transfer_frame(transfers), link_frame(links), cfg).results


def one(ledgers: list[dict], transfers: list[dict], links: list[dict] | None = None, cfg: ReconConfig = CFG) -> Any:
    r = run(ledgers, transfers, links, cfg)
    assert len(r) == 1, r
    return r.iloc[0]


def test_matched_and_reached_bank() -> None:
    row = one([led()], [tr()])
    assert row["category"] == "MATCHED" and row["confidence"] == "key" and bool(row["reached_bank"])
    assert row["difference"] == 0 and row["payout_id"] == "po_tr_1"


def test_transfer_group_is_the_key_when_metadata_is_missing() -> None:
    t = tr(transfer_group="lp_1", ledger_payout_id=None)
    assert one([led()], [t])["category"] == "MATCHED"


def test_within_tolerance_and_over_it() -> None:
    assert one([led()], [tr(amount=10_100)])["category"] == "MATCHED_WITHIN_TOLERANCE"
    row = one([led()], [tr(amount=10_101)])
    assert row["category"] == "AMOUNT_MISMATCH" and row["difference"] == 101
    strict = ReconConfig(period_from=CFG.period_from, period_to=CFG.period_to, tolerance=0)
    assert one([led()], [tr(amount=10_001)], cfg=strict)["category"] == "AMOUNT_MISMATCH"


def test_missing_on_each_side() -> None:
    r = run([led()], [tr("tr_9", 777, key="lp_other", destination="acct_9")]).set_index("category")
    assert r.loc["MISSING_IN_STRIPE", "ledger_payout_id"] == "lp_1"
    assert "run the manual payout SOP for lp_1" in r.loc["MISSING_IN_STRIPE", "suggested_action"]
    assert r.loc["MISSING_IN_LEDGER", "transfer_id"] == "tr_9"
    assert pd.isna(r.loc["MISSING_IN_LEDGER", "ledger_payout_id"])


def test_duplicate_automated_and_manual() -> None:
    r = run([led(manual_transfer_id="tr_m", status="manual")],
            [tr("tr_a"), tr("tr_m", source="manual", created=T0 + timedelta(hours=3))])
    assert set(r["category"]) == {"DUPLICATE_PAYMENT"} and len(r) == 2
    pair = r[r["ledger_amount"].notna()].iloc[0]
    extra = r[r["ledger_amount"].isna()].iloc[0]
    assert pair["transfer_id"] == "tr_m" and extra["transfer_id"] == "tr_a"
    assert extra["ledger_payout_id"] == "lp_1" and extra["duplicate_of"] == "tr_m"
    assert extra["suggested_action"] == "reverse tr_a (duplicate of tr_m)"


def test_duplicate_without_recorded_transfer_pairs_with_earliest() -> None:
    r = run([led()], [tr("tr_b", created=T0 + timedelta(hours=2)), tr("tr_a", created=T0 + timedelta(hours=1)),
                      tr("tr_c", created=T0 + timedelta(hours=3))])
    assert len(r) == 3 and set(r["category"]) == {"DUPLICATE_PAYMENT"}
    assert r.loc[r["ledger_amount"].notna(), "transfer_id"].item() == "tr_a"


def test_reversals() -> None:
    assert one([led()], [tr(reversed=True, amount_reversed=10_000)])["category"] == "REVERSED_FULL"
    assert one([led()], [tr(amount_reversed=10_000)])["category"] == "REVERSED_FULL"
    row = one([led()], [tr(amount_reversed=4_000)])
    assert row["category"] == "REVERSED_PARTIAL" and row["stripe_amount"] == 6_000 and row["difference"] == -4_000


def test_currency_and_destination_mismatch() -> None:
    row = one([led()], [tr(currency="USD")])
    assert row["category"] == "CURRENCY_MISMATCH" and row["stripe_currency"] == "USD" and pd.isna(row["difference"])
    assert one([led()], [tr(destination="acct_2")])["category"] == "DESTINATION_MISMATCH"


def test_payout_failed_and_resweep() -> None:
    row = one([led()], [tr()], [link(status="failed", failure_code="account_closed")])
    assert row["category"] == "PAYOUT_FAILED" and not row["reached_bank"]
    assert "re-pay after payout po_tr_1 failed (account_closed)" in row["suggested_action"]
    resweep = [link(status="failed", failure_code="account_closed"),
               link(status="paid", payout_id="po_2", arrival=T0 + timedelta(days=5))]
    row = one([led()], [tr()], resweep)
    assert row["category"] == "MATCHED" and row["payout_id"] == "po_2"


def test_timing_variants() -> None:
    after = datetime(2024, 4, 1, 1, tzinfo=UTC)
    assert one([led()], [tr(created=after)])["category"] == "TIMING_IN_TRANSIT"
    row = one([led()], [tr()], [link(status="in_transit", arrival=datetime(2024, 4, 2, tzinfo=UTC))])
    assert row["category"] == "TIMING_IN_TRANSIT" and "wait for arrival on 2024-04-02" in row["suggested_action"]
    assert one([led()], [tr()], [])["category"] == "TIMING_IN_TRANSIT"
    late = [link(arrival=datetime(2024, 4, 10, tzinfo=UTC))]
    assert one([led()], [tr()], late)["category"] == "TIMING_IN_TRANSIT"


def test_period_end_follows_the_timezone() -> None:
    tz = ReconConfig(period_from=CFG.period_from, period_to=CFG.period_to, timezone="America/Toronto")
    late_utc = datetime(2024, 4, 1, 2, tzinfo=UTC)  # still 31 March in Toronto
    assert one([led()], [tr(created=late_utc)], cfg=tz)["category"] == "MATCHED"
    assert one([led()], [tr(created=late_utc)])["category"] == "TIMING_IN_TRANSIT"


def test_fallback_match_and_window() -> None:
    row = one([led()], [tr(key=None, created=T0 + timedelta(days=2))])
    assert row["confidence"] == "fallback" and row["category"] == "MATCHED"
    assert row["reason"] == "matched on destination + amount + date: no ledger id in metadata"
    r = run([led()], [tr(key=None, created=T0 + timedelta(days=4))])
    assert set(r["category"]) == {"MISSING_IN_STRIPE", "MISSING_IN_LEDGER"}
    r = run([led()], [tr(key="lp_unknown")])  # a key that names no ledger row falls back too
    assert r["confidence"].tolist() == ["fallback"]


def test_fallback_is_one_to_one_closest_first() -> None:
    r = run([led("lp_1"), led("lp_2", expected_at=T0 + timedelta(days=1))],
            [tr("tr_x", key=None, created=T0 + timedelta(days=1, hours=1)), tr("tr_y", key=None)])
    pairs = dict(zip(r["ledger_payout_id"], r["transfer_id"], strict=True))
    assert pairs == {"lp_1": "tr_y", "lp_2": "tr_x"} and set(r["confidence"]) == {"fallback"}


def test_fallback_never_takes_a_keyed_ledger_row() -> None:
    r = run([led()], [tr("tr_1"), tr("tr_2", key=None)])
    assert sorted(r["category"]) == ["MATCHED", "MISSING_IN_LEDGER"]


@pytest.mark.parametrize("kw,expected", [
    ({"currency": "USD", "destination": "acct_2", "reversed": True, "amount_reversed": 10_000}, "CURRENCY_MISMATCH"),
    ({"destination": "acct_2", "reversed": True, "amount_reversed": 10_000}, "DESTINATION_MISMATCH"),
    ({"reversed": True, "amount_reversed": 10_000, "amount": 10_000}, "REVERSED_FULL"),
    ({"amount_reversed": 1_000, "amount": 50_000}, "REVERSED_PARTIAL"),
    ({"amount": 50_000, "created": datetime(2024, 4, 1, 9, tzinfo=UTC)}, "AMOUNT_MISMATCH"),
])
def test_precedence_pairs(kw: dict[str, Any], expected: str) -> None:
    assert one([led()], [tr(**kw)], [link(status="failed")])["category"] == expected


def test_precedence_failed_over_timing_over_tolerance() -> None:
    after = datetime(2024, 4, 1, 9, tzinfo=UTC)
    assert one([led()], [tr(created=after, amount=10_050)], [link(status="failed")])["category"] == "PAYOUT_FAILED"
    assert one([led()], [tr(created=after, amount=10_050)])["category"] == "TIMING_IN_TRANSIT"


def test_duplicate_wins_over_everything() -> None:
    r = run([led()], [tr("tr_a", currency="USD"), tr("tr_b", reversed=True, amount_reversed=10_000)])
    assert set(r["category"]) == {"DUPLICATE_PAYMENT"}


def test_break_key_is_stable() -> None:
    row = {"category": "MISSING_IN_LEDGER", "ledger_payout_id": pd.NA, "transfer_id": "tr_1"}
    assert break_key(row) == "MISSING_IN_LEDGER:-:tr_1"
    assert break_key({"category": "MATCHED", "ledger_payout_id": "lp", "transfer_id": None}) == "MATCHED:lp:-"


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="unique"):
        reconcile(ledger_frame([led(), led()]), transfer_frame([]), link_frame([]), CFG)
    with pytest.raises(ValueError, match="missing column"):
        reconcile(ledger_frame([led()]).drop(columns="amount"), transfer_frame([]), None, CFG)


def test_empty_inputs() -> None:
    res = reconcile(ledger_frame([]), transfer_frame([]), None, CFG)
    assert res.results.empty and res.breaks().empty and res.counts().empty


@pytest.mark.parametrize("order", [(0, 1, 2, 3, 4), (4, 3, 2, 1, 0), (1, 3, 0, 4, 2)])
def test_resweep_pick_does_not_depend_on_link_order(order: tuple[int, ...]) -> None:
    """Of the payouts sweeping one destination payment: paid over in transit over failed, then the latest
    arrival, then the payout id — whatever order the links come in, and next to transfers with one link."""
    swept = [link(status="failed", payout_id="po_a", arrival=T0 + timedelta(days=1)),
             link(status="in_transit", payout_id="po_b", arrival=T0 + timedelta(days=9)),
             link(status="paid", payout_id="po_e", arrival=T0 + timedelta(days=4)),
             link(status="paid", payout_id="po_c", arrival=T0 + timedelta(days=4)),
             link(status="paid", payout_id="po_a2", arrival=T0 + timedelta(days=3))]
    other = link("tr_2", status="failed", failure_code="account_closed")
    ledgers = [led(), led("lp_2")]
    res = reconcile(ledger_frame(ledgers), transfer_frame([tr(), tr("tr_2", key="lp_2")]),
                    link_frame([swept[i] for i in order] + [other]), CFG).results.set_index("transfer_id")
    assert res.loc["tr_1", "payout_id"] == "po_c" and res.loc["tr_1", "category"] == "MATCHED"
    assert res.loc["tr_2", "payout_id"] == "po_tr_2" and res.loc["tr_2", "category"] == "PAYOUT_FAILED"
    assert len(res) == 2


# --- ledger payouts of other periods -----------------------------------------------------------------
FEB = T0 - timedelta(days=29)  # 2024-02-15: a cycle of the previous period


def test_a_previous_periods_payout_paid_in_this_one_is_matched_and_says_so() -> None:
    late = [tr("tr_late", key="lp_feb")]
    alone = reconcile(ledger_frame([led()]), transfer_frame([tr(), *late]), link_frame([link(), link("tr_late")]),
                      CFG).results.set_index("transfer_id")
    assert alone.loc["tr_late", "category"] == "MISSING_IN_LEDGER"
    other = ledger_frame([led("lp_feb", expected_at=FEB, run_id="run_feb")])
    r = reconcile(ledger_frame([led()]), transfer_frame([tr(), *late]), link_frame([link(), link("tr_late")]), CFG,
                  other_period=other).results.set_index("transfer_id")
    assert len(r) == 2 and r.loc["tr_late", "category"] == "MATCHED"
    assert r.loc["tr_late", "ledger_payout_id"] == "lp_feb" and r.loc["tr_late", "run_id"] == "run_feb"
    assert r.loc["tr_late", "reason"] == ("the ledger payout belongs to an earlier period (expected 2024-02-15), "
                                          "paid in this one")
    assert pd.isna(r.loc["tr_1", "reason"])  # the period's own rows are untouched


def test_another_periods_payout_keeps_its_break_and_its_reason_says_which_period() -> None:
    other = ledger_frame([led("lp_apr", amount=12_000, expected_at=T0 + timedelta(days=31))])
    r = reconcile(ledger_frame([led()]), transfer_frame([tr(), tr("tr_early", key="lp_apr")]),
                  link_frame([link(), link("tr_early")]), CFG, other_period=other).results.set_index("transfer_id")
    row = r.loc["tr_early"]
    assert row["category"] == "AMOUNT_MISMATCH" and row["difference"] == -2_000
    assert row["reason"].startswith("Stripe moved 100.00 CAD, ledger says 120.00 CAD")
    assert row["reason"].endswith("; the ledger payout belongs to a later period (expected 2024-04-15), paid in "
                                  "this one")


def test_other_period_rows_the_ledger_already_has_are_not_doubled() -> None:
    ledger = ledger_frame([led()])
    r = reconcile(ledger, transfer_frame([tr()]), link_frame([link()]), CFG, other_period=ledger).results
    assert r["category"].tolist() == ["MATCHED"] and pd.isna(r["reason"].iloc[0])
