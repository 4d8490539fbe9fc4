"""Going live: every approval a live run needs, checked before anything is written, then the operator signs.

Called by the live preflight (``runner.preflight_live``) before any run or row exists. In order — the
first group with a problem raises and nothing is written:

1. the signature files given with the live command (``--approve-ops`` / ``--approve-finance``) are
   each verified (``checks.verify_submission``) → ``ParamsInvalid`` naming each bad flag; a bare
   approver id where a file is expected is refused by name;
2. the approvals of these parameters — recorded ones re-verified against the roster as it stood when
   they were given, plus the ones just given — one ops and one finance, two different people, neither
   the operator; the operator enrolled as ``operator``; the operator's key given → ``ApprovalMissing``
   listing every problem (and approvals voided by changed parameters) with the parameters' sha256;
3. the go-live statement for the new run's id — the parameters and the two approvals it relies on — is
   shown and signed with the operator's ``--key`` (ssh-keygen: key file, ssh-agent or passphrase
   prompt), then verified as the operator's → ``ParamsInvalid`` naming ``--key``.

``GoLivePlan.record`` writes the approvals given with the command and the go-live signature in the
same transaction that creates the live run (``runner.prepare_run(..., on_created=plan.record)``).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.orm import Session

from payops import runstate
from payops.approvals import APPROVER_ROLES, checks, roster, sshkeys
from payops.approvals.submission import Submission, load_submission  # its home is light: `payops approve` reads it
from payops.config import Settings
from payops.db import session_scope
from payops.db.models import Approval, GoLiveSignature, RunbookRun
from payops.errors import ApprovalMissing, FieldProblem, ParamsInvalid
from payops.params import ManualPayoutParams


def load_flags(approvals: dict[str, str]) -> dict[str, Submission]:
    """``{"ops": path, "finance": path}`` from the command line → submissions; ParamsInvalid names every bad flag."""
    out: dict[str, Submission] = {}
    problems: list[FieldProblem] = []
    for role, value in approvals.items():
        got = load_submission(role, value, f"--approve-{role}")
        if isinstance(got, FieldProblem):
            problems.append(got)
        else:
            out[role] = got
    if problems:
        raise ParamsInvalid(problems, "approvals")
    return out


@dataclass
class GoLivePlan:
    """What a live run will be created with: its id, the approvals given with the command, the go-live."""

    run_id: str
    params_hash: str
    new_approvals: list[checks.Signed] = field(default_factory=list)
    golive: checks.Signed | None = None

    def record(self, s: Session, run: RunbookRun) -> None:
        """Write the new approvals and the go-live signature (in the live run's creating transaction)."""
        if run.id != self.run_id or self.golive is None:
            raise ApprovalMissing(f"go-live plan for run {self.run_id} cannot be recorded for run {run.id}")
        for a in self.new_approvals:
            s.add(Approval(run_id=a.statement_run_id, params_hash=a.params_hash, role=a.role, approver_id=a.person_id,
                           decided_at=a.at, note=f"given with the live command of run {run.id}", kind=runstate.SIGNED,
                           key_fingerprint=a.fingerprint, statement=a.statement, signature=a.signature))
        g = self.golive
        s.add(GoLiveSignature(run_id=run.id, params_hash=g.params_hash, person_id=g.person_id,
                              key_fingerprint=g.fingerprint, statement=g.statement, signature=g.signature,
                              signed_at=g.at))
        s.flush()


def plan(params: ManualPayoutParams, settings: Settings, *, submissions: dict[str, Submission] | None = None,
         operator_key: Path | None = None, show: Callable[[str], None] | None = None,
         run_id: str | None = None) -> GoLivePlan:
    """Check everything a live run of ``params`` needs and have the operator sign its go-live (see module doc).

    ``run_id``: an existing (interrupted) live run being resumed — everything is checked again and the
    operator signs that run's go-live statement to prove who they are; nothing is recorded."""
    submissions = submissions or {}
    h = params.params_hash()
    at = roster.now_s()
    result = GoLivePlan(run_id or str(uuid.uuid4()), h)
    with session_scope(settings) as s:
        given: dict[str, checks.Signed] = {}
        bad: list[FieldProblem] = []
        recorded = runstate.approvals_for(s, h)
        for role, sub in submissions.items():
            try:
                given[role] = checks.verify_submission(
                    s, role=role, signature=sub.signature, statement=sub.statement, params_hash=h,
                    subject_key=params.ledger_payout_id, operator=params.operator, settings=settings, at=at)
            except checks.Refused as exc:
                bad.append(FieldProblem(sub.field, f"{sub.source}: {exc}"))
                continue
            rec = recorded.get(role)
            if rec is not None and rec.approver_id != given[role].person_id:
                bad.append(FieldProblem(sub.field, f"the {role} approval for these parameters was already given by "
                                                   f"{rec.approver_id}"))
        people = {r: a.person_id for r, a in given.items()} | {r: a.approver_id for r, a in recorded.items()}
        if people.get("ops") and people.get("ops") == people.get("finance"):
            flags = [submissions[r].field for r in APPROVER_ROLES if r in given]
            who = given.get("ops") or given.get("finance")
            name = f"{who.person_name} ({who.person_id})" if who else people["ops"]
            bad += [FieldProblem(f, f"{name} signed both the ops and the finance approval: two different people "
                                    "must approve") for f in flags]
        if bad:
            raise ParamsInvalid(bad, "approvals")
        state = checks.approval_problems(s, params_hash=h, operator=params.operator, settings=settings,
                                         pending={r: a for r, a in given.items() if r not in recorded})
        problems = state.problems + checks.operator_problems(s, params.operator, at=at, settings=settings)
        if operator_key is None:
            problems.append(FieldProblem("approvals.operator", "a live run needs the operator's go-live signature: "
                                                               "add --key with your roster key (or its .pub with "
                                                               "ssh-agent)"))
        if problems:
            voided = runstate.other_hash_approvals(s, params.ledger_payout_id, h)
            raise ApprovalMissing(
                "live run refused: " + "; ".join(str(p) for p in problems)
                + (f"; voided because the parameters changed: {', '.join(voided)}" if voided else "")
                + f" — parameters sha256 {h}")
        result.new_approvals = [a for r, a in given.items() if r not in recorded]
        approvals = {r: (a.person_id, a.fingerprint) for r, a in state.signed.items()}
        text = checks.golive_statement(run_id=result.run_id, params=params.business_dict(), params_hash=h,
                                       mode="rehearsal" if params.is_rehearsal else "live", approvals=approvals)
        if show is not None:
            show(text)
        assert operator_key is not None
        try:
            signature = sshkeys.sign(text, operator_key)
        except sshkeys.KeyProblem as exc:
            raise ParamsInvalid(FieldProblem("--key", str(exc)), "go-live") from None
        try:
            result.golive = checks.verify_golive(s, signature=signature, text=text, operator=params.operator,
                                                 settings=settings, at=at, run_id=result.run_id, params_hash=h)
        except checks.Refused as exc:
            raise ParamsInvalid(FieldProblem("--key", f"{operator_key}: {exc}"), "go-live") from None
    return result
