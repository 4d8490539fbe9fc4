"""The check library without a database: rows, report, scrubbing, parameters, environment rows."""

from __future__ import annotations

from datetime import date

import pytest
from pydantic import SecretStr

from payops.checks import golive, smoke
from payops.checks.params import GoLiveParams, PreRunParams, spec, validate_check
from payops.checks.report import Check, CheckReport, scrub
from payops.config import Settings
from payops.errors import ChecksFailed, ParamsInvalid


def _settings(**kw: object) -> Settings:
    base: dict[str, object] = {"STRIPE_SECRET_KEY": "sk_test_platform_123456", "PAYOPS_ENVIRONMENT": "test",
                               "STRIPE_FALLBACK_SECRET_KEY": "rk_test_fallback_123456",
                               "STRIPE_WEBHOOK_SECRET": "whsec_abcdef123456", "CRON_SECRET_KEY": "x" * 40,
                               "PAYOPS_SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T1/B2/secretpath"}
    base.update(kw)
    return Settings(**{k: v for k, v in base.items() if v is not None})  # type: ignore[arg-type]


def test_report_counts_fails_and_round_trips() -> None:
    rep = CheckReport("go-live", "target=test")
    rep.extend([Check("a", "PASS", "ok"), Check("b", "WARN", "hmm"), Check("c", "FAIL", "broken"),
                Check("d", "SKIP", "n/a")])
    assert rep.counts() == {"PASS": 1, "FAIL": 1, "WARN": 1, "SKIP": 1} and not rep.ok
    assert [c.name for c in rep.failed] == ["c"] and list(rep.frame().columns) == ["name", "status", "detail"]
    assert "failing: c" in rep.summary()
    again = CheckReport.from_dict(rep.as_dict())
    assert again.checks == rep.checks and again.subject == "target=test"
    with pytest.raises(ChecksFailed) as info:
        rep.raise_if_failed()
    assert info.value.exit_code == 15 and "c: broken" in str(info.value)
    with pytest.raises(ValueError):
        rep.add("e", "MAYBE")  # type: ignore[arg-type]
    CheckReport("pre-run", checks=[Check("a", "WARN")]).raise_if_failed()  # warnings do not fail


def test_details_are_scrubbed_of_secrets() -> None:
    rep = CheckReport("go-live", secrets=["hunter2-password"])
    rep.add("x", "FAIL", "key sk_live_abcdef1234 and whsec_abcdef1234 and hunter2-password and "
                         "https://hooks.slack.com/services/T1/B2/abcdef")
    assert rep.checks[0].detail.count("<redacted>") == 4
    assert scrub("sk_test_… is only a prefix") == "sk_test_… is only a prefix"


def test_parameters_are_validated() -> None:
    assert spec("go_live").sop == "go_live_check" and spec("post-run-check").step == "post_run"
    with pytest.raises(ParamsInvalid):
        spec("go-dead")
    with pytest.raises(ParamsInvalid) as info:
        validate_check("go-live", {"target": "prod"})
    assert info.value.fields == ["target"]
    with pytest.raises(ParamsInvalid) as info:
        validate_check("pre-run", {"cycle_date": "2026-12-01", "dry_run": True})
    assert info.value.fields == ["dry_run"]
    settings = _settings()
    assert validate_check("pre-run", {"cycle_date": "2026-12-15"}, settings) == PreRunParams(
        cycle_date=date(2026, 12, 15))
    assert GoLiveParams().target == "test"


def test_environment_rows_pass_when_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAYOPS_DATABASE_URL", "sqlite:///tmp/x.db")
    rows = {c.name: c for c in golive.environment(_settings(PAYOPS_WEBHOOK_URL="https://ops.example.com/hook"),
                                                  "test")}
    assert {n: c.status for n, c in rows.items() if c.status != "PASS"} == {}
    assert rows["env STRIPE_FALLBACK_SECRET_KEY"].detail.startswith("rk_test_…")
    assert "secretpath" not in str(rows)


def test_environment_rows_name_each_problem(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PAYOPS_DATABASE_URL", raising=False)
    settings = _settings(STRIPE_SECRET_KEY="sk_live_platform_123456", STRIPE_FALLBACK_SECRET_KEY="sk_test_full_123456",
                         CRON_SECRET_KEY="short", STRIPE_WEBHOOK_SECRET=None, PLATFORM_FEE_PERCENT="15.555")
    rows = {c.name: c for c in golive.environment(settings, "test")}
    assert rows["env STRIPE_SECRET_KEY"].status == "FAIL" and "target is 'test'" in rows["env STRIPE_SECRET_KEY"].detail
    assert rows["env STRIPE_FALLBACK_SECRET_KEY"].status == "WARN"  # a full key where a restricted one belongs
    assert rows["env CRON_SECRET_KEY"].status == "WARN"
    assert rows["env STRIPE_WEBHOOK_SECRET"].status == "FAIL"
    assert rows["env PAYOUT_* policy"].status == "FAIL" and "PLATFORM_FEE_PERCENT" in rows["env PAYOUT_* policy"].detail
    assert rows["env PAYOPS_DATABASE_URL"].status == "WARN"
    assert rows["env PAYOPS_WEBHOOK_URL"].status == "WARN"
    assert "sk_live_platform" not in str(rows)


def test_smoke_tests_are_refused_against_live() -> None:
    assert smoke.refusal(_settings(), "live") is not None
    assert "live key" in (smoke.refusal(_settings(STRIPE_SECRET_KEY="sk_live_platform_123456"), "test") or "")
    assert smoke.refusal(_settings(), "test") is None
    rows = smoke.smoke_tests(_settings(), "live")
    assert len(rows) == 8 and {r.status for r in rows} == {"SKIP"}


def test_secret_free_key_row_for_a_malformed_key() -> None:
    row = golive._key_check(_settings(), "test", "STRIPE_SECRET_KEY", SecretStr("pk_test_publishable"), False)
    assert row.status == "FAIL" and "pk_test_publishable" not in row.detail
