"""What each channel receives for an alert: the PagerDuty event, the Jira issue, the Slack text, the email.

Pure: built from the alert row and one delivery (channel, action). Everything here is secret-free (ids,
amounts, names, commands); PagerDuty and Jira limits are applied here (summary ≤ 1024, dedup key ≤ 255, Jira
summary ≤ 255, labels without spaces).
"""

from __future__ import annotations

import json
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any

from payops.db.models import Alert

PD_SEVERITY = {"SEV-2": "error", "SEV-3": "warning", "SEV-4": "info"}
SOURCE = "payops-monitor"
RULE_TITLES = {
    "automation_failure": "Automation failure",
    "money_moved": "Money moved, record missing",
    "fallback_volume": "Fallback volume",
    "credential_expiry": "Credential expiry",
    "reserve_breach": "Reserve breach",
}


def _details(alert: Alert) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(alert.details_json or "{}")
    return data


def pagerduty_trigger(alert: Alert) -> dict[str, Any]:
    """Arguments of ``EventsApiV2Client.trigger`` for this alert."""
    return {
        "summary": f"[{alert.severity}] {alert.summary}"[:1024],
        "source": SOURCE,
        "dedup_key": alert.pagerduty_dedup_key,
        "severity": PD_SEVERITY.get(alert.severity, "error"),
        "payload": {"component": alert.rule, "group": "payments", "class": alert.rule,
                    "timestamp": alert.opened_at.isoformat()},
        "custom_details": {"alert_id": alert.id, "condition": alert.dedupe_key, "severity": alert.severity,
                           **_details(alert)},
    }


def labels(alert: Alert) -> list[str]:
    return ["payops-monitor", "payops-" + alert.rule.replace("_", "-"), f"payops-alert-{alert.id}"]


def jira_issue(alert: Alert, project: str, issue_type: str) -> dict[str, Any]:
    """The ``fields`` of the Jira issue for this alert (one per open condition)."""
    details = _details(alert)
    lines = [alert.summary, "", f"payops alert #{alert.id} · condition {alert.dedupe_key} · opened "
             f"{alert.opened_at:%Y-%m-%d %H:%M}Z · {alert.severity}", ""]
    for p in details.get("payouts", []):
        lines.append(f"* {p.get('incident_id')} — {p.get('amount')} to {p.get('studio')} "
                     f"(run {p.get('run_id')}, {p.get('transferred_at')})")
    lines += ["", "Raised by `payops monitor check`; it resolves on its own when the condition clears — review the "
                  "fallback use and close this ticket."]
    return {"project": {"key": project}, "summary": f"[payops] {alert.summary}"[:255],
            "description": "\n".join(lines), "issuetype": {"name": issue_type}, "labels": labels(alert)}


def jira_search(alert: Alert, project: str) -> str:
    """JQL finding this alert's ticket if an earlier attempt created it but its reply was lost."""
    return f'project = {project} AND labels = "payops-alert-{alert.id}"'


def slack_text(alert: Alert, action: str) -> str:
    title = RULE_TITLES.get(alert.rule, alert.rule)
    ticket = f"\nJira: {alert.jira_issue_key}" if alert.jira_issue_key else ""
    tail = f"\n_payops alert #{alert.id} · {alert.dedupe_key}_"
    if action == "resolve":
        kept = f" (Jira {alert.jira_issue_key} stays open for review)" if alert.jira_issue_key else ""
        return (f":white_check_mark: *Resolved — {title}*: {alert.summary}\n"
                f"{alert.resolved_reason or 'the condition no longer holds'}{kept}{tail}")
    if action.startswith("reminder-"):
        step = action.removeprefix("reminder-").removesuffix("d")
        head = f":hourglass_flowing_sand: *[{alert.severity}] {title} — {step}-day reminder*"
    elif action.startswith("overdue-"):
        head = f":warning: *[{alert.severity}] {title} — OVERDUE, reminder {action.removeprefix('overdue-')}*"
    else:
        head = f":rotating_light: *[{alert.severity}] {title}*"
    return f"{head}\n{alert.summary}{ticket}{tail}"


def email(alert: Alert, action: str, *, sender: str, to: str) -> EmailMessage:
    """The monitoring email (reserve breaches go to Finance and ops)."""
    title = RULE_TITLES.get(alert.rule, alert.rule)
    msg = EmailMessage()
    resolved = action == "resolve"
    msg["Subject"] = (f"[payops resolved] {title}: {alert.summary}" if resolved else
                      f"[payops {alert.severity}] {title}: {alert.summary}")[:250]
    msg["From"] = sender
    msg["To"] = to
    msg["Message-ID"] = make_msgid(idstring=f"alert{alert.id}", domain="payops.example.com")
    body = [alert.summary, ""]
    if resolved:
        body += [f"Resolved at {alert.resolved_at:%Y-%m-%d %H:%M}Z: {alert.resolved_reason}", ""]
    body += [f"{k}: {v}" for k, v in sorted(_details(alert).items())]
    body += ["", f"payops alert #{alert.id} · condition {alert.dedupe_key} · opened {alert.opened_at:%Y-%m-%d %H:%M}Z",
             "Raised by `payops monitor check` (history: `payops monitor alerts`)."]
    msg.set_content("\n".join(body))
    return msg
