"""The candidates (whole key groups that are not one ledger row + one transfer, from the key join's positions),
the id checks (transfer ids by hash, then by the ids), the text scatter; exact amounts in break texts;
concurrent calls."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from payops.reconcile import match
from payops.reconcile.match import reconcile
from payops.reconcile.schema import ReconConfig
from payops.reconcile.synth import bulk_dataset, ledger_frame, link_frame, transfer_frame

CFG = ReconConfig(period_from=date(2024, 3, 1), period_to=date(2024, 3, 31), tolerance=100)
T0 = datetime(2024, 3, 15, 6, tzinfo=UTC)


def led(lid: str = "lp_1", amount: int = 10_000, currency: str = "CAD", **kw: Any) -> dict[str, Any]:
    return {"ledger_payout_id": lid, "run_id": "run_1", "studio_id": "st_1", "destination": "acct_1",
            "amount": amount, "currency": currency, "expected_at": T0, **kw}


def tr(tid: str = "tr_1", amount: int = 10_000, key: str | None = "lp_1", currency: str = "CAD",
       **kw: Any) -> dict[str, Any]:
    return {"transfer_id": tid, "created": T0 + timedelta(minutes=5), "amount": amount, "currency": currency,
            "destination": "acct_1", "transfer_group": key, "ledger_payout_id": key,
            "destination_payment": f"py_{tid}", **kw}


def link(tid: str = "tr_1") -> dict[str, Any]:
    return {"destination_payment": f"py_{tid}", "payout_id": f"po_{tid}", "account": "acct_1",
            "payout_status": "paid", "arrival_date": T0 + timedelta(days=2)}


def frames(ledgers: list[dict], transfers: list[dict]) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    return ledger_frame(ledgers), transfer_frame(transfers), link_frame([link(t["transfer_id"]) for t in transfers])


def _sorted(df: pd.DataFrame) -> pd.DataFrame:
    return df.sort_values(["ledger_payout_id", "transfer_id"], na_position="last").reset_index(drop=True)


@pytest.mark.parametrize("seed", range(25))
def test_candidates_are_exactly_the_irregular_key_groups(seed: int) -> None:
    rng = np.random.default_rng(seed)
    lids = [f"lp_{i}" for i in range(int(rng.integers(0, 12)))]
    keys = [*lids, "lp_ghost1", "lp_ghost2", None]
    tkeys = [keys[int(i)] for i in rng.integers(0, len(keys), int(rng.integers(0, 15)))]
    ledger = match._conform(ledger_frame([led(x) for x in lids]), match.LEDGER_COLUMNS, "ledger")
    transfers = match._conform(transfer_frame([tr(f"tr_{j}", key=k) for j, k in enumerate(tkeys)]),
                               match.TRANSFER_COLUMNS, "transfers")
    with match._session() as con, ThreadPoolExecutor(1) as pool:
        con.register("ledger_in", ledger)
        con.register("transfers_in", transfers)
        lpos, tpos, key_l, repeats = match._candidates(con, ledger, transfers, pool)
        assert repeats.result() is False

    per_l = {x: tkeys.count(x) for x in lids}
    assert lpos.tolist() == [i for i, x in enumerate(lids) if per_l[x] != 1]
    assert tpos.tolist() == [j for j, k in enumerate(tkeys) if per_l.get(k, 0) != 1]
    assert key_l.tolist() == [lids.index(k) if k in lids else -1 for k in tkeys]


@pytest.mark.parametrize("seed", range(10))
def test_repeats_finds_any_repeated_value(seed: int) -> None:
    rng = np.random.default_rng(seed)
    # values that share their top bits (the counting pass) but differ below, and exact repeats
    h = (rng.integers(0, 4, 3000).astype(np.uint64) << np.uint64(60)) | rng.integers(0, 1 << 40, 3000).astype(np.uint64)
    h = np.unique(h)
    rng.shuffle(h)
    assert match._repeats(h) is False
    assert match._repeats(np.append(h, h[int(rng.integers(0, len(h)))])) is True
    assert match._repeats(h[:1]) is False and match._repeats(h[:0]) is False


def test_a_transfer_id_hash_collision_is_checked_by_the_ids(monkeypatch: pytest.MonkeyPatch) -> None:
    args = (*frames([led(), led("lp_2")], [tr(), tr("tr_2", key="lp_2")]), CFG)
    expected = reconcile(*args).results
    checked: list[int] = []
    real = match._check_ids

    def check(lid: pd.Series, tid: pd.Series) -> None:
        checked.append(len(tid))
        real(lid, tid)

    monkeypatch.setattr(match, "_repeats", lambda h: True)  # as if two ids' hashes collided
    monkeypatch.setattr(match, "_check_ids", check)
    pd.testing.assert_frame_equal(_sorted(reconcile(*args).results), _sorted(expected))
    assert checked == [2]


def test_a_repeated_transfer_id_under_distinct_keys_is_refused() -> None:
    # each key is one ledger row + one transfer: only the id check can see tr_1 twice
    ledger = ledger_frame([led(), led("lp_2")])
    transfers = transfer_frame([tr(), tr("tr_1", key="lp_2")])
    with pytest.raises(ValueError, match="0 repeated ledger_payout_id, 1 repeated transfer_id"):
        reconcile(ledger, transfers, None, CFG)


def test_a_repeated_ledger_id_without_transfers_is_refused() -> None:
    ledger = ledger_frame([led(), led("lp_2"), led("lp_2")])
    with pytest.raises(ValueError, match="1 repeated ledger_payout_id, 0 repeated transfer_id"):
        reconcile(ledger, transfer_frame([tr()]), None, CFG)


@pytest.mark.parametrize("values,mask", [
    (["a", "", "ccc"], [False, True, True, False, True]),
    ([], [False, False]),
    ([], []),
    (["x", None, "zz"], [True, True, False, True]),
    (["", ""], [True, True]),
])
def test_scatter_puts_values_in_order_and_null_elsewhere(values: list, mask: list) -> None:
    m = pa.array(mask, pa.bool_())
    for v in (pa.array(values, pa.large_string()), pa.array(["pad", *values], pa.large_string()).slice(1)):
        got = match._scatter(m, v)
        got.validate(full=True)
        assert got.equals(pc.replace_with_mask(pa.nulls(len(mask), pa.large_string()), m, v))


def test_repeated_and_null_ids_are_counted() -> None:
    ledger = ledger_frame([led(), led(), led("lp_2"), led(None)])
    transfers = transfer_frame([tr(), tr("tr_2"), tr("tr_2", key="lp_2"), tr(None, key="lp_x")])
    with pytest.raises(ValueError, match="2 repeated ledger_payout_id, 2 repeated transfer_id"):
        reconcile(ledger, transfers, None, CFG)


def test_repeated_destination_payment_outside_the_transfers_is_harmless() -> None:
    links = [link(), {**link("tr_x"), "payout_id": "po_a"}, {**link("tr_x"), "payout_id": "po_b"}]
    r = reconcile(ledger_frame([led()]), transfer_frame([tr()]), link_frame(links), CFG).results
    assert r["category"].tolist() == ["MATCHED"] and r["payout_id"].tolist() == ["po_tr_1"]


@pytest.mark.parametrize("currency,amount,kw,reason,action", [
    ("KWD", 10_101, {}, "Stripe moved 10.101 KWD, ledger says 10.000 KWD: difference 0.101 KWD over tolerance "
     "0.100 KWD", "recover the overpayment 0.101 KWD (partial reversal of tr_1) or correct the ledger"),
    ("JPY", 10_101, {}, "Stripe moved 10101 JPY, ledger says 10000 JPY: difference 101 JPY over tolerance 100 JPY",
     "recover the overpayment 101 JPY (partial reversal of tr_1) or correct the ledger"),
    ("CAD", 9_000, {}, "Stripe moved 90.00 CAD, ledger says 100.00 CAD: difference -10.00 CAD over tolerance 1.00 CAD",
     "pay the shortfall 10.00 CAD for lp_1 or correct the ledger"),
    ("CAD", 10_000, {"amount_reversed": 2_550},
     "25.50 CAD of tr_1 was reversed: the studio kept 74.50 CAD, the ledger says 100.00 CAD",
     "pay the remaining 25.50 CAD for lp_1 or adjust the ledger"),
    ("KWD", 10_050, {}, "Stripe moved 10.050 KWD, ledger says 10.000 KWD: difference 0.050 KWD within tolerance "
     "0.100 KWD", "none: within tolerance"),
])
def test_break_texts_carry_exact_amounts(currency: str, amount: int, kw: dict, reason: str, action: str) -> None:
    args = frames([led(currency=currency)], [tr(amount=amount, currency=currency, **kw)])
    row = reconcile(*args, CFG).results.iloc[0]
    assert (row["reason"], row["suggested_action"]) == (reason, action)


def test_matched_rows_text() -> None:
    # matched by key: nothing to explain or do; matched by the fallback: why it is a lower-confidence match
    ledgers = [led(), led("lp_2", 777, destination="acct_2")]
    transfers = [tr(), tr("tr_2", 777, key=None, destination="acct_2")]
    r = reconcile(*frames(ledgers, transfers), CFG).results.set_index("transfer_id")
    assert r.loc["tr_1", "category"] == "MATCHED" and r.loc["tr_1", "confidence"] == "key"
    assert pd.isna(r.loc["tr_1", "reason"]) and pd.isna(r.loc["tr_1", "suggested_action"])
    assert r.loc["tr_2", "category"] == "MATCHED" and r.loc["tr_2", "confidence"] == "fallback"
    assert r.loc["tr_2", "reason"] == "matched on destination + amount + date: no ledger id in metadata"
    assert pd.isna(r.loc["tr_2", "suggested_action"])


def test_concurrent_calls_agree() -> None:
    ledger, transfers, links, cfg = bulk_dataset(5_000, break_rate=0.2)
    alone = _sorted(reconcile(ledger, transfers, links, cfg).results)
    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(lambda _: reconcile(ledger, transfers, links, cfg).results, range(3)))
    for r in results:
        pd.testing.assert_frame_equal(_sorted(r), alone)


def test_releasing_memory_keeps_the_session_and_the_limit() -> None:
    with match._session() as con:
        con.execute("CREATE TEMP TABLE t AS SELECT range AS x FROM range(100000)")
        ((limit,),) = con.execute("SELECT current_setting('memory_limit')").fetchall()
        match._release(alone=True)
        assert con.execute("SELECT count(*), sum(x) FROM t").fetchall() == [(100000, 4999950000)]
        assert con.execute("SELECT current_setting('memory_limit')").fetchall() == [(limit,)]
    assert match._DB_SESSIONS == 0


@pytest.mark.parametrize("ledger_amount,amount,reversed_amount", [
    (5, -(2**63) + 1, 10),             # amount - amount_reversed
    (-(2**63) + 1, 2**63 - 1, 0),      # stripe_amount - ledger_amount
    (2**62, -(2**62), 0),              # their difference is -2**63: its absolute value does not fit
])
def test_amounts_whose_arithmetic_overflows_int64_are_refused(ledger_amount: int, amount: int,
                                                              reversed_amount: int) -> None:
    # exact integer minor units: never a silently wrapped difference (DuckDB's BIGINT arithmetic raised too)
    args = frames([led(amount=ledger_amount)], [tr(amount=amount, amount_reversed=reversed_amount)])
    with pytest.raises(ValueError, match="overflows int64"):
        reconcile(*args, CFG)
    fine = reconcile(*frames([led(amount=2**63 - 1)], [tr(amount=2**63 - 1)]), CFG).results
    assert fine["difference"].tolist() == [0]
