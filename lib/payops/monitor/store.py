"""Remembering what the rules saw and what must be sent: alert episodes and their deliveries (the outbox).

Contract, applied in one transaction per check (:func:`sync`):

1. A condition with no open alert opens one (``open_key`` = the dedup key: the database refuses a second open
   episode of the same condition, even from two checks at once).
2. A condition already open updates its summary, details, severity and ``last_seen_at``; nothing is re-sent.
3. Each ``(channel, action)`` the condition asks for is queued once as a ``pending`` delivery (unique per
   alert, channel and action): a repeated check never pages twice, and each reminder step goes out once.
4. An open alert whose condition no longer holds is resolved: deliveries never sent are ``superseded``; each
   channel that did hear about it gets a ``resolve`` (PagerDuty resolves the incident by its dedup key; Slack
   and email get a "resolved" note). The Jira ticket is left to the people working it.

Sending happens after the commit (:mod:`payops.monitor.dispatch`), so a channel that is down never loses an
alert: its delivery stays ``pending`` and the next check sends it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from payops.db.models import Alert, AlertDelivery
from payops.monitor.rules import CREDENTIAL, Condition

RESOLVED_BECAUSE = {
    CREDENTIAL: "rotated (or its dates changed): the deadline that raised it no longer applies",
}


@dataclass
class SyncResult:
    opened: list[Alert] = field(default_factory=list)
    still_open: list[Alert] = field(default_factory=list)
    resolved: list[Alert] = field(default_factory=list)
    queued: list[AlertDelivery] = field(default_factory=list)


def details_of(alert: Alert) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(alert.details_json or "{}")
    return data


def _dumps(details: dict[str, Any]) -> str:
    return json.dumps(details, sort_keys=True, default=str, ensure_ascii=False)


def pagerduty_dedup_key(alert: Alert) -> str:
    """One PagerDuty dedup key per episode of a condition (a condition that clears and comes back later is a
    new incident), at most 255 characters as the Events API requires."""
    suffix = f"#{alert.id}"
    return alert.dedupe_key[: 255 - len(suffix)] + suffix


def _queue(s: Session, alert: Alert, channel: str, action: str, at: datetime, have: dict[tuple[str, str], Any],
           result: SyncResult) -> None:
    if (channel, action) in have:
        return
    row = AlertDelivery(alert_id=alert.id, channel=channel, action=action, status="pending", attempts=0,
                        created_at=at)
    s.add(row)
    have[(channel, action)] = row
    result.queued.append(row)


def deliveries_of(s: Session, alert_ids: list[int]) -> dict[int, dict[tuple[str, str], AlertDelivery]]:
    out: dict[int, dict[tuple[str, str], AlertDelivery]] = {i: {} for i in alert_ids}
    if alert_ids:
        for d in s.scalars(select(AlertDelivery).where(AlertDelivery.alert_id.in_(alert_ids))):
            out[d.alert_id][(d.channel, d.action)] = d
    return out


def sync(s: Session, conditions: list[Condition], at: datetime) -> SyncResult:
    """Open, update and resolve alerts for ``conditions`` (everything that holds at ``at``); queue deliveries."""
    result = SyncResult()
    open_alerts = {a.dedupe_key: a for a in s.scalars(select(Alert).where(Alert.status == "open"))}
    have = deliveries_of(s, [a.id for a in open_alerts.values()])
    seen: set[str] = set()
    for c in conditions:
        if c.key in seen:
            continue
        seen.add(c.key)
        alert = open_alerts.get(c.key)
        if alert is None:
            alert = Alert(rule=c.rule, dedupe_key=c.key, open_key=c.key, severity=c.severity, status="open",
                          summary=c.summary, details_json=_dumps(c.details), opened_at=at, last_seen_at=at)
            s.add(alert)
            s.flush()
            have[alert.id] = {}
            result.opened.append(alert)
        else:
            alert.severity, alert.summary, alert.details_json = c.severity, c.summary, _dumps(c.details)
            alert.last_seen_at = at
            result.still_open.append(alert)
        for channel, action in c.actions:
            if channel == "pagerduty" and alert.pagerduty_dedup_key is None:
                alert.pagerduty_dedup_key = pagerduty_dedup_key(alert)
            _queue(s, alert, channel, action, at, have[alert.id], result)
    for key, alert in open_alerts.items():
        if key not in seen:
            _resolve(s, alert, at, have[alert.id], result)
    s.flush()
    return result


def _resolve(s: Session, alert: Alert, at: datetime, have: dict[tuple[str, str], AlertDelivery],
             result: SyncResult) -> None:
    alert.status, alert.open_key, alert.resolved_at = "resolved", None, at
    alert.resolved_reason = RESOLVED_BECAUSE.get(alert.rule, "the condition no longer holds")
    heard: set[str] = set()
    for (channel, _action), d in list(have.items()):
        if d.status == "pending":
            d.status = "superseded"
            d.last_error = (d.last_error + "; " if d.last_error else "") + "the condition cleared before it was sent"
        elif d.status == "sent" and channel != "jira":
            heard.add(channel)
    for channel in sorted(heard):
        _queue(s, alert, channel, "resolve", at, have, result)
    result.resolved.append(alert)


def open_alerts(s: Session) -> list[Alert]:
    return list(s.scalars(select(Alert).where(Alert.status == "open").order_by(Alert.opened_at, Alert.id)))


def recent_alerts(s: Session, limit: int = 50, *, include_resolved: bool = True) -> list[dict[str, Any]]:
    """Alerts (newest first) with their deliveries, as plain dicts (``payops monitor alerts``)."""
    q = select(Alert).order_by(Alert.opened_at.desc(), Alert.id.desc()).limit(limit)
    if not include_resolved:
        q = q.where(Alert.status == "open")
    alerts = list(s.scalars(q))
    deliveries = deliveries_of(s, [a.id for a in alerts])
    return [{
        "id": a.id, "rule": a.rule, "key": a.dedupe_key, "severity": a.severity, "status": a.status,
        "summary": a.summary, "opened_at": a.opened_at, "last_seen_at": a.last_seen_at, "resolved_at": a.resolved_at,
        "resolved_reason": a.resolved_reason, "pagerduty_dedup_key": a.pagerduty_dedup_key,
        "jira_issue_key": a.jira_issue_key,
        "deliveries": [{"channel": d.channel, "action": d.action, "status": d.status, "attempts": d.attempts,
                        "response": d.response, "last_error": d.last_error, "sent_at": d.sent_at}
                       for d in sorted(deliveries[a.id].values(), key=lambda d: d.id)],
    } for a in alerts]
