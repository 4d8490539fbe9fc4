"""The monitor's environment: an empty migrated database (SQLite and PostgreSQL) and every channel pointed at
the local sinks — Slack, SMTP, PagerDuty Events API v2, Jira — through their real clients."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from payops.config import Settings, get_settings
from payops.sandbox.alert_sinks import SANDBOX_ROUTING_KEY

JIRA_TOKEN = "jira-pat-for-tests"  # the same as monitor_helpers.JIRA_TOKEN (tests cannot import conftest)


@dataclass
class MonitorEnv:
    settings: Settings
    sinks: Any
    db_url: str

    def refresh(self) -> Settings:
        self.settings = get_settings(fresh=True)
        return self.settings


@pytest.fixture()
def monitor_env(migrated_db: str, local_sinks: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
                ) -> Iterator[MonitorEnv]:
    local_sinks.clear()
    env = {
        "PAYOPS_SLACK_WEBHOOK_URL": local_sinks.slack_webhook_url,
        "PAYOPS_SMTP_HOST": local_sinks.smtp_host,
        "PAYOPS_SMTP_PORT": str(local_sinks.smtp_port),
        "PAGERDUTY_ROUTING_KEY": SANDBOX_ROUTING_KEY,
        "PAYOPS_PAGERDUTY_EVENTS_URL": local_sinks.pagerduty_url,
        "PAYOPS_JIRA_URL": local_sinks.jira_url,
        "PAYOPS_JIRA_TOKEN": JIRA_TOKEN,
        "PAYOPS_OUTPUT_DIR": str(tmp_path / "outputs"),
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    for k in ("PAYOPS_OPS_SLACK_WEBHOOK_URL", "PAYOPS_JIRA_USER"):
        monkeypatch.delenv(k, raising=False)
    yield MonitorEnv(get_settings(fresh=True), local_sinks, migrated_db)
    get_settings(fresh=True)
