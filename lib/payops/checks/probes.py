"""Checks shared by the notebooks: the scheduler's heartbeat and Slack delivery."""

from __future__ import annotations

from datetime import datetime

from payops.checks.report import FAIL, PASS, Check, error_line
from payops.config import Settings


def scheduler_armed(settings: Settings, now: datetime | None = None) -> Check:
    """PASS when a scheduler's heartbeat is fresh (``payops.scheduler.scheduler_status``), FAIL otherwise."""
    name = "scheduler armed"
    try:
        from payops.scheduler import scheduler_status
    except ImportError as exc:
        return Check(name, FAIL, f"the scheduler is not installed ({error_line(exc)})")
    try:
        status = scheduler_status(settings, now)
    except Exception as exc:  # noqa: BLE001 — a check reports, it does not crash the notebook
        return Check(name, FAIL, f"cannot read the scheduler's heartbeat: {error_line(exc)}")
    detail = str(status.get("detail") or ("armed" if status.get("armed") else "not armed"))
    nxt = status.get("next") or {}
    if nxt.get("payout-cycle"):
        detail += f"; next payout cycle slot {nxt['payout-cycle']}"
    return Check(name, PASS if status.get("armed") else FAIL, detail)


def slack_post(settings: Settings, text: str, name: str = "slack reachable") -> Check:
    """Post ``text`` to PAYOPS_SLACK_WEBHOOK_URL: PASS when Slack answered ``200 ok``."""
    if settings.slack_webhook_url is None or not settings.slack_webhook_url.get_secret_value():
        return Check(name, FAIL, "PAYOPS_SLACK_WEBHOOK_URL is not set: no alert can reach #payments-alerts")
    from payops.notify.slack import send_slack

    try:
        res = send_slack(settings.slack_webhook_url.get_secret_value(),
                         {"channel": settings.slack_channel, "text": text})
    except Exception as exc:  # noqa: BLE001 — NotificationError carries no URL; scrubbed anyway
        return Check(name, FAIL, f"Slack delivery failed: {error_line(exc)}")
    return Check(name, PASS, f"posted to {settings.slack_channel} (HTTP {res.status} {res.detail})")
