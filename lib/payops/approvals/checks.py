"""Is this signature an approval that counts? — for a new submission, and again for a recorded one.

A signature counts for role R on parameters H at time T when, in this order (the first failure is
the reason given):

1. it is an SSH signature in the ``payops-approval`` namespace;
2. its key is in the roster, and at T: enrolled and not revoked, its person not removed, holding R;
   not a test-only entry when payops is in live mode;
3. its person is not the operator of H (for ops/finance) — or is exactly the operator (the go-live);
4. the statement it signs is the one payops builds for a run whose parameters hash to H (a statement
   for other parameters, or text edited after payops printed it, is refused by name);
5. ``ssh-keygen -Y verify`` accepts it against that roster key's allowed_signers line at T.

``check_run`` applies this to everything a live run relies on — the ops and finance approvals of H,
the operator's go-live signature of the run — plus dual control: three different people.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Row, select

from payops import runrecords
from payops.approvals import APPROVER_ROLES, NAMESPACE, roster, sshkeys
from payops.approvals import statement as stmt
from payops.config import Settings
from payops.db import tables as t
from payops.errors import FieldProblem

if TYPE_CHECKING:
    from payops.runrecords import Reader  # a Core connection or an ORM session

CANDIDATES = 20  # newest runs tried when a signature comes without its statement file


class Refused(Exception):
    """Why a signature does not count (one readable sentence; the caller names the field)."""


@dataclass(frozen=True)
class Signed:
    """A signature that verified: who, with which roster key, over which statement, when."""

    role: str
    person_id: str
    person_name: str
    fingerprint: str
    statement: str
    signature: str
    statement_run_id: str
    params_hash: str
    at: datetime
    allowed_signers: str


def roster_key(s: Reader, sig: sshkeys.SignatureInfo, *, role: str, at: datetime, operator: str | None,
               settings: Settings,
               own: str = "the operator of these parameters: the operator cannot approve their own payout",
               ) -> roster.KeyAt:
    """The roster key that made ``sig``, able to sign as ``role`` at ``at``; Refused says why not (namespace,
    not enrolled, revoked, wrong role, test-only in live mode, the operator approving: ``own`` says what)."""
    if sig.namespace != NAMESPACE:
        raise Refused(f"was signed in namespace {sig.namespace!r}, not {NAMESPACE!r} "
                      f"(ssh-keygen -Y sign -n {NAMESPACE})")
    fp = sig.key.fingerprint
    k = roster.key_at(s, fp, at)
    if k is None:
        raise Refused(f"is signed with key {fp}, which is not in the approver roster (`payops approvers list`)")
    who = f"{k.person_name} ({k.person_id})"
    problems = k.problems(role, live=roster.live_mode(settings))
    if role in APPROVER_ROLES and operator and k.person_id == operator:
        problems.insert(0, f"key {fp} belongs to {who}, {own}")
    if role == "operator" and k.person_id != operator:
        problems.insert(0, f"key {fp} belongs to {who}, not to the operator of these parameters ({operator})")
    if problems:
        raise Refused("; ".join(problems))
    return k


def _runs(s: Reader, *, params_hash: str | None = None, subject_key: str | None = None,
          not_hash: str | None = None) -> list[Row[Any]]:
    rr = t.runbook_runs
    q = select(rr).where(rr.c.sop == stmt.SOP).order_by(rr.c.created_at.desc()).limit(CANDIDATES)
    if params_hash:
        q = q.where(rr.c.params_hash == params_hash)
    if subject_key:
        q = q.where(rr.c.subject_key == subject_key)
    if not_hash:
        q = q.where(rr.c.params_hash != not_hash)
    return list(s.execute(q))


def _given_statement(s: Reader, text: str, *, role: str, params_hash: str) -> str:
    """A statement file that came with the signature: for this role, these parameters, a real run, unedited."""
    try:
        h = stmt.parse(text)
    except stmt.StatementError as exc:
        raise Refused(f"its statement {exc}") from None
    if h.role != role:
        raise Refused(f"its statement is a {h.role} statement, not {role}")
    if h.params_hash != params_hash:
        raise Refused(f"approves parameters sha256 {h.params_hash[:12]}… (run {h.run_id}), not these parameters "
                      f"({params_hash[:12]}…): an approval never carries over to other parameters")
    run = s.execute(select(t.runbook_runs).where(t.runbook_runs.c.id == h.run_id)).first()
    if run is None or run.params_hash != params_hash:
        raise Refused(f"its statement names run {h.run_id}, which is not a run of these parameters")
    if text != stmt.for_run(s, run.id, role):
        raise Refused(f"its statement is not the text payops shows for run {run.id} (edited after it was printed?)")
    return text


def verify_submission(s: Reader, *, role: str, signature: str, statement: str | None, params_hash: str,
                      subject_key: str | None, operator: str | None, settings: Settings, at: datetime) -> Signed:
    """Check a new ops/finance signature for parameters ``params_hash`` at ``at``; Refused says why not.

    ``statement`` is the text the approver says they signed (their statement file); without it the
    statements of the newest runs with these parameters are tried."""
    try:
        sig = sshkeys.parse_signature(signature)
    except sshkeys.KeyProblem as exc:
        raise Refused(str(exc)) from None
    k = roster_key(s, sig, role=role, at=at, operator=operator, settings=settings)
    line = k.allowed_signers()
    if statement is not None:
        text = _given_statement(s, statement, role=role, params_hash=params_hash)
        bad = sshkeys.verify(text, sig.armored, principal=k.person_id, allowed_signers=line, at=at)
        if bad:
            raise Refused(f"does not verify over its statement (ssh-keygen: {bad})")
        run_id = stmt.parse(text).run_id
        return Signed(role, k.person_id, k.person_name, k.fingerprint, text, sig.armored, run_id, params_hash, at, line)
    for run in _runs(s, params_hash=params_hash):
        text = stmt.for_run(s, run.id, role)
        if sshkeys.verify(text, sig.armored, principal=k.person_id, allowed_signers=line, at=at) is None:
            return Signed(role, k.person_id, k.person_name, k.fingerprint, text, sig.armored, run.id, params_hash, at,
                          line)
    for run in _runs(s, subject_key=subject_key, not_hash=params_hash) if subject_key else []:
        if sshkeys.verify(stmt.for_run(s, run.id, role), sig.armored, principal=k.person_id, allowed_signers=line,
                          at=at) is None:
            raise Refused(f"approves run {run.id}, whose parameters differ (sha256 {run.params_hash[:12]}…, these are "
                          f"{params_hash[:12]}…): an approval never carries over to other parameters")
    raise Refused(f"does not verify over the {role} statement of any run with these parameters (sha256 "
                  f"{params_hash[:12]}…): it was made for another run or other parameters, or the file is damaged")


def golive_statement(*, run_id: str, params: dict[str, object], params_hash: str, mode: str,
                     approvals: dict[str, tuple[str, str]]) -> str:
    return stmt.build(run_id=run_id, role="operator", params=params, params_hash=params_hash, mode=mode,
                      approvals=approvals)


def verify_golive(s: Reader, *, signature: str, text: str, operator: str | None, settings: Settings,
                  at: datetime, run_id: str, params_hash: str) -> Signed:
    """The operator's signature over the go-live statement ``text`` (already rebuilt by the caller)."""
    try:
        sig = sshkeys.parse_signature(signature)
    except sshkeys.KeyProblem as exc:
        raise Refused(str(exc)) from None
    k = roster_key(s, sig, role="operator", at=at, operator=operator, settings=settings)
    line = k.allowed_signers()
    bad = sshkeys.verify(text, sig.armored, principal=k.person_id, allowed_signers=line, at=at)
    if bad:
        raise Refused(f"the go-live signature does not verify (ssh-keygen: {bad})")
    return Signed("operator", k.person_id, k.person_name, k.fingerprint, text, sig.armored, run_id, params_hash, at,
                  line)


def recheck(s: Reader, a: runrecords.ApprovalView, *, operator: str | None, settings: Settings) -> Signed:
    """A recorded ops/finance approval, verified again against the roster as it stood at its ``decided_at``."""
    if not a.signed:
        raise Refused(f"unsigned (legacy) approval by {a.approver_id}: it never counts")
    if a.statement is None or a.signature is None:
        raise Refused("the recorded approval has no statement or signature")
    try:
        h = stmt.parse(a.statement)
    except stmt.StatementError as exc:
        raise Refused(f"its recorded statement {exc}") from None
    if (h.run_id, h.role, h.params_hash) != (a.run_id, a.role, a.params_hash):
        raise Refused("its recorded statement names another run, role or parameters than the approval row")
    if a.statement != stmt.for_run(s, a.run_id, a.role):
        raise Refused(f"its recorded statement differs from the one payops shows for run {a.run_id}")
    signed = verify_submission(s, role=a.role, signature=a.signature, statement=a.statement, params_hash=a.params_hash,
                               subject_key=None, operator=operator, settings=settings, at=a.decided_at)
    if signed.fingerprint != a.key_fingerprint or signed.person_id != a.approver_id:
        raise Refused(f"the signature is by key {signed.fingerprint} of {signed.person_id}, the row says "
                      f"{a.key_fingerprint} of {a.approver_id}")
    return signed


# --- a run's whole approval state ------------------------------------------------------------------
@dataclass
class RunApprovals:
    """Everything a live run of these parameters relies on, each re-verified."""

    params_hash: str
    operator: str | None
    signed: dict[str, Signed] = field(default_factory=dict)  # ops, finance (and operator: the go-live)
    legacy: list[runrecords.ApprovalView] = field(default_factory=list)
    problems: list[FieldProblem] = field(default_factory=list)  # ops + finance and dual control
    operator_problems: list[FieldProblem] = field(default_factory=list)  # the operator's roster entry, go-live

    def people(self) -> dict[str, str]:
        return {r: a.person_id for r, a in self.signed.items()}

    def summary(self) -> str:
        parts = [f"{r}={a.person_name} ({a.person_id}, key {a.fingerprint})" for r, a in self.signed.items()
                 if r in APPROVER_ROLES]
        if self.legacy:
            parts.append("ignored: " + ", ".join(f"{a.role} by {a.approver_id} unsigned (legacy)" for a in self.legacy))
        return "; ".join(parts) or "none"


def approval_problems(s: Reader, *, params_hash: str, operator: str | None, settings: Settings,
                      pending: dict[str, Signed] | None = None) -> RunApprovals:
    """The ops and finance approvals of ``params_hash`` (recorded, plus ``pending`` not yet recorded),
    re-verified, and dual control over them."""
    out = RunApprovals(params_hash, operator)
    recorded = runrecords.approvals_for(s, params_hash)
    out.legacy = runrecords.legacy_approvals(s, params_hash)
    for role in APPROVER_ROLES:
        a = recorded.get(role)
        if a is not None:
            try:
                out.signed[role] = recheck(s, a, operator=operator, settings=settings)
            except Refused as exc:
                out.problems.append(FieldProblem(f"approvals.{role}", f"the {role} approval by {a.approver_id} "
                                                                      f"does not count: {exc}"))
        elif pending and role in pending:
            out.signed[role] = pending[role]
        else:
            legacy = [x.approver_id for x in out.legacy if x.role == role]
            out.problems.append(FieldProblem(
                f"approvals.{role}", f"no signed {role} approval for these exact parameters"
                + (f" (the unsigned (legacy) one by {legacy[0]} never counts)" if legacy else "")
                + f" (sign one: `payops approve RUN_ID --role {role} --key ~/.ssh/id_ed25519`)"))
    ops, fin = out.signed.get("ops"), out.signed.get("finance")
    if ops and fin and ops.person_id == fin.person_id:
        out.problems.append(FieldProblem("approvals", f"ops and finance are both signed by {ops.person_name} "
                                                      f"({ops.person_id}): two different people must approve"))
    return out


def operator_problems(s: Reader, operator: str | None, *, at: datetime, settings: Settings) -> list[FieldProblem]:
    """The operator must be a roster person holding ``operator`` at ``at`` (not test-only in live mode)."""
    if operator is None:
        return [FieldProblem("operator", "no operator: pass --operator UUID or set PAYOPS_OPERATOR_ID")]
    person, roles = roster.person_state(s, operator, at)
    if person is None:
        return [FieldProblem("approvals.operator", f"the operator {operator} is not in the approver roster "
                                                   "(`payops approvers add --id … --role operator --key …`)")]
    out = []
    if "operator" not in roles:
        out.append(FieldProblem("approvals.operator", f"{person.name} ({operator}) is not enrolled as operator "
                                                      f"(roles: {', '.join(sorted(roles)) or 'none'})"))
    if person.test_only and roster.live_mode(settings):
        out.append(FieldProblem("approvals.operator", f"{person.name} ({operator}) is a test-only roster entry: "
                                                      "it never counts in live mode"))
    return out


def check_run(s: Reader, *, run_id: str, settings: Settings, require_golive: bool) -> RunApprovals:
    """A run's approvals, re-verified; with ``require_golive`` also the operator's go-live signature."""
    run = runrecords.run_row(s, run_id)
    out = approval_problems(s, params_hash=run.params_hash, operator=run.operator, settings=settings)
    go = runrecords.golive_row(s, run_id)
    at = go.signed_at if go is not None else roster.now_s()
    out.operator_problems = operator_problems(s, run.operator, at=at, settings=settings)
    if go is None:
        if require_golive:
            out.operator_problems.append(FieldProblem(
                "approvals.operator", f"no go-live signature by the operator for run {run_id} "
                "(`payops runs resume DRY_RUN_ID --live --key …` signs it)"))
        return out
    approvals = {r: (a.person_id, a.fingerprint) for r, a in out.signed.items() if r in APPROVER_ROLES}
    text = golive_statement(run_id=run_id, params=stmt.business_params(run.params_json),
                            params_hash=run.params_hash, mode=run.mode, approvals=approvals)
    try:
        if go.statement != text:
            raise Refused("the recorded go-live statement differs from the one payops builds for this run and its "
                          "approvals")
        signed = verify_golive(s, signature=go.signature, text=text, operator=run.operator, settings=settings,
                               at=go.signed_at, run_id=run_id, params_hash=run.params_hash)
        if signed.fingerprint != go.key_fingerprint:
            raise Refused(f"signed by key {signed.fingerprint}, the row says {go.key_fingerprint}")
        out.signed["operator"] = signed
    except Refused as exc:
        out.operator_problems.append(FieldProblem("approvals.operator", f"the go-live signature does not count: {exc}"))
    people = [(r, a.person_id, a.person_name) for r, a in out.signed.items()]
    for i, (r1, p1, name) in enumerate(people):
        for r2, p2, _ in people[i + 1:]:
            if p1 == p2 and {r1, r2} != {"ops", "finance"}:  # ops = finance is reported above
                out.problems.append(FieldProblem("approvals", f"{name} ({p1}) holds two roles in this run "
                                                              f"({r1} and {r2})"))
    return out
