"""The statement an approver signs, rebuilt from the run — and the commands an approver runs.

A statement is UTF-8 text, ``\\n`` line ends, fixed header lines first (parsed by position, so no
payload text can pose as a header), the human-readable payload next, and last the canonical
parameters, whose sha256 is the ``parameters sha256`` line::

    payops approval statement v1
    namespace: payops-approval
    run: 5b0c…                       the run the statement was shown for
    sop: manual_payout
    role: finance                    ops · finance · operator (the go-live)
    parameters sha256: d8ab…
    meaning: Finance approves this manual payout, exactly as below.
    studio: Test Studio A (1111…)
    ledger payout: 2222…
    amount: 875.50 CAD
    destination: acct_test_studio_a
    incident: INC-1234
    …
    parameters: {"amount":"875.50",…}

The go-live statement (role ``operator``) also names the live mode and the two approvals it relies on.
Statements are deterministic: a signature is checked against the statement payops rebuilds for the
run it names, never against text taken on trust.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from payops.approvals import APPROVER_ROLES, NAMESPACE, ROLES
from payops.errors import PayopsError
from payops.params import canonical_sha256

if TYPE_CHECKING:
    from payops.runrecords import Reader  # a Core connection or an ORM session

HEADER = "payops approval statement v1"
SOP = "manual_payout"
MEANING = {
    "ops": "Payments Ops approves this manual payout, exactly as below.",
    "finance": "Finance approves this manual payout, exactly as below.",
    "operator": "The operator starts this LIVE run of the manual payout, exactly as below, with the approvals listed.",
}
NOT_BUSINESS = ("dry_run", "send_notifications")


class StatementError(ValueError):
    """Text that is not a payops statement, or one whose parameters do not hash as it says."""


@dataclass(frozen=True)
class Header:
    run_id: str
    sop: str
    role: str
    params_hash: str
    params: dict[str, Any]


def business_params(params_json: str) -> dict[str, Any]:
    """What the approvers approve: a run's parameters without the dry-run and notification switches."""
    return {k: v for k, v in json.loads(params_json).items() if k not in NOT_BUSINESS}


def build(*, run_id: str, role: str, params: dict[str, Any], params_hash: str, mode: str | None = None,
          approvals: dict[str, tuple[str, str]] | None = None) -> str:
    """The statement for ``role`` on ``run_id``. ``mode`` and ``approvals`` ({role: (person id, key
    fingerprint)}) are the go-live statement's."""
    if role not in ROLES:
        raise PayopsError(f"no statement for role {role!r}")
    canonical = json.dumps(params, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    if canonical_sha256(params, ensure_ascii=False) != params_hash:
        raise PayopsError(f"run {run_id}: its parameters do not hash to its params sha256 {params_hash}")
    cur = params.get("currency") or ""
    lines = [
        HEADER, f"namespace: {NAMESPACE}", f"run: {run_id}", f"sop: {SOP}", f"role: {role}",
        f"parameters sha256: {params_hash}", f"meaning: {MEANING[role]}",
        f"studio: {params.get('studio_name')} ({params.get('studio_id')})",
        f"ledger payout: {params.get('ledger_payout_id')}",
        f"amount: {params.get('amount')} {cur}",
        f"destination: {params.get('destination_account')}",
        f"incident: {params.get('incident_id')}",
        f"reason: {params.get('reason')}",
        f"reserve after: {params.get('reserve_after')} {cur}",
        f"operator: {params.get('operator') or '(none)'}",
        f"rehearsal: {'yes (Stripe test mode)' if params.get('is_rehearsal') else 'no'}",
        f"notes: {json.dumps(params.get('notes') or '', ensure_ascii=False)}",
    ]
    if role == "operator":
        lines.append(f"mode: {mode or 'live'}")
        for r in APPROVER_ROLES:
            who, fp = (approvals or {}).get(r, ("(none)", "(none)"))
            lines.append(f"approved by {r}: {who} with key {fp}")
    lines.append(f"parameters: {canonical}")
    return "\n".join(lines) + "\n"


def parse(text: str) -> Header:
    """The header of a statement; StatementError when it is not one, or its parameters do not hash as stated."""
    if not isinstance(text, str) or not text.startswith(HEADER + "\n") or not text.endswith("\n"):
        raise StatementError(f"is not a payops statement (it must start with {HEADER!r})")
    lines = text[:-1].split("\n")
    want = ("namespace: ", "run: ", "sop: ", "role: ", "parameters sha256: ")
    if len(lines) < 8 or any(not lines[i + 1].startswith(w) for i, w in enumerate(want)) \
            or not lines[-1].startswith("parameters: "):
        raise StatementError("is not a payops statement (its header or parameters line is missing)")
    vals = [lines[i + 1][len(w):] for i, w in enumerate(want)]
    if vals[0] != NAMESPACE:
        raise StatementError(f"names namespace {vals[0]!r}, not {NAMESPACE!r}")
    try:
        params = json.loads(lines[-1][len("parameters: "):])
    except json.JSONDecodeError:
        raise StatementError("its parameters line is not JSON") from None
    if not isinstance(params, dict) or canonical_sha256(params, ensure_ascii=False) != vals[4]:
        raise StatementError("its parameters do not hash to its 'parameters sha256' line")
    return Header(run_id=vals[1], sop=vals[2], role=vals[3], params_hash=vals[4], params=params)


def for_run(s: Reader, run_id: str, role: str) -> str:
    """The ops/finance statement payops shows for ``run_id`` (a manual payout run with an operator)."""
    from payops.runrecords import run_row

    run = run_row(s, run_id)
    if run.sop != SOP:
        raise PayopsError(f"run {run_id} is a {run.sop} run: approvals are for manual payout runs")
    return build(run_id=run.id, role=role, params=business_params(run.params_json), params_hash=run.params_hash)


# --- what an approver sees and runs --------------------------------------------------------------
@dataclass
class ApprovalGuide:
    """For one run: each approver's statement, and either who already signed or the commands to sign."""

    run_id: str
    params_hash: str
    statements: dict[str, str] = field(default_factory=dict)
    commands: dict[str, list[str]] = field(default_factory=dict)
    recorded: dict[str, str] = field(default_factory=dict)

    def text(self) -> str:
        out = [f"Approvals for run {self.run_id} (parameters sha256 {self.params_hash})", ""]
        for role in (*APPROVER_ROLES, "operator"):
            if role in self.recorded:
                out.append(f"[{role}] {self.recorded[role]}")
            if role in self.commands:
                out.append(f"[{role}] not signed yet. Commands:")
                out += [f"    {c}" for c in self.commands[role]]
            if role in self.statements:
                out.append(f"[{role}] statement ({len(self.statements[role].encode())} bytes, signed exactly):")
                out += [f"    | {ln}" for ln in self.statements[role].rstrip("\n").split("\n")]
            out.append("")
        return "\n".join(out)

    def __str__(self) -> str:
        return self.text()


def commands(run_id: str, role: str, key: str = "~/.ssh/id_ed25519") -> list[str]:
    """The exact commands an approver runs: with their key at hand, or offline (statement, sign, submit)."""
    if role == "operator":
        return [f"payops runs resume {run_id} --live --key {key}   # the operator, once ops and finance signed"]
    stmt = f"{role}-{run_id[:8]}.statement"
    return [
        f"payops approve {run_id} --role {role} --key {key}",
        f"# or offline: payops approve {run_id} --role {role} --statement-only > {stmt}",
        f"#   ssh-keygen -Y sign -f {key} -n {NAMESPACE} {stmt}",
        f"#   payops approve {run_id} --role {role} --signature {stmt}.sig",
    ]


def approval_guide(run_id: str, settings: Any = None) -> ApprovalGuide:
    """The statement text and exact commands for each role of ``run_id`` (read-only; notebooks display it)."""
    from payops import runstate
    from payops.db import session_scope
    from payops.db.models import GoLiveSignature

    with session_scope(settings) as s:
        run = runstate.get_run(s, run_id)
        guide = ApprovalGuide(run.id, run.params_hash)
        signed = runstate.approvals_for(s, run.params_hash)
        for role in APPROVER_ROLES:
            a = signed.get(role)
            if a is not None:
                guide.recorded[role] = (f"signed by {a.approver_id} with key {a.key_fingerprint} at "
                                        f"{a.decided_at:%Y-%m-%d %H:%M:%S}Z (statement of run {a.run_id})")
                guide.statements[role] = a.statement or ""
            else:
                guide.statements[role] = for_run(s, run.id, role)
                guide.commands[role] = commands(run.id, role)
        go = s.get(GoLiveSignature, run.id)
        if go is not None:
            guide.recorded["operator"] = (f"go-live signed by {go.person_id} with key {go.key_fingerprint} at "
                                          f"{go.signed_at:%Y-%m-%d %H:%M:%S}Z")
            guide.statements["operator"] = go.statement
        elif run.mode == "dry-run":
            guide.commands["operator"] = commands(run.id, "operator")
    return guide
