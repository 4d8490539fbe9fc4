"""Webhook lag comes from the receiver's own records: the sandbox's ``webhook_delay_ms`` fault holds deliveries
back, the receiver records when each arrived, and the triage reports the late ones (library call, no kernel)."""

from __future__ import annotations

import pytest
from incident_helpers import wait_deliveries

from payops.config import get_settings
from payops.incident.params import validate_incident
from payops.incident.runbook import IncidentContext, create_incident_run
from payops.incident.scenarios import checkout_failures

pytestmark = [pytest.mark.db, pytest.mark.e2e]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_delayed_deliveries_are_late(incident_env, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("PAYOPS_INCIDENT_WEBHOOK_LAG", "1")
    get_settings(fresh=True)
    w, sb = incident_env.world, incident_env.sandbox
    w.checkouts(2, tag="fast")
    wait_deliveries(sb)
    sb.set_faults(webhook_delay_ms=1600)
    w.checkouts(1, tag="slow")
    wait_deliveries(sb, timeout=30)
    run_id = create_incident_run(validate_incident({"scenario": "checkout-failures", "incident_id": "INC-LAG-1"}))
    ctx = IncidentContext.load("10-triage", run_id)
    found = checkout_failures(ctx, *ctx.window)
    lag = found.details["webhook_lag"]
    assert lag["deliveries"] == 3 * 3  # payment_intent.succeeded, checkout.session.completed, created — per checkout
    assert lag["late"] == 3 and lag["max_seconds"] >= 1.6 and lag["p50_seconds"] < 1
    row = {n["number"]: n for n in found.numbers}["webhook deliveries later than 1 s"]
    assert row["value"] == "3" and row["verdict"] == "ALERT"
    assert found.signals.late_webhooks == 3 and found.firing is False  # every payment succeeded
