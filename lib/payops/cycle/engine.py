"""The payout cycle's database side: claim the cycle, write the plan, guard against stuck runs.

Exactly once, per cycle and per ledger payout:

- the payout run's id is derived from the cycle date and ``payout_runs.cycle_date`` is unique: two
  runs of one cycle name the same row, and only one can insert it;
- the plan (ledger payouts, skips, the earnings' allocation) is written in the same transaction as
  that row, so a cycle that exists has its plan, and an earning is allocated at most once;
- a run ``running`` under another runbook run is refused (``ConcurrentRun``); past
  ``PAYOPS_CYCLE_STUCK_MINUTES`` it is reported as stuck (``StuckRun``), never silently restarted;
- transfers (``payops.cycle.transfers``) go through ``transfer_intents`` like the manual fallback,
  so the automated cycle and a manual payout can never both pay one ledger payout.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from payops.config import Settings
from payops.cycle.plan import CyclePlan, Earning, StudioFacts, plan_cycle
from payops.cycle.policy import PayoutPolicy
from payops.cycle.runbook import CycleContext
from payops.db.models import (
    LedgerPayout,
    OpsFlag,
    PayoutRun,
    PayoutSkip,
    RunbookRun,
    Studio,
    StudioEarning,
    TransferIntent,
    utcnow,
)
from payops.errors import ConcurrentRun, FieldProblem, ParamsInvalid, StuckRun
from payops.ids import payout_run_id

DISABLE_FLAG = "payout_cycle_disabled"
CHUNK = 500


# --- the disable switch --------------------------------------------------------------------------------
def disabled_reason(s: Session, settings: Settings) -> str | None:
    """Why the automated cycle is switched off, or None."""
    if settings.payout_cycle_disabled:
        return "PAYOUT_CYCLE_DISABLED is set in the environment"
    flag = s.get(OpsFlag, DISABLE_FLAG)
    if flag is not None and flag.enabled:
        who = flag.set_by or "someone"
        return f"disabled by {who} at {flag.set_at:%Y-%m-%d %H:%M} UTC: {flag.reason or 'no reason'}"
    return None


def set_disabled(s: Session, *, disabled: bool, reason: str | None, by: str | None) -> OpsFlag:
    """``payops payout-cycle disable|enable``: the switch rehearsals use to make the cycle fail."""
    if disabled and not (reason and reason.strip()):
        raise ParamsInvalid(FieldProblem("--reason", "is required to disable the automated cycle"))
    flag = s.get(OpsFlag, DISABLE_FLAG)
    if flag is None:
        flag = OpsFlag(name=DISABLE_FLAG)
        s.add(flag)
    flag.enabled, flag.reason, flag.set_by, flag.set_at = disabled, reason, by, utcnow()
    s.flush()
    return flag


# --- reading the facts -----------------------------------------------------------------------------------
def load_facts(s: Session, cutoff: datetime) -> tuple[list[StudioFacts], list[Earning]]:
    """Every studio, and every earning not yet allocated that was earned before ``cutoff``."""
    studios = [StudioFacts(r.id, r.name, r.stripe_account_id, r.currency.upper(), bool(r.charges_enabled),
                           bool(r.payouts_enabled)) for r in s.scalars(select(Studio))]
    rows = s.execute(select(StudioEarning.id, StudioEarning.studio_id, StudioEarning.amount, StudioEarning.currency,
                            StudioEarning.earned_at)
                     .where(StudioEarning.ledger_payout_id.is_(None), StudioEarning.earned_at < cutoff))
    earnings = [Earning(i, sid, int(a), c.upper(), at if at.tzinfo else at.replace(tzinfo=UTC))
                for i, sid, a, c, at in rows]
    return studios, earnings


def compute_plan(s: Session, ctx: CycleContext) -> CyclePlan:
    studios, earnings = load_facts(s, ctx.cutoff)
    return plan_cycle(ctx.cycle_date, ctx.cutoff, studios, earnings, PayoutPolicy.from_settings(ctx.settings))


# --- claiming the cycle -------------------------------------------------------------------------------------
@dataclass
class Claim:
    run: PayoutRun | None  # None: the cycle has no row yet
    state: str  # new · resume · takeover · done
    notes: list[str] = field(default_factory=list)


def stuck_after(settings: Settings) -> timedelta:
    return timedelta(minutes=settings.payout_stuck_after_minutes)


def check_claim(s: Session, ctx: CycleContext, now: datetime) -> Claim:
    """Who may work on this cycle now. Raises ConcurrentRun or StuckRun; changes nothing."""
    run = s.get(PayoutRun, payout_run_id(ctx.cycle_date))
    if run is None:
        return Claim(None, "new")
    if run.status == "running":
        if run.runbook_run_id == ctx.run_id:
            return Claim(run, "resume", ["resuming this run's own cycle"])
        holder = s.get(RunbookRun, run.runbook_run_id) if run.runbook_run_id else None
        since = run.started_at or now
        what = (f"cycle {ctx.cycle_date} has been running since {since:%Y-%m-%d %H:%M} UTC under runbook run "
                f"{run.runbook_run_id}" + (f" ({holder.status}{': ' + holder.error if holder.error else ''})"
                                           if holder is not None else ""))
        if now - since > stuck_after(ctx.settings):
            raise StuckRun(f"STUCK: {what} — more than {ctx.settings.payout_stuck_after_minutes} min. Not restarted. "
                           f"Investigate, then `payops runs resume {run.runbook_run_id} --live` finishes it "
                           "without a second transfer")
        raise ConcurrentRun(f"{what}; this run changed nothing. If that process died, resume it with "
                            f"`payops runs resume {run.runbook_run_id} --live`")
    if run.status in ("completed", "partial"):
        return Claim(run, "done", [f"cycle {ctx.cycle_date} already ran ({run.status}, finished "
                                   f"{run.finished_at:%Y-%m-%d %H:%M} UTC): nothing new is created"
                                   if run.finished_at else f"cycle {ctx.cycle_date} already ran ({run.status})"])
    return Claim(run, "takeover", [f"cycle {ctx.cycle_date} failed earlier ({run.failure_reason or 'no reason'}); "
                                   "this run retries its ledger payouts still pending"])


def claim_and_write_plan(ctx: CycleContext, now: datetime | None = None) -> tuple[Claim, CyclePlan | None]:
    """Live: take the cycle (insert its row with the plan, resume it, or take over a failed one)."""
    now = now or utcnow()
    with ctx.session() as s:
        claim = check_claim(s, ctx, now)
        if claim.state in ("resume", "done"):
            return claim, None
        if claim.state == "takeover":
            res = s.execute(update(PayoutRun).where(PayoutRun.id == claim.run.id, PayoutRun.status == "failed")  # type: ignore[union-attr]
                            .values(status="running", runbook_run_id=ctx.run_id, started_at=now, finished_at=None,
                                    failure_reason=None))
            if res.rowcount != 1:  # type: ignore[attr-defined]
                raise ConcurrentRun(f"cycle {ctx.cycle_date} was taken over by another run meanwhile; nothing changed")
            return claim, None
        plan = compute_plan(s, ctx)
        try:
            write_plan(s, plan, now, runbook_run_id=ctx.run_id)
        except IntegrityError:
            s.rollback()
            raise ConcurrentRun(f"another run started cycle {ctx.cycle_date} at the same moment; this one changed "
                                "nothing") from None
        return claim, plan


def write_plan(s: Session, plan: CyclePlan, now: datetime, *, runbook_run_id: str | None) -> None:
    """Insert the payout run (``running``), its ledger payouts (``scheduled``) and skips, and allocate
    the earnings — in the caller's transaction. IntegrityError if the cycle already exists."""
    totals = plan.totals()
    s.add(PayoutRun(id=plan.run_id, cycle_date=plan.cycle_date, status="running", started_at=now,
                    runbook_run_id=runbook_run_id, studios_scheduled=len(plan.payouts),
                    studios_skipped=len({k.studio_id for k in plan.skips}), studios_paid=0, studios_failed=0,
                    total=sum(totals.values()) if len(totals) == 1 else 0,
                    currency=next(iter(totals)) if len(totals) == 1 else None, totals_json=json.dumps(totals)))
    s.flush()  # the unique cycle_date / primary key: a racing run fails here, before anything else
    lp_rows = [{"id": p.ledger_payout_id, "run_id": plan.run_id, "studio_id": p.studio_id, "gross": p.gross,
                "fee": p.fee, "reserve": p.reserve, "net": p.net, "currency": p.currency, "status": "scheduled",
                "created_at": now, "updated_at": now} for p in plan.payouts]
    for i in range(0, len(lp_rows), CHUNK):
        s.execute(insert(LedgerPayout), lp_rows[i:i + CHUNK])
    skip_rows = [{"payout_run_id": plan.run_id, "studio_id": k.studio_id, "gross": k.gross, "net": k.net,
                  "currency": k.currency, "code": k.code, "reason": k.reason, "created_at": now}
                 for k in plan.skips if k.code != "unknown_studio"]
    for i in range(0, len(skip_rows), CHUNK):
        s.execute(insert(PayoutSkip), skip_rows[i:i + CHUNK])
    table = StudioEarning.__table__
    alloc = [{"b_id": eid, "b_lp": p.ledger_payout_id} for p in plan.payouts for eid in p.earning_ids]
    stmt = (update(table).where(table.c.id == bindparam("b_id"), table.c.ledger_payout_id.is_(None))
            .values(ledger_payout_id=bindparam("b_lp")))
    conn = s.connection()
    for i in range(0, len(alloc), CHUNK):
        conn.execute(stmt, alloc[i:i + CHUNK])
    allocated = s.scalar(select(func.count()).select_from(StudioEarning).join(
        LedgerPayout, LedgerPayout.id == StudioEarning.ledger_payout_id).where(LedgerPayout.run_id == plan.run_id))
    if allocated != len(alloc):
        raise ConcurrentRun(f"{len(alloc) - int(allocated or 0)} earning(s) were allocated elsewhere while cycle "
                            f"{plan.cycle_date} was being planned; nothing was written — run it again")


# --- reporting ----------------------------------------------------------------------------------------------
def run_row(s: Session, ctx: CycleContext) -> PayoutRun | None:
    return s.get(PayoutRun, payout_run_id(ctx.cycle_date))


def ledger_rows(s: Session, run_id: str) -> list[dict[str, Any]]:
    """The run's ledger payouts with their studio, for tables."""
    q = (select(LedgerPayout, Studio.name, Studio.stripe_account_id).join(Studio, Studio.id == LedgerPayout.studio_id)
         .where(LedgerPayout.run_id == run_id).order_by(Studio.name, LedgerPayout.id))
    return [{"ledger_payout_id": lp.id, "studio": name, "destination": acct, "currency": lp.currency,
             "gross": lp.gross, "fee": lp.fee, "reserve": lp.reserve, "net": lp.net, "status": lp.status,
             "transfer": lp.stripe_transfer_id, "failure": lp.failure_reason} for lp, name, acct in s.execute(q)]


def held_by_manual(s: Session, payout_run: str) -> list[dict[str, Any]]:
    """The cycle's ledger payouts held by the manual fallback: a manual run's transfer intent (in progress
    or done) owns them, so the cycle did not (and will not) pay them. A manual intent Stripe refused holds
    nothing (the cycle takes it over)."""
    from payops.cycle.plan import KEY_PREFIX

    q = (select(LedgerPayout.id, Studio.name, TransferIntent.run_id, TransferIntent.status,
                TransferIntent.stripe_transfer_id)
         .join(Studio, Studio.id == LedgerPayout.studio_id)
         .join(TransferIntent, TransferIntent.ledger_payout_id == LedgerPayout.id)
         .where(LedgerPayout.run_id == payout_run, TransferIntent.status != "failed",
                ~TransferIntent.idempotency_key.startswith(KEY_PREFIX + ":"))
         .order_by(Studio.name, LedgerPayout.id))
    return [{"ledger_payout_id": lp, "studio": name, "run_id": run_id, "status": status, "transfer": tr}
            for lp, name, run_id, status, tr in s.execute(q)]


def held_note(held: list[dict[str, Any]]) -> str:
    """``1 held by the manual fallback (run …: Studio A)`` — empty when none is."""
    if not held:
        return ""
    runs = "; ".join(f"run {h['run_id']}: {h['studio']}" for h in held[:5]) + (" …" if len(held) > 5 else "")
    return f"{len(held)} held by the manual fallback ({runs})"


def stuck_runs(s: Session, settings: Settings, now: datetime | None = None) -> list[dict[str, Any]]:
    """Cycles ``running`` for longer than PAYOPS_CYCLE_STUCK_MINUTES (the pre-run check lists them)."""
    now = now or utcnow()
    limit = now - stuck_after(settings)
    rows = s.scalars(select(PayoutRun).where(PayoutRun.status == "running", PayoutRun.started_at < limit))
    return [{"cycle_date": r.cycle_date.isoformat(), "payout_run_id": r.id, "runbook_run_id": r.runbook_run_id,
             "running_for_minutes": int((now - r.started_at).total_seconds() // 60) if r.started_at else None}
            for r in rows]
