"""The approver roster: people, their roles and SSH keys over time, and the log of every change.

Invariants:

- nothing is deleted or rewritten: a person, role or key is *revoked* (its window closes), and
  database triggers refuse DELETE (and UPDATE or DELETE on ``roster_events``);
- every change writes one ``roster_events`` row (who — the ``--by`` UUID and the OS login —, when, what)
  in the same transaction as the change;
- a key's fingerprint belongs to one person, forever (a revoked key cannot be enrolled again);
- times are whole UTC seconds and windows half-open [from, revoked): something revoked at T no longer
  counts at T, which is what an approval given "after its revocation" means;
- input is validated before anything is written: each problem names its option.

``key_at`` answers "who did this key belong to, and what could they do, at time T" — the question
every signature check asks about the moment the approval was given. The readers a signature check
uses (``key_at``, ``roles_at``, ``person_state``) query :mod:`payops.db.tables` with Core and take a
Core connection or an ORM session (``payops approve`` starts without the ORM); the changes use the ORM.
"""

from __future__ import annotations

import getpass
import json
import re
import socket
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Row, select

from payops.approvals import ROLES
from payops.approvals.sshkeys import PublicKey
from payops.config import Settings
from payops.db import tables as t
from payops.db.tables import utcnow
from payops.errors import FieldProblem, ParamsInvalid
from payops.params import canonical_uuid

if TYPE_CHECKING:  # the ORM classes are imported by the functions that change the roster: reading needs Core only
    from sqlalchemy.orm import Session

    from payops.db.models import RosterEvent
    from payops.runrecords import Reader  # a Core connection or an ORM session

_NAME_BAD = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u2069\ufeff]")


def now_s() -> datetime:
    """Now, in whole UTC seconds (the roster's and allowed_signers' resolution)."""
    return utcnow().replace(microsecond=0)


def live_mode(settings: Settings) -> bool:
    """Live for the roster: PAYOPS_ENVIRONMENT=live or pointed at Stripe itself — test-only entries never count."""
    return settings.environment == "live" or settings.uses_stripe_api


def actor_login() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"[:200]


# --- reading ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class KeyAt:
    """A roster key and its person as they stood at ``at``."""

    at: datetime
    key: PublicKey
    person_id: str
    person_name: str
    test_only: bool
    added_at: datetime
    key_revoked_at: datetime | None
    person_revoked_at: datetime | None
    roles: frozenset[str]  # roles the person held at ``at``

    @property
    def fingerprint(self) -> str:
        return self.key.fingerprint

    @property
    def active_until(self) -> datetime | None:
        """When the key stopped counting (its own revocation or its person's), if it has."""
        ends = [t for t in (self.key_revoked_at, self.person_revoked_at) if t is not None]
        return min(ends) if ends else None

    def problems(self, role: str, *, live: bool) -> list[str]:
        """Why this key cannot sign as ``role`` at ``at`` (empty: it can)."""
        who = f"{self.person_name} ({self.person_id})"
        out: list[str] = []
        if self.at < self.added_at:
            out.append(f"key {self.fingerprint} of {who} was enrolled only at {self.added_at:%Y-%m-%d %H:%M:%S}Z")
        if self.key_revoked_at is not None and self.key_revoked_at <= self.at:
            out.append(f"key {self.fingerprint} of {who} was revoked at {self.key_revoked_at:%Y-%m-%d %H:%M:%S}Z")
        if self.person_revoked_at is not None and self.person_revoked_at <= self.at:
            out.append(f"{who} was removed from the roster at {self.person_revoked_at:%Y-%m-%d %H:%M:%S}Z")
        if role not in self.roles:
            held = ", ".join(sorted(self.roles)) or "none"
            out.append(f"{who} is not enrolled as {role} (roles then: {held})")
        if live and self.test_only:
            out.append(f"{who} is a test-only roster entry (generated keys): it never counts in live mode")
        return out

    def allowed_signers(self) -> str:
        from payops.approvals.sshkeys import allowed_signers_line

        tags = ",".join(sorted(self.roles)) or "no-role"
        comment = f"{self.person_name} [{tags}]" + (" test-only" if self.test_only else "")
        return allowed_signers_line(self.person_id, self.key, valid_after=self.added_at,
                                    valid_before=self.active_until, comment=comment)


def _active(start: datetime, end: datetime | None, at: datetime) -> bool:
    return start <= at and (end is None or at < end)


def roles_at(s: Reader, person_id: str, at: datetime) -> frozenset[str]:
    r = t.approver_roles
    rows = s.execute(select(r).where(r.c.person_id == person_id))
    return frozenset(x.role for x in rows if _active(x.granted_at, x.revoked_at, at))


def key_at(s: Reader, fingerprint: str, at: datetime) -> KeyAt | None:
    """The roster key with this fingerprint and its person at ``at``; None if it was never enrolled."""
    k = s.execute(select(t.approver_keys).where(t.approver_keys.c.fingerprint == fingerprint)).first()
    if k is None:
        return None
    p = s.execute(select(t.approver_people).where(t.approver_people.c.id == k.person_id)).first()
    assert p is not None  # foreign key
    return KeyAt(at=at, key=PublicKey(k.key_type, k.public_key, k.comment or ""), person_id=p.id,
                 person_name=p.name, test_only=p.test_only, added_at=k.added_at, key_revoked_at=k.revoked_at,
                 person_revoked_at=p.revoked_at, roles=roles_at(s, p.id, at))


def person_state(s: Reader, person_id: str, at: datetime) -> tuple[Row[Any] | None, frozenset[str]]:
    """The person's roster row (None: never enrolled) and the roles they held at ``at``."""
    p = s.execute(select(t.approver_people).where(t.approver_people.c.id == person_id)).first()
    if p is None or (p.revoked_at is not None and p.revoked_at <= at) or p.created_at > at:
        return p, frozenset()
    return p, roles_at(s, person_id, at)


@dataclass
class PersonView:
    id: str
    name: str
    test_only: bool
    status: str
    created_at: datetime
    revoked_at: datetime | None
    roles: list[dict[str, Any]] = field(default_factory=list)
    keys: list[dict[str, Any]] = field(default_factory=list)

    @property
    def active_roles(self) -> list[str]:
        return sorted(r["role"] for r in self.roles if r["revoked_at"] is None) if self.status == "active" else []

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "test_only": self.test_only, "status": self.status,
                "created_at": self.created_at, "revoked_at": self.revoked_at, "active_roles": self.active_roles,
                "roles": self.roles, "keys": self.keys}


def people(s: Session, *, include_revoked: bool = True) -> list[PersonView]:
    from payops.db.models import ApproverKey, ApproverPerson, ApproverRole

    out: list[PersonView] = []
    for p in s.scalars(select(ApproverPerson).order_by(ApproverPerson.name, ApproverPerson.id)):
        if p.revoked_at is not None and not include_revoked:
            continue
        v = PersonView(p.id, p.name, p.test_only, "revoked" if p.revoked_at else "active", p.created_at, p.revoked_at)
        for r in s.scalars(select(ApproverRole).where(ApproverRole.person_id == p.id).order_by(ApproverRole.id)):
            v.roles.append({"role": r.role, "granted_at": r.granted_at, "granted_by": r.granted_by,
                            "revoked_at": r.revoked_at})
        for k in s.scalars(select(ApproverKey).where(ApproverKey.person_id == p.id).order_by(ApproverKey.id)):
            v.keys.append({"fingerprint": k.fingerprint, "type": k.key_type, "comment": k.comment,
                           "added_at": k.added_at, "added_by": k.added_by, "revoked_at": k.revoked_at,
                           "revoke_reason": k.revoke_reason})
        out.append(v)
    return out


def events(s: Session, *, limit: int = 100, person_id: str | None = None) -> list[RosterEvent]:
    from payops.db.models import RosterEvent

    q = select(RosterEvent).order_by(RosterEvent.id.desc()).limit(limit)
    if person_id:
        q = q.where(RosterEvent.person_id == person_id)
    return list(s.scalars(q))


def allowed_signers_now(s: Session) -> str:
    """The active roster as an allowed_signers file (one line per active key of an active person)."""
    from payops.db.models import ApproverKey

    at = now_s()
    lines = []
    for k in s.scalars(select(ApproverKey).where(ApproverKey.revoked_at.is_(None)).order_by(ApproverKey.id)):
        state = key_at(s, k.fingerprint, at)
        if state is not None and state.person_revoked_at is None:
            lines.append(state.allowed_signers())
    return "\n".join(lines) + ("\n" if lines else "")


# --- changing ------------------------------------------------------------------------------------
def _uuid_problem(value: str, opt: str) -> tuple[str | None, FieldProblem | None]:
    try:
        return canonical_uuid(value, opt), None
    except ValueError as exc:
        return None, FieldProblem(opt, str(exc))


def _name_problem(name: str) -> FieldProblem | None:
    from payops.archive import scan_text

    if not name or name != name.strip():
        return FieldProblem("--name", "must be non-empty, without leading or trailing spaces")
    if _NAME_BAD.search(name) or len(name) > 200:
        return FieldProblem("--name", "must be one visible line of at most 200 characters")
    if scan_text(name, "name"):
        return FieldProblem("--name", "looks like a secret; names are archived")
    return None


def _event(s: Session, *, at: datetime, by: str, action: str, person_id: str, **detail: Any) -> None:
    from payops.db.models import RosterEvent

    s.add(RosterEvent(at=at, actor=by, actor_login=actor_login(), action=action, person_id=person_id,
                      detail_json=json.dumps(detail, sort_keys=True, default=str)))


@dataclass(frozen=True)
class EnrollResult:
    person_id: str
    created: bool
    roles_added: tuple[str, ...]
    key_added: str | None  # fingerprint


def enroll(s: Session, *, person_id: str, name: str | None, roles: list[str], key: PublicKey | None, by: str | None,
           settings: Settings, test_only: bool = False, problems: list[FieldProblem] | None = None) -> EnrollResult:
    """Add a person, or roles and a key to an enrolled person. Validates everything first; writes nothing
    when any problem is found (each names its option). ``problems`` are the caller's own (e.g. a key file
    that did not parse), reported together with these."""
    from payops.db.models import ApproverKey, ApproverPerson, ApproverRole

    problems = list(problems or [])
    key_given = key is not None or any(p.field == "--key" for p in problems)
    pid, p1 = _uuid_problem(person_id, "--id")
    actor, p2 = _uuid_problem(by or "", "--by") if by else (None, FieldProblem(
        "--by", "who is changing the roster: your UUID (or set PAYOPS_OPERATOR_ID)"))
    problems += [p for p in (p1, p2) if p]
    bad_roles = [r for r in roles if r not in ROLES]
    if bad_roles:
        problems.append(FieldProblem("--role", f"{', '.join(map(repr, bad_roles))}: roles are {', '.join(ROLES)}"))
    if test_only and live_mode(settings):
        problems.append(FieldProblem("--test-only", "test-only roster entries are refused in live mode "
                                                    "(PAYOPS_ENVIRONMENT=live or real Stripe)"))
    existing = s.get(ApproverPerson, pid) if pid else None
    if existing is None:
        if name is None:
            problems.append(FieldProblem("--name", "is required to enroll a new person"))
        elif (np := _name_problem(name)) is not None:
            problems.append(np)
        if not roles and not bad_roles:
            problems.append(FieldProblem("--role", "a new person needs at least one role (ops, finance, operator)"))
        if not key_given:
            problems.append(FieldProblem("--key", "a new person needs a public key"))
    else:
        if existing.revoked_at is not None:
            problems.append(FieldProblem("--id", f"{existing.name} ({pid}) was removed from the roster at "
                                                 f"{existing.revoked_at:%Y-%m-%d %H:%M:%S}Z; enroll under a new id"))
        if name is not None and name != existing.name:
            problems.append(FieldProblem("--name", f"{pid} is enrolled as {existing.name!r}"))
        if test_only != existing.test_only:
            kind = "test-only" if existing.test_only else "real"
            problems.append(FieldProblem("--test-only", f"{pid} is enrolled as a {kind} entry; a person is one "
                                                        "or the other"))
    if key is not None:
        holder = s.scalar(select(ApproverKey).where(ApproverKey.fingerprint == key.fingerprint))
        if holder is not None:
            whose = "this person" if holder.person_id == pid else f"person {holder.person_id}"
            state = "revoked" if holder.revoked_at else "active"
            problems.append(FieldProblem("--key", f"key {key.fingerprint} is already enrolled ({state}) for {whose}; "
                                                  "a key belongs to one person, once"))
    if problems:
        raise ParamsInvalid(problems, "roster change")
    assert pid is not None and actor is not None
    at = now_s()
    created = existing is None
    if created:
        s.add(ApproverPerson(id=pid, name=name, test_only=test_only, created_at=at, created_by=actor))
        s.flush()
        _event(s, at=at, by=actor, action="person.add", person_id=pid, name=name, test_only=test_only)
    held = roles_at(s, pid, at)
    added_roles = tuple(r for r in dict.fromkeys(roles) if r not in held)
    for r in added_roles:
        s.add(ApproverRole(person_id=pid, role=r, granted_at=at, granted_by=actor))
        _event(s, at=at, by=actor, action="role.grant", person_id=pid, role=r)
    if key is not None:
        s.add(ApproverKey(person_id=pid, key_type=key.key_type, public_key=key.blob_b64, comment=key.comment or None,
                          fingerprint=key.fingerprint, added_at=at, added_by=actor))
        _event(s, at=at, by=actor, action="key.add", person_id=pid, fingerprint=key.fingerprint,
               key_type=key.key_type, comment=key.comment)
    s.flush()
    return EnrollResult(pid, created, added_roles, key.fingerprint if key else None)


def revoke(s: Session, *, person_id: str, role: str | None, fingerprint: str | None, reason: str,
           by: str | None) -> list[str]:
    """Close a key's, a role's or (neither given) a person's window — and all their keys and roles.
    Returns what was revoked; history stays."""
    from payops.db.models import ApproverKey, ApproverPerson, ApproverRole

    problems: list[FieldProblem] = []
    pid, p1 = _uuid_problem(person_id, "PERSON_ID")
    actor, p2 = _uuid_problem(by or "", "--by") if by else (None, FieldProblem(
        "--by", "who is changing the roster: your UUID (or set PAYOPS_OPERATOR_ID)"))
    problems += [p for p in (p1, p2) if p]
    if role is not None and role not in ROLES:
        problems.append(FieldProblem("--role", f"{role!r}: roles are {', '.join(ROLES)}"))
    if not reason.strip() or _NAME_BAD.sub("", reason) != reason:
        problems.append(FieldProblem("--reason", "say why, in one line (it is kept in the roster's history)"))
    person = s.get(ApproverPerson, pid) if pid else None
    if pid and person is None:
        problems.append(FieldProblem("PERSON_ID", f"{pid} is not in the roster (`payops approvers list`)"))
    at = now_s()
    key_row = role_row = None
    if person is not None:
        if person.revoked_at is not None:
            problems.append(FieldProblem("PERSON_ID", f"{person.name} was already removed at "
                                                      f"{person.revoked_at:%Y-%m-%d %H:%M:%S}Z"))
        if fingerprint is not None:
            key_row = s.scalar(select(ApproverKey).where(ApproverKey.fingerprint == fingerprint,
                                                         ApproverKey.person_id == person.id))
            if key_row is None:
                problems.append(FieldProblem("--key", f"{person.name} has no key {fingerprint}"))
            elif key_row.revoked_at is not None:
                problems.append(FieldProblem("--key", f"{fingerprint} was already revoked at "
                                                      f"{key_row.revoked_at:%Y-%m-%d %H:%M:%S}Z"))
        if role is not None and role in ROLES:
            role_row = s.scalar(select(ApproverRole).where(ApproverRole.person_id == person.id,
                                                           ApproverRole.role == role,
                                                           ApproverRole.revoked_at.is_(None)))
            if role_row is None:
                problems.append(FieldProblem("--role", f"{person.name} does not hold {role}"))
    if problems:
        raise ParamsInvalid(problems, "roster change")
    assert person is not None and actor is not None
    done: list[str] = []
    if key_row is not None:
        key_row.revoked_at, key_row.revoked_by, key_row.revoke_reason = at, actor, reason
        _event(s, at=at, by=actor, action="key.revoke", person_id=person.id, fingerprint=key_row.fingerprint,
               reason=reason)
        done.append(f"key {key_row.fingerprint}")
    if role_row is not None:
        role_row.revoked_at, role_row.revoked_by = at, actor
        _event(s, at=at, by=actor, action="role.revoke", person_id=person.id, role=role_row.role, reason=reason)
        done.append(f"role {role_row.role}")
    if fingerprint is None and role is None:
        person.revoked_at, person.revoked_by, person.revoke_reason = at, actor, reason
        for k in s.scalars(select(ApproverKey).where(ApproverKey.person_id == person.id,
                                                     ApproverKey.revoked_at.is_(None))):
            k.revoked_at, k.revoked_by, k.revoke_reason = at, actor, reason
            done.append(f"key {k.fingerprint}")
        for r in s.scalars(select(ApproverRole).where(ApproverRole.person_id == person.id,
                                                      ApproverRole.revoked_at.is_(None))):
            r.revoked_at, r.revoked_by = at, actor
            done.append(f"role {r.role}")
        _event(s, at=at, by=actor, action="person.revoke", person_id=person.id, reason=reason, revoked=done)
        done.insert(0, f"person {person.name}")
    s.flush()
    return done
