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
from payops.db.models import RunbookRun, TransferIntent
from payops.errors import ConcurrentRun
from payops.runrecords import last_finished, money_moved  # Core; shared with `payops runs list`

SOP = "manual_payout"


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
