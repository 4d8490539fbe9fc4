"""Helpers for the check tests (imported by basename, like tests/e2e/e2e_helpers.py)."""

from __future__ import annotations

from datetime import UTC, datetime

from payops import demo_data as dd

CRON_SECRET = "c" * 64
WEBHOOK_URL = "http://127.0.0.1:9/stripe/webhook"  # never delivered to (port 9: discard)


def register_endpoint(sandbox, events: list[str], url: str = WEBHOOK_URL) -> None:  # type: ignore[no-untyped-def]
    sandbox.control("DELETE", "webhooks")
    sandbox.control("POST", "webhooks", {"url": url, "enabled_events": events, "secret": dd.WEBHOOK_SECRET})


def arm_scheduler(settings) -> None:  # type: ignore[no-untyped-def]
    """Write a heartbeat the way the scheduler's tick does."""
    from payops.scheduler.status import write_heartbeat

    write_heartbeat(settings, owner="checks-test:1", at=datetime.now(UTC), poll_seconds=30, through=None,
                    next_slots={})
