"""The Prometheus endpoint exposes the same figures the rules compare (scraped over HTTP from the webhook
server's /metrics and from `payops monitor serve`'s app), parsed with prometheus_client's own parser."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from monitor_helpers import T0, credential, live_manual, payout_run, studio
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from payops.monitor.check import run_check

pytestmark = pytest.mark.db


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def _world() -> None:
    sid = studio("Thin", minimum=100_00)
    payout_run(date(2026, 11, 15), finished=T0 - timedelta(days=16) + timedelta(minutes=40), paid=1, studio_ids=[sid],
               gross=99_990, reserve=9_999, net=75_993)
    payout_run(date(2026, 12, 1), status="partial", finished=T0 + timedelta(minutes=5), paid=8, unpaid=2,
               unpaid_status="failed", net=1_000_00)
    live_manual(T0 - timedelta(days=1), amount=300_00)
    credential("apple-pay-processing", "apple_pay_processing_cert", expires_at=T0 + timedelta(days=12))


def test_metrics_from_the_webhook_server(monitor_env, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from payops.config import get_settings
    from payops.webhooks.app import create_app

    _world()
    run_check(monitor_env.settings, at=T0 + timedelta(hours=1))
    monkeypatch.setenv("STRIPE_WEBHOOK_SECRET", "whsec_metrics_test_secret")
    app = create_app(get_settings(fresh=True))
    import payops.monitor.metrics as metrics

    monkeypatch.setattr(metrics, "datetime", _Frozen)  # scrape "at" T0 + 1h, like the check above
    res = TestClient(app).get("/metrics")
    assert res.status_code == 200 and res.headers["content-type"].startswith("text/plain")
    m = _samples(res.text)
    assert m[("payops_monitor_up", ())] == 1
    assert m[("payops_payout_run_processed_ratio", (("run", "latest"),))] == pytest.approx(0.8)
    assert m[("payops_payout_run_unpaid", (("run", "latest"),))] == 2
    assert m[("payops_payout_run_duration_seconds", (("run", "prior"),))] == 40 * 60
    assert m[("payops_payout_run_paid_minor_units", (("currency", "CAD"), ("run", "latest")))] == 8 * 1_000_00
    assert m[("payops_fallback_manual_payouts", ())] == 1
    assert m[("payops_fallback_amount_minor_units", (("currency", "CAD"),))] == 300_00
    assert m[("payops_fallback_automated_minor_units", (("currency", "CAD"),))] == 8 * 1_000_00 + 75_993
    assert m[("payops_credential_days_left", (("kind", "apple_pay_processing_cert"), ("name",
                                                                                     "apple-pay-processing")))] == \
        pytest.approx(12 - 1 / 24, abs=1e-3)
    assert m[("payops_reserve_studios_below_minimum", (("currency", "CAD"),))] == 1
    assert m[("payops_monitor_open_alerts", (("rule", "automation_failure"), ("severity", "SEV-2")))] == 1
    assert m[("payops_monitor_conditions", (("rule", "credential_expiry"), ("severity", "SEV-3")))] == 1
    assert m[("payops_payout_next_cycle_timestamp_seconds", ())] == (T0 + timedelta(days=14)).timestamp()


def test_monitor_serve_app_reports_a_broken_database(monitor_env, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from payops.config import Settings
    from payops.monitor.metrics import metrics_app

    broken = Settings(PAYOPS_DATABASE_URL="sqlite:////nonexistent-dir/x.db")
    res = TestClient(metrics_app(lambda: broken)).get("/metrics")
    assert res.status_code == 200 and _samples(res.text)[("payops_monitor_up", ())] == 0


class _Frozen:
    """``datetime`` as the metrics module sees it, frozen at T0 + 1 h."""

    @staticmethod
    def now(tz=None):  # type: ignore[no-untyped-def]
        return (T0 + timedelta(hours=1)).astimezone(tz)
