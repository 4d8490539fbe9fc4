"""The signed approval of an incident's live action (scenario B: expiring Checkout Sessions through Stripe).

The same control as a manual payout's (:mod:`payops.approvals`), over the incident's plan instead of payout
parameters:

1. The dry run lists exactly what the live action would do; its plan's sha256 is the incident's ``plan_sha256``.
2. A person on the approver roster holding ``ops`` — not the incident's operator — signs the statement of that
   plan (:func:`statement`) with ``ssh-keygen -Y sign -n payops-approval`` (``payops incident approve INC
   --key ~/.ssh/id_ed25519``, or ``--statement-only`` and sign elsewhere, then ``--signature FILE.sig``).
3. payops records the approval only when the signature verifies against that person's roster key as it stood
   then; before the live action it verifies it again (a key revoked since the approval still counts for what it
   signed before; a test-only roster entry never counts against real Stripe).
4. A new dry run that lists something else has another sha256: the approval does not carry over.

A typed approver id is refused: it proves nothing about who approved.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from payops.approvals import NAMESPACE, roster, sshkeys
from payops.approvals.checks import Refused, roster_key
from payops.approvals.statement import HEADER
from payops.config import Settings
from payops.db.models import Approval, Incident
from payops.errors import ApprovalMissing, FieldProblem, ParamsInvalid, PayopsError
from payops.incident.store import note
from payops.params import canonical_sha256
from payops.runrecords import SIGNED  # the approvals table's kind for a verified signature

SOP = "checkout_incident"
ROLE = "ops"
MEANING = "Payments Ops approves this incident's live action, exactly as below."


@dataclass(frozen=True)
class Verified:
    person_id: str
    person_name: str
    fingerprint: str
    statement: str
    signature: str


def statement(row: Incident) -> str:
    """The text an approver signs for ``row``'s current plan, rebuilt from the plan every time."""
    if row.plan_json is None or row.plan_sha256 is None:
        raise ApprovalMissing(f"incident {row.id} has no dry-run plan to approve: run the dry run first")
    plan = json.loads(row.plan_json)
    if canonical_sha256(plan) != row.plan_sha256:
        raise PayopsError(f"incident {row.id}: its plan does not hash to its plan sha256 {row.plan_sha256}")
    lines = [HEADER, f"namespace: {NAMESPACE}", f"run: {plan.get('run_id')}", f"sop: {SOP}", f"role: {ROLE}",
             f"parameters sha256: {row.plan_sha256}", f"meaning: {MEANING}", f"incident: {row.id}",
             f"scenario: {row.scenario}", f"operator: {row.operator or '(none)'}",
             f"action: {plan.get('description')}"]
    lines += [f"item: {json.dumps(item, sort_keys=True, ensure_ascii=False)}" for item in plan.get("items") or []]
    lines.append("parameters: " + json.dumps(plan, sort_keys=True, separators=(",", ":"), ensure_ascii=False))
    return "\n".join(lines) + "\n"


def commands(incident_id: str) -> list[str]:
    """What the approver runs: sign now with a key, or print the statement and sign it elsewhere."""
    return [f"payops incident approve {incident_id} --key ~/.ssh/id_ed25519",
            f"payops incident approve {incident_id} --statement-only > {incident_id}.statement && ssh-keygen -Y sign "
            f"-f ~/.ssh/id_ed25519 -n {NAMESPACE} {incident_id}.statement && payops incident approve {incident_id} "
            f"--signature {incident_id}.statement.sig"]


def _verify(s: Session, text: str, signature: str, *, operator: str | None, settings: Settings,
            at: datetime) -> Verified:
    try:
        sig = sshkeys.parse_signature(signature)
    except sshkeys.KeyProblem as exc:
        raise Refused(str(exc)) from None
    k = roster_key(s, sig, role=ROLE, at=at, operator=operator, settings=settings,
                   own="the incident's operator: the operator cannot approve their own live action")
    bad = sshkeys.verify(text, sig.armored, principal=k.person_id, allowed_signers=k.allowed_signers(), at=at)
    if bad:
        raise Refused(f"does not verify over this incident's plan statement (ssh-keygen: {bad}): it was made for "
                      "another plan (a later dry run changes the plan), or the file is damaged")
    return Verified(k.person_id, k.person_name, k.fingerprint, text, sig.armored)


def record(s: Session, row: Incident, signature: str, *, field: str, operator: str | None,
           settings: Settings) -> tuple[Approval, bool]:
    """Verify ``signature`` over the statement of ``row``'s plan and record it. (approval, newly written)."""
    text = statement(row)
    at = roster.now_s()
    try:
        v = _verify(s, text, signature, operator=operator, settings=settings, at=at)
    except Refused as exc:
        raise ParamsInvalid(FieldProblem(field, str(exc)), "approval") from None
    existing = s.query(Approval).filter_by(params_hash=row.plan_sha256, role=ROLE, kind=SIGNED).one_or_none()
    if existing is not None:
        if existing.approver_id != v.person_id:
            raise ApprovalMissing(f"the plan {row.plan_sha256[:12]}… was already approved by {existing.approver_id}")
        return existing, False
    plan = json.loads(row.plan_json or "{}")
    appr = Approval(run_id=plan.get("run_id"), params_hash=row.plan_sha256, role=ROLE, approver_id=v.person_id,
                    decided_at=at, note=f"incident {row.id}: live action on the dry run's plan", kind=SIGNED,
                    key_fingerprint=v.fingerprint, statement=v.statement, signature=v.signature)
    s.add(appr)
    note(row, f"live action approved by {v.person_name} ({v.person_id}), signed with roster key {v.fingerprint} "
              f"(plan {row.plan_sha256[:12]}…)")
    s.flush()
    return appr, True


def problem(s: Session, row: Incident, operator: str | None, settings: Settings) -> str | None:
    """Why the live action may not go ahead (None: a signed approval of this very plan by someone else, which
    verifies again now against the roster as it stood when it was given)."""
    if row.plan_sha256 is None:
        return f"incident {row.id} has no dry-run plan: run the dry run first, then have it approved"
    how = " or ".join(f"`{c}`" for c in commands(row.id)[:1])
    appr = s.query(Approval).filter_by(params_hash=row.plan_sha256, role=ROLE, kind=SIGNED).one_or_none()
    if appr is None:
        legacy = s.query(Approval).filter_by(params_hash=row.plan_sha256, role=ROLE).first()
        if legacy is not None:
            return (f"the plan {row.plan_sha256[:12]}… has only an unsigned (legacy) approval by {legacy.approver_id}, "
                    f"which never counts: a rostered ops approver signs it ({how})")
        return (f"no approval of the dry run's plan {row.plan_sha256[:12]}… (a second person on the approver roster "
                f"signs it: {how})")
    try:
        text = statement(row)
        if appr.statement != text:
            raise Refused("its recorded statement is not the statement of this plan")
        _verify(s, text, appr.signature or "", operator=operator, settings=settings, at=appr.decided_at)
    except Refused as exc:
        return f"the approval by {appr.approver_id} no longer verifies: it {exc}"
    return None
