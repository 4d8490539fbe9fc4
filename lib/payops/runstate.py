"""The runner's state in the database: runs, steps, leases and approvals.

A run is one execution of a runbook with one set of parameters (dry-run, live or rehearsal).
Approvals are bound to the parameters' sha256: a changed amount voids them. Approvals are signed and
checked by ``payops.approvals``; this module only reads them.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from payops.db.models import Approval, RunbookRun, RunbookStep, utcnow
from payops.errors import ConcurrentRun, FieldProblem, PayopsError

# the read side (Core, no ORM), re-exported: one definition each, shared with `payops runs list/show` and approve
from payops.runrecords import (  # noqa: F401
    SIGNED,
    ApprovalView,
    _holder_alive,
    approvals_for,
    lease_alive,
    lease_owner,
    legacy_approvals,
    shown_status,
)

LEASE_SECONDS = 15 * 60
ROLES = ("ops", "finance")


def renew(s: Session, run_id: str) -> None:
    """Extend the holder's lease (at each step boundary): a long run does not look interrupted."""
    s.execute(update(RunbookRun).where(RunbookRun.id == run_id, RunbookRun.lease_owner == lease_owner())
              .values(lease_expires_at=utcnow() + timedelta(seconds=LEASE_SECONDS)))


def create_run(
    s: Session, *, sop: str, mode: str, params: dict[str, Any], params_hash: str, steps: list[str],
    subject_key: str | None, operator: str | None, output_dir: str, parent_run_id: str | None = None,
    detected_at: datetime | None = None, run_id: str | None = None,
) -> RunbookRun:
    run = RunbookRun(
        id=run_id or str(uuid.uuid4()), sop=sop, mode=mode, status="created",
        params_json=json.dumps(params, sort_keys=True), params_hash=params_hash, subject_key=subject_key,
        parent_run_id=parent_run_id, operator=operator, output_dir=output_dir,
        detected_at=detected_at or utcnow(),
    )
    s.add(run)
    s.flush()
    for i, step in enumerate(steps):
        s.add(RunbookStep(run_id=run.id, step=step, position=i, status="pending", attempts=0))
    s.flush()
    return run


def get_run(s: Session, run_id: str) -> RunbookRun:
    run = s.get(RunbookRun, run_id)
    if run is None:
        raise PayopsError(f"no run with id {run_id!r} (see `payops runs list`)")
    return run


def steps_of(s: Session, run_id: str) -> list[RunbookStep]:
    return list(s.scalars(select(RunbookStep).where(RunbookStep.run_id == run_id).order_by(RunbookStep.position)))


def claim(s: Session, run_id: str) -> RunbookRun:
    """Take the run's lease (mark it running) or raise ConcurrentRun if a live process holds it."""
    run = get_run(s, run_id)
    now = utcnow()
    me = lease_owner()
    if run.status == "running" and run.lease_owner not in (None, me):
        expired = run.lease_expires_at is not None and run.lease_expires_at < now
        if not expired and _holder_alive(run.lease_owner):
            raise ConcurrentRun(
                f"run {run_id} is being executed by {run.lease_owner}"
                + (f" (lease until {run.lease_expires_at:%H:%M:%S}Z)" if run.lease_expires_at else "")
            )
    # compare-and-set on the previous holder so two claimers cannot both win
    res = s.execute(
        update(RunbookRun)
        .where(RunbookRun.id == run_id, RunbookRun.lease_owner.is_(None) if run.lease_owner is None
               else RunbookRun.lease_owner == run.lease_owner)
        .values(status="running", lease_owner=me, lease_expires_at=now + timedelta(seconds=LEASE_SECONDS),
                started_at=run.started_at or now, error=None, failed_step=None)
    )
    if res.rowcount != 1:  # type: ignore[attr-defined]
        raise ConcurrentRun(f"run {run_id} was claimed by another process just now")
    s.flush()
    s.refresh(run)
    return run


def release(s: Session, run_id: str, *, status: str, error: str | None = None, failed_step: str | None = None) -> None:
    s.execute(
        update(RunbookRun).where(RunbookRun.id == run_id)
        .values(status=status, lease_owner=None, lease_expires_at=None, error=error, failed_step=failed_step,
                finished_at=utcnow())
    )


def set_step(s: Session, run_id: str, step: str, **values: Any) -> None:
    s.execute(update(RunbookStep).where(RunbookStep.run_id == run_id, RunbookStep.step == step).values(**values))


def step_row(s: Session, run_id: str, step: str) -> RunbookStep:
    row = s.scalar(select(RunbookStep).where(RunbookStep.run_id == run_id, RunbookStep.step == step))
    if row is None:
        raise PayopsError(f"run {run_id} has no step {step!r}")
    return row


# --- approvals -----------------------------------------------------------------------------------
# Signed approvals are written and verified by ``payops.approvals``; the read side the SOP steps share
# (``approvals_for``, ``legacy_approvals``, ``ApprovalView``) lives in ``payops.runrecords`` (Core).


def approver_ids(approvals: dict[str, ApprovalView]) -> tuple[str | None, str | None]:
    """(ops approver, finance approver) — None where that approval is missing."""
    ops, fin = approvals.get("ops"), approvals.get("finance")
    return (ops.approver_id if ops else None, fin.approver_id if fin else None)


def approval_problems(approvals: dict[str, ApprovalView], operator: str | None) -> list[FieldProblem]:
    """Dual control over who approved: one ops, one finance, distinct people, neither the operator.
    (Whether each signature is genuine is ``payops.approvals.checks``' to say.)"""
    problems: list[FieldProblem] = []
    for role in ROLES:
        if role not in approvals:
            problems.append(FieldProblem(
                f"approvals.{role}", f"no {role} approval recorded for these exact parameters "
                f"(sign one: `payops approve RUN_ID --role {role} --key ~/.ssh/id_ed25519`)"))
    ops, fin = approvals.get("ops"), approvals.get("finance")
    if ops and fin and ops.approver_id == fin.approver_id:
        problems.append(FieldProblem("approvals", f"ops and finance approvals are both by {ops.approver_id}: "
                                                   "two distinct people must approve"))
    for a in (ops, fin):
        if a and operator and a.approver_id == operator:
            problems.append(FieldProblem(f"approvals.{a.role}", "the operator cannot approve their own payout"))
    return problems


def other_hash_approvals(s: Session, subject_key: str | None, params_hash: str) -> list[str]:
    """Approvals given for a different version of the parameters for the same subject (voided)."""
    if not subject_key:
        return []
    rows = s.execute(
        select(Approval.role, Approval.params_hash).join(RunbookRun, RunbookRun.id == Approval.run_id)
        .where(RunbookRun.subject_key == subject_key, Approval.params_hash != params_hash, Approval.kind == SIGNED)
    ).all()
    return [f"{role} approval for parameters {h[:12]}…" for role, h in rows]
