"""The candidates (rows whose key, transfer id or destination payment may be shared, found by hash) and the
fallback to "every key a candidate" when a hash collision could have hidden a leftover pair; exact amounts
in break texts; concurrent calls."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest

from payops.reconcile import match
from payops.reconcile.match import reconcile
from payops.reconcile.schema import ReconConfig
from payops.reconcile.synth import bulk_dataset, ledger_frame, link_frame, transfer_frame

CFG = ReconConfig(period_from=date(2024, 3, 1), period_to=date(2024, 3, 31), tolerance=100)
T0 = datetime(2024, 3, 15, 6, tzinfo=UTC)
NULL = np.uint64(7 << 40)


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


@pytest.mark.parametrize("seed", range(20))
def test_irregular_keys_match_a_count_per_hash(seed: int) -> None:
    rng = np.random.default_rng(seed)
    domain = [*(np.uint64(v << 40) for v in range(12)), NULL]  # low bits clear: the packing keeps every value
    hl = rng.choice(domain, rng.integers(0, 15)).astype(np.uint64)
    hk = rng.choice(domain, rng.integers(0, 15)).astype(np.uint64)
    lpos, tpos = match._irregular_keys(hl.copy(), hk.copy(), NULL)

    def irregular(h: np.uint64) -> bool:
        return h == NULL or int((hl == h).sum()) != 1 or int((hk == h).sum()) != 1

    assert lpos.tolist() == [i for i, h in enumerate(hl) if irregular(h)]
    assert tpos.tolist() == [j for j, h in enumerate(hk) if irregular(h)]


def test_shared_hashes_and_null() -> None:
    h = np.array([5, 9, 5, 7, 3, 3, 3, 1], dtype=np.uint64)
    assert match._shared(h, np.uint64(7)).tolist() == [0, 2, 3, 4, 5, 6]
    assert match._shared(np.array([], dtype=np.uint64), np.uint64(7)).tolist() == []


def test_a_hidden_leftover_pair_reruns_with_every_key_a_candidate(monkeypatch: pytest.MonkeyPatch) -> None:
    # lp_2 has no transfer, tr_9's key names no ledger row: leftovers the fallback pairs. Had their hashes
    # collided they would look like one regular pair and not be candidates; the check must catch that.
    ledgers = [led(), led("lp_2", 777)]
    transfers = [tr(), tr("tr_9", 777, key="lp_gone"), tr("tr_3", 50, key=None, destination="acct_3")]
    args = (*frames(ledgers, transfers), CFG)
    expected = reconcile(*args).results
    assert set(expected["confidence"]) == {"key", "fallback", "none"}

    real, runs = match._irregular_keys, []

    def collided(hl: np.ndarray, hk: np.ndarray, null: np.uint64) -> tuple[np.ndarray, np.ndarray]:
        lpos, tpos = real(hl, hk, null)
        return lpos[lpos != 1], tpos[tpos != 1]  # lp_2 and tr_9 taken for one regular pair

    real_run = match._run

    def run(*a: Any, **kw: Any) -> pd.DataFrame | None:
        runs.append(kw["exact_keys"])
        return real_run(*a, **kw)

    monkeypatch.setattr(match, "_irregular_keys", collided)
    monkeypatch.setattr(match, "_run", run)
    got = reconcile(*args).results
    assert runs == [False, True]
    pd.testing.assert_frame_equal(_sorted(got), _sorted(expected))


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
    r = reconcile(*frames([led()], [tr()]), CFG).results.iloc[0]
    assert r["reason"] == "matched on ledger id; paid out to the bank in po_tr_1" and r["suggested_action"] == ""


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
