"""Send a rendered email through the configured SMTP server (smtplib).

``settings.smtp_host:smtp_port``, STARTTLS when ``smtp_starttls``, AUTH when ``smtp_user`` is set.
Any SMTP or network failure becomes a NotificationError naming host:port and the SMTP error —
never the password.
"""

from __future__ import annotations

import smtplib
import ssl
from datetime import UTC, datetime
from email.message import EmailMessage

from payops.config import Settings
from payops.errors import NotificationError
from payops.notify.render import DeliveryResult


class _RecordingSMTP(smtplib.SMTP):
    """smtplib.SMTP that keeps the server's reply to DATA (send_message does not return it)."""

    last_data_reply: tuple[int, bytes] | None = None

    def data(self, msg: bytes | str) -> tuple[int, bytes]:  # type: ignore[override]
        code, resp = super().data(msg)
        self.last_data_reply = (code, resp)
        return code, resp


def _scrub(text: str, secrets: list[str]) -> str:
    for s in secrets:
        if s:
            text = text.replace(s, "***")
    return text


def email_error(message: str, *, endpoint: str, smtp_code: int | None = None) -> NotificationError:
    err = NotificationError(message)
    err.channel = "email"  # type: ignore[attr-defined]
    err.endpoint = endpoint  # type: ignore[attr-defined]
    err.status = smtp_code  # type: ignore[attr-defined]
    return err


def send_email(message: EmailMessage, settings: Settings) -> DeliveryResult:
    """Deliver ``message`` via SMTP. Returns the DATA reply as ``status`` and the Message-ID as ``detail``."""
    host, port = settings.smtp_host, settings.smtp_port
    endpoint = f"{host}:{port}"
    password = settings.smtp_password.get_secret_value() if settings.smtp_password else ""
    secrets = [password] if password else []
    recipients = ", ".join(str(a) for a in (message.get_all("To") or []))
    try:
        with _RecordingSMTP(host, port, timeout=settings.smtp_timeout_seconds) as smtp:
            smtp.ehlo()
            if settings.smtp_starttls:
                smtp.starttls(context=ssl.create_default_context())
                smtp.ehlo()
            if settings.smtp_user:
                smtp.login(settings.smtp_user, password)
            refused = smtp.send_message(message)
            reply = smtp.last_data_reply
    except (smtplib.SMTPException, OSError) as exc:
        code = getattr(exc, "smtp_code", None)
        detail = _scrub(f"{type(exc).__name__}: {exc}", secrets)
        err = email_error(f"email to {recipients or '(no recipient)'} via SMTP {endpoint} failed: {detail}",
                          endpoint=endpoint, smtp_code=code)
        if password and password in str(exc):
            raise err from None  # the original message would carry the password
        raise err from exc
    if refused:
        raise email_error(
            f"SMTP {endpoint} refused recipient(s): "
            + "; ".join(f"{rcpt} ({code} {resp.decode(errors='replace')})" for rcpt, (code, resp) in refused.items()),
            endpoint=endpoint,
        )
    status = f"{reply[0]} {reply[1].decode(errors='replace')}" if reply else None
    return DeliveryResult(
        channel="email", ok=True, status=status, detail=str(message.get("Message-ID", "")),
        delivered_at=datetime.now(UTC),
    )
