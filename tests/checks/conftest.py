"""A fully configured environment for the checks: webhook secret, cron secret, the webhook endpoint
registered in the sandbox with the required events, and a fresh scheduler heartbeat."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from checks_helpers import CRON_SECRET, WEBHOOK_URL, arm_scheduler, register_endpoint

from payops import demo_data as dd
from payops.config import get_settings


@pytest.fixture()
def checks_env(payops_env, monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:  # type: ignore[no-untyped-def]
    from payops.webhooks import SUBSCRIBED_EVENTS

    monkeypatch.setenv("STRIPE_WEBHOOK_SECRET", dd.WEBHOOK_SECRET)
    monkeypatch.setenv("CRON_SECRET_KEY", CRON_SECRET)
    monkeypatch.setenv("PAYOPS_WEBHOOK_URL", WEBHOOK_URL)
    payops_env.settings = get_settings(fresh=True)
    register_endpoint(payops_env.sandbox, list(SUBSCRIBED_EVENTS))
    arm_scheduler(payops_env.settings)
    yield payops_env
    payops_env.sandbox.control("DELETE", "webhooks")
