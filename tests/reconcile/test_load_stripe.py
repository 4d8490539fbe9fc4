"""The parallel Stripe pull against the sandbox: same set as a serial listing, 429s, the cache."""

from __future__ import annotations

import itertools
import math
import random
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from payops import demo_data as dd
from payops.reconcile.load_stripe import PullStats, load_stripe, plan_slices, pull_transfers
from payops.reconcile.schema import PAYOUT_LINK_COLUMNS, TRANSFER_COLUMNS, ReconConfig
from payops.sandbox.testing import RunningSandbox, start_sandbox
from payops.sandbox.transfers import record_transfer

N = 1_200
DAY = 86_400
ACCOUNT = "acct_recon_bulk"


def bulk_transfers(sb: RunningSandbox, n: int, lo: int, hi: int, seed: int = 7) -> None:
    """Backdated transfers booked straight into the sandbox's state (its own internals)."""
    rng = random.Random(seed)
    state = sb.sandbox.state
    with state.lock:
        for i in range(n):
            created = rng.randrange(lo, hi)
            if i % 50 == 0:
                created = lo + (hi - lo) // 2  # many objects on one second, some exactly on slice edges
            record_transfer(state, amount=100 + i, currency="cad", destination=ACCOUNT, created=created,
                            metadata={"ledger_payout_id": f"lp-{i}"}, transfer_group=f"lp-{i}")
        state.unswept.clear()


@pytest.fixture(scope="module")
def bulk() -> Iterator[tuple[RunningSandbox, int, int]]:
    sb = start_sandbox(seed="none", rate_limit=0)
    sb.control("POST", "accounts", {"id": ACCOUNT, "payout_interval": "manual"})
    hi = int(time.time()) // DAY * DAY
    lo = hi - 40 * DAY
    bulk_transfers(sb, N, lo, hi - DAY)
    yield sb, lo, hi
    sb.stop()


def _serial_ids(sb: RunningSandbox, lo: int, hi: int) -> list[str]:
    page = sb.client().v1.transfers.list(params={"limit": 100, "created": {"gte": lo, "lt": hi}})
    return [t.id for t in page.auto_paging_iter()]


def test_slices_are_contiguous_and_half_open() -> None:
    plan = plan_slices(0, 1_000, 7)
    assert plan[0].lo == 0 and plan[-1].hi == 1_000
    assert all(a.hi == b.lo for a, b in itertools.pairwise(plan))
    assert plan_slices(5, 5, 3) == [] and len(plan_slices(0, 2, 10)) == 2


def test_parallel_pull_equals_serial_listing(bulk: tuple[RunningSandbox, int, int]) -> None:
    sb, lo, hi = bulk
    serial = _serial_ids(sb, lo, hi)
    assert len(serial) == N == len(set(serial))
    for slices, threads in ((1, 1), (7, 4), (13, 8), (40, 16)):
        stats = PullStats()
        got = pull_transfers(sb.client, lo, hi, slices=slices, threads=threads, max_rps=None, progress=False,
                             stats=stats)
        ids = [t["id"] for t in got]
        assert len(ids) == len(set(ids)) == N, (slices, threads)
        assert set(ids) == set(serial)
        assert stats.slices_pulled == slices and stats.transfers == N


def test_pull_survives_rate_limit(bulk: tuple[RunningSandbox, int, int]) -> None:
    sb, lo, hi = bulk
    sb.set_faults(rate_limit=5)
    try:
        stats = PullStats()
        got = pull_transfers(sb.client, lo, hi, slices=6, threads=6, max_rps=None, progress=False, stats=stats)
    finally:
        sb.clear_faults()
        sb.set_faults(rate_limit=0)
    assert stats.retries > 0, "the rate limit was never hit: the test proves nothing"
    assert {t["id"] for t in got} == set(_serial_ids(sb, lo, hi)) and len(got) == N


def test_cache_skips_sealed_slices(bulk: tuple[RunningSandbox, int, int], tmp_path: Path) -> None:
    sb, lo, hi = bulk
    kw = {"slices": 8, "threads": 4, "cache_dir": tmp_path, "max_rps": None, "progress": False, "seal_after": 3 * DAY}
    sb.sandbox.requests.clear()
    first = pull_transfers(sb.client, lo, hi, **kw)  # type: ignore[arg-type]
    first_requests = sum(r["path"] == "/v1/transfers" for r in sb.sandbox.requests)
    assert len(list((tmp_path / "transfers").glob("*.json"))) == 8
    sb.sandbox.requests.clear()
    stats = PullStats()
    second = pull_transfers(sb.client, lo, hi, stats=stats, **kw)  # type: ignore[arg-type]
    last = plan_slices(lo, hi, 8)[-1]
    in_last = sum(last.lo <= t["created"] < last.hi for t in first)
    requests = [r for r in sb.sandbox.requests if r["path"] == "/v1/transfers"]
    assert (stats.slices_cached, stats.slices_pulled) == (7, 1)
    assert len(requests) == max(1, math.ceil(in_last / 100)) < first_requests
    assert [t["id"] for t in second] == [t["id"] for t in first]


def test_load_stripe_demo_frames_and_chain() -> None:
    with start_sandbox(seed="demo", rate_limit=0) as sb:
        transfers, links = load_stripe(sb.client, ReconConfig(date(2026, 9, 1), date(2026, 11, 30)), None,
                                       progress=False)
    assert {c: str(t) for c, t in transfers.dtypes.items()} == TRANSFER_COLUMNS
    assert list(links.columns) == list(PAYOUT_LINK_COLUMNS)
    by_id = transfers.set_index("transfer_id")
    assert by_id.loc[dd.RECON_DUP_TRANSFER, "source"] == "manual"
    assert by_id.loc[dd.RECON_REVERSED_TRANSFER, "amount_reversed"] == 15_000
    assert pd_isna(by_id.loc[dd.RECON_ORPHAN_TRANSFER, "ledger_payout_id"])
    failed = links[links["payout_id"] == dd.RECON_FAILED_PAYOUT]
    assert failed["payout_status"].tolist() == ["failed"] and failed["failure_code"].tolist() == ["account_closed"]
    assert set(transfers["destination_payment"]) <= set(links["destination_payment"])


def pd_isna(v: object) -> bool:
    import pandas as pd

    return bool(pd.isna(v))


def test_recorded_transfers_outside_the_window_are_fetched_by_id() -> None:
    """What the ledger says it paid with, paid after the cut-off (or before the period), is pulled by id with
    its payout; an id Stripe does not know is counted; one already in the window is not fetched twice."""
    from payops.reconcile.load_stripe import window
    from payops.sandbox.payouts import record_payout

    account = "acct_recon_late"
    config = ReconConfig(date(2026, 9, 1), date(2026, 9, 30))
    lo, hi = window(config)
    with start_sandbox(seed="none", rate_limit=0) as sb:
        sb.control("POST", "accounts", {"id": account, "payout_interval": "manual"})
        state = sb.sandbox.state
        with state.lock:
            made = {name: record_transfer(state, amount=1_000 + i, currency="cad", destination=account, created=at,
                                          metadata={"ledger_payout_id": f"lp-{name}"}, transfer_group=f"lp-{name}")
                    for i, (name, at) in enumerate((("inside", lo + 5 * DAY), ("late", hi + 20 * DAY),
                                                    ("early", lo - 10 * DAY)))}
            late_txn = state.unswept.pop(f"{account}|cad")[1]  # the late transfer's destination payment only
            po = record_payout(state, None, account=account, amount=1_001, currency="cad", automatic=True,
                               created=hi + 21 * DAY, delay=0, arrival_date=hi + 22 * DAY, sweep=[late_txn],
                               schedule=False)
            po.update(status="paid")
        ids = {name: tr["id"] for name, tr in made.items()}
        plain, _ = load_stripe(sb.client, config, None, progress=False, max_rps=None)
        sb.sandbox.requests.clear()
        transfers, links = load_stripe(sb.client, config, None, progress=False, max_rps=None,
                                       recorded=[ids["inside"], ids["late"], ids["early"], "tr_not_in_stripe"])
        by_id = [r["path"] for r in sb.sandbox.requests if r["path"].startswith("/v1/transfers/")]

    assert plain["transfer_id"].tolist() == [ids["inside"]]
    assert sorted(transfers["transfer_id"]) == sorted(ids.values()) and transfers["transfer_id"].is_unique
    assert sorted(by_id) == sorted(f"/v1/transfers/{t}" for t in (ids["late"], ids["early"], "tr_not_in_stripe"))
    stats = transfers.attrs["pull_stats"]
    assert (stats["recorded_found"], stats["recorded_not_found"]) == (2, 1)
    late_py = made["late"]["destination_payment"]
    assert links.loc[links["destination_payment"] == late_py, ["payout_id", "payout_status"]].values.tolist() == [
        [po["id"], "paid"]]


def test_recorded_transfer_ids_take_both_the_ledger_and_the_manual_transfer() -> None:
    import pandas as pd

    from payops.reconcile.load_stripe import recorded_transfer_ids

    ledger = pd.DataFrame({"ledger_transfer_id": pd.array(["tr_auto", None, "tr_b"], dtype="string"),
                           "manual_transfer_id": pd.array(["tr_manual", "tr_b", None], dtype="string")})
    assert recorded_transfer_ids(ledger) == ["tr_auto", "tr_b", "tr_manual"]


def test_pull_stats_in_words() -> None:
    from payops.reconcile.load_stripe import describe_pull

    stats = PullStats(requests=35, retries=2, slices_cached=3, slices_pulled=10, transfers=1_400, payouts=15,
                      links=1_380, recorded_found=1, recorded_not_found=1, seconds=0.94).as_dict()
    assert describe_pull(stats) == ("35 request(s), 2 retried, 0.9 s · 10 time slice(s) pulled, 3 from cache · "
                                    "1,400 transfer(s) in the window · 1 of 2 recorded by the ledger outside it "
                                    "found by id · 15 payout(s), 1,380 link(s)")
    assert "recorded" not in describe_pull(stats | {"recorded_found": 0, "recorded_not_found": 0})


def test_a_quick_pull_leaves_no_progress_lines_a_slow_one_does(monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    """Seen in the archived report: every pull left "stripe transfers: 0obj [00:00, ?obj/s]" lines. A bar shows
    only once a pull has taken BAR_DELAY seconds (then redraws at most every BAR_INTERVAL_NOTEBOOK off a tty)."""
    from payops.reconcile import load_stripe as ls

    bar = ls._bar("stripe transfers", True)
    bar.update(14)
    bar.close()
    assert capsys.readouterr().out == ""
    monkeypatch.setattr(ls, "BAR_DELAY", 0.0)
    monkeypatch.setattr(ls, "BAR_INTERVAL_NOTEBOOK", 0.0)
    bar = ls._bar("stripe transfers", True)
    bar.update(14)
    bar.close()
    assert "stripe transfers: 14obj" in capsys.readouterr().out
