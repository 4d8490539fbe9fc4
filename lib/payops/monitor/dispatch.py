"""Sending the outbox: every ``pending`` delivery, oldest alert first, Jira before Slack (so the Slack post can
name the ticket), each in its own transaction.

1. Claim: ``attempts = attempts + 1`` WHERE the row is still pending with the attempts we read — a check
   running at the same time skips it instead of sending it twice.
2. Send through the channel's client (:mod:`payops.monitor.channels`).
3. Record: ``sent`` with the service's answer (PagerDuty's dedup key, the Jira issue key, the SMTP reply) —
   or, on failure, the error on the row, which stays ``pending`` for the next check. Nothing is dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import case, select, update

from payops.config import Settings
from payops.db import session_scope
from payops.db.models import Alert, AlertDelivery, utcnow
from payops.errors import NotificationError
from payops.monitor import channels

ORDER = {"jira": 0, "pagerduty": 1, "slack": 2, "slack_ops": 3, "email": 4}


@dataclass(frozen=True)
class DeliveryOutcome:
    delivery_id: int
    alert_id: int
    channel: str
    action: str
    ok: bool
    attempts: int
    detail: str  # the service's answer, or the error

    def line(self) -> str:
        mark = "sent" if self.ok else f"NOT SENT (attempt {self.attempts}, retried next check)"
        return f"alert #{self.alert_id} {self.channel} {self.action}: {mark} — {self.detail}"


def pending_ids(settings: Settings) -> list[int]:
    order = case(ORDER, value=AlertDelivery.channel, else_=9)
    with session_scope(settings) as s:
        return list(s.scalars(select(AlertDelivery.id).where(AlertDelivery.status == "pending")
                              .order_by(AlertDelivery.alert_id, order, AlertDelivery.id)))


def _claim(settings: Settings, delivery_id: int) -> tuple[AlertDelivery, Alert] | None:
    with session_scope(settings) as s:
        d = s.get(AlertDelivery, delivery_id)
        if d is None or d.status != "pending":
            return None
        res = s.execute(update(AlertDelivery).where(AlertDelivery.id == delivery_id, AlertDelivery.status == "pending",
                                                    AlertDelivery.attempts == d.attempts)
                        .values(attempts=d.attempts + 1))
        if res.rowcount != 1:  # type: ignore[attr-defined]
            return None
        s.refresh(d)
        alert = s.get(Alert, d.alert_id)
        assert alert is not None
        return d, alert


def deliver(settings: Settings, delivery_id: int) -> DeliveryOutcome | None:
    """Send one pending delivery; None when another check holds it or it is no longer pending."""
    claimed = _claim(settings, delivery_id)
    if claimed is None:
        return None
    d, alert = claimed
    try:
        answer = channels.send(settings, alert, d.channel, d.action)
    except NotificationError as exc:
        with session_scope(settings) as s:
            s.execute(update(AlertDelivery).where(AlertDelivery.id == d.id).values(last_error=str(exc)[:2000]))
        return DeliveryOutcome(d.id, alert.id, d.channel, d.action, False, d.attempts, str(exc))
    with session_scope(settings) as s:
        s.execute(update(AlertDelivery).where(AlertDelivery.id == d.id).values(
            status="sent", response=answer[:2000], sent_at=utcnow(), last_error=None))
        if d.channel == "jira":
            s.execute(update(Alert).where(Alert.id == alert.id).values(jira_issue_key=answer))
    return DeliveryOutcome(d.id, alert.id, d.channel, d.action, True, d.attempts, answer)


def dispatch(settings: Settings) -> list[DeliveryOutcome]:
    """Send everything pending (this check's new deliveries and earlier checks' failed ones)."""
    out = []
    for delivery_id in pending_ids(settings):
        outcome = deliver(settings, delivery_id)
        if outcome is not None:
            out.append(outcome)
    return out
