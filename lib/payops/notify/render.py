"""Message drafts for the manual payout SOP's step 40: one Slack post and one email to the studio.

Rendering is pure: a :class:`PayoutNotice` in, :class:`Drafts` out. Nothing is sent here (see
``payops.notify.slack`` and ``payops.notify.email``). Every value that comes from data is escaped
for where it lands: Slack mrkdwn (``&``, ``<``, ``>``), HTML (Jinja2 autoescape) and email headers
(no CR/LF ever; non-ASCII encoded by the ``email`` package's header registry).
"""

from __future__ import annotations

import json
import re
import urllib.parse
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from payops.errors import FieldProblem, ParamsInvalid
from payops.money import Money

TEMPLATES_DIR = Path(__file__).with_name("templates")
DRAFT_FILES = ("slack.json", "email.eml", "email.html", "email.txt")
REHEARSAL_BANNER = "This is a rehearsal in Stripe test mode — no real money moved"
DRY_RUN_BANNER = "DRY RUN — no transfer made"
_MAX_REASON = 1000
_MAX_SECTION = 3000  # Slack's limit for a section block's text
# RFC 5322 allows header lines up to 998 characters. Folding at 78 makes CPython emit "word \n =?utf-8?…"
# before an encoded word, which decodes with a doubled space; subjects short enough never fold here.
# Bodies are quoted-printable regardless (explicit cte), so they stay 7-bit clean.
EMAIL_POLICY = policy.default.clone(max_line_length=998)

# Anything that could end a header line or confuse a reader: C0/C1 controls, DEL and the
# Unicode line/paragraph separators.
_HEADER_BREAKERS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")


@dataclass(frozen=True)
class PayoutNotice:
    """What step 40 tells Slack and the studio about one manual payout."""

    run_id: str
    incident_id: str
    incident_url: str
    studio_id: str
    studio_name: str
    studio_email: str
    ledger_payout_id: str
    amount: Money
    reason: str
    reserve_after: Money
    transfer_id: str | None  # None in a dry run
    approver_ops_id: str | None
    approver_finance_id: str | None
    operator_id: str | None
    is_rehearsal: bool
    dry_run: bool
    sla_minutes: int = 45


@dataclass(frozen=True)
class Drafts:
    """The rendered messages, ready to send and to archive."""

    slack_payload: dict[str, Any]
    email: EmailMessage

    def _part(self, subtype: str) -> str:
        part = self.email.get_body((subtype,))
        if part is None:  # pragma: no cover - render_drafts always adds it
            raise ValueError(f"email draft has no text/{subtype} part")
        return str(part.get_content())  # type: ignore[attr-defined]

    @property
    def email_text(self) -> str:
        """The text/plain part of the email."""
        return self._part("plain")

    @property
    def email_html(self) -> str:
        """The text/html part of the email."""
        return self._part("html")

    def write(self, folder: Path) -> list[Path]:
        """Save ``slack.json``, ``email.eml``, ``email.html`` and ``email.txt`` into ``folder``.

        Drafts are audit artifacts: an existing file is never overwritten (``FileExistsError``,
        and nothing is written when any of the four already exists).
        """
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        targets = [folder / name for name in DRAFT_FILES]
        existing = [str(p) for p in targets if p.exists()]
        if existing:
            raise FileExistsError(f"refusing to overwrite message drafts: {', '.join(existing)}")
        contents = [
            (json.dumps(self.slack_payload, indent=2, ensure_ascii=False) + "\n").encode("utf-8"),
            bytes(self.email),
            self.email_html.encode("utf-8"),
            self.email_text.encode("utf-8"),
        ]
        for path, data in zip(targets, contents, strict=True):
            with path.open("xb") as fh:  # "x": fails if it appeared since the check above
                fh.write(data)
        return targets


@dataclass(frozen=True)
class DeliveryResult:
    """What happened when a message was handed to Slack or to the SMTP server."""

    channel: str  # "slack" | "email"
    ok: bool
    status: int | str | None  # HTTP status for Slack, SMTP reply for email
    detail: str  # "ok", Slack's body, or the email's Message-ID
    delivered_at: datetime

    def as_dict(self) -> dict[str, Any]:
        return {
            "channel": self.channel,
            "ok": self.ok,
            "status": self.status,
            "detail": self.detail,
            "delivered_at": self.delivered_at.isoformat(),
        }


# -- escaping ------------------------------------------------------------------------------------
def mrkdwn_escape(value: Any) -> str:
    """Slack's three control characters, escaped as Slack documents: ``&`` ``<`` ``>``.

    With them escaped, data cannot form ``<!channel>``, ``<@U…>`` or ``<url|text>`` tokens.
    """
    return str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def header_text(value: str) -> str:
    """One-line header-safe text: control characters and line breaks become single spaces."""
    return " ".join(_HEADER_BREAKERS.sub(" ", value).split())


def _safe_link(url: str) -> str | None:
    """An http(s) URL usable inside a Slack ``<url|text>`` link, or None if it is not one."""
    url = url.strip()
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        return None
    if _HEADER_BREAKERS.search(url) or any(ch.isspace() for ch in url):
        return None
    return url.replace("|", "%7C")


def _address(value: str, field: str, display_name: str = "") -> Address:
    if not isinstance(value, str) or _HEADER_BREAKERS.search(value) or any(c.isspace() for c in value):
        raise ParamsInvalid(FieldProblem(field, "must be one email address without spaces or line breaks"))
    try:
        addr = Address(display_name=header_text(display_name), addr_spec=value)
    except (ValueError, IndexError) as exc:  # header parser errors are ValueErrors
        raise ParamsInvalid(FieldProblem(field, f"not a valid email address ({exc})")) from exc
    if not addr.username or not addr.domain:
        raise ParamsInvalid(FieldProblem(field, "not a valid email address (needs user@domain)"))
    return addr


def _sender(value: str) -> EmailMessage:
    """Parse ``sender`` ("a@b" or "Name <a@b>") into a From header, refusing line breaks."""
    if not isinstance(value, str) or _HEADER_BREAKERS.search(value):
        raise ParamsInvalid(FieldProblem("sender", "must be one address without line breaks"))
    probe = EmailMessage()
    try:
        probe["From"] = value
        addresses = probe["From"].addresses
    except (ValueError, IndexError) as exc:
        raise ParamsInvalid(FieldProblem("sender", f"not a valid address ({exc})")) from exc
    if len(addresses) != 1 or not addresses[0].username or not addresses[0].domain:
        raise ParamsInvalid(FieldProblem("sender", f"must be exactly one address user@domain, got {value!r}"))
    return probe


# -- templates -----------------------------------------------------------------------------------
def _environments() -> tuple[Environment, Environment]:
    loader = FileSystemLoader(str(TEMPLATES_DIR))
    common: dict[str, Any] = {
        "loader": loader, "undefined": StrictUndefined, "keep_trailing_newline": False,
        "trim_blocks": True, "lstrip_blocks": True,
    }
    # Email templates: HTML autoescaped, text and subject verbatim (the subject is sanitized after).
    mail = Environment(autoescape=select_autoescape(enabled_extensions=("html.j2",), default=False), **common)
    # Slack: every {{ expression }} is mrkdwn-escaped on output; literal template text is not.
    slack = Environment(autoescape=False, finalize=mrkdwn_escape, **common)  # noqa: S701 - mrkdwn, not HTML
    return mail, slack


_MAIL_ENV, _SLACK_ENV = _environments()


def _context(notice: PayoutNotice) -> dict[str, Any]:
    reason = notice.reason if len(notice.reason) <= _MAX_REASON else notice.reason[: _MAX_REASON - 1] + "…"
    link = _safe_link(notice.incident_url)
    return {
        "n": notice,
        "studio": header_text(notice.studio_name),
        "amount": notice.amount.format(),
        "reserve_after": notice.reserve_after.format(),
        "transfer": notice.transfer_id if notice.transfer_id else DRY_RUN_BANNER,
        "incident_link": link,
        "incident_url": notice.incident_url,
        "reason": reason,
        "not_recorded": "(not recorded)",
        "rehearsal_banner": REHEARSAL_BANNER,
        "dry_run_banner": DRY_RUN_BANNER,
        "markers": " ".join(
            m for m, on in (("[REHEARSAL]", notice.is_rehearsal), ("[DRY RUN]", notice.dry_run)) if on
        ),
    }


def render_slack(notice: PayoutNotice, *, channel: str = "#payments-alerts") -> dict[str, Any]:
    """The incoming-webhook payload: mrkdwn ``text`` (also the notification fallback) and ``blocks``."""
    ctx = _context(notice)
    text = _SLACK_ENV.get_template("slack.j2").render(ctx).strip()
    title = "Manual payout — dry run, no money moved" if notice.dry_run else "Manual payout sent"
    if notice.is_rehearsal:
        title = "[REHEARSAL] " + title
    section = text if len(text) <= _MAX_SECTION else text[: _MAX_SECTION - 1] + "…"
    payload: dict[str, Any] = {
        "text": text,
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": title, "emoji": True}},
            {"type": "section", "text": {"type": "mrkdwn", "text": section}},
            {
                "type": "context",
                "elements": [{"type": "mrkdwn", "text": mrkdwn_escape(
                    f"payops run {notice.run_id} · SLA {notice.sla_minutes} min"
                )}],
            },
        ],
        "unfurl_links": False,
        "unfurl_media": False,
    }
    if channel:
        payload["channel"] = channel
    return payload


def render_email(notice: PayoutNotice, *, sender: str) -> EmailMessage:
    """The studio's email: From/To/Subject headers, text/plain with a text/html alternative."""
    ctx = _context(notice)
    subject = header_text(_MAIL_ENV.get_template("email_subject.j2").render(ctx))
    text = _MAIL_ENV.get_template("email.txt.j2").render(ctx).strip() + "\n"
    html = _MAIL_ENV.get_template("email.html.j2").render(ctx).strip() + "\n"

    from_probe = _sender(sender)
    to_addr = _address(notice.studio_email, "studio_email", notice.studio_name)
    msg = EmailMessage(policy=EMAIL_POLICY)
    msg["From"] = from_probe["From"]
    msg["To"] = to_addr
    msg["Subject"] = subject
    msg["Date"] = format_datetime(datetime.now(UTC))
    sender_domain = from_probe["From"].addresses[0].domain or "payops.local"
    msg["Message-ID"] = make_msgid(idstring="payops", domain=sender_domain)
    msg["X-Payops-Run-Id"] = header_text(notice.run_id)
    msg["X-Payops-Incident-Id"] = header_text(notice.incident_id)
    if notice.is_rehearsal:
        msg["X-Payops-Rehearsal"] = "yes"
    if notice.dry_run:
        msg["X-Payops-Dry-Run"] = "yes"
    msg.set_content(text, cte="quoted-printable")
    msg.add_alternative(html, subtype="html", cte="quoted-printable")
    return msg


def render_drafts(notice: PayoutNotice, *, sender: str, channel: str = "#payments-alerts") -> Drafts:
    """Render both messages for ``notice``. Raises ParamsInvalid for a bad sender or studio email."""
    return Drafts(slack_payload=render_slack(notice, channel=channel), email=render_email(notice, sender=sender))
