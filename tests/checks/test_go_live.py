"""The go-live check notebook end to end: sandbox, sinks, SQLite and PostgreSQL."""

from __future__ import annotations

import json

import pytest
from checks_helpers import register_endpoint

from payops import runner
from payops.checks import load_report, run_check
from payops.config import get_settings

pytestmark = [pytest.mark.db, pytest.mark.e2e]


def _failing(exc: runner.StepFailed) -> dict[str, str]:
    report = load_report(exc.run_id)
    assert report is not None
    return {c.name: c.detail for c in report.failed}


def test_go_live_all_pass_in_a_configured_environment(checks_env) -> None:  # type: ignore[no-untyped-def]
    outcome = run_check("go-live", target="test", settings=checks_env.settings)
    rows = {c.name: c for c in outcome.report.checks}
    assert outcome.ok and outcome.report.counts()["FAIL"] == 0
    assert {c.status for c in rows.values()} == {"PASS"}, [c for c in rows.values() if c.status != "PASS"]
    for name in ("env STRIPE_SECRET_KEY", "stripe webhook events", "database migrations", "database tables and indexes",
                 "scheduler armed", "slack reachable", "smoke: onboarding state",
                 "smoke: balance from destination charge", "smoke: payout creation", "smoke: threshold skip",
                 "smoke: failure handling", "smoke: idempotency (duplicate run prevented)", "smoke: webhook updates",
                 "smoke: trigger auth"):
        assert name in rows
    assert rows["env STRIPE_SECRET_KEY"].detail.startswith("sk_test_…")
    assert any("go-live check" in json.dumps(m["json"]) for m in checks_env.sinks.slack_messages())
    # the archive is sealed and holds no secret; the notebook never printed a key
    assert outcome.run_dir.is_dir() and list(outcome.run_dir.glob("manifest*.json"))
    text = (outcome.run_dir / "go_live.ipynb").read_text()
    for secret in checks_env.settings.secret_values():
        assert secret not in text


@pytest.mark.parametrize("case", ["missing-variable", "live-key", "missing-events"])
def test_go_live_names_each_failure_and_exits_15(checks_env, monkeypatch, case: str) -> None:  # type: ignore[no-untyped-def]
    if case == "missing-variable":
        monkeypatch.delenv("CRON_SECRET_KEY")
        expected = "env CRON_SECRET_KEY"
    elif case == "live-key":
        monkeypatch.setenv("STRIPE_SECRET_KEY", "sk_live_not_a_real_key_0000")
        expected = "env STRIPE_SECRET_KEY"
    else:
        register_endpoint(checks_env.sandbox, ["account.updated", "payout.paid"])
        expected = "stripe webhook events"
    settings = get_settings(fresh=True)
    with pytest.raises(runner.StepFailed) as info:
        run_check("go-live", target="test", settings=settings)
    assert info.value.exit_code == 15 and info.value.step == "go_live"
    failing = _failing(info.value)
    assert expected in failing, failing
    if case == "live-key":
        assert "live-mode key" in failing[expected] and "sk_live_…" in failing[expected]
        assert "sk_live_not_a_real_key" not in json.dumps(failing)
        report = load_report(info.value.run_id)
        assert report is not None and report.get("smoke: payout creation").status == "SKIP"
    if case == "missing-events":
        assert "payout.failed" in failing[expected]
    if case == "missing-variable":
        assert set(failing) == {expected}, failing


def test_go_live_target_live_refuses_smoke_tests(checks_env) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(runner.StepFailed) as info:
        run_check("go-live", target="live", settings=checks_env.settings)
    report = load_report(info.value.run_id)
    assert report is not None
    failing = {c.name for c in report.failed}
    assert {"env PAYOPS_ENVIRONMENT", "env STRIPE_SECRET_KEY", "env PAYOPS_STRIPE_API_BASE"} <= failing
    smoke = [c for c in report.checks if c.name.startswith("smoke:")]
    assert len(smoke) == 8 and {c.status for c in smoke} == {"SKIP"}
    assert all("refused" in c.detail for c in smoke)
