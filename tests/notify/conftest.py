"""Real local endpoints for delivery tests: the Slack-webhook sink (HTTP) and the aiosmtpd sink."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from payops.config import Settings
from payops.sandbox.sinks import RunningSinks, start_sinks


@pytest.fixture(scope="module")
def running_sinks() -> Iterator[RunningSinks]:
    s = start_sinks(http_port=0, smtp_port=0)
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture()
def sink(running_sinks: RunningSinks) -> RunningSinks:
    running_sinks.clear()
    return running_sinks


@pytest.fixture()
def smtp_settings(sink: RunningSinks) -> Settings:
    return Settings(PAYOPS_SMTP_HOST=sink.smtp_host, PAYOPS_SMTP_PORT=sink.smtp_port, PAYOPS_SMTP_TIMEOUT=5)
