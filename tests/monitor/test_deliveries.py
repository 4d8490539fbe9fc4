"""What reached each sink, field by field, through the real clients — and the promises around it: one page per
open condition, one reminder per step, a resolve when it clears, a channel that is down reported and retried
without losing the alert, one Jira ticket per open condition."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from monitor_helpers import JIRA_TOKEN, T0, alerts, credential, live_manual, payout_run, pd_events, studio
from sqlalchemy import select, update

from payops.db import session_scope
from payops.db.models import AlertDelivery, LedgerPayout
from payops.monitor.check import run_check
from payops.sandbox.alert_sinks import SANDBOX_ROUTING_KEY

pytestmark = pytest.mark.db


def test_page_once_then_resolve(monitor_env) -> None:  # type: ignore[no-untyped-def]
    run = payout_run(date(2026, 12, 1), status="failed", finished=T0 + timedelta(minutes=1), paid=1, unpaid=1)
    first = run_check(monitor_env.settings, at=T0 + timedelta(minutes=5))
    assert first.exit_code == 20 and [o.ok for o in first.outcomes] == [True]
    for minutes in (10, 15, 20):  # the scheduler's next checks: the incident is open, nothing is sent again
        again = run_check(monitor_env.settings, at=T0 + timedelta(minutes=minutes))
        assert again.exit_code == 20 and again.outcomes == [] and again.opened == []
    (trigger,) = pd_events(monitor_env.sinks)
    (alert,) = alerts()
    assert trigger["routing_key"] == SANDBOX_ROUTING_KEY
    assert trigger["event_action"] == "trigger"
    assert trigger["dedup_key"] == alert["pagerduty_dedup_key"] == f"automation_failure:cycle:2026-12-01#{alert['id']}"
    assert trigger["payload"]["severity"] == "error"
    assert trigger["payload"]["source"] == "payops-monitor"
    assert trigger["payload"]["summary"] == (
        "[SEV-2] Payout cycle 2026-12-01: failed (balance too low): 1 of 2 ledger payouts unpaid; processed 1 of 2 "
        "studios scheduled (50.0%, fewer than 90%)")
    assert trigger["payload"]["custom_details"]["payout_run_id"] == run

    with session_scope() as s:  # the manual fallback pays the studio: the condition clears
        s.execute(update(LedgerPayout).where(LedgerPayout.run_id == run).values(status="paid"))
    cleared = run_check(monitor_env.settings, at=T0 + timedelta(hours=2))
    assert cleared.exit_code == 0 and [a["id"] for a in cleared.resolved] == [alert["id"]]
    resolve = pd_events(monitor_env.sinks, "resolve")
    assert resolve == [{"event_action": "resolve", "dedup_key": trigger["dedup_key"],
                        "routing_key": SANDBOX_ROUTING_KEY}]
    (after,) = alerts()
    assert after["status"] == "resolved" and after["resolved_at"] is not None
    assert [(d["channel"], d["action"], d["status"]) for d in after["deliveries"]] == [
        ("pagerduty", "trigger", "sent"), ("pagerduty", "resolve", "sent")]
    assert run_check(monitor_env.settings, at=T0 + timedelta(hours=3)).outcomes == []


def test_reminder_series_once_per_step_then_page_then_rotation_resolves(monitor_env) -> None:  # type: ignore[no-untyped-def]
    from payops.monitor.credentials import CredentialInput, rotate

    expires = T0 + timedelta(days=40)
    credential("apple-pay-processing", "apple_pay_processing_cert", expires_at=expires)
    for days_left in (35, 30, 29.5, 20, 14, 13, 7, 6.9, 5, 3, 2.5, 1):
        run_check(monitor_env.settings, at=expires - timedelta(days=days_left))
    texts = [m["json"]["text"] for m in monitor_env.sinks.slack_messages()]
    steps = [t.split("—")[1].split("-day")[0].strip() for t in texts]
    assert steps == ["30", "14", "7", "3"], texts
    assert all("Credential apple-pay-processing (Apple Pay payment-processing certificate) expires" in t for t in texts)
    assert texts[0].startswith(":hourglass_flowing_sand: *[SEV-3] Credential expiry — 30-day reminder*")
    assert texts[3].startswith(":hourglass_flowing_sand: *[SEV-2] Credential expiry — 3-day reminder*")
    (page,) = pd_events(monitor_env.sinks)
    assert page["payload"]["severity"] == "error" and "apple-pay-processing" in page["payload"]["summary"]
    with session_scope() as s:
        rotate(s, CredentialInput("apple-pay-processing", expires="2027-12-01"), configured=[],
               at=expires - timedelta(days=1))
    done = run_check(monitor_env.settings, at=expires - timedelta(days=1) + timedelta(minutes=5))
    assert done.exit_code == 0 and len(done.resolved) == 1
    assert pd_events(monitor_env.sinks, "resolve")[0]["dedup_key"] == page["dedup_key"]
    resolved_note = monitor_env.sinks.slack_messages()[-1]["json"]["text"]
    assert resolved_note.startswith(":white_check_mark: *Resolved — Credential expiry*") and "rotated" in resolved_note


def test_overdue_reminders_repeat_daily_until_rotated(monitor_env) -> None:  # type: ignore[no-untyped-def]
    credential("rk-fallback", "stripe_restricted_key", rotation_due_at=T0)
    for hours in (0, 1, 23, 24, 25, 47, 48):
        run_check(monitor_env.settings, at=T0 + timedelta(hours=hours))
    texts = [m["json"]["text"] for m in monitor_env.sinks.slack_messages()]
    assert [t.split("\n")[0] for t in texts] == [
        ":hourglass_flowing_sand: *[SEV-2] Credential expiry — 3-day reminder*",
        ":warning: *[SEV-2] Credential expiry — OVERDUE, reminder 1*",
        ":warning: *[SEV-2] Credential expiry — OVERDUE, reminder 2*"]
    assert len(pd_events(monitor_env.sinks, "trigger")) == 1


def test_pagerduty_down_is_reported_retried_and_not_lost(monitor_env, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import socket

    live_manual(T0, audit=False, notified=False, settled=False)
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}/pagerduty"
    monkeypatch.setenv("PAYOPS_PAGERDUTY_EVENTS_URL", dead)
    down = run_check(monitor_env.refresh(), at=T0 + timedelta(minutes=15))
    (failed,) = down.failed
    assert failed.channel == "pagerduty" and "unreachable" in failed.detail and down.pending_after == 1
    assert SANDBOX_ROUTING_KEY not in failed.detail
    assert down.exit_code == 20 and pd_events(monitor_env.sinks) == []
    again = run_check(monitor_env.settings, at=T0 + timedelta(minutes=20))  # still down: retried, still pending
    assert [o.attempts for o in again.failed] == [2]
    monkeypatch.setenv("PAYOPS_PAGERDUTY_EVENTS_URL", monitor_env.sinks.pagerduty_url)
    back = run_check(monitor_env.refresh(), at=T0 + timedelta(minutes=25))
    assert [o.ok for o in back.outcomes] == [True] and back.pending_after == 0
    (trigger,) = pd_events(monitor_env.sinks)
    assert "Money moved, record missing" in trigger["payload"]["summary"]
    (d,) = next(a for a in alerts() if a["rule"] == "money_moved")["deliveries"]
    assert (d["status"], d["attempts"], d["last_error"]) == ("sent", 3, None)


def test_unconfigured_channel_and_refused_post_stay_pending(monitor_env, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    live_manual(T0 - timedelta(days=3))
    live_manual(T0 - timedelta(days=2), incident="INC-43")
    monkeypatch.delenv("PAYOPS_JIRA_URL")
    monkeypatch.setenv("PAYOPS_SLACK_WEBHOOK_URL", monitor_env.sinks.slack_webhook_url + "/revoked")
    report = run_check(monitor_env.refresh(), at=T0)
    problems = {(o.channel, o.action): o.detail for o in report.failed}
    assert "PAYOPS_JIRA_URL is not set" in problems[("jira", "ticket")]
    assert "404" in problems[("slack", "notify")] and "no_service" in problems[("slack", "notify")]
    assert "/services/" not in problems[("slack", "notify")]  # the webhook URL is a secret
    assert report.exit_code == 7 and report.pending_after == 4  # count and share conditions × (jira, slack)
    monkeypatch.setenv("PAYOPS_JIRA_URL", monitor_env.sinks.jira_url)
    monkeypatch.setenv("PAYOPS_SLACK_WEBHOOK_URL", monitor_env.sinks.slack_webhook_url)
    fixed = run_check(monitor_env.refresh(), at=T0 + timedelta(minutes=5))
    assert fixed.exit_code == 0 and len(fixed.outcomes) == 4 and all(o.ok for o in fixed.outcomes)
    assert len(monitor_env.sinks.jira_issues()) == 2 and len(monitor_env.sinks.slack_messages()) == 2


def test_one_jira_ticket_per_open_condition_fields(monitor_env) -> None:  # type: ignore[no-untyped-def]
    live_manual(T0 - timedelta(days=3), amount=875_50)
    live_manual(T0 - timedelta(days=2), amount=120_00, incident="INC-43")
    monitor_env.settings = monitor_env.refresh()
    for minutes in (0, 5, 10):
        run_check(monitor_env.settings, at=T0 + timedelta(minutes=minutes))
    issues = monitor_env.sinks.jira_issues()
    by_label = {i["fields"]["labels"][2]: i for i in issues}
    assert len(issues) == 2  # the count condition and the CAD-share condition, once each
    count_alert = next(a for a in alerts() if a["key"] == "fallback_volume:count")
    issue = by_label[f"payops-alert-{count_alert['id']}"]
    assert issue["fields"]["project"] == {"key": "OPS"}
    assert issue["fields"]["issuetype"] == {"name": "Task"}
    assert issue["fields"]["labels"] == ["payops-monitor", "payops-fallback-volume",
                                         f"payops-alert-{count_alert['id']}"]
    assert issue["fields"]["summary"] == (
        "[payops] Fallback volume: 2 manual payouts in the last 30 days (more than 1): INC-42 875.50 CAD to Studio "
        "Fallback, INC-43 120.00 CAD to Studio Fallback")
    assert count_alert["jira_issue_key"] == issue["key"]
    slack = [m["json"]["text"] for m in monitor_env.sinks.slack_messages()]
    assert len(slack) == 2
    count_post = next(t for t in slack if "2 manual payouts" in t)
    assert count_post == (
        ":rotating_light: *[SEV-3] Fallback volume*\nFallback volume: 2 manual payouts in the last 30 days (more than "
        "1): INC-42 875.50 CAD to Studio Fallback, INC-43 120.00 CAD to Studio Fallback\n"
        f"Jira: {issue['key']}\n_payops alert #{count_alert['id']} · fallback_volume:count_")


def test_jira_ticket_made_by_a_lost_attempt_is_found_not_duplicated(monitor_env, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from jira import JIRA

    live_manual(T0 - timedelta(days=3))
    live_manual(T0 - timedelta(days=2), incident="INC-43")
    monkeypatch.delenv("PAYOPS_JIRA_URL")  # the first attempt's reply never arrives
    first = run_check(monitor_env.refresh(), at=T0)
    assert {(o.channel, o.ok) for o in first.outcomes} >= {("jira", False)}
    count_id = next(a["id"] for a in alerts() if a["key"] == "fallback_volume:count")
    # ... yet Jira did create the ticket for it
    client = JIRA(server=monitor_env.sinks.jira_url, token_auth=JIRA_TOKEN)
    made = client.create_issue(fields={"project": {"key": "OPS"}, "summary": "[payops] earlier attempt",
                                       "issuetype": {"name": "Task"}, "labels": [f"payops-alert-{count_id}"]},
                               prefetch=False)
    monkeypatch.setenv("PAYOPS_JIRA_URL", monitor_env.sinks.jira_url)
    run_check(monitor_env.refresh(), at=T0 + timedelta(minutes=5))
    assert len(monitor_env.sinks.jira_issues()) == 2  # the earlier one + the share condition's
    assert next(a for a in alerts() if a["id"] == count_id)["jira_issue_key"] == made.key


def test_reserve_breach_email_and_ops_channel(monitor_env, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("PAYOPS_OPS_SLACK_CHANNEL", "#payments-ops")
    monkeypatch.setenv("PAYOPS_MONITOR_EMAIL_TO", "finance@example.com")
    sid = studio("Thin Studio", minimum=100_00)
    payout_run(date(2026, 11, 15), finished=T0 - timedelta(days=14) + timedelta(minutes=3), paid=1, studio_ids=[sid],
               gross=99_990, reserve=9_999, net=75_993)
    run_check(monitor_env.refresh(), at=T0)
    (mail,) = monitor_env.sinks.emails()
    assert mail["rcpt_tos"] == ["finance@example.com"]
    assert mail["subject"] == ("[payops SEV-3] Reserve breach: Reserve below its minimum: Thin Studio holds 99.99 CAD, "
                               "projected 99.99 CAD after the next cycle; minimum 100.00 CAD")
    (post,) = monitor_env.sinks.slack_messages()
    assert post["json"]["channel"] == "#payments-ops"
    assert post["json"]["text"].startswith(":rotating_light: *[SEV-3] Reserve breach*\nReserve below its minimum")


def test_dry_run_writes_and_sends_nothing(monitor_env) -> None:  # type: ignore[no-untyped-def]
    live_manual(T0, audit=False)
    report = run_check(monitor_env.settings, at=T0 + timedelta(hours=1), dry_run=True)
    assert report.exit_code == 20 and ("pagerduty" in {ch for _a, ch, _ac in report.queued})
    assert alerts() == [] and pd_events(monitor_env.sinks) == []
    with session_scope() as s:
        assert s.scalars(select(AlertDelivery)).all() == []


def test_alert_history_command(monitor_env) -> None:  # type: ignore[no-untyped-def]
    import json

    from monitor_helpers import cli

    live_manual(T0, audit=False)
    assert cli("monitor", "check", "--at", "2026-12-01T07:00:00Z").exit_code == 20
    res = cli("monitor", "alerts", "--open", "--json")
    rows = json.loads(res.output)
    mm = next(r for r in rows if r["rule"] == "money_moved")
    assert mm["status"] == "open" and mm["severity"] == "SEV-2"
    assert [(d["channel"], d["action"], d["status"], d["attempts"]) for d in mm["deliveries"]] == [
        ("pagerduty", "trigger", "sent", 1)]
    assert mm["deliveries"][0]["response"] == mm["pagerduty_dedup_key"]
    table = cli("monitor", "alerts")
    assert table.exit_code == 0 and "pagerduty:" in table.output and "SEV-2" in table.output


def test_two_checks_at_once_open_one_episode_and_page_once(monitor_env, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The interleaving two concurrent checks produce, made deterministic: a second check opens the same
    condition (and commits) after this check read the open alerts and before it writes. The database
    refuses the second episode; the check reads again, finds it open and neither fails nor pages twice."""
    from payops.monitor import store

    payout_run(date(2026, 12, 1), status="failed", finished=T0 + timedelta(minutes=1), paid=1, unpaid=1)
    real = store.deliveries_of
    raced: list[str] = []

    def other_check_commits_first(s, alert_ids):  # type: ignore[no-untyped-def]
        if not raced:
            raced.append("the other check")
            run_check(monitor_env.settings, at=T0 + timedelta(minutes=5))  # its own transaction, committed
        return real(s, alert_ids)

    monkeypatch.setattr(store, "deliveries_of", other_check_commits_first)
    report = run_check(monitor_env.settings, at=T0 + timedelta(minutes=5))
    assert raced and report.exit_code == 20
    assert report.opened == [] and len(report.still_open) == 1  # the retry found the other check's episode
    (alert,) = alerts()
    assert [(d["channel"], d["action"], d["status"]) for d in alert["deliveries"]] == [("pagerduty", "trigger", "sent")]
    assert len(pd_events(monitor_env.sinks)) == 1
