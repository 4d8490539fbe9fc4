"""Step 50 — settle. Follows the transfer to the studio's bank: transfer → destination payment →
the connected account's payout that swept it → ``paid`` (or ``failed``, reported loudly).

Polls with backoff up to a time limit; re-runnable later (``payops settle RUN_ID --wait 30m`` or
``payops runs resume RUN_ID``). Records ``settled_at`` and the timeline
detected → approved → transferred → paid against the SLA.

Reading connected-account payouts needs more than the SOP's restricted key: the platform key
(``STRIPE_SECRET_KEY``, read access is enough) is used for this step.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import stripe
from matplotlib.figure import Figure
from sqlalchemy import select, update

from payops import runstate
from payops.db.models import LedgerPayout, ManualPayout, TransferIntent, utcnow
from payops.errors import ConfigError, PaymentError, SettlementTimeout
from payops.sop.context import StepContext
from payops.stripe_api import to_payment_error, with_backoff

DEFAULT_WAIT_SECONDS = 120.0


@dataclass
class SettleResult:
    run_id: str
    dry_run: bool
    status: str  # skipped · paid · failed · waiting
    transfer_id: str | None = None
    destination_payment: str | None = None
    payout_id: str | None = None
    payout_status: str | None = None
    failure_code: str | None = None
    failure_message: str | None = None
    arrival_date: str | None = None
    timeline: dict[str, str | None] = field(default_factory=dict)
    minutes_to_transfer: float | None = None
    minutes_to_paid: float | None = None
    sla_minutes: int = 45
    within_sla: bool | None = None
    polls: int = 0
    ok: bool = True

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def timeline_frame(self) -> pd.DataFrame:
        rows = []
        start = self.timeline.get("detected")
        t0 = datetime.fromisoformat(start) if start else None
        for stage in ("detected", "approved", "transferred", "paid"):
            at = self.timeline.get(stage)
            minutes = (datetime.fromisoformat(at) - t0).total_seconds() / 60 if (at and t0) else None
            rows.append({"stage": stage, "at (UTC)": at, "minutes since detected": minutes})
        return pd.DataFrame(rows)

    def chart(self) -> Figure | None:
        """Horizontal bar of minutes per stage with the SLA line (None when nothing happened yet)."""
        df = self.timeline_frame().dropna(subset=["minutes since detected"])
        if df.empty:
            return None
        fig = Figure(figsize=(7, 2.4))
        ax = fig.subplots()
        ax.barh(df["stage"], df["minutes since detected"], color="#4c72b0")
        ax.axvline(self.sla_minutes, color="#c44e52", linestyle="--", label=f"SLA {self.sla_minutes} min")
        ax.invert_yaxis()
        ax.set_xlabel("minutes since the failure was detected")
        ax.legend(loc="lower right")
        fig.tight_layout()
        return fig


def _find_payout(client: stripe.StripeClient, account: str, destination_payment: str,
                 since: int) -> stripe.Payout | None:
    """The connected account's payout whose balance transactions include the destination payment."""
    opts = {"stripe_account": account}
    payouts = with_backoff(lambda: client.v1.payouts.list({"created": {"gte": since - 60}, "limit": 100}, opts))
    for po in payouts.auto_paging_iter():
        txns = with_backoff(lambda po=po: client.v1.balance_transactions.list({"payout": po.id, "limit": 100}, opts))
        for txn in txns.auto_paging_iter():
            if txn.source == destination_payment:
                return po
    return None


def _timeline(ctx: StepContext) -> dict[str, str | None]:
    with ctx.session() as s:
        run = ctx.run_row(s)
        approvals = runstate.approvals_for(s, ctx.params_hash)
        intent = s.get(TransferIntent, ctx.params.ledger_payout_id)
        mp = s.scalar(select(ManualPayout).where(ManualPayout.run_id == ctx.run_id))
    approved = max((a.decided_at for a in approvals.values()), default=None) if len(approvals) == 2 else None
    return {
        "detected": run.detected_at.isoformat() if run.detected_at else None,
        "approved": approved.isoformat() if approved else None,
        "transferred": intent.updated_at.isoformat() if intent and intent.status == "created" else None,
        "paid": mp.settled_at.isoformat() if mp and mp.settled_at else None,
    }


def _minutes(tl: dict[str, str | None], stage: str) -> float | None:
    if not tl.get("detected") or not tl.get(stage):
        return None
    return (datetime.fromisoformat(tl[stage]) - datetime.fromisoformat(tl["detected"])).total_seconds() / 60  # type: ignore[arg-type]


def run(ctx: StepContext, wait_seconds: float | None = None) -> SettleResult:
    res = SettleResult(ctx.run_id, ctx.dry_run, "skipped", sla_minutes=ctx.settings.sla_minutes)
    if ctx.dry_run:
        res.timeline = {"detected": None, "approved": None, "transferred": None, "paid": None}
        return res
    if not ctx.has_platform_key():
        raise ConfigError("STRIPE_SECRET_KEY is not set: following the payout on the studio's account needs "
                          "read access to connected-account payouts, which the SOP's restricted key lacks")
    with ctx.session() as s:
        intent = s.get(TransferIntent, ctx.params.ledger_payout_id)
    if intent is None or intent.run_id != ctx.run_id or not intent.stripe_transfer_id:
        raise PaymentError("no transfer recorded for this run; nothing to settle")
    client = ctx.stripe("platform")
    tr = with_backoff(lambda: client.v1.transfers.retrieve(intent.stripe_transfer_id))  # type: ignore[arg-type]
    res.transfer_id = tr.id
    res.destination_payment = tr.destination_payment if isinstance(tr.destination_payment, str) else \
        getattr(tr.destination_payment, "id", None)
    if not res.destination_payment:
        raise PaymentError(f"transfer {tr.id} has no destination payment to follow")
    account = tr.destination if isinstance(tr.destination, str) else tr.destination.id  # type: ignore[union-attr]

    limit = DEFAULT_WAIT_SECONDS if wait_seconds is None else wait_seconds
    deadline = time.monotonic() + limit
    delay = 0.5
    payout: stripe.Payout | None = None
    while True:
        res.polls += 1
        try:
            payout = _find_payout(client, account, res.destination_payment, tr.created)
        except stripe.StripeError as exc:
            raise to_payment_error(exc) from None
        if payout is not None and payout.status in ("paid", "failed", "canceled"):
            break
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        time.sleep(min(delay, remaining))
        delay = min(delay * 1.6, 15.0)

    if payout is not None:
        res.payout_id, res.payout_status = payout.id, payout.status
        res.failure_code, res.failure_message = payout.failure_code, payout.failure_message
        res.arrival_date = datetime.fromtimestamp(payout.arrival_date, UTC).date().isoformat()
    now = utcnow()
    with ctx.session() as s:
        if res.payout_status == "paid":
            s.execute(update(ManualPayout).where(ManualPayout.run_id == ctx.run_id, ManualPayout.settled_at.is_(None))
                      .values(status="settled", settled_at=now))
            s.execute(update(LedgerPayout).where(LedgerPayout.id == ctx.params.ledger_payout_id)
                      .values(status="paid", updated_at=now))
        elif res.payout_status in ("failed", "canceled"):
            s.execute(update(ManualPayout).where(ManualPayout.run_id == ctx.run_id).values(status="failed"))
            s.execute(update(LedgerPayout).where(LedgerPayout.id == ctx.params.ledger_payout_id)
                      .values(status="failed", updated_at=now))
    res.timeline = _timeline(ctx)
    res.minutes_to_transfer = _minutes(res.timeline, "transferred")
    res.minutes_to_paid = _minutes(res.timeline, "paid")
    if res.minutes_to_paid is not None:
        res.within_sla = res.minutes_to_paid <= res.sla_minutes
    if res.payout_status == "paid":
        res.status = "paid"
        return res
    if res.payout_status in ("failed", "canceled"):
        res.status, res.ok = "failed", False
        return res
    res.status, res.ok = "waiting", False
    return res


def raise_if_unsettled(res: SettleResult) -> None:
    """Loud failure for a failed bank payout; SettlementTimeout while still on its way."""
    if res.status == "failed":
        raise PaymentError(
            f"STUDIO BANK PAYOUT FAILED: {res.payout_id} {res.payout_status} — {res.failure_code}: "
            f"{res.failure_message}. The transfer {res.transfer_id} reached the studio's Stripe balance but not "
            "their bank: escalate to Payments Engineering", code=res.failure_code)
    if res.status == "waiting":
        raise SettlementTimeout(
            f"transfer {res.transfer_id} not paid out yet (payout {res.payout_id or 'not created yet'}, "
            f"status {res.payout_status or '—'}); resume later with `payops settle {res.run_id} --wait 30m`")
