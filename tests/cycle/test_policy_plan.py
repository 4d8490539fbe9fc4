"""The cycle's arithmetic and planning: pure functions, checked with examples and properties."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from payops.config import Settings
from payops.cycle.plan import Earning, StudioFacts, idempotency_key, plan_cycle, transfer_request
from payops.cycle.policy import PayoutPolicy, percent_to_bps
from payops.errors import ConfigError
from payops.ids import ledger_payout_id, payout_run_id

CYCLE = date(2026, 12, 1)
CUTOFF = datetime(2026, 12, 1, 6, 0, tzinfo=UTC)
POLICY = PayoutPolicy(fee_bps=1500, reserve_bps=1000, min_threshold=1000, default_currency="CAD")


@pytest.mark.parametrize(("text", "bps"), [("15", 1500), ("12.5", 1250), ("2.25", 225), ("0", 0), ("100", 10_000),
                                           (" 7.05 ", 705)])
def test_percent_is_read_exactly(text: str, bps: int) -> None:
    assert percent_to_bps(text, "PLATFORM_FEE_PERCENT") == bps


@pytest.mark.parametrize("text", ["", "abc", "1e1", "-5", "15%", "12.345", "100.01", "0x10", "nan", "1,5"])
def test_bad_percent_names_the_variable(text: str) -> None:
    with pytest.raises(ConfigError, match="PAYOUT_RESERVE_PERCENT"):
        percent_to_bps(text, "PAYOUT_RESERVE_PERCENT")


def test_fee_plus_reserve_over_100_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"PLATFORM_FEE_PERCENT \+ PAYOUT_RESERVE_PERCENT is 110%"):
        PayoutPolicy.from_settings(Settings(PLATFORM_FEE_PERCENT="60", PAYOUT_RESERVE_PERCENT="50"))


def test_policy_from_settings_and_bad_currency() -> None:
    p = PayoutPolicy.from_settings(Settings(PLATFORM_FEE_PERCENT="12.5", PAYOUT_RESERVE_PERCENT="5",
                                            PAYOUT_MIN_THRESHOLD_CENTS="2500", PLATFORM_DEFAULT_CURRENCY="usd"))
    assert (p.fee_bps, p.reserve_bps, p.min_threshold, p.default_currency) == (1250, 500, 2500, "USD")
    with pytest.raises(ConfigError, match="PLATFORM_DEFAULT_CURRENCY"):
        PayoutPolicy.from_settings(Settings(PLATFORM_DEFAULT_CURRENCY="XYZ"))


def test_split_rounds_fee_and_reserve_down() -> None:
    s = POLICY.split(99_250)  # 14887.5 fee, 9925 reserve
    assert (s.fee, s.reserve, s.net) == (14_887, 9_925, 74_438)
    assert POLICY.split(1) == POLICY.split(1).__class__(1, 0, 0, 1)
    assert POLICY.split(-500).net == -500 and POLICY.split(0).fee == 0
    with pytest.raises(TypeError):
        POLICY.split(10.0)  # type: ignore[arg-type]


@given(gross=st.integers(min_value=-10**12, max_value=10**15), fee=st.integers(0, 10_000),
       reserve=st.integers(0, 10_000))
def test_parts_always_sum_to_the_gross(gross: int, fee: int, reserve: int) -> None:
    if fee + reserve > 10_000:
        with pytest.raises(ConfigError):
            PayoutPolicy(fee, reserve, 0, "CAD")
        return
    s = PayoutPolicy(fee, reserve, 0, "CAD").split(gross)
    assert s.fee + s.reserve + s.net == s.gross == gross
    assert all(isinstance(v, int) for v in (s.fee, s.reserve, s.net))
    if gross > 0:
        assert 0 <= s.fee <= gross * fee / 10_000 < s.fee + 1  # rounded down, never more than the rate
        assert 0 <= s.reserve <= gross * reserve / 10_000 < s.reserve + 1
        assert s.net >= 0


def _studio(n: int, **kw: object) -> StudioFacts:
    base = dict(studio_id=f"00000000-0000-4000-8000-{n:012d}", name=f"Studio {n}",
                stripe_account_id=f"acct_{n}", currency="CAD", charges_enabled=True, payouts_enabled=True)
    base.update(kw)
    return StudioFacts(**base)  # type: ignore[arg-type]


def _earn(i: int, studio: StudioFacts, amount: int, currency: str = "CAD", days: int = 3) -> Earning:
    return Earning(f"e{i}", studio.studio_id, amount, currency, CUTOFF - timedelta(days=days))


def test_plan_pays_eligible_and_skips_with_reasons() -> None:
    ok, small, onboarding, no_acct, usd = (_studio(1), _studio(2), _studio(3, payouts_enabled=False),
                                           _studio(4, stripe_account_id=None), _studio(5, currency="USD"))
    earnings = [_earn(1, ok, 60_000), _earn(2, ok, 40_000), _earn(3, small, 1_300), _earn(4, onboarding, 50_000),
                _earn(5, no_acct, 50_000), _earn(6, usd, 20_000, "CAD"), _earn(7, usd, 30_000, "USD"),
                _earn(8, ok, 99_999, days=-1)]  # after the cutoff: next cycle
    plan = plan_cycle(CYCLE, CUTOFF, [ok, small, onboarding, no_acct, usd], earnings, POLICY)
    assert plan.run_id == payout_run_id(CYCLE)
    paid = {p.studio_id: p for p in plan.payouts}
    assert set(paid) == {ok.studio_id, usd.studio_id}
    assert (paid[ok.studio_id].gross, paid[ok.studio_id].net, paid[ok.studio_id].earning_ids) == (100_000, 75_000,
                                                                                                    ("e1", "e2"))
    assert paid[ok.studio_id].ledger_payout_id == ledger_payout_id(CYCLE, ok.studio_id)
    codes = {(k.studio_id, k.currency): k.code for k in plan.skips}
    assert codes == {(small.studio_id, "CAD"): "below_threshold", (onboarding.studio_id, "CAD"): "not_eligible",
                     (no_acct.studio_id, "CAD"): "no_account", (usd.studio_id, "CAD"): "currency"}
    small_skip = next(k for k in plan.skips if k.studio_id == small.studio_id)
    assert small_skip.net == 975 and "9.75 CAD" in small_skip.reason and "carried" in small_skip.reason
    assert "payouts_enabled" in next(k.reason for k in plan.skips if k.code == "not_eligible")
    assert plan.totals() == {"CAD": 75_000, "USD": 22_500}


def test_transfer_request_and_key_are_derived() -> None:
    lp = ledger_payout_id(CYCLE, "s1")
    req = transfer_request(ledger_payout_id=lp, run_id="r", studio_id="s1", cycle_date=CYCLE, net=123, currency="CAD",
                           destination="acct_1")
    assert (req["amount"], req["currency"], req["transfer_group"]) == (123, "cad", lp)
    assert req["metadata"] == {"ledger_payout_id": lp, "run_id": "r", "studio_id": "s1", "source": "automated",
                               "cycle_date": "2026-12-01"}
    assert idempotency_key(lp) == f"payout-cycle:{lp}" == idempotency_key(ledger_payout_id(CYCLE, "s1"))


studios_st = st.lists(st.builds(
    _studio, st.integers(1, 30), charges_enabled=st.booleans(), payouts_enabled=st.booleans(),
    currency=st.sampled_from(["CAD", "USD"])), min_size=1, max_size=8, unique_by=lambda s: s.studio_id)


@given(studios=studios_st, data=st.data())
def test_every_earning_lands_in_exactly_one_place(studios: list[StudioFacts], data: st.DataObject) -> None:
    rows = data.draw(st.lists(st.tuples(st.sampled_from(studios), st.integers(-5_000, 500_000),
                                        st.sampled_from(["CAD", "USD", "EUR"]), st.integers(-3, 20)), max_size=40))
    earnings = [_earn(i, s, a, c, d) for i, (s, a, c, d) in enumerate(rows)]
    plan = plan_cycle(CYCLE, CUTOFF, studios, earnings, POLICY)
    placed = [e for p in plan.payouts for e in p.earning_ids] + [e for k in plan.skips for e in k.earning_ids]
    due = sorted(e.id for e in earnings if e.earned_at < CUTOFF)
    assert sorted(placed) == due  # each due earning once; later ones untouched
    for p in plan.payouts:
        assert p.fee + p.reserve + p.net == p.gross == sum(e.amount for e in earnings if e.id in p.earning_ids)
        assert p.net >= POLICY.min_threshold
    assert len({p.ledger_payout_id for p in plan.payouts}) == len(plan.payouts)
