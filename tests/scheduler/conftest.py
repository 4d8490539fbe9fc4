"""Scheduler fixtures: settings on a migrated database (SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest

from payops.config import Settings, get_settings


@pytest.fixture()
def sched_settings(migrated_db: str, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings on a migrated SQLite/PostgreSQL database, PAYOUT_TIMEZONE=UTC, no Slack."""
    monkeypatch.setenv("PAYOUT_TIMEZONE", "UTC")
    monkeypatch.delenv("PAYOPS_SLACK_WEBHOOK_URL", raising=False)
    monkeypatch.delenv("SLACK_WEBHOOK_URL", raising=False)
    return get_settings(fresh=True)
