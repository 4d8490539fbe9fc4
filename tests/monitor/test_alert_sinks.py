"""The local PagerDuty and Jira sinks answer like the services (over HTTP, to raw requests and to the real
clients), and ``payops sandbox inbox`` shows all four channels."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from payops.sandbox.alert_sinks import SANDBOX_ROUTING_KEY, incidents, parse_jql

GOOD = {"routing_key": SANDBOX_ROUTING_KEY, "event_action": "trigger", "dedup_key": "k-1",
        "payload": {"summary": "s", "source": "payops", "severity": "error"}}


def _post(sinks: Any, body: Any) -> httpx.Response:
    data = body if isinstance(body, str) else json.dumps(body)
    return httpx.post(sinks.pagerduty_url + "/v2/enqueue", content=data, headers={"content-type": "application/json"},
                      trust_env=False)


@pytest.mark.parametrize(("change", "error"), [
    ({"routing_key": None}, "'routing_key' is missing or blank"),
    ({"routing_key": "short"}, "Length of 'routing_key' is incorrect (should be 32 characters)"),
    ({"event_action": "page"}, "'event_action' is invalid"),
    ({"dedup_key": "x" * 256}, "'dedup_key' must be a string of at most 255 characters"),
    ({"payload": None}, "'payload' is missing or not an object"),
    ({"payload": {"summary": "", "source": "s", "severity": "error"}}, "'payload.summary' is missing or blank"),
    ({"payload": {"summary": "s", "source": "s", "severity": "SEV-2"}}, "'payload.severity' is invalid"),
    ({"payload": {"summary": "s", "source": "", "severity": "info"}}, "'payload.source' is missing or blank"),
    ({"payload": {"summary": "x" * 1025, "source": "s", "severity": "info"}}, "'payload.summary' is too long"),
    ({"payload": {"summary": "s", "source": "s", "severity": "info", "timestamp": "noon"}}, "not a valid ISO 8601"),
    ({"event_action": "resolve", "dedup_key": None}, "'dedup_key' is required for event_action resolve"),
])
def test_pagerduty_sink_refuses_invalid_events(local_sinks, change: dict[str, Any], error: str) -> None:  # type: ignore[no-untyped-def]
    local_sinks.clear()
    body = {**GOOD, **change}
    res = _post(local_sinks, {k: v for k, v in body.items() if v is not None})
    assert res.status_code == 400
    assert res.json()["status"] == "invalid event" and any(error in e for e in res.json()["errors"]), res.json()
    assert local_sinks.pagerduty_events() == []


def test_pagerduty_sink_accepts_and_tracks_incidents(local_sinks) -> None:  # type: ignore[no-untyped-def]
    local_sinks.clear()
    assert _post(local_sinks, "{not json").status_code == 400
    ok = _post(local_sinks, GOOD)
    assert ok.status_code == 202
    assert ok.json() == {"status": "success", "message": "Event processed", "dedup_key": "k-1"}
    generated = _post(local_sinks, {k: v for k, v in GOOD.items() if k != "dedup_key"})
    assert generated.status_code == 202 and len(generated.json()["dedup_key"]) == 32
    assert _post(local_sinks, {"routing_key": SANDBOX_ROUTING_KEY, "event_action": "resolve", "dedup_key": "k-1"}
                 ).status_code == 202
    state = incidents(local_sinks.pagerduty_events())
    assert state["k-1"] == "resolved" and state[generated.json()["dedup_key"]] == "triggered"


def test_pagerduty_client_against_the_sink(local_sinks, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from payops.config import get_settings
    from payops.monitor.channels import pagerduty_client

    local_sinks.clear()
    monkeypatch.setenv("PAGERDUTY_ROUTING_KEY", SANDBOX_ROUTING_KEY)
    monkeypatch.setenv("PAYOPS_PAGERDUTY_EVENTS_URL", local_sinks.pagerduty_url)
    client = pagerduty_client(get_settings(fresh=True))
    assert client.trigger("disk full", "db-1", dedup_key="d-1", severity="warning") == "d-1"
    assert client.resolve("d-1") == "d-1"
    monkeypatch.setenv("PAYOPS_PAGERDUTY_EVENTS_URL", "http://pagerduty.example.com")  # not loopback: https only
    with pytest.raises(Exception, match="https"):
        pagerduty_client(get_settings(fresh=True))
    get_settings(fresh=True)


def test_jira_sink_needs_auth_and_validates(local_sinks) -> None:  # type: ignore[no-untyped-def]
    base = local_sinks.jira_url + "/rest/api/2"
    assert httpx.get(base + "/serverInfo", trust_env=False).status_code == 401
    auth = {"Authorization": "Bearer t0ken-for-tests"}
    bad = httpx.post(base + "/issue", headers=auth, trust_env=False, json={"fields": {
        "project": {"key": "NOPE"}, "summary": "two\nlines", "issuetype": {"name": "Epic"}, "labels": ["has space"]}})
    assert bad.status_code == 400
    assert set(bad.json()["errors"]) == {"project", "summary", "issuetype", "labels"}
    jql = httpx.get(base + "/search", headers=auth, params={"jql": "assignee = me"}, trust_env=False)
    assert jql.status_code == 400 and "Error in the JQL Query" in jql.json()["errorMessages"][0]
    assert parse_jql('project = OPS AND labels = "payops-alert-3"') == [("project", "OPS"),
                                                                        ("labels", "payops-alert-3")]


def test_jira_client_creates_and_finds(local_sinks) -> None:  # type: ignore[no-untyped-def]
    from jira import JIRA

    local_sinks.clear()
    client = JIRA(server=local_sinks.jira_url, basic_auth=("ops-bot@example.com", "api-token"))
    issue = client.create_issue(fields={"project": {"key": "OPS"}, "summary": "hello", "issuetype": {"name": "Task"},
                                        "labels": ["payops-x"]})  # prefetch: GET the issue back
    assert issue.key == "OPS-1" and issue.fields.summary == "hello"
    found = client.search_issues('project = OPS AND labels = "payops-x"')
    assert [i.key for i in found] == ["OPS-1"] and client.search_issues('labels = "other"') == []


def test_inbox_shows_all_four(local_sinks) -> None:  # type: ignore[no-untyped-def]
    from payops.sandbox.cli import app

    local_sinks.clear()
    _post(local_sinks, GOOD)
    res = CliRunner().invoke(app, ["inbox", "--url", local_sinks.inbox_url])
    assert res.exit_code == 0
    for title in ("Slack posts (0)", "Emails (0)", "PagerDuty events (1)", "Jira issues (0)"):
        assert title in res.output
    raw = CliRunner().invoke(app, ["inbox", "--url", local_sinks.inbox_url, "--json"])
    assert set(json.loads(raw.output)) == {"slack", "email", "pagerduty", "jira"}
