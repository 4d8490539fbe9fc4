"""The monitor where it meets the rest of payops: the SOP's audit step marks the fallback key due (a real
incident; not a rehearsal), and the scheduler runs ``monitor check`` every 5 minutes."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from monitor_helpers import T0, alerts, cli, payout_run, pd_events

from approval_helpers import signed_live_args
from payops import demo_data
from payops.db import session_scope
from payops.monitor.credentials import FALLBACK_KEY_NAME, inventory

pytestmark = [pytest.mark.db, pytest.mark.e2e]
SOP_ARGS = [  # the demo's rehearsal example (as tests/e2e/e2e_helpers.py)
    "--studio-id", demo_data.STUDIO_A.studio_id, "--studio-name", "Test Studio A", "--ledger-payout-id",
    demo_data.REHEARSAL_LEDGER_PAYOUT_ID, "--incident-id", "INC-TEST-1", "--amount", "875.50", "--reserve-after",
    "120.00", "--reason", "automated payout failed", "--destination-account", "acct_test_studio_a",
]


def _monitor_channels(env, sinks, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from payops.config import get_settings
    from payops.sandbox.alert_sinks import SANDBOX_ROUTING_KEY

    monkeypatch.setenv("PAGERDUTY_ROUTING_KEY", SANDBOX_ROUTING_KEY)
    monkeypatch.setenv("PAYOPS_PAGERDUTY_EVENTS_URL", sinks.pagerduty_url)
    monkeypatch.setenv("PAYOPS_JIRA_URL", sinks.jira_url)
    monkeypatch.setenv("PAYOPS_JIRA_TOKEN", "jira-pat-for-tests")
    env.settings = get_settings(fresh=True)


@pytest.mark.slow
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("rehearsal", [False, True])
def test_live_manual_payout_marks_the_fallback_key_due(payops_env, roster, monkeypatch, tmp_path,  # type: ignore[no-untyped-def]
                                                       rehearsal: bool) -> None:
    from payops.monitor.check import run_check

    _monitor_channels(payops_env, payops_env.sinks, monkeypatch)
    switches = ["--rehearsal"] if rehearsal else []
    res = cli(*signed_live_args(roster, [*SOP_ARGS, *switches], tmp_path / "sigs"), "--wait", "60s")
    assert res.exit_code == 0, res.stdout + res.stderr
    with session_scope() as s:
        creds = inventory(s)
    if rehearsal:  # a rehearsal is not a real incident: nothing to rotate
        assert creds == []
        return
    (cred,) = creds
    assert cred["name"] == FALLBACK_KEY_NAME and cred["rotation_due_at"] is not None
    assert "used by live manual payout INC-TEST-1" in cred["rotation_due_reason"]
    payops_env.sinks.clear()
    report = run_check(payops_env.settings)
    cond = next(c for c in report.conditions if c.rule == "credential_expiry")
    assert cond.severity == "SEV-2" and "STRIPE_FALLBACK_SECRET_KEY" in cond.summary
    assert not [c for c in report.conditions if c.rule == "money_moved"]  # the run finished every record
    assert any("payops credentials rotate STRIPE_FALLBACK_SECRET_KEY" in m["json"]["text"]
               for m in payops_env.sinks.slack_messages())
    assert cli("credentials", "rotate", FALLBACK_KEY_NAME, "--rotation-due", "2027-06-01").exit_code == 0
    after = run_check(payops_env.settings)
    assert any(a["rule"] == "credential_expiry" for a in after.resolved)
    assert pd_events(payops_env.sinks, "resolve")


def test_scheduler_runs_the_check_every_5_minutes(monitor_env, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import socket

    from payops.scheduler import MONITOR_CHECK, Scheduler, default_registry, history

    payout_run(date(2026, 12, 1), status="failed", finished=T0 + timedelta(minutes=1), paid=0, unpaid=2)
    job = default_registry().get(MONITOR_CHECK)
    now = [T0 + timedelta(minutes=4)]
    sched = Scheduler(monitor_env.settings, clock=lambda: now[0], jobs=[job])
    sched.tick()
    now[0] = T0 + timedelta(minutes=11)
    report = sched.tick()
    assert [(e.job, e.slot_at, e.status) for e in report.executions] == [
        (MONITOR_CHECK, T0 + timedelta(minutes=5), "succeeded"), (MONITOR_CHECK, T0 + timedelta(minutes=10),
                                                                   "succeeded")]
    assert len(pd_events(monitor_env.sinks)) == 1 and len(alerts()) == 1  # two checks, one page
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}/pagerduty"
    monkeypatch.setenv("PAYOPS_PAGERDUTY_EVENTS_URL", dead)
    payout_run(date(2026, 12, 15), status="failed", started=T0 + timedelta(minutes=12),
               finished=T0 + timedelta(minutes=13), paid=0, unpaid=1)
    sched2 = Scheduler(monitor_env.refresh(), clock=lambda: now[0], jobs=[job])
    now[0] = T0 + timedelta(minutes=15)
    (ex,) = sched2.tick().executions
    assert ex.status == "failed" and "pagerduty" in (ex.error or "") and "retried at the next check" in ex.error
    rows = history(monitor_env.settings, job=MONITOR_CHECK, limit=200)
    # the fresh scheduler ran the newest slot of its look-back window (06:00) and recorded none of the 72
    # before it as missed: a check looks at the state now (coalesce)
    assert [r["status"] for r in rows] == ["failed"] + ["succeeded"] * 3  # 06:00-06:10, then 06:15


def test_schedule_is_its_own_setting(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from payops.config import Settings
    from payops.errors import ConfigError
    from payops.scheduler import MONITOR_CHECK, default_registry

    job = default_registry().get(MONITOR_CHECK)
    settings = Settings(PAYOPS_MONITOR_CRON="*/10 * * * *")
    slots = job.schedule_for(settings).upcoming(UTC, datetime(2026, 12, 7, 1, 2, tzinfo=UTC), 2)  # type: ignore[arg-type]
    assert [s.at.minute for s in slots] == [10, 20]
    with pytest.raises(ConfigError, match="PAYOPS_MONITOR_CRON"):
        job.schedule_for(Settings(PAYOPS_MONITOR_CRON="every five minutes"))
