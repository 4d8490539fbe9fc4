"""Crash recovery that needs no run id: who holds a ledger payout, how far it got, what to do next.

After a crash (SIGKILL, power cut) a live manual payout run stays marked ``running`` with a lease
nobody renews. The operator's natural moves — repeating the same approved live command, or
``payops runs resume DRY_RUN_ID --live`` — ask :func:`holder_of` first: the interrupted live run
with the same parameters (and so the same approvals, re-verified) is resumed instead of a new run
being started; anything else holding the payout is refused before anything is written, naming the
run and the exact command to run.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from payops import runstate
from payops.db.models import ManualPayout, RunbookRun, TransferIntent
from payops.errors import ConcurrentRun

SOP = "manual_payout"


def last_finished(s: Session, run_id: str) -> str | None:
    """The last step that succeeded, in runbook order (None: none yet)."""
    done = [x.step for x in runstate.steps_of(s, run_id) if x.status == "succeeded"]
    return done[-1] if done else None


def money_moved(s: Session, run: RunbookRun) -> str:
    """Did this run move money? ``yes (tr_…)`` · ``unknown (…)`` · ``no`` · ``—`` (not a money-moving run)."""
    if run.sop != SOP or run.mode == "dry-run":
        return "—"
    manual = s.scalar(select(ManualPayout).where(ManualPayout.run_id == run.id))
    if manual is not None and manual.stripe_transfer_id:
        return f"yes ({manual.stripe_transfer_id})"
    intent = s.scalar(select(TransferIntent).where(TransferIntent.run_id == run.id))
    if intent is None:
        return "no"
    if intent.status == "created":
        return f"yes ({intent.stripe_transfer_id})"
    if intent.status == "failed":
        return "no (Stripe refused the transfer)"
    if intent.attempts > 0:
        return "unknown (Stripe may have it: resuming looks it up before sending)"
    return "no"


@dataclass(frozen=True)
class Holder:
    """A live run that holds a ledger payout and has not finished."""

    run_id: str
    ledger_payout_id: str
    status: str  # as shown: interrupted · running · failed · created
    mode: str
    params_hash: str
    operator: str | None
    alive: bool
    lease_owner: str | None
    lease_expires_at: datetime | None
    last_finished: str | None
    money_moved: str

    def describe(self) -> str:
        return (f"run {self.run_id} ({self.status}, last finished {self.last_finished or 'no step'}, "
                f"money moved: {self.money_moved})")


def _holder(s: Session, run: RunbookRun) -> Holder:
    return Holder(run.id, run.subject_key or "", runstate.shown_status(run), run.mode, run.params_hash, run.operator,
                  runstate.lease_alive(run), run.lease_owner, run.lease_expires_at, last_finished(s, run.id),
                  money_moved(s, run))


def holder_of(s: Session, ledger_payout_id: str) -> Holder | None:
    """The unfinished live run holding this ledger payout: the run owning its transfer intent (unless
    Stripe refused that transfer — then nobody holds it), else the newest live run still marked running
    (crashed before its transfer step). None when no unfinished run holds it."""
    intent = s.get(TransferIntent, ledger_payout_id)
    if intent is not None and intent.status != "failed":
        run = s.get(RunbookRun, intent.run_id)
        if run is not None and run.status != "succeeded":
            return _holder(s, run)
        return None  # paid by a finished run: verify says so, naming it
    q = select(RunbookRun).where(
        RunbookRun.sop == SOP, RunbookRun.subject_key == ledger_payout_id, RunbookRun.mode != "dry-run",
        RunbookRun.status == "running")
    if intent is not None:  # the run whose transfer Stripe refused holds nothing (a new live run takes over)
        q = q.where(RunbookRun.id != intent.run_id)
    run = s.scalar(q.order_by(RunbookRun.created_at.desc()).limit(1))
    return _holder(s, run) if run is not None else None


def check_resumable(h: Holder, *, params_hash: str, operator: str | None) -> None:
    """Refuse (ConcurrentRun, nothing written) unless ``h`` is an interrupted run of these exact
    parameters by this operator — the one case where the command resumes it."""
    lease = (f" ({h.lease_owner}" + (f", lease until {h.lease_expires_at:%H:%M:%S}Z)" if h.lease_expires_at
                                    else ")")) if h.lease_owner else ""
    if h.alive:
        raise ConcurrentRun(
            f"{h.describe()} holds this ledger payout ({h.ledger_payout_id}) and is still being executed{lease}. "
            "Nothing was started; "
            f"wait for it and check with `payops runs show {h.run_id}`")
    if operator != h.operator:
        raise ConcurrentRun(
            f"{h.describe()} holds this ledger payout ({h.ledger_payout_id}) and belongs to operator {h.operator}, "
            f"not {operator}. Nothing was started; its operator finishes it with `payops runs resume {h.run_id}`")
    if params_hash != h.params_hash:
        raise ConcurrentRun(
            f"{h.describe()} holds this ledger payout ({h.ledger_payout_id}) with other parameters (sha256 "
            f"{h.params_hash[:12]}…; yours {params_hash[:12]}…). Nothing was started; finish it with "
            f"`payops runs resume {h.run_id}` (`payops runs show {h.run_id}` shows its parameters)")
