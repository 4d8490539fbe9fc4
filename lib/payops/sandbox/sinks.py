"""Local Slack-webhook and SMTP sinks: the "real endpoints" for tests and the offline demo.

* Slack: a Starlette app (uvicorn, background thread) that answers like Slack's incoming webhooks —
  ``POST /services/{T}/{B}/{secret}`` with a JSON body → ``200 ok`` (text/plain);
  a non-JSON body or one with neither ``text`` nor ``blocks`` → ``400 invalid_payload``;
  any other path → ``404 no_service``. ``GET /_inbox`` shows what arrived, ``DELETE /_inbox`` clears.
* SMTP: aiosmtpd's threaded Controller; every message is parsed and kept.
* PagerDuty Events API v2 (``/pagerduty/v2/enqueue``) and Jira REST (``/jira/rest/api/2/…``) on the Slack
  sink's HTTP server: see :mod:`payops.sandbox.alert_sinks`.

Both write to one thread-safe :class:`InboxStore`, optionally persisted to a JSON file so another
process (``payops sandbox inbox``) sees the same messages.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import smtplib
import socket
import sys
import tempfile
import threading
import time
import urllib.parse
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import typer
import uvicorn
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from rich.console import Console
from rich.table import Table
from rich.text import Text
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from payops.errors import ConfigError, NotificationError
from payops.sandbox.alert_sinks import alert_tables, jira_routes, pagerduty_routes

SANDBOX_WEBHOOK_PATH = "/services/TPAYOPS/BSANDBOX/sandbox-webhook-secret"
DEFAULT_INBOX_URL = "http://127.0.0.1:12112/_inbox"
_START_TIMEOUT = 10.0
KINDS = ("slack", "email", "pagerduty", "jira")


def _now() -> str:
    return datetime.now(UTC).isoformat()


# -- the store -------------------------------------------------------------------------------------
class InboxStore:
    """What the sinks received: ``{"slack": [...], "email": [...], "pagerduty": [...], "jira": [...]}``.
    Thread- and process-safe.

    Without ``path`` the messages live in memory. With ``path`` the JSON file is the source of truth:
    every change is a read-modify-write under an exclusive ``flock`` and an atomic rename.
    """

    def __init__(self, path: Path | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self._lock = threading.Lock()
        self._memory: dict[str, list[dict[str, Any]]] = {k: [] for k in KINDS}
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with self._lock:
            if self.path is None:
                yield
                return
            lock_path = self.path.with_name(self.path.name + ".lock")
            with lock_path.open("a") as fh:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
                try:
                    yield
                finally:
                    fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    def _read(self) -> dict[str, list[dict[str, Any]]]:
        if self.path is None:
            return self._memory
        if not self.path.exists():
            return {k: [] for k in KINDS}
        data = json.loads(self.path.read_text(encoding="utf-8") or "{}")
        return {k: list(data.get(k, [])) for k in KINDS}

    def _write(self, data: dict[str, list[dict[str, Any]]]) -> None:
        if self.path is None:
            self._memory = data
            return
        fd, tmp = tempfile.mkstemp(prefix=self.path.name, dir=self.path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, ensure_ascii=False, indent=1)
        os.replace(tmp, self.path)

    def add(self, kind: str, record: dict[str, Any]) -> None:
        with self._locked():
            data = self._read()
            data[kind] = [*data[kind], record]
            self._write(data)

    def append_with(self, kind: str, make: Any) -> dict[str, Any]:
        """Add ``make(records so far)`` under the lock (e.g. the next Jira issue key) and return it."""
        with self._locked():
            data = self._read()
            record: dict[str, Any] = make(list(data[kind]))
            data[kind] = [*data[kind], record]
            self._write(data)
            return record

    def snapshot(self) -> dict[str, list[dict[str, Any]]]:
        with self._locked():
            data = self._read()
            return {k: list(data[k]) for k in KINDS}

    def clear(self) -> None:
        with self._locked():
            self._write({k: [] for k in KINDS})


# -- Slack webhook receiver ------------------------------------------------------------------------
def _parse_slack_body(request_body: bytes, content_type: str) -> dict[str, Any] | None:
    """The message as Slack would read it: a JSON body, or a form field ``payload=`` holding JSON."""
    try:
        if content_type.startswith("application/x-www-form-urlencoded"):
            form = urllib.parse.parse_qs(request_body.decode("utf-8"))
            raw = form.get("payload", [""])[0]
        else:
            raw = request_body.decode("utf-8")
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(data, dict):
        return None
    has_text = isinstance(data.get("text"), str) and data["text"].strip() != ""
    has_blocks = isinstance(data.get("blocks"), list) and len(data["blocks"]) > 0
    return data if (has_text or has_blocks) else None


def build_slack_app(store: InboxStore) -> Starlette:
    """The Starlette app of the Slack sink (also serves ``/_inbox``)."""

    async def webhook(request: Request) -> Response:
        body = await request.body()
        data = _parse_slack_body(body, request.headers.get("content-type", ""))
        if data is None:
            return PlainTextResponse("invalid_payload", status_code=400)
        store.add("slack", {"path": request.url.path, "json": data, "received_at": _now()})
        return PlainTextResponse("ok", status_code=200)

    async def inbox(request: Request) -> Response:
        if request.method == "DELETE":
            store.clear()
            return JSONResponse({"cleared": True})
        return JSONResponse(store.snapshot())

    async def no_service(request: Request, exc: Exception) -> Response:
        return PlainTextResponse("no_service", status_code=404)

    return Starlette(
        routes=[
            Route("/services/{team}/{bot}/{secret}", webhook, methods=["POST"]),
            Route("/_inbox", inbox, methods=["GET", "DELETE"]),
            *pagerduty_routes(store),
            *jira_routes(store),
        ],
        exception_handlers={404: no_service},
    )


# -- SMTP receiver -------------------------------------------------------------------------------
def parse_email(raw: bytes, mail_from: str, rcpt_tos: list[str]) -> dict[str, Any]:
    """The record kept for one received email."""
    msg = message_from_bytes(raw, policy=policy.default)
    assert isinstance(msg, EmailMessage)
    text_part = msg.get_body(("plain",))
    html_part = msg.get_body(("html",))
    return {
        "mail_from": mail_from,
        "rcpt_tos": list(rcpt_tos),
        "subject": str(msg.get("Subject", "")),
        "from": str(msg.get("From", "")),
        "to": str(msg.get("To", "")),
        "message_id": str(msg.get("Message-ID", "")),
        "headers": [[k, str(v)] for k, v in msg.items()],
        "text": text_part.get_content() if text_part is not None else "",  # type: ignore[attr-defined]
        "html": html_part.get_content() if html_part is not None else None,  # type: ignore[attr-defined]
        "raw": raw.decode("utf-8", errors="replace"),
        "received_at": _now(),
    }


class _SmtpHandler:
    def __init__(self, store: InboxStore) -> None:
        self.store = store

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # aiosmtpd hook name
        raw = envelope.original_content or envelope.content
        if isinstance(raw, str):
            raw = raw.encode("utf-8")
        self.store.add("email", parse_email(raw, envelope.mail_from, envelope.rcpt_tos))
        return "250 Message accepted for delivery"


class _Authenticator:
    def __init__(self, user: str, password: str) -> None:
        self.user, self.password = user.encode(), password.encode()

    def __call__(self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
        ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
            self.user, self.password
        )
        return AuthResult(success=ok, handled=False)


class _Controller(Controller):
    """aiosmtpd Controller that supports port 0 (learns the bound port before its self-test)."""

    def factory(self) -> Any:
        # AUTH without TLS is deliberate on a loopback test sink; keep aiosmtpd's warning out of the way.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Requiring AUTH while not requiring TLS")
            return super().factory()

    def _trigger_server(self) -> None:
        if self.port == 0 and self.server is not None:
            self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


# -- running both --------------------------------------------------------------------------------
@dataclass
class RunningSinks:
    """Handles on the running sinks. ``stop()`` shuts both down."""

    slack_webhook_url: str
    inbox_url: str
    smtp_host: str
    smtp_port: int
    store: InboxStore = field(repr=False)
    _http_server: uvicorn.Server | None = field(default=None, repr=False)
    _http_thread: threading.Thread | None = field(default=None, repr=False)
    _smtp: Controller | None = field(default=None, repr=False)

    def slack_messages(self) -> list[dict[str, Any]]:
        """Each received post: ``path``, ``json`` (the payload), ``received_at``."""
        return self.store.snapshot()["slack"]

    def emails(self) -> list[dict[str, Any]]:
        """Each received email: mail_from, rcpt_tos, subject, text, html, raw, headers, received_at."""
        return self.store.snapshot()["email"]

    @property
    def pagerduty_url(self) -> str:
        """Base URL for ``PAYOPS_PAGERDUTY_EVENTS_URL`` (the client posts to ``…/v2/enqueue``)."""
        return self.inbox_url.removesuffix("/_inbox") + "/pagerduty"

    @property
    def jira_url(self) -> str:
        """Server URL for ``PAYOPS_JIRA_URL`` (REST under ``…/rest/api/2``)."""
        return self.inbox_url.removesuffix("/_inbox") + "/jira"

    def pagerduty_events(self) -> list[dict[str, Any]]:
        """Each accepted Events API v2 event: ``event`` (the body as sent), ``received_at``."""
        return self.store.snapshot()["pagerduty"]

    def jira_issues(self) -> list[dict[str, Any]]:
        """Each created issue: ``id``, ``key``, ``fields`` (as sent, plus status and created)."""
        return self.store.snapshot()["jira"]

    def clear(self) -> None:
        self.store.clear()

    def stop(self) -> None:
        """Stop both servers (idempotent)."""
        if self._smtp is not None:
            self._smtp.stop()
            self._smtp = None
        if self._http_server is not None:
            self._http_server.should_exit = True
            if self._http_thread is not None:
                self._http_thread.join(timeout=_START_TIMEOUT)
            self._http_server = None
            self._http_thread = None


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # so asyncio sets TCP_NODELAY (testing.py)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot start the Slack sink on {host}:{port}: {exc}") from exc
    return sock


def _start_http(app: Starlette, host: str, port: int) -> tuple[uvicorn.Server, threading.Thread, int]:
    sock = _bind(host, port)
    bound_port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off", log_config=None)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="payops-slack-sink",
                              daemon=True)
    thread.start()
    deadline = time.monotonic() + _START_TIMEOUT
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            sock.close()
            raise ConfigError(f"the Slack sink on {host}:{bound_port} did not start")
        time.sleep(0.01)
    return server, thread, bound_port


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def start_sinks(
    host: str = "127.0.0.1", http_port: int = 12112, smtp_port: int = 1025, store_path: Path | None = None,
    *, smtp_credentials: tuple[str, str] | None = None,
) -> RunningSinks:
    """Start the Slack and SMTP sinks; port 0 picks a free port. Returns once both answer.

    ``smtp_credentials=(user, password)`` makes the SMTP sink require AUTH (allowed without TLS).
    """
    store = InboxStore(store_path)
    server, thread, bound_http = _start_http(build_slack_app(store), host, http_port)
    base = f"http://{_url_host(host)}:{bound_http}"
    running = RunningSinks(
        slack_webhook_url=base + SANDBOX_WEBHOOK_PATH, inbox_url=base + "/_inbox",
        smtp_host=host, smtp_port=smtp_port, store=store, _http_server=server, _http_thread=thread,
    )
    try:
        smtp_kwargs: dict[str, Any] = {}
        if smtp_credentials is not None:
            smtp_kwargs = {
                "authenticator": _Authenticator(*smtp_credentials), "auth_required": True,
                "auth_require_tls": False,
            }
        controller = _Controller(
            _SmtpHandler(store), hostname=host, port=smtp_port, server_hostname="payops-sandbox",
            ready_timeout=_START_TIMEOUT, **smtp_kwargs,
        )
        try:
            controller.start()
        except (OSError, TimeoutError, RuntimeError) as exc:
            raise ConfigError(f"cannot start the SMTP sink on {host}:{smtp_port}: {exc}") from exc
        running._smtp = controller
        running.smtp_port = controller.port
        # Both answer: an HTTP round trip and an SMTP NOOP.
        httpx.get(running.inbox_url, timeout=5.0, trust_env=False).raise_for_status()
        with smtplib.SMTP(host, running.smtp_port, timeout=5.0) as probe:
            probe.noop()
    except BaseException:
        running.stop()
        raise
    return running


@contextlib.contextmanager
def sinks(
    host: str = "127.0.0.1", http_port: int = 12112, smtp_port: int = 1025, store_path: Path | None = None,
    *, smtp_credentials: tuple[str, str] | None = None,
) -> Iterator[RunningSinks]:
    """``with sinks(http_port=0, smtp_port=0) as s: …`` — started on entry, stopped on exit."""
    running = start_sinks(host, http_port, smtp_port, store_path, smtp_credentials=smtp_credentials)
    try:
        yield running
    finally:
        running.stop()


# -- reading the inbox from another process --------------------------------------------------------
def fetch_inbox(url: str = DEFAULT_INBOX_URL) -> dict[str, Any]:
    """``GET /_inbox`` of a running sink → ``{"slack": [...], "email": [...]}``."""
    try:
        resp = httpx.get(url, timeout=5.0, trust_env=False)
        resp.raise_for_status()
        data = resp.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise NotificationError(f"cannot read the sandbox inbox at {url}: {exc}") from exc
    return {k: list(data.get(k, [])) for k in KINDS}


def clear_inbox(url: str = DEFAULT_INBOX_URL) -> None:
    """``DELETE /_inbox``."""
    try:
        httpx.delete(url, timeout=5.0, trust_env=False).raise_for_status()
    except httpx.HTTPError as exc:
        raise NotificationError(f"cannot clear the sandbox inbox at {url}: {exc}") from exc


def _first_line(text: str | None) -> str:
    for line in (text or "").splitlines():
        if line.strip():
            return line.strip()
    return ""


def _slack_first_line(payload: dict[str, Any]) -> str:
    if isinstance(payload.get("text"), str) and payload["text"].strip():
        return _first_line(payload["text"])
    for block in payload.get("blocks") or []:
        text = (block or {}).get("text") if isinstance(block, dict) else None
        if isinstance(text, dict) and isinstance(text.get("text"), str):
            return _first_line(text["text"])
    return ""


def inbox_command(
    url: str = typer.Option(DEFAULT_INBOX_URL, "--url", help="The sink's /_inbox address."),
    as_json: bool = typer.Option(False, "--json", help="Print the raw inbox as JSON."),
    clear: bool = typer.Option(False, "--clear", help="Empty the inbox after printing it."),
) -> None:
    """Show the Slack posts, emails, PagerDuty events and Jira issues the local sinks received."""
    try:
        inbox = fetch_inbox(url)
    except NotificationError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    if as_json:
        typer.echo(json.dumps(inbox, indent=2, ensure_ascii=False))
    else:
        console = Console() if sys.stdout.isatty() else Console(width=200)
        slack = Table(title=f"Slack posts ({len(inbox['slack'])})")
        for col in ("received", "first line"):
            slack.add_column(col)
        for m in inbox["slack"]:
            slack.add_row(Text(str(m.get("received_at", ""))), Text(_slack_first_line(m.get("json") or {})))
        mail = Table(title=f"Emails ({len(inbox['email'])})")
        for col in ("received", "to", "subject", "first line"):
            mail.add_column(col)
        for m in inbox["email"]:
            mail.add_row(Text(str(m.get("received_at", ""))), Text(", ".join(m.get("rcpt_tos") or [])),
                         Text(str(m.get("subject", ""))), Text(_first_line(m.get("text"))))
        console.print(slack)
        console.print(mail)
        for table in alert_tables(inbox):
            console.print(table)
    if clear:
        try:
            clear_inbox(url)
        except NotificationError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from exc
        typer.echo("inbox cleared", err=as_json)
