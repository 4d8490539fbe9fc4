"""Post a rendered payload to a Slack incoming webhook (slack_sdk's WebhookClient).

The webhook URL is a secret: it never appears in an error message, a result or a log line
written by payops.
"""

from __future__ import annotations

import http.client
import ipaddress
import urllib.error
import urllib.parse
from datetime import UTC, datetime
from typing import Any

from slack_sdk.errors import SlackClientError
from slack_sdk.webhook import WebhookClient

from payops.config import Settings
from payops.errors import NotificationError
from payops.notify.render import DeliveryResult

_REDACTED = "<slack webhook URL redacted>"


def _redact(text: str, url: str) -> str:
    out = text.replace(url, _REDACTED)
    path = urllib.parse.urlsplit(url).path
    if path and path != "/":
        out = out.replace(path, "/<redacted>")
    return out


def _is_loopback(url: str) -> bool:
    host = urllib.parse.urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def slack_error(message: str, *, status: int | None, body: str | None) -> NotificationError:
    """A NotificationError carrying Slack's HTTP status and body (never the URL)."""
    err = NotificationError(message)
    err.channel = "slack"  # type: ignore[attr-defined]
    err.status = status  # type: ignore[attr-defined]
    err.body = body  # type: ignore[attr-defined]
    return err


def send_slack(webhook_url: str, payload: dict[str, Any], *, timeout: float = 10.0) -> DeliveryResult:
    """POST ``payload`` to ``webhook_url``. Slack answers ``200 ok``; anything else raises.

    Raises NotificationError with the HTTP status and Slack's body (e.g. ``404 no_service``,
    ``400 invalid_payload``) or the network error — never the webhook URL.
    """
    if not webhook_url or not webhook_url.lower().startswith(("http://", "https://")):
        raise slack_error("Slack webhook URL is not configured or is not an http(s) URL", status=None, body=None)
    client = WebhookClient(webhook_url, timeout=timeout)
    if _is_loopback(webhook_url):
        client.proxy = None  # a local sink is never reached through a proxy
    try:
        response = client.send_dict(payload)
    except (urllib.error.URLError, http.client.HTTPException, OSError, SlackClientError, ValueError) as exc:
        detail = _redact(f"{type(exc).__name__}: {exc}", webhook_url)
        err = slack_error(f"Slack webhook post failed: {detail}", status=None, body=None)
        if webhook_url in str(exc):
            raise err from None  # the original message holds the secret URL
        raise err from exc
    body = _redact(response.body or "", webhook_url)
    if response.status_code != 200 or body.strip() != "ok":
        raise slack_error(
            f"Slack webhook refused the message: HTTP {response.status_code} {body.strip()[:200]!r}",
            status=response.status_code, body=body,
        )
    return DeliveryResult(
        channel="slack", ok=True, status=response.status_code, detail=body.strip(),
        delivered_at=datetime.now(UTC),
    )


def post_text(settings: Settings, text: str) -> bool:
    """Post ``text`` to ``PAYOPS_SLACK_CHANNEL`` through ``PAYOPS_SLACK_WEBHOOK_URL``; False (nothing sent) when
    no webhook is configured. A failed delivery raises NotificationError (as ``send_slack``)."""
    if settings.slack_webhook_url is None or not settings.slack_webhook_url.get_secret_value():
        return False
    send_slack(settings.slack_webhook_url.get_secret_value(), {"channel": settings.slack_channel, "text": text})
    return True
