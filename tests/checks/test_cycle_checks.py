"""Pre-run and post-run check notebooks around the demo seed's 2026-12-01 cycle (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import httpx
import pytest
from sqlalchemy import update

from payops import demo_data as dd
from payops import runner
from payops.checks import load_report, run_check
from payops.cycle.runbook import run_cycle_runbook
from payops.db import session_scope
from payops.db.models import OpsFlag, PayoutRun, StudioEarning
from payops.ids import payout_run_id

pytestmark = [pytest.mark.db, pytest.mark.e2e]
CYCLE = dd.NEXT_CYCLE  # 2026-12-01


def _failed_report(exc: runner.StepFailed) -> dict[str, str]:
    assert exc.exit_code == 15, exc
    report = load_report(exc.run_id)
    assert report is not None
    return {c.name: c.detail for c in report.failed}


# --- pre-run --------------------------------------------------------------------------------------------
def test_pre_run_passes_before_the_cycle(checks_env) -> None:  # type: ignore[no-untyped-def]
    outcome = run_check("pre-run", cycle_date=CYCLE, settings=checks_env.settings)
    rows = {c.name: c for c in outcome.report.checks}
    assert outcome.ok and [c.status for c in rows.values()] == ["PASS"] * 5, rows
    assert rows["eligible studios"].detail.startswith("3 studio payout(s) due")
    assert "below_threshold" in rows["eligible studios"].detail and "not_eligible" in rows["eligible studios"].detail
    assert "CAD: need" in rows["platform balance sufficient"].detail
    assert outcome.report.subject == CYCLE.isoformat()


def test_pre_run_defaults_to_the_next_cycle(checks_env) -> None:  # type: ignore[no-untyped-def]
    """Without --cycle-date the pre-run check looks at the next slot after now, whatever today is (not the
    current cycle a payout run would default to)."""
    from payops.cycle import slots

    before = datetime.now(UTC)
    outcome = run_check("pre-run", settings=checks_env.settings)
    after = datetime.now(UTC)
    expected = {d.isoformat() for d in (slots.next_cycle_dates(checks_env.settings, before, 1)[0],
                                        slots.next_cycle_dates(checks_env.settings, after, 1)[0])}
    subject = date.fromisoformat(outcome.report.subject)
    assert outcome.report.subject in expected, (outcome.report.subject, expected)
    assert subject.day in (1, 15) and subject >= before.date()  # the default schedule pays on the 1st and 15th


def test_pre_run_fails_on_a_stuck_run(checks_env) -> None:  # type: ignore[no-untyped-def]
    other = runner.create_run("payout_cycle", params={"cycle_date": CYCLE.isoformat(), "dry_run": False,
                                                      "trigger": "test"},
                              params_hash="x" * 64, mode="live", subject_key="cycle", settings=checks_env.settings).id
    with session_scope(checks_env.settings) as s:
        s.add(PayoutRun(id=payout_run_id(CYCLE), cycle_date=CYCLE, status="running", runbook_run_id=other,
                        started_at=datetime.now(UTC) - timedelta(minutes=90)))
    with pytest.raises(runner.StepFailed) as info:
        run_check("pre-run", cycle_date=CYCLE, settings=checks_env.settings)
    failing = _failed_report(info.value)
    assert set(failing) == {"no stuck runs"} and other in failing["no stuck runs"]


def test_pre_run_fails_when_the_plan_exceeds_the_balance(checks_env) -> None:  # type: ignore[no-untyped-def]
    with session_scope(checks_env.settings) as s:  # inflate every unpaid earning: the plan outgrows the balance
        s.execute(update(StudioEarning).where(StudioEarning.ledger_payout_id.is_(None))
                  .values(amount=StudioEarning.amount * 100_000))
    with pytest.raises(runner.StepFailed) as info:
        run_check("pre-run", cycle_date=CYCLE, settings=checks_env.settings)
    failing = _failed_report(info.value)
    assert set(failing) == {"platform balance sufficient"}
    assert failing["platform balance sufficient"].startswith("short in CAD, USD")


def test_pre_run_warns_when_disabled_and_fails_without_scheduler(checks_env) -> None:  # type: ignore[no-untyped-def]
    from payops.cycle import engine
    from payops.scheduler.status import HEARTBEAT_FLAG

    with session_scope(checks_env.settings) as s:
        engine.set_disabled(s, disabled=True, reason="Q4 rehearsal", by="ops-lead")
        s.execute(update(OpsFlag).where(OpsFlag.name == HEARTBEAT_FLAG).values(enabled=False))
    with pytest.raises(runner.StepFailed) as info:
        run_check("pre-run", cycle_date=CYCLE, settings=checks_env.settings)
    assert set(_failed_report(info.value)) == {"scheduler armed"}
    report = load_report(info.value.run_id)
    assert report is not None and report.get("automated cycle enabled").status == "WARN"
    assert "Q4 rehearsal" in report.get("automated cycle enabled").detail


def test_pre_run_refuses_a_day_without_a_cycle(checks_env) -> None:  # type: ignore[no-untyped-def]
    from payops.errors import ParamsInvalid

    with pytest.raises(ParamsInvalid) as info:
        run_check("pre-run", cycle_date=date(2026, 12, 2), settings=checks_env.settings)
    assert info.value.fields == ["cycle_date"]


# --- post-run -------------------------------------------------------------------------------------------
def test_post_run_passes_after_a_live_cycle_and_posts_to_slack(checks_env) -> None:  # type: ignore[no-untyped-def]
    run_cycle_runbook(CYCLE, live=True, settings=checks_env.settings)
    checks_env.sinks.clear()
    outcome = run_check("post-run", cycle_date=CYCLE, settings=checks_env.settings)
    rows = {c.name: c for c in outcome.report.checks}
    assert outcome.ok, rows
    assert [n for n, c in rows.items() if c.status != "PASS"] == []
    assert rows["transfers visible in Stripe"].detail.startswith("3/3 transfers")
    assert "KPI success rate" in rows and rows["KPI success rate"].detail.startswith("100.0%")
    assert list(rows)[-1] == "slack summary"
    slack = [json.dumps(m["json"]) for m in checks_env.sinks.slack_messages()]
    assert len(slack) == 1 and "Post-run check, payout cycle 2026-12-01" in slack[0] and "PASSED" in slack[0]


def test_post_run_fails_after_an_injected_failure(checks_env) -> None:  # type: ignore[no-untyped-def]
    r = httpx.post(f"{checks_env.sandbox.url}/_sandbox/accounts", json={"id": dd.STUDIO_E.account_id,
                                                                          "transfers": "inactive"})
    assert r.status_code == 200, r.text
    outcome = run_cycle_runbook(CYCLE, live=True, settings=checks_env.settings)
    assert outcome.results["30-summary"]["status"] == "partial"
    checks_env.sinks.clear()
    with pytest.raises(runner.StepFailed) as info:
        run_check("post-run", cycle_date=CYCLE, settings=checks_env.settings)
    failing = _failed_report(info.value)
    assert set(failing) == {"run status", "failures", "KPI success rate"}, failing
    assert failing["run status"].startswith("partial")
    assert dd.STUDIO_E.name in failing["failures"]
    assert failing["KPI success rate"].startswith("66.7%")
    report = load_report(info.value.run_id)
    assert report is not None and report.get("transfers visible in Stripe").status == "PASS"
    slack = [json.dumps(m["json"]) for m in checks_env.sinks.slack_messages()]
    assert len(slack) == 1 and "FAILED" in slack[0] and dd.STUDIO_E.name in slack[0]


def test_post_run_fails_when_the_cycle_did_not_run(checks_env) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(runner.StepFailed) as info:
        run_check("post-run", cycle_date=CYCLE, settings=checks_env.settings)
    failing = _failed_report(info.value)
    assert set(failing) == {"run status"} and "did not run" in failing["run status"]


def test_post_run_fails_when_slack_refuses_the_summary(checks_env, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from payops.config import get_settings

    run_cycle_runbook(CYCLE, live=True, settings=checks_env.settings)
    monkeypatch.setenv("PAYOPS_SLACK_WEBHOOK_URL", "http://127.0.0.1:9/services/nowhere")
    with pytest.raises(runner.StepFailed) as info:
        run_check("post-run", cycle_date=CYCLE, settings=get_settings(fresh=True))
    assert set(_failed_report(info.value)) == {"slack summary"}
