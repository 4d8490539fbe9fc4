"""The credential inventory (``payops credentials add|rotate|list``): metadata and dates, never a secret.

Contract:

1. Every input is validated before anything is written, and each problem names its field: an unknown
   ``--kind``, a date that is not a date, a kind without the date its expiry is measured by, a duplicate or
   unknown name — and any free text that looks like a secret (a Stripe key, a webhook secret, a PEM block, a
   Slack webhook URL, a long token, or the value of a configured secret) is refused, so the inventory can
   never become the place a key leaks from.
2. What each kind is measured by: Apple Pay certificates by ``--expires`` (notAfter); a Stripe restricted key
   by ``--rotation-due`` (or ``--expires``); a webhook signing secret by its age since ``--issued``
   (``PAYOPS_WEBHOOK_SECRET_MAX_AGE_DAYS``).
3. ``rotate`` records the new value's dates (issued now; a certificate needs its new ``--expires``) and clears a
   pending rotation — which resolves the expiry alert at the next check.
4. :func:`mark_fallback_rotation_due` is called by the SOP's audit step, in the transaction that writes a live
   (not rehearsal) manual payout's audit row: ``STRIPE_FALLBACK_SECRET_KEY`` is due for rotation at once, and
   stays due (reminders, then a page) until ``payops credentials rotate`` records it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from payops.db.models import Credential, utcnow
from payops.errors import FieldProblem, ParamsInvalid
from payops.monitor.rules import CREDENTIAL_KINDS

FALLBACK_KEY_NAME = "STRIPE_FALLBACK_SECRET_KEY"
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:/-]{0,127}")
UUID_RE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
EXTRA_SECRET_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("PEM block", re.compile(r"-----BEGIN [A-Z0-9 ]*-----|-----END [A-Z0-9 ]*-----")),
    ("Slack token", re.compile(r"(?<![0-9A-Za-z])xox[abposr]-[0-9A-Za-z-]{8,}")),
    ("Stripe publishable/other key", re.compile(r"(?<![0-9A-Za-z])(?:pk|sk|rk)_(?:test|live)_[0-9A-Za-z]{6,}")),
    ("long token", re.compile(r"(?<![A-Za-z0-9+/=_-])(?=[A-Za-z0-9+/=_-]*[0-9])(?=[A-Za-z0-9+/=_-]*[A-Za-z])"
                              r"[A-Za-z0-9+/=_-]{32,}")),
)


def secret_problem(value: str, configured: Iterable[str] = ()) -> str | None:
    """Why ``value`` looks like a secret (None when it does not). Reuses the archive's scanner patterns."""
    from payops.archive import SECRET_PATTERNS

    for kind, pattern in SECRET_PATTERNS:
        if pattern.search(value):
            return f"looks like a secret ({kind.replace('_', ' ')}): the inventory holds metadata and dates only"
    for kind, pattern in EXTRA_SECRET_PATTERNS:
        m = pattern.search(value)
        if m and not (kind == "long token" and UUID_RE.fullmatch(m.group(0))):
            return f"looks like a secret ({kind}): the inventory holds metadata and dates only"
    for secret in configured:
        if secret and len(secret) >= 6 and secret in value:
            return "contains the value of a configured secret: the inventory holds metadata and dates only"
    return None


def parse_when(text: str | None, field_name: str) -> datetime | None:
    """``YYYY-MM-DD`` (00:00 UTC that day) or an ISO 8601 timestamp; anything else names the field."""
    if text is None or text == "":
        return None
    raw = text.strip()
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", raw):
            return datetime.combine(date.fromisoformat(raw), time(0), tzinfo=UTC)
        ts = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise ParamsInvalid(FieldProblem(field_name, f"{text!r} is not a date (YYYY-MM-DD) or an ISO 8601 "
                                                     "timestamp")) from None
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


@dataclass(frozen=True)
class CredentialInput:
    name: str
    kind: str | None = None
    expires: str | None = None
    rotation_due: str | None = None
    issued: str | None = None
    owner: str | None = None
    notes: str | None = None


def _check_text(problems: list[FieldProblem], configured: list[str], **fields: str | None) -> None:
    for name, value in fields.items():
        if value:
            why = secret_problem(value, configured)
            if why:
                problems.append(FieldProblem(name, why))


def _validate(inp: CredentialInput, configured: list[str], *, adding: bool) -> dict[str, Any]:
    problems: list[FieldProblem] = []
    _check_text(problems, configured, name=inp.name, **{"--owner": inp.owner, "--notes": inp.notes})
    if not problems and not NAME_RE.fullmatch(inp.name or ""):
        problems.append(FieldProblem("name", f"{inp.name!r} must be 1-128 letters, digits and . _ : / - "
                                             "(e.g. apple-pay-processing-2026, STRIPE_FALLBACK_SECRET_KEY)"))
    if adding and inp.kind not in CREDENTIAL_KINDS:
        problems.append(FieldProblem("--kind", f"unknown credential kind {inp.kind!r}; known: "
                                               f"{', '.join(CREDENTIAL_KINDS)}"))
    dates: dict[str, datetime | None] = {}
    for flag, value, key in (("--expires", inp.expires, "expires_at"), ("--rotation-due", inp.rotation_due,
                                                                       "rotation_due_at"),
                             ("--issued", inp.issued, "issued_at")):
        try:
            dates[key] = parse_when(value, flag)
        except ParamsInvalid as exc:
            problems += exc.problems
    if problems:
        raise ParamsInvalid(problems, "credential")
    return dates


def _needs(kind: str, dates: dict[str, datetime | None], *, rotating: bool) -> list[FieldProblem]:
    if kind.startswith("apple_pay") and dates.get("expires_at") is None:
        return [FieldProblem("--expires", f"a {CREDENTIAL_KINDS[kind]} is watched by its expiry date: give "
                                          "--expires YYYY-MM-DD" + (" (the new certificate's)" if rotating else ""))]
    if kind == "stripe_restricted_key" and not rotating and not (dates.get("rotation_due_at") or dates.get(
            "expires_at")):
        return [FieldProblem("--rotation-due", "a Stripe restricted key is watched by its rotation date: give "
                                               "--rotation-due YYYY-MM-DD")]
    return []


def add(s: Session, inp: CredentialInput, *, configured: list[str], at: datetime | None = None) -> Credential:
    """Record a credential's metadata. Raises ParamsInvalid (naming the field) and writes nothing on bad input."""
    at = at or utcnow()
    dates = _validate(inp, configured, adding=True)
    assert inp.kind is not None
    problems = _needs(inp.kind, dates, rotating=False)
    if s.scalar(select(Credential.id).where(Credential.name == inp.name)) is not None:
        problems.append(FieldProblem("name", f"{inp.name!r} is already in the inventory (use `payops credentials "
                                             "rotate` to record a new value)"))
    if problems:
        raise ParamsInvalid(problems, "credential")
    row = Credential(kind=inp.kind, name=inp.name, expires_at=dates["expires_at"],
                     rotation_due_at=dates["rotation_due_at"], issued_at=dates["issued_at"] or at, owner=inp.owner,
                     notes=inp.notes, created_at=at, updated_at=at)
    s.add(row)
    s.flush()
    return row


def rotate(s: Session, inp: CredentialInput, *, configured: list[str], at: datetime | None = None) -> Credential:
    """Record that ``inp.name`` was replaced: issued now, the new dates, no rotation pending."""
    at = at or utcnow()
    dates = _validate(inp, configured, adding=False)
    row = s.scalar(select(Credential).where(Credential.name == inp.name))
    if row is None:
        raise ParamsInvalid(FieldProblem("name", f"{inp.name!r} is not in the inventory (add it with `payops "
                                                 "credentials add`)"), "credential")
    problems = _needs(row.kind, dates, rotating=True)
    if problems:
        raise ParamsInvalid(problems, "credential")
    row.rotated_at = at
    row.issued_at = dates["issued_at"] or at
    row.expires_at = dates["expires_at"] if dates["expires_at"] is not None else (
        None if row.kind.startswith("apple_pay") else row.expires_at)
    row.rotation_due_at = dates["rotation_due_at"]
    row.rotation_due_reason = None
    if inp.owner:
        row.owner = inp.owner
    if inp.notes:
        row.notes = inp.notes
    row.updated_at = at
    s.flush()
    return row


def mark_fallback_rotation_due(s: Session, *, at: datetime, reason: str) -> None:
    """``STRIPE_FALLBACK_SECRET_KEY`` is due for rotation at ``at`` (a real incident used it). In the caller's
    transaction; an earlier pending due date is kept (the key has been due since then)."""
    row = s.scalar(select(Credential).where(Credential.name == FALLBACK_KEY_NAME))
    if row is None:
        s.add(Credential(kind="stripe_restricted_key", name=FALLBACK_KEY_NAME, rotation_due_at=at,
                         rotation_due_reason=reason, created_at=at, updated_at=at,
                         notes="the manual payout SOP's restricted key; rotated after every real incident"))
        s.flush()
        return
    if row.rotation_due_at is None or row.rotation_due_at > at:
        row.rotation_due_at = at
        row.rotation_due_reason = reason
    elif row.rotation_due_reason and reason not in row.rotation_due_reason:
        row.rotation_due_reason = (row.rotation_due_reason + "; " + reason)[:2000]
    row.updated_at = at
    s.flush()


def inventory(s: Session) -> list[dict[str, Any]]:
    return [{"name": c.name, "kind": c.kind, "expires_at": c.expires_at, "rotation_due_at": c.rotation_due_at,
             "rotation_due_reason": c.rotation_due_reason, "issued_at": c.issued_at, "rotated_at": c.rotated_at,
             "owner": c.owner, "notes": c.notes}
            for c in s.scalars(select(Credential).order_by(Credential.name))]
