"""The edges of a period: transfers left to the next period, and other periods' ledger payouts paid in this one.

A November reconciliation pulls transfers up to the cut-off margin past November 30 — where the December 1st
cycle's transfers sit. Those belong to December: counted there, not here (and never MISSING_IN_LEDGER here).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pandas as pd

from payops.reconcile.match import reconcile
from payops.reconcile.periods import DEFERRED_COLUMNS, later_period, other_period_keys, period_end, transfer_key
from payops.reconcile.schema import ReconConfig
from payops.reconcile.synth import ledger_frame, link_frame, transfer_frame

NOV = ReconConfig(period_from=date(2026, 11, 1), period_to=date(2026, 11, 30), tolerance=0, cutoff_margin_days=3)
NOV15 = datetime(2026, 11, 15, 6, tzinfo=UTC)
DEC1 = datetime(2026, 12, 1, 6, tzinfo=UTC)  # the next cycle: inside November's cut-off margin


def led(lid: str, at: datetime = NOV15, amount: int = 10_000, dest: str = "acct_1", **kw: Any) -> dict[str, Any]:
    return {"ledger_payout_id": lid, "run_id": f"run_{at.date()}", "studio_id": "st_1", "destination": dest,
            "amount": amount, "currency": "CAD", "expected_at": at, **kw}


def tr(tid: str, key: str | None, at: datetime, amount: int = 10_000, dest: str = "acct_1",
       **kw: Any) -> dict[str, Any]:
    return {"transfer_id": tid, "created": at + timedelta(minutes=5), "amount": amount, "currency": "CAD",
            "destination": dest, "transfer_group": key, "ledger_payout_id": key, "destination_payment": f"py_{tid}",
            **kw}


def link(tid: str, arrival: datetime) -> dict[str, Any]:
    return {"destination_payment": f"py_{tid}", "payout_id": f"po_{tid}", "account": "acct_1",
            "payout_status": "paid", "arrival_date": arrival}


def frames(ledgers: list[dict], transfers: list[dict]) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    links = [link(t["transfer_id"], t["created"] + timedelta(days=1)) for t in transfers]
    return ledger_frame(ledgers), transfer_frame(transfers), link_frame(links)


def test_period_end_is_midnight_after_the_last_day_in_the_periods_zone() -> None:
    assert period_end(NOV) == datetime(2026, 12, 1, tzinfo=UTC)
    toronto = ReconConfig(date(2026, 11, 1), date(2026, 11, 30), timezone="America/Toronto")
    assert period_end(toronto) == datetime(2026, 12, 1, 5, tzinfo=UTC)


def test_the_next_cycles_transfers_in_the_margin_are_left_to_the_next_period() -> None:
    ledger, transfers, links = frames(
        [led("lp_nov_a"), led("lp_nov_b", amount=5_000)],
        [tr("tr_a", "lp_nov_a", NOV15), tr("tr_b", "lp_nov_b", NOV15, amount=5_000),
         tr("tr_dec_a", "lp_dec_a", DEC1), tr("tr_dec_b", "lp_dec_b", DEC1, amount=7_000)])
    res = reconcile(ledger, transfers, links, NOV)
    r = res.results
    assert sorted(r["transfer_id"]) == ["tr_a", "tr_b"] and set(r["category"]) == {"MATCHED"}
    d = res.deferred
    assert sorted(d["transfer_id"]) == ["tr_dec_a", "tr_dec_b"]
    assert {c: str(t) for c, t in d.dtypes.items()} == DEFERRED_COLUMNS
    assert d.set_index("transfer_id").loc["tr_dec_b", "amount"] == 7_000
    assert sorted(d["ledger_payout_id"]) == ["lp_dec_a", "lp_dec_b"]
    assert d["reason"].str.startswith("created after the period end 2026-11-30, for a ledger payout of another "
                                      "period").all()
    # even when a caller hands over December's ledger rows as "other periods": December counts them, not November
    other = ledger_frame([led("lp_dec_a", DEC1), led("lp_dec_b", DEC1, amount=7_000)])
    again = reconcile(ledger, transfers, links, NOV, other_period=other)
    pd.testing.assert_frame_equal(again.results, r)
    assert again.other_period_ids == frozenset() and len(again.deferred) == 2


def test_a_late_payment_of_this_periods_payout_stays_and_is_timing() -> None:
    """Created in the margin but for a November ledger payout: November's, in transit at the cut-off."""
    ledger, transfers, links = frames([led("lp_nov")], [tr("tr_late", "lp_nov", DEC1)])
    res = reconcile(ledger, transfers, links, NOV)
    assert res.results["category"].tolist() == ["TIMING_IN_TRANSIT"] and res.deferred.empty


def test_a_second_payment_in_the_margin_of_this_periods_payout_is_a_duplicate_here() -> None:
    ledger, transfers, links = frames([led("lp_nov")], [tr("tr_1", "lp_nov", NOV15),
                                                        tr("tr_2", "lp_nov", DEC1, source="manual")])
    res = reconcile(ledger, transfers, links, NOV)
    assert res.results["category"].tolist() == ["DUPLICATE_PAYMENT"] * 2 and res.deferred.empty


def test_key_less_transfers_after_the_end_stay_only_if_the_fallback_pairs_them_here() -> None:
    ledger, transfers, links = frames(
        [led("lp_nov", at=datetime(2026, 11, 30, 6, tzinfo=UTC), dest="acct_9", amount=4_200)],
        [tr("tr_pairs", None, datetime(2026, 12, 1, 1, tzinfo=UTC), amount=4_200, dest="acct_9"),  # within 3 days
         tr("tr_stranger", None, DEC1, amount=999, dest="acct_7")])
    res = reconcile(ledger, transfers, links, NOV)
    r = res.results.set_index("transfer_id")
    assert list(r.index) == ["tr_pairs"] and r.loc["tr_pairs", "confidence"] == "fallback"
    assert r.loc["tr_pairs", "category"] == "TIMING_IN_TRANSIT"
    assert res.deferred["transfer_id"].tolist() == ["tr_stranger"]
    assert res.deferred["reason"].iloc[0].endswith("with no ledger id, and no ledger payout of this period matches "
                                                   "it: the next period's")


def test_a_transfer_in_the_period_naming_no_ledger_payout_is_still_missing_in_ledger() -> None:
    ledger, transfers, links = frames([], [tr("tr_ghost", "lp_ghost", NOV15), tr("tr_none", None, NOV15)])
    res = reconcile(ledger, transfers, links, NOV)
    assert res.results["category"].tolist() == ["MISSING_IN_LEDGER"] * 2 and res.deferred.empty


def test_keys_and_the_other_periods_to_load() -> None:
    t = transfer_frame([
        tr("tr_1", "lp-1", NOV15), tr("tr_9", "lp-9", NOV15), tr("tr_8", None, NOV15, transfer_group="lp-8"),
        tr("tr_7", None, NOV15, ledger_payout_id="", transfer_group=" lp-7 "), tr("tr_0", None, NOV15),
        tr("tr_dec", "lp-dec", DEC1),  # the next period's: not loaded here
        tr("tr_late", "lp-2", DEC1),   # this period's, paid late
    ])
    ledger = ledger_frame([led("lp-1"), led("lp-2")])
    assert transfer_key(t).tolist()[:5] == ["lp-1", "lp-9", "lp-8", " lp-7 ", pd.NA]  # the matcher's key, as is
    assert later_period(t, ledger["ledger_payout_id"], NOV).tolist() == [False] * 5 + [True, False]
    assert other_period_keys(t, ledger, NOV) == [" lp-7 ", "lp-8", "lp-9"]
    assert other_period_keys(t.iloc[:0], ledger, NOV) == []


def test_the_report_lists_both_edges() -> None:
    from payops.reconcile import report

    ledger, transfers, links = frames(
        [led("lp_nov")], [tr("tr_nov", "lp_nov", NOV15), tr("tr_oct", "lp_oct", NOV15, amount=3_000),
                          tr("tr_dec", "lp_dec", DEC1, amount=7_050)])
    other = ledger_frame([led("lp_oct", datetime(2026, 10, 15, 6, tzinfo=UTC), amount=3_000)])
    res = reconcile(ledger, transfers, links, NOV, other_period=other)
    paid_here = report.other_periods(res)
    assert paid_here[["ledger_payout_id", "category", "transfer_id", "ledger_amount"]].values.tolist() == [
        ["lp_oct", "MATCHED", "tr_oct", "30.00"]]
    assert str(paid_here["expected_at"].iloc[0]) == "2026-10-15"
    left = report.deferred(res)
    assert left[["transfer_id", "created", "amount", "ledger_payout_id"]].values.tolist() == [
        ["tr_dec", "2026-12-01 06:05", "70.50 CAD", "lp_dec"]]
    nothing = reconcile(ledger, transfers.iloc[:1], links, NOV)
    assert report.other_periods(nothing).empty and report.deferred(nothing).empty
