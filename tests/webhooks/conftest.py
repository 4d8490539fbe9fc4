"""Fixtures for the webhook receiver: the seeded world (SQLite and PostgreSQL) plus the receiver's secrets."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from webhook_helpers import CRON_SECRET, WEBHOOK_SECRET, serving

from payops.config import get_settings
from payops.webhooks.app import create_app


class RecordingTrigger:
    """A trigger callable that records what it was called with."""

    def __init__(self) -> None:
        self.calls: list[tuple[date | None, bool]] = []

    def __call__(self, cycle_date: date | None, live: bool) -> str:
        self.calls.append((cycle_date, live))
        return f"run-{len(self.calls)}"


@pytest.fixture
def wh_env(payops_env: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """``payops_env`` (sandbox reset, ledger seeded, migrated db) with the receiver's secrets set."""
    monkeypatch.setenv("STRIPE_WEBHOOK_SECRET", WEBHOOK_SECRET)
    monkeypatch.setenv("CRON_SECRET_KEY", CRON_SECRET)
    payops_env.settings = get_settings(fresh=True)
    return payops_env


@pytest.fixture
def recording_trigger() -> RecordingTrigger:
    return RecordingTrigger()


@pytest.fixture
def wh_app(wh_env: Any, recording_trigger: RecordingTrigger) -> Starlette:
    return create_app(wh_env.settings, trigger=recording_trigger)


@pytest.fixture
def http(wh_app: Starlette) -> Iterator[httpx.Client]:
    """An HTTP client for ``wh_app`` served by uvicorn on a free port."""
    with serving(wh_app) as url, httpx.Client(base_url=url, timeout=30) as client:
        yield client
