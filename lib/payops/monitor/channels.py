"""The four channels, each through its maintained client, each pointed by configuration at the real service
or at the sandbox's local sink:

- PagerDuty Events API v2 — the ``pagerduty`` package's ``EventsApiV2Client`` (``PAGERDUTY_ROUTING_KEY``,
  ``PAYOPS_PAGERDUTY_EVENTS_URL``, default ``https://events.pagerduty.com``). The client only accepts https
  base URLs; payops lets a loopback ``http://`` address through (the local sink) and nothing else.
- Jira REST API — the ``jira`` package (``PAYOPS_JIRA_URL``, ``PAYOPS_JIRA_USER`` + ``PAYOPS_JIRA_TOKEN`` for
  basic auth, or the token alone as a bearer PAT; ``PAYOPS_JIRA_PROJECT``, ``PAYOPS_JIRA_ISSUE_TYPE``).
- Slack — ``slack_sdk``'s webhook client (``PAYOPS_SLACK_WEBHOOK_URL``; the Ops channel
  ``PAYOPS_OPS_SLACK_WEBHOOK_URL`` / ``PAYOPS_OPS_SLACK_CHANNEL``, defaulting to the same webhook).
- Email — SMTP (``PAYOPS_SMTP_*``, to ``PAYOPS_MONITOR_EMAIL_TO``).

Every failure — not configured, unreachable, refused — is a :class:`NotificationError` naming the channel
and what went wrong, never a secret (routing key, token, webhook URL). The clients' own retries are kept
short: the monitor's retry is the next check (the delivery stays pending).
"""

from __future__ import annotations

import urllib.parse
from typing import Any

from payops.config import Settings
from payops.db.models import Alert
from payops.errors import NotificationError
from payops.monitor import messages

TIMEOUT = 10.0


def channel_error(channel: str, message: str, secrets: list[str] | None = None) -> NotificationError:
    for secret in secrets or []:
        if secret:
            message = message.replace(secret, "***")
    err = NotificationError(f"{channel}: {message}")
    err.channel = channel  # type: ignore[attr-defined]
    return err


def _secret(value: Any) -> str:
    return value.get_secret_value() if value is not None else ""


def is_loopback(url: str) -> bool:
    import ipaddress

    host = urllib.parse.urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# --- PagerDuty ------------------------------------------------------------------------------------------
def pagerduty_client(settings: Settings) -> Any:
    import pagerduty

    key = _secret(settings.pagerduty_routing_key)
    if not key:
        raise channel_error("pagerduty", "PAGERDUTY_ROUTING_KEY is not set: the page cannot be sent")

    class EventsClient(pagerduty.EventsApiV2Client):  # type: ignore[misc]
        """The maintained client; a loopback http:// sink is the one non-https base URL it may use."""

        @property
        def url(self) -> str:
            return str(self._url)

        @url.setter
        def url(self, value: str) -> None:
            if value.startswith("http://") and is_loopback(value):
                self._url = value
                return
            pagerduty.ApiClient.url.fset(self, value)

    url = settings.pagerduty_events_url.rstrip("/")
    try:
        client = EventsClient(key, base_url=url, trust_env=not is_loopback(url))
    except pagerduty.UrlError as exc:
        raise channel_error("pagerduty", f"PAYOPS_PAGERDUTY_EVENTS_URL {url!r}: {exc}") from None
    client.timeout = TIMEOUT
    client.max_network_attempts = 0  # the next check is the retry
    client.retry = {429: 1, 500: 1, 502: 1, 503: 1, 504: 1}
    client.sleep_timer = 0.5
    return client


def _pagerduty_call(settings: Settings, fn: Any) -> str:
    import pagerduty

    key = _secret(settings.pagerduty_routing_key)
    try:
        return str(fn(pagerduty_client(settings)))
    except pagerduty.HttpError as exc:
        body = exc.response.text[:300] if exc.response is not None else ""
        status = exc.response.status_code if exc.response is not None else "?"
        raise channel_error("pagerduty", f"Events API answered HTTP {status}: {body}", [key]) from None
    except pagerduty.Error as exc:
        cause = f" ({type(exc.__cause__).__name__})" if exc.__cause__ else ""
        raise channel_error("pagerduty", f"Events API unreachable at {settings.pagerduty_events_url}: {exc}{cause}",
                            [key]) from None


def send_pagerduty(settings: Settings, alert: Alert, action: str) -> str:
    """``trigger`` or ``resolve`` this alert's incident; returns the dedup key PagerDuty acknowledged."""
    if not alert.pagerduty_dedup_key:
        raise channel_error("pagerduty", f"alert {alert.id} has no dedup key")
    if action == "resolve":
        got = _pagerduty_call(settings, lambda c: c.resolve(alert.pagerduty_dedup_key))
    else:
        event = messages.pagerduty_trigger(alert)
        got = _pagerduty_call(settings, lambda c: c.trigger(**event))
    if got != alert.pagerduty_dedup_key:
        raise channel_error("pagerduty", f"answered dedup key {got!r}, expected {alert.pagerduty_dedup_key!r}")
    return got


# --- Jira ----------------------------------------------------------------------------------------------
def jira_client(settings: Settings) -> Any:
    from jira import JIRA, JIRAError
    from requests.exceptions import RequestException

    token = _secret(settings.jira_token)
    if not settings.jira_url:
        raise channel_error("jira", "PAYOPS_JIRA_URL is not set: the ticket cannot be created")
    if not token:
        raise channel_error("jira", "PAYOPS_JIRA_TOKEN is not set")
    auth: dict[str, Any] = ({"basic_auth": (settings.jira_user, token)} if settings.jira_user
                            else {"token_auth": token})
    try:
        client = JIRA(server=settings.jira_url, max_retries=0, timeout=TIMEOUT, logging=False, **auth)
        if is_loopback(settings.jira_url):
            client._session.trust_env = False  # a local sink is never reached through a proxy
        return client
    except JIRAError as exc:
        raise channel_error("jira", f"{settings.jira_url} answered HTTP {exc.status_code}: {exc.text}",
                            [token]) from None
    except RequestException as exc:
        raise channel_error("jira", f"{settings.jira_url} unreachable: {type(exc).__name__}", [token]) from None


def send_jira(settings: Settings, alert: Alert) -> str:
    """The alert's ticket: found by its label if an earlier attempt created it, else created. Returns its key."""
    from jira import JIRAError
    from requests.exceptions import RequestException

    token = _secret(settings.jira_token)
    client = jira_client(settings)
    try:
        found = client.search_issues(messages.jira_search(alert, settings.jira_project), maxResults=1,
                                     fields="summary,labels")
        if found:
            return str(found[0].key)
        issue = client.create_issue(fields=messages.jira_issue(alert, settings.jira_project, settings.jira_issue_type),
                                    prefetch=False)
        return str(issue.key)
    except JIRAError as exc:
        raise channel_error("jira", f"{settings.jira_url} answered HTTP {exc.status_code}: {exc.text}",
                            [token]) from None
    except RequestException as exc:
        raise channel_error("jira", f"{settings.jira_url} unreachable: {type(exc).__name__}", [token]) from None


# --- Slack and email -----------------------------------------------------------------------------------
def send_slack_text(settings: Settings, text: str, *, ops: bool) -> str:
    from payops.notify.slack import send_slack

    url = _secret(settings.ops_slack_webhook_url) if ops else ""
    url = url or _secret(settings.slack_webhook_url)
    name = "slack_ops" if ops else "slack"
    if not url:
        raise channel_error(name, "PAYOPS_SLACK_WEBHOOK_URL is not set" + (
            " (nor PAYOPS_OPS_SLACK_WEBHOOK_URL)" if ops else ""))
    channel = settings.ops_slack_channel if ops else settings.slack_channel
    try:
        res = send_slack(url, {"channel": channel, "text": text}, timeout=TIMEOUT)
    except NotificationError as exc:
        raise channel_error(name, str(exc), [url]) from None
    return f"{res.status} {res.detail}"


def send_mail(settings: Settings, alert: Alert, action: str) -> str:
    from payops.notify.email import send_email

    msg = messages.email(alert, action, sender=settings.email_from, to=settings.monitor_email_to)
    try:
        res = send_email(msg, settings)
    except NotificationError as exc:
        raise channel_error("email", str(exc)) from None
    return str(res.status or res.detail)


def send(settings: Settings, alert: Alert, channel: str, action: str) -> str:
    """Deliver one (channel, action) for ``alert``; returns what the service answered (kept on the delivery)."""
    if channel == "pagerduty":
        return send_pagerduty(settings, alert, action)
    if channel == "jira":
        return send_jira(settings, alert)
    if channel in ("slack", "slack_ops"):
        return send_slack_text(settings, messages.slack_text(alert, action), ops=channel == "slack_ops")
    if channel == "email":
        return send_mail(settings, alert, action)
    raise channel_error(channel, "unknown channel")
