"""Delivery through the real clients (slack_sdk, smtplib) to the real local sinks (uvicorn, aiosmtpd)."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import httpx
import pytest
import typer
from typer.testing import CliRunner

from payops.config import Settings
from payops.errors import NotificationError
from payops.money import Money
from payops.notify import PayoutNotice, render_drafts, send_email, send_slack
from payops.sandbox.sinks import RunningSinks, fetch_inbox, inbox_command, sinks

HOSTILE = "<!channel> & Co 東京"
SENDER = "Payments Ops <payments-ops@example.com>"


def make_notice(**over: object) -> PayoutNotice:
    fields: dict[str, object] = dict(
        run_id="run-42", incident_id="INC-77", incident_url="https://incidents.example.com/INC-77",
        studio_id="st-1", studio_name=HOSTILE, studio_email="studio@pixel.example",
        ledger_payout_id="lp_9", amount=Money(123456789, "CAD"), reason="account_closed",
        reserve_after=Money(500, "CAD"), transfer_id="tr_123", approver_ops_id="ops-uuid",
        approver_finance_id="fin-uuid", operator_id="operator-uuid", is_rehearsal=True, dry_run=False,
    )
    fields.update(over)
    return PayoutNotice(**fields)  # type: ignore[arg-type]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- Slack ---------------------------------------------------------------------------------------
def test_send_slack_reaches_the_sink(sink: RunningSinks) -> None:
    drafts = render_drafts(make_notice(), sender=SENDER)
    result = send_slack(sink.slack_webhook_url, drafts.slack_payload)
    assert (result.channel, result.ok, result.status, result.detail) == ("slack", True, 200, "ok")
    assert result.as_dict()["delivered_at"].endswith("+00:00")
    [msg] = sink.slack_messages()
    assert msg["path"] == "/services/TPAYOPS/BSANDBOX/sandbox-webhook-secret"
    assert msg["json"] == drafts.slack_payload
    text = msg["json"]["text"]
    assert text.startswith("[REHEARSAL] ")
    assert "1,234,567.89 CAD" in text
    assert "&lt;!channel&gt; &amp; Co 東京" in text and "<!channel>" not in text


def test_slack_unknown_path_is_no_service(sink: RunningSinks) -> None:
    url = sink.slack_webhook_url.replace("/services/TPAYOPS/BSANDBOX/", "/hooks/")
    with pytest.raises(NotificationError) as info:
        send_slack(url, {"text": "hi"})
    err = info.value
    assert err.status == 404 and err.body == "no_service"  # type: ignore[attr-defined]
    assert "404" in str(err) and "no_service" in str(err)
    assert "sandbox-webhook-secret" not in str(err) and url not in str(err)
    assert sink.slack_messages() == []


def test_slack_empty_payload_is_invalid(sink: RunningSinks) -> None:
    with pytest.raises(NotificationError) as info:
        send_slack(sink.slack_webhook_url, {"channel": "#x"})
    assert info.value.status == 400 and "invalid_payload" in str(info.value)  # type: ignore[attr-defined]
    assert "sandbox-webhook-secret" not in str(info.value)


def test_slack_unreachable_never_shows_the_url() -> None:
    url = f"http://127.0.0.1:{free_port()}/services/TSECRET/BSECRET/very-secret-token"
    with pytest.raises(NotificationError) as info:
        send_slack(url, {"text": "hi"}, timeout=2)
    assert "very-secret-token" not in str(info.value) and url not in str(info.value)
    assert "Slack webhook post failed" in str(info.value)


def test_slack_sink_answers_like_slack(sink: RunningSinks) -> None:
    with httpx.Client(trust_env=False, timeout=5) as http:
        ok = http.post(sink.slack_webhook_url, json={"text": "hello"})
        assert (ok.status_code, ok.text) == (200, "ok")
        assert ok.headers["content-type"].startswith("text/plain")
        bad = http.post(sink.slack_webhook_url, content=b"not json", headers={"content-type": "application/json"})
        assert (bad.status_code, bad.text) == (400, "invalid_payload")
        blocks_only = http.post(sink.slack_webhook_url, json={"blocks": [{"type": "divider"}]})
        assert blocks_only.status_code == 200
        form = http.post(sink.slack_webhook_url, data={"payload": json.dumps({"text": "from form"})})
        assert form.status_code == 200
        other = http.post(sink.inbox_url.replace("/_inbox", "/services/only-one"), json={"text": "x"})
        assert (other.status_code, other.text) == (404, "no_service")
        inbox = http.get(sink.inbox_url).json()
        assert [m["json"].get("text") for m in inbox["slack"]] == ["hello", None, "from form"]
        assert inbox["email"] == []
        assert http.delete(sink.inbox_url).status_code == 200
    assert sink.slack_messages() == []


# -- email ---------------------------------------------------------------------------------------
def test_send_email_reaches_the_sink(sink: RunningSinks, smtp_settings: Settings) -> None:
    drafts = render_drafts(make_notice(), sender=SENDER)
    result = send_email(drafts.email, smtp_settings)
    assert result.channel == "email" and result.ok
    assert str(result.status).startswith("250")
    assert result.detail == drafts.email["Message-ID"]
    [mail] = sink.emails()
    assert mail["mail_from"] == "payments-ops@example.com"
    assert mail["rcpt_tos"] == ["studio@pixel.example"]
    assert mail["subject"].startswith("[REHEARSAL] ")
    assert "1,234,567.89 CAD" in mail["subject"] and HOSTILE in mail["subject"]
    assert "1,234,567.89 CAD" in mail["text"] and HOSTILE in mail["text"]
    assert "&lt;!channel&gt; &amp; Co 東京" in mail["html"] and "<!channel>" not in mail["html"]
    assert mail["message_id"] == drafts.email["Message-ID"]
    head = mail["raw"].split("\n\n", 1)[0]
    assert "=?utf-8?" in head  # the non-ASCII display name and subject are encoded
    assert dict(mail["headers"])["X-Payops-Rehearsal"] == "yes"


def test_email_with_auth() -> None:
    with sinks(http_port=0, smtp_port=0, smtp_credentials=("ops-bot", "s3cret-pw!")) as s:
        good = Settings(PAYOPS_SMTP_HOST=s.smtp_host, PAYOPS_SMTP_PORT=s.smtp_port,
                        PAYOPS_SMTP_USER="ops-bot", PAYOPS_SMTP_PASSWORD="s3cret-pw!")
        assert send_email(render_drafts(make_notice(), sender=SENDER).email, good).ok
        assert len(s.emails()) == 1
        bad = good.model_copy(update={"smtp_password": Settings(PAYOPS_SMTP_PASSWORD="wrong-pw-123").smtp_password})
        with pytest.raises(NotificationError) as info:
            send_email(render_drafts(make_notice(), sender=SENDER).email, bad)
        msg = str(info.value)
        assert f"{s.smtp_host}:{s.smtp_port}" in msg and "535" in msg
        assert "wrong-pw-123" not in msg and "s3cret-pw!" not in msg
        assert len(s.emails()) == 1


def test_stopped_smtp_server_names_host_port_not_password() -> None:
    with sinks(http_port=0, smtp_port=0) as running:
        host, port = running.smtp_host, running.smtp_port
    settings = Settings(PAYOPS_SMTP_HOST=host, PAYOPS_SMTP_PORT=port, PAYOPS_SMTP_USER="ops-bot",
                        PAYOPS_SMTP_PASSWORD="hunter2-very-secret", PAYOPS_SMTP_TIMEOUT=3)
    with pytest.raises(NotificationError) as info:
        send_email(render_drafts(make_notice(), sender=SENDER).email, settings)
    msg = str(info.value)
    assert f"{host}:{port}" in msg
    assert "hunter2-very-secret" not in msg
    assert "studio@pixel.example" in msg
    assert isinstance(info.value.__cause__, OSError)


def test_server_without_auth_refuses_login(sink: RunningSinks, smtp_settings: Settings) -> None:
    settings = smtp_settings.model_copy(update={
        "smtp_user": "u", "smtp_password": Settings(PAYOPS_SMTP_PASSWORD="pw-not-shown").smtp_password,
    })
    with pytest.raises(NotificationError) as info:
        send_email(render_drafts(make_notice(), sender=SENDER).email, settings)
    assert f"{sink.smtp_host}:{sink.smtp_port}" in str(info.value)
    assert "pw-not-shown" not in str(info.value)


# -- the store and the inbox command ----------------------------------------------------------------
def test_store_path_is_shared_and_survives_restart(tmp_path: Path) -> None:
    store = tmp_path / "inbox.json"
    with sinks(http_port=0, smtp_port=0, store_path=store) as s:
        send_slack(s.slack_webhook_url, {"text": "first"})
    assert json.loads(store.read_text())["slack"][0]["json"] == {"text": "first"}
    with sinks(http_port=0, smtp_port=0, store_path=store) as s2:
        assert [m["json"]["text"] for m in s2.slack_messages()] == ["first"]
        assert fetch_inbox(s2.inbox_url)["slack"][0]["json"]["text"] == "first"
        s2.clear()
        assert json.loads(store.read_text()) == {"slack": [], "email": [], "pagerduty": [], "jira": []}


def test_fetch_inbox_unreachable() -> None:
    with pytest.raises(NotificationError, match="cannot read the sandbox inbox"):
        fetch_inbox(f"http://127.0.0.1:{free_port()}/_inbox")


def _cli() -> typer.Typer:
    app = typer.Typer()
    app.command("inbox")(inbox_command)

    @app.command("noop")
    def _noop() -> None:  # a second command keeps "inbox" a real sub-command
        """Nothing."""

    return app


def test_inbox_command(sink: RunningSinks, smtp_settings: Settings) -> None:
    drafts = render_drafts(make_notice(is_rehearsal=False), sender=SENDER)
    send_slack(sink.slack_webhook_url, drafts.slack_payload)
    send_email(drafts.email, smtp_settings)
    runner = CliRunner()

    table = runner.invoke(_cli(), ["inbox", "--url", sink.inbox_url])
    assert table.exit_code == 0, table.output
    assert "Slack posts (1)" in table.output and "Emails (1)" in table.output
    assert "studio@pixel.example" in table.output
    assert "Manual payout sent: 1,234,567.89 CAD" in table.output

    as_json = runner.invoke(_cli(), ["inbox", "--url", sink.inbox_url, "--json"])
    assert as_json.exit_code == 0, as_json.output
    data = json.loads(as_json.stdout)
    assert len(data["slack"]) == 1 and data["email"][0]["rcpt_tos"] == ["studio@pixel.example"]

    cleared = runner.invoke(_cli(), ["inbox", "--url", sink.inbox_url, "--clear"])
    assert cleared.exit_code == 0 and "inbox cleared" in cleared.output
    assert sink.slack_messages() == [] and sink.emails() == []


def test_inbox_command_unreachable() -> None:
    result = CliRunner().invoke(_cli(), ["inbox", "--url", f"http://127.0.0.1:{free_port()}/_inbox"])
    assert result.exit_code == 1
    assert "cannot read the sandbox inbox" in result.output
