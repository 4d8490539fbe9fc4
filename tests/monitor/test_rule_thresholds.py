"""Each rule on both sides of every threshold and at the exact boundary, with the time controlled (the ``at``
that ``payops monitor check --at`` passes), on SQLite and PostgreSQL (the ``db_url`` fixture runs each test on
both)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from monitor_helpers import T0, cli, credential, live_manual, missed_slot, payout_run, studio

from payops.monitor.check import evaluate_at
from payops.monitor.rules import AUTOMATION, CREDENTIAL, FALLBACK, MONEY_MOVED, RESERVE

pytestmark = pytest.mark.db
SEC = timedelta(seconds=1)


def fired(env, at, rule):  # type: ignore[no-untyped-def]
    _snap, conditions = evaluate_at(env.settings, at)
    return [c for c in conditions if c.rule == rule]


# --- automation failure ---------------------------------------------------------------------------------
def test_run_longer_than_30_minutes(monitor_env) -> None:  # type: ignore[no-untyped-def]
    payout_run(date(2026, 12, 1), started=T0, finished=T0 + timedelta(minutes=30), paid=3)
    assert fired(monitor_env, T0 + timedelta(hours=1), AUTOMATION) == []  # exactly 30 min: not longer
    payout_run(date(2026, 12, 15), started=T0 + timedelta(days=14), finished=T0 + timedelta(days=14, minutes=30) + SEC,
               paid=3)
    (c,) = fired(monitor_env, T0 + timedelta(days=14, hours=1), AUTOMATION)
    assert c.key == "automation_failure:cycle:2026-12-15" and c.severity == "SEV-2"
    assert "took 30 min (longer than 30 min)" in c.summary and c.actions == (("pagerduty", "trigger"),)


def test_running_cycle_crosses_30_minutes(monitor_env) -> None:  # type: ignore[no-untyped-def]
    payout_run(date(2026, 12, 1), status="running", started=T0, paid=2)
    assert fired(monitor_env, T0 + timedelta(minutes=29, seconds=59), AUTOMATION) == []
    assert fired(monitor_env, T0 + timedelta(minutes=30), AUTOMATION) == []
    (c,) = fired(monitor_env, T0 + timedelta(minutes=30) + SEC, AUTOMATION)
    assert "running for 30 min (longer than 30 min)" in c.summary


@pytest.mark.parametrize(("paid", "unpaid", "fires"), [(9, 1, False), (8, 2, True), (10, 0, False)])
def test_processed_fewer_than_90_percent(monitor_env, paid: int, unpaid: int, fires: bool) -> None:  # type: ignore[no-untyped-def]
    payout_run(date(2026, 12, 1), status="partial", finished=T0 + timedelta(minutes=5), paid=paid, unpaid=unpaid,
               unpaid_status="failed")
    got = fired(monitor_env, T0 + timedelta(hours=2), AUTOMATION)
    assert bool(got) is fires
    if fires:
        assert f"processed {paid} of {paid + unpaid} studios scheduled (80.0%, fewer than 90%)" in got[0].summary


def test_processed_just_under_90_percent(monitor_env) -> None:  # type: ignore[no-untyped-def]
    ids = [studio(f"S{i}") for i in range(20)]
    payout_run(date(2026, 12, 1), finished=T0 + timedelta(minutes=5), paid=17, unpaid=3, studio_ids=ids[:20],
               unpaid_status="failed", status="partial")
    (c,) = fired(monitor_env, T0 + timedelta(hours=1), AUTOMATION)
    assert "85.0%" in c.summary


def test_failed_run_fires_until_its_studios_are_paid(monitor_env) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import update

    from payops.db import session_scope
    from payops.db.models import LedgerPayout

    run = payout_run(date(2026, 12, 1), status="failed", finished=T0 + timedelta(minutes=1), paid=9, unpaid=1)
    (c,) = fired(monitor_env, T0 + timedelta(hours=1), AUTOMATION)
    assert c.summary.startswith("Payout cycle 2026-12-01: failed (balance too low): 1 of 10 ledger payouts unpaid")
    with session_scope() as s:  # the manual fallback paid the last one
        s.execute(update(LedgerPayout).where(LedgerPayout.run_id == run).values(status="manual"))
    assert fired(monitor_env, T0 + timedelta(hours=1), AUTOMATION) == []


def test_runbook_run_exited_non_zero(monitor_env) -> None:  # type: ignore[no-untyped-def]
    payout_run(date(2026, 12, 1), finished=T0 + timedelta(minutes=5), paid=5, runbook_status="failed")
    (c,) = fired(monitor_env, T0 + timedelta(hours=1), AUTOMATION)
    assert "exited non-zero at 20-transfer: PaymentError: boom" in c.summary
    assert c.details["next_step"].startswith("payops runs resume ") and c.details["next_step"].endswith(" --live")


def test_scheduler_slot_missed_with_no_run(monitor_env) -> None:  # type: ignore[no-untyped-def]
    missed_slot(T0, "failed")
    (c,) = fired(monitor_env, T0 + timedelta(minutes=10), AUTOMATION)
    assert c.key == "automation_failure:cycle:2026-12-01" and "slot 2026-12-01 06:00Z failed" in c.summary
    assert fired(monitor_env, T0 - SEC, AUTOMATION) == []  # --at before the slot: not yet
    payout_run(date(2026, 12, 1), started=T0 + timedelta(minutes=20), finished=T0 + timedelta(minutes=25), paid=2)
    assert fired(monitor_env, T0 + timedelta(hours=1), AUTOMATION) == []  # it ran after all


# --- money moved, record missing ----------------------------------------------------------------------------
def test_record_missing_fires_at_10_minutes(monitor_env) -> None:  # type: ignore[no-untyped-def]
    run_id = live_manual(T0, audit=False, notified=False, settled=False)
    assert fired(monitor_env, T0 + timedelta(minutes=10) - SEC, MONEY_MOVED) == []
    (c,) = fired(monitor_env, T0 + timedelta(minutes=10), MONEY_MOVED)
    assert c.severity == "SEV-2" and c.key == f"money_moved:run:{run_id}"
    assert "its audit row, notifications, settlement are still missing" in c.summary
    assert f"`payops runs resume {run_id}`" in c.summary and "manual-payout … --live" in c.summary
    assert c.details["command"] == f"payops runs resume {run_id}"


@pytest.mark.parametrize(("audit", "notified", "settled", "missing"), [
    (True, False, True, ["notifications"]), (True, True, False, ["settlement"]), (True, True, True, None)])
def test_record_missing_names_what_is_missing(monitor_env, audit: bool, notified: bool, settled: bool,  # type: ignore[no-untyped-def]
                                              missing: list[str] | None) -> None:
    live_manual(T0, audit=audit, notified=notified, settled=settled)
    got = fired(monitor_env, T0 + timedelta(hours=1), MONEY_MOVED)
    assert [c.details["missing"] for c in got] == ([missing] if missing else [])


def test_record_missing_ignores_rehearsals_and_a_run_still_settling(monitor_env) -> None:  # type: ignore[no-untyped-def]
    live_manual(T0, audit=False, notified=False, settled=False, mode="rehearsal")
    live_manual(T0, settled=False, run_status="running", lease_until=T0 + timedelta(hours=2))
    assert fired(monitor_env, T0 + timedelta(minutes=30), MONEY_MOVED) == []
    # the same run once its lease has expired (the process is gone): settlement missing is an alert
    (c,) = fired(monitor_env, T0 + timedelta(hours=3), MONEY_MOVED)
    assert c.details["missing"] == ["settlement"]


# --- fallback volume ---------------------------------------------------------------------------------------
def test_more_than_one_manual_payout_in_30_days(monitor_env) -> None:  # type: ignore[no-untyped-def]
    at = T0 + timedelta(days=40)
    live_manual(at - timedelta(days=30))  # exactly 30 days old: out of the rolling window
    live_manual(at - timedelta(days=1))
    assert [c.key for c in fired(monitor_env, at, FALLBACK) if "count" in c.key] == []
    live_manual(at - timedelta(days=30) + SEC, incident="INC-43")  # just inside
    (c,) = [c for c in fired(monitor_env, at, FALLBACK) if "count" in c.key]
    assert c.details["count"] == 2 and c.severity == "SEV-3"
    assert c.actions == (("jira", "ticket"), ("slack", "notify"))
    assert "2 manual payouts in the last 30 days (more than 1)" in c.summary


def test_rehearsals_are_not_fallback_use(monitor_env) -> None:  # type: ignore[no-untyped-def]
    for _ in range(3):
        live_manual(T0 - timedelta(days=2), mode="rehearsal")
    assert fired(monitor_env, T0, FALLBACK) == []


@pytest.mark.parametrize(("manual", "fires"), [(5_000_00, False), (5_000_01, True), (4_999_99, False)])
def test_cad_share_above_5_percent(monitor_env, manual: int, fires: bool) -> None:  # type: ignore[no-untyped-def]
    # automated CAD in the window: 10 studios × 10,000.00 = 100,000.00 CAD; 5% of it is 5,000.00
    payout_run(date(2026, 12, 1), finished=T0 + timedelta(minutes=3), paid=10, net=10_000_00)
    payout_run(date(2026, 12, 15), started=T0 + timedelta(days=14), finished=T0 + timedelta(days=14, minutes=3),
               paid=3, net=10_000_00, currency="USD")
    live_manual(T0 + timedelta(days=2), amount=manual)
    got = [c for c in fired(monitor_env, T0 + timedelta(days=20), FALLBACK) if "share" in c.key]
    assert bool(got) is fires
    if fires:
        assert got[0].key == "fallback_volume:share:CAD" and got[0].details["automated"] == 100_000_00
        assert "above 5%" in got[0].summary


def test_cad_share_counts_only_the_window_and_automated_payouts(monitor_env) -> None:  # type: ignore[no-untyped-def]
    payout_run(date(2026, 10, 1), finished=None, paid=50, net=10_000_00)  # two months earlier: out of the window
    live_manual(T0 + timedelta(days=2), amount=1_00)
    (c,) = [c for c in fired(monitor_env, T0 + timedelta(days=3), FALLBACK) if "share" in c.key]
    assert c.details["automated"] == 0 and "with no automated CAD volume in the window" in c.summary


# --- credential expiry -------------------------------------------------------------------------------------
@pytest.mark.parametrize(("left", "step", "severity"), [
    (timedelta(days=30) + SEC, None, None), (timedelta(days=30), 30, "SEV-3"), (timedelta(days=14) + SEC, 30, "SEV-3"),
    (timedelta(days=14), 14, "SEV-3"), (timedelta(days=7), 7, "SEV-3"), (timedelta(days=3) + SEC, 7, "SEV-3"),
    (timedelta(days=3), 3, "SEV-2"), (-timedelta(days=2), 3, "SEV-2")])
def test_credential_steps(monitor_env, left: timedelta, step: int | None, severity: str | None) -> None:  # type: ignore[no-untyped-def]
    credential("apple-pay-processing", "apple_pay_processing_cert", expires_at=T0 + left)
    got = fired(monitor_env, T0, CREDENTIAL)
    assert [(c.details["step"], c.severity) for c in got] == ([(step, severity)] if step else [])
    if step:
        assert ("slack", f"reminder-{step}d") in got[0].actions
        assert (("pagerduty", "trigger") in got[0].actions) is (step == 3)


def test_each_kind_has_its_deadline(monitor_env) -> None:  # type: ignore[no-untyped-def]
    credential("merchant-id", "apple_pay_merchant_identity_cert", expires_at=T0 + timedelta(days=10))
    credential("rk-platform", "stripe_restricted_key", rotation_due_at=T0 + timedelta(days=6))
    credential("whsec-endpoint", "webhook_signing_secret", issued_at=T0 - timedelta(days=365 - 2))
    credential("whsec-young", "webhook_signing_secret", issued_at=T0 - timedelta(days=100))
    got = {c.details["name"]: c for c in fired(monitor_env, T0, CREDENTIAL)}
    assert {n: c.details["step"] for n, c in got.items()} == {"merchant-id": 14, "rk-platform": 7,
                                                                "whsec-endpoint": 3}
    assert got["whsec-endpoint"].details["what"] == "reaches 365 days of age"


# --- reserve breach ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(("gross", "kind"), [
    (120_000, None),            # reserve 120.00 = minimum 100.00 + 20%: not under the buffer
    (119_990, "under_buffer"),  # reserve 119.99
    (100_000, "under_buffer"),  # reserve 100.00 = the minimum: not below it
    (99_990, "below_minimum"),  # reserve 99.99
])
def test_reserve_thresholds(monitor_env, gross: int, kind: str | None) -> None:  # type: ignore[no-untyped-def]
    sid = studio("Reserve Studio", minimum=100_00)
    reserve = gross * 10 // 100  # the payout policy's 10% reserve, rounded down
    payout_run(date(2026, 11, 15), finished=datetime_at(2026, 11, 15, 6, 3), paid=1, studio_ids=[sid],
               gross=gross, reserve=reserve, net=gross - reserve - gross * 15 // 100)
    got = fired(monitor_env, T0, RESERVE)  # at the slot: the whole next cycle is ahead, projected = last cycle
    assert [c.details["kind"] for c in got] == ([kind] if kind else [])
    if kind:
        assert got[0].severity == ("SEV-3" if kind == "below_minimum" else "SEV-4")
        assert got[0].actions[0][0] == "email" and got[0].actions[1][0] == "slack_ops"


def test_reserve_projected_below_minimum_within_the_next_cycle(monitor_env) -> None:  # type: ignore[no-untyped-def]
    sid = studio("Quiet Studio", minimum=100_00)
    payout_run(date(2026, 12, 1), finished=T0 + timedelta(minutes=3), paid=1, studio_ids=[sid], gross=200_000,
               reserve=20_000, net=150_000)
    assert fired(monitor_env, T0, RESERVE) == []  # holds 200.00, projected 200.00
    # half-way to the 15th with no new earnings: the next cycle's gross projects to 1,000.00 → reserve 100.00
    assert fired(monitor_env, T0 + timedelta(days=7), RESERVE)[0].details["kind"] == "under_buffer"
    (c,) = fired(monitor_env, T0 + timedelta(days=7) + timedelta(hours=1), RESERVE)
    assert c.details["kind"] == "below_minimum" and c.details["reserve_now"] == 20_000


def datetime_at(*a: int):  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime

    return datetime(*a, tzinfo=UTC)


# --- the CLI's --at is the same instant ----------------------------------------------------------------------
def test_cli_at_controls_the_time(monitor_env) -> None:  # type: ignore[no-untyped-def]
    live_manual(T0, audit=False, notified=False, settled=False)
    before = cli("monitor", "check", "--dry-run", "--at", (T0 + timedelta(minutes=9)).isoformat())
    assert before.exit_code == 0 and "money_moved" not in before.output and "DRY RUN" in before.output
    after = cli("monitor", "check", "--dry-run", "--at", "2026-12-01T06:10:00Z")
    assert after.exit_code == 20 and "money_moved" in after.output and "DRY RUN" in after.output
