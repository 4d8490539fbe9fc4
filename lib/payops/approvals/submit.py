"""``payops approve``: show the statement, sign it (or take a signature made elsewhere), record it if it counts.

Three ways, one check:

- ``--key ~/.ssh/id_ed25519`` (or a ``.pub`` with ssh-agent): payops prints the statement, has
  ``ssh-keygen -Y sign`` sign it, and submits the signature;
- ``--statement-only``: prints exactly the statement bytes (``> stmt``), for an approver who signs
  elsewhere with plain ``ssh-keygen -Y sign -f KEY -n payops-approval stmt``;
- ``--signature stmt.sig``: submits such a signature (the statement is read from ``stmt`` beside it,
  or ``--statement``; without either, the statements of runs with these parameters are tried).

The approval is recorded only when ``checks.verify_submission`` accepts it, its person does not
already hold the other role for these parameters, and no one else gave this role. Nothing is
written otherwise; the error names the option and what was wrong. Imports stay light (no pandas,
papermill, runner or ORM: Core queries on ``payops.db.tables``): the command starts fast.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

from rich.console import Console
from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError

from payops import runrecords
from payops.approvals import APPROVER_ROLES, checks, roster, sshkeys
from payops.approvals import statement as stmt
from payops.approvals.submission import load_submission
from payops.config import Settings, get_settings
from payops.db import connection_scope
from payops.db import tables as t
from payops.errors import ApprovalMissing, FieldProblem, ParamsInvalid


def _role_problem(role: str) -> FieldProblem | None:
    if role in APPROVER_ROLES:
        return None
    hint = (" — the operator signs the go-live instead: `payops runs resume RUN_ID --live --key …`"
            if role == "operator" else "")
    return FieldProblem("--role", f"must be ops or finance, got {role!r}{hint}")


def _statement(run_id: str, role: str, settings: Settings) -> tuple[str, str, str | None]:
    """(statement, params hash, operator) of ``run_id`` for ``role``; refuses runs nobody can approve."""
    if (bad := _role_problem(role)) is not None:
        raise ParamsInvalid(bad, "approval")
    with connection_scope(settings) as s:
        run = runrecords.run_row(s, run_id)
        if run.operator is None:
            raise ParamsInvalid(FieldProblem("RUN_ID", f"run {run_id} names no operator, so a live run could never use "
                                                       "its approvals: start a dry run with --operator (or "
                                                       "PAYOPS_OPERATOR_ID) and approve that one"), "approval")
        return stmt.for_run(s, run_id, role), run.params_hash, run.operator


def record(s: runrecords.Reader, signed: checks.Signed, *, field: str,
           note: str | None) -> tuple[runrecords.ApprovalView, bool]:
    """Write a verified approval unless this person already gave it (``s``: a Core connection or an ORM
    session, in the caller's transaction). Returns (approval, newly written)."""
    existing = runrecords.approvals_for(s, signed.params_hash)
    same = existing.get(signed.role)
    if same is not None:
        if same.approver_id == signed.person_id:
            return same, False
        raise ApprovalMissing(f"the {signed.role} approval for these parameters was already given by "
                              f"{same.approver_id} at {same.decided_at:%Y-%m-%d %H:%M:%S}Z")
    for other in existing.values():
        if other.approver_id == signed.person_id:
            raise ParamsInvalid(FieldProblem(field, f"{signed.person_name} ({signed.person_id}) already approved these "
                                                    f"parameters as {other.role}: the two approvers must differ (two "
                                                    "different people)"), "approval")
    view = runrecords.ApprovalView(signed.role, signed.person_id, signed.statement_run_id, signed.params_hash,
                                   signed.at, runrecords.SIGNED, signed.fingerprint, signed.statement,
                                   signed.signature)
    try:
        s.execute(insert(t.approvals).values(
            run_id=view.run_id, params_hash=view.params_hash, role=view.role, approver_id=view.approver_id,
            decided_at=view.decided_at, note=note, kind=view.kind, key_fingerprint=view.key_fingerprint,
            statement=view.statement, signature=view.signature))
    except IntegrityError:
        raise ApprovalMissing(f"the {signed.role} approval for these parameters was recorded concurrently; "
                              "check `payops runs show`") from None
    return view, True


def approve(run_id: str, *, role: str, key: Path | None = None, signature: Path | None = None,
            statement_file: Path | None = None, statement_only: bool = False, note: str | None = None,
            yes: bool = True, console: Console | None = None, out: TextIO | None = None,
            settings: Settings | None = None) -> runrecords.ApprovalView | None:
    """The ``payops approve`` flow (see the module docstring). Returns the approval (None for --statement-only)."""
    settings = settings or get_settings()
    early = [p for p in (_role_problem(role),) if p]
    sub = load_submission(role, str(signature), "--signature") if signature is not None else None
    if isinstance(sub, FieldProblem):
        early.append(sub)
    if early:
        raise ParamsInvalid(early, "approval")
    text, params_hash, operator = _statement(run_id, role, settings)
    if statement_only:
        (out or sys.stdout).write(text)
        (out or sys.stdout).flush()
        return None
    if (key is None) == (signature is None):
        raise ParamsInvalid([FieldProblem("--key", "give exactly one of --key (sign now) or --signature (signed "
                                                   "elsewhere)"),
                             FieldProblem("--signature", "give exactly one of --key or --signature")], "approval")
    console = console or Console(highlight=False)
    console.rule(f"You are approving run {run_id} as {role}", style="bold")
    console.print(text, markup=False, highlight=False, soft_wrap=True, end="")
    console.rule()
    if key is not None:
        field = "--key"
        if not yes and sys.stdin.isatty() and not _confirm(console):
            raise ParamsInvalid(FieldProblem("--key", "not signed: you declined"), "approval")
        try:
            sig_text = sshkeys.sign(text, key)
        except sshkeys.KeyProblem as exc:
            raise ParamsInvalid(FieldProblem("--key", str(exc)), "approval") from None
        given: str | None = text
        source = str(key)
    else:
        field = "--signature"
        assert sub is not None and not isinstance(sub, FieldProblem)
        sig_text, given, source = sub.signature, sub.statement, str(signature)
        if statement_file is not None:
            try:
                given = Path(statement_file).expanduser().read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise ParamsInvalid(FieldProblem("--statement", f"cannot read {statement_file}: {exc}"),
                                    "approval") from None
    with connection_scope(settings) as s:
        run = runrecords.run_row(s, run_id)
        try:
            signed = checks.verify_submission(s, role=role, signature=sig_text, statement=given,
                                              params_hash=params_hash, subject_key=run.subject_key, operator=operator,
                                              settings=settings, at=roster.now_s())
        except checks.Refused as exc:
            raise ParamsInvalid(FieldProblem(field, f"{source}: {exc}"), "approval") from None
        view, new = record(s, signed, field=field, note=note)
        have = runrecords.approvals_for(s, params_hash)
    verb = "recorded" if new else "was already recorded"
    console.print(f"[green]✔[/] {view.role} approval by {signed.person_name} ({view.approver_id}), key "
                  f"{view.key_fingerprint}, {verb} at {view.decided_at:%Y-%m-%d %H:%M:%S}Z", soft_wrap=True)
    missing = [r for r in APPROVER_ROLES if r not in have]
    console.print("still needed: " + ", ".join(missing) if missing else
                  f"both approvals present: the operator goes live with `payops runs resume {run_id} --live --key …`",
                  soft_wrap=True, markup=False)
    return view


def _confirm(console: Console) -> bool:
    console.print("Sign this statement with your key? [y/N] ", end="")
    return sys.stdin.readline().strip().lower() in ("y", "yes")
