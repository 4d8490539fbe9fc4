"""Step 20 of the cycle: one Stripe transfer per ledger payout, exactly once.

1. Guards: a finished cycle does nothing; the disable switch and an insufficient platform balance
   fail the cycle on purpose, leaving its ledger payouts ``pending`` for the manual fallback.
2. Write ahead: every ledger payout to pay gets its ``transfer_intents`` row (primary key = ledger
   payout id) *committed before any call* — the same lock the manual fallback takes, so the two can
   never both pay one ledger payout. The idempotency key is derived from the ledger payout only
   (``payout-cycle:{ledger_payout_id}``): a retry, a resume or a re-run sends the same key.
3. Calls go out ``PAYOPS_CYCLE_CONCURRENCY`` at a time (429/5xx/connection errors retried with the
   same key); results are committed in batches. A process killed anywhere leaves intents that a
   resume re-sends with the same key (Stripe replays the original within 24 h) or, for older ones,
   finds by ``transfer_group`` before sending.
4. Each ledger payout ends ``transferred`` (with ``tr_…`` and the destination payment) or ``failed``
   with Stripe's code and message; the run ends ``completed`` or ``partial``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import stripe
from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from payops.config import Settings
from payops.cycle import engine
from payops.cycle.plan import KEY_PREFIX, idempotency_key, transfer_request
from payops.cycle.runbook import CycleContext
from payops.db.models import LedgerPayout, PayoutRun, Studio, TransferIntent, utcnow
from payops.errors import ConcurrentRun, CycleDisabled, PaymentError, PreconditionFailed
from payops.faultpoints import maybe_kill
from payops.ids import payout_run_id
from payops.money import Money
from payops.stripe_api import make_client, to_payment_error, with_backoff

REPLAY_WINDOW = timedelta(hours=23)  # Stripe keeps idempotency keys 24 h; look up before re-sending older ones
FLUSH_EVERY = 200


@dataclass
class Item:
    ledger_payout_id: str
    studio_id: str
    studio: str
    destination: str
    net: int
    currency: str
    payload: dict[str, Any]
    lookup_first: bool = False  # an old intent: find it by transfer_group before sending again


@dataclass
class Outcome:
    item: Item
    status: str  # created · failed · unknown
    transfer: dict[str, Any] | None = None
    request_id: str | None = None
    error: PaymentError | None = None


@dataclass
class TransferReport:
    cycle_date: str
    dry_run: bool
    status: str  # dry-run · done · completed · partial
    created: int = 0
    adopted: int = 0
    already: int = 0
    failed: list[dict[str, Any]] = field(default_factory=list)
    held_elsewhere: list[dict[str, Any]] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)  # dry run: what a live run would send
    notes: list[str] = field(default_factory=list)
    ok: bool = True

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("cycle_date", "dry_run", "status", "created", "adopted", "already",
                                                "failed", "held_elsewhere", "notes", "ok")} | {
            "requests": self.requests[:50], "requests_total": len(self.requests)}

    def summary(self) -> str:
        if self.dry_run:
            return f"DRY RUN — no transfer was created; a live run would send {len(self.requests)} transfer(s)."
        held = engine.held_note(self.held_elsewhere) or "none held by the manual fallback"
        return (f"cycle {self.cycle_date}: {self.status} — {self.created} created, {self.adopted} adopted, "
                f"{self.already} already done, {len(self.failed)} failed, {held}")


# --- collecting the work ----------------------------------------------------------------------------------
def _items(s: Session, ctx: CycleContext, statuses: Iterable[str]) -> list[Item]:
    rid = payout_run_id(ctx.cycle_date)
    q = (select(LedgerPayout.id, LedgerPayout.studio_id, Studio.name, Studio.stripe_account_id, LedgerPayout.net,
                LedgerPayout.currency)
         .join(Studio, Studio.id == LedgerPayout.studio_id)
         .where(LedgerPayout.run_id == rid, LedgerPayout.status.in_(list(statuses))).order_by(LedgerPayout.id))
    return [Item(lp, sid, name, acct or "", int(net), cur, transfer_request(
        ledger_payout_id=lp, run_id=rid, studio_id=sid, cycle_date=ctx.cycle_date, net=int(net), currency=cur,
        destination=acct or "")) for lp, sid, name, acct, net, cur in s.execute(q)]


def _intents(s: Session, ids: list[str]) -> dict[str, TransferIntent]:
    out: dict[str, TransferIntent] = {}
    for i in range(0, len(ids), engine.CHUNK):
        chunk = ids[i:i + engine.CHUNK]
        for row in s.scalars(select(TransferIntent).where(TransferIntent.ledger_payout_id.in_(chunk))):
            out[row.ledger_payout_id] = row
    return out


def _claim_intents(ctx: CycleContext, items: list[Item], report: TransferReport) -> list[Item]:
    """Commit an intent for every item this run may send; return those (in order)."""
    now = utcnow()
    with ctx.session() as s:
        existing = _intents(s, [it.ledger_payout_id for it in items])
        fresh: list[Item] = []
        resend: list[Item] = []
        taken: list[Item] = []
        for it in items:
            row = existing.get(it.ledger_payout_id)
            if row is None:
                fresh.append(it)
            elif not row.idempotency_key.startswith(KEY_PREFIX + ":") and row.status == "failed":
                # the manual fallback's transfer was refused outright by Stripe: no money moved, nothing
                # holds the payout any more — take it over (compare-and-set: a new manual run may be faster)
                res = s.execute(update(TransferIntent).where(
                    TransferIntent.ledger_payout_id == it.ledger_payout_id, TransferIntent.status == "failed",
                    TransferIntent.idempotency_key == row.idempotency_key).values(
                    run_id=ctx.run_id, idempotency_key=idempotency_key(it.ledger_payout_id), amount=it.net,
                    currency=it.currency.upper(), destination=it.destination, status="intent", attempts=1,
                    error=None, stripe_transfer_id=None, stripe_request_id=None, updated_at=now))
                if res.rowcount == 1:  # type: ignore[attr-defined]
                    taken.append(it)
                else:
                    report.held_elsewhere.append({"ledger_payout_id": it.ledger_payout_id, "studio": it.studio,
                                                  "run_id": row.run_id, "status": row.status})
            elif not row.idempotency_key.startswith(KEY_PREFIX + ":"):
                report.held_elsewhere.append({"ledger_payout_id": it.ledger_payout_id, "studio": it.studio,
                                              "run_id": row.run_id, "status": row.status})
            elif row.status == "created":
                report.already += 1
                _record(s, [Outcome(it, "created", {"id": row.stripe_transfer_id}, row.stripe_request_id)],
                        ctx.run_id, keep_destination_payment=True)
            elif row.status == "failed":
                report.failed.append({"ledger_payout_id": it.ledger_payout_id, "studio": it.studio,
                                      "error": row.error or "failed earlier"})
            else:
                it.lookup_first = now - row.updated_at > REPLAY_WINDOW
                resend.append(it)
        rows = [{"ledger_payout_id": it.ledger_payout_id, "run_id": ctx.run_id,
                 "idempotency_key": idempotency_key(it.ledger_payout_id), "amount": it.net,
                 "currency": it.currency.upper(), "destination": it.destination, "status": "intent", "attempts": 1,
                 "created_at": now, "updated_at": now} for it in fresh]
        try:
            for i in range(0, len(rows), engine.CHUNK):
                s.execute(insert(TransferIntent), rows[i:i + engine.CHUNK])
        except IntegrityError:
            s.rollback()
            raise ConcurrentRun(f"another run (the manual fallback?) claimed one of cycle {ctx.cycle_date}'s ledger "
                                f"payouts meanwhile; nothing was sent — `payops runs resume {ctx.run_id} --live` "
                                "continues without it") from None
        if resend:
            table = TransferIntent.__table__
            s.connection().execute(
                update(table).where(table.c.ledger_payout_id == bindparam("b_lp"))
                .values(run_id=ctx.run_id, attempts=table.c.attempts + 1, updated_at=now),
                [{"b_lp": it.ledger_payout_id} for it in resend])
        if resend:
            report.notes.append(f"{len(resend)} transfer(s) from an interrupted attempt re-sent with their original "
                                "idempotency keys")
        if taken:
            report.notes.append(f"{len(taken)} ledger payout(s) taken over from a manual fallback run whose transfer "
                                "Stripe refused (no money had moved)")
        if report.held_elsewhere:
            report.notes.append(engine.held_note(report.held_elsewhere).capitalize() + ": not paid by this cycle")
    return fresh + taken + resend


# --- sending -------------------------------------------------------------------------------------------------
def _definitive(exc: stripe.StripeError) -> bool:
    status = exc.http_status or 0
    return not isinstance(exc, stripe.APIConnectionError) and 400 <= status < 500 and status not in (409, 429)


def _lookup(client: stripe.StripeClient, it: Item) -> dict[str, Any] | None:
    page = with_backoff(lambda: client.v1.transfers.list({"transfer_group": it.ledger_payout_id, "limit": 100}))
    for t in page.auto_paging_iter():
        meta = t.metadata.to_dict() if t.metadata else {}
        if meta.get("source") == "automated" and meta.get("ledger_payout_id") == it.ledger_payout_id:
            return t.to_dict()
    return None


def _sender(settings: Settings) -> Callable[[Item], Outcome]:
    local = threading.local()

    def send(it: Item) -> Outcome:
        client = getattr(local, "client", None)
        if client is None:
            client = local.client = make_client(settings=settings, purpose="platform")
        try:
            if it.lookup_first:
                found = _lookup(client, it)
                if found is not None:
                    return Outcome(it, "created", found, None)
            tr = with_backoff(lambda: client.v1.transfers.create(
                it.payload, options={"idempotency_key": idempotency_key(it.ledger_payout_id)}),
                attempts=settings.stripe_max_network_retries + 1)
        except stripe.StripeError as exc:
            return Outcome(it, "failed" if _definitive(exc) else "unknown", error=to_payment_error(exc))
        rid = tr.last_response.request_id if tr.last_response else None
        return Outcome(it, "created", tr.to_dict(), rid)

    return send


def _record(s: Session, outcomes: list[Outcome], run_id: str, *, keep_destination_payment: bool = False) -> None:
    """Commit a batch of results to transfer_intents and ledger_payouts."""
    now = utcnow()
    ti, lp = TransferIntent.__table__, LedgerPayout.__table__
    conn = s.connection()
    created = [o for o in outcomes if o.status == "created"]
    if created:
        conn.execute(update(ti).where(ti.c.ledger_payout_id == bindparam("b_lp")).values(
            status="created", stripe_transfer_id=bindparam("b_tr"), stripe_request_id=bindparam("b_req"),
            error=None, updated_at=now),
            [{"b_lp": o.item.ledger_payout_id, "b_tr": (o.transfer or {})["id"], "b_req": o.request_id}
             for o in created])
        values: dict[str, Any] = {"status": "transferred", "stripe_transfer_id": bindparam("b_tr"),
                                  "failure_code": None, "failure_reason": None, "updated_at": now}
        if not keep_destination_payment:
            values["stripe_destination_payment_id"] = bindparam("b_py")
        conn.execute(update(lp).where(lp.c.id == bindparam("b_lp")).values(**values),
                     [{"b_lp": o.item.ledger_payout_id, "b_tr": (o.transfer or {})["id"],
                       "b_py": (o.transfer or {}).get("destination_payment")} for o in created])
    failed = [o for o in outcomes if o.status in ("failed", "unknown")]
    if failed:
        conn.execute(update(ti).where(ti.c.ledger_payout_id == bindparam("b_lp")).values(
            status=bindparam("b_status"), error=bindparam("b_err"), updated_at=now),
            [{"b_lp": o.item.ledger_payout_id, "b_status": "failed" if o.status == "failed" else "intent",
              "b_err": json.dumps(o.error.as_dict() if o.error else {})} for o in failed])
    definitive = [o for o in outcomes if o.status == "failed"]
    if definitive:
        conn.execute(update(lp).where(lp.c.id == bindparam("b_lp")).values(
            status="failed", failure_code=bindparam("b_code"), failure_reason=bindparam("b_reason"), updated_at=now),
            [{"b_lp": o.item.ledger_payout_id, "b_code": (o.error.code if o.error else None) or "transfer_failed",
              "b_reason": str(o.error) if o.error else "Stripe refused the transfer"} for o in definitive])


# --- the step -------------------------------------------------------------------------------------------------
def _fail_cycle(ctx: CycleContext, reason: str) -> int:
    """Mark the cycle failed and its unpaid ledger payouts pending (the manual fallback's work list)."""
    with ctx.session() as s:
        rid = payout_run_id(ctx.cycle_date)
        res = s.execute(update(LedgerPayout).where(LedgerPayout.run_id == rid, LedgerPayout.status == "scheduled")
                        .values(status="pending", updated_at=utcnow()))
        s.execute(update(PayoutRun).where(PayoutRun.id == rid).values(status="failed", failure_reason=reason,
                                                                        finished_at=utcnow()))
        return int(res.rowcount or 0)  # type: ignore[attr-defined]


def alert(ctx: CycleContext, text: str) -> str:
    """Post ``text`` to Slack if configured; returns what happened (delivery errors are raised)."""
    from payops.notify.slack import post_text

    if not post_text(ctx.settings, text):
        return "Slack not configured (PAYOPS_SLACK_WEBHOOK_URL): no alert sent"
    return f"alert posted to {ctx.settings.slack_channel}"


def _balance_shortfalls(ctx: CycleContext, items: list[Item]) -> list[str]:
    need: dict[str, int] = {}
    for it in items:
        need[it.currency.upper()] = need.get(it.currency.upper(), 0) + it.net
    if not need:
        return []
    client = ctx.stripe("platform")
    bal = with_backoff(lambda: client.v1.balance.retrieve())
    have = {b.currency.upper(): int(b.amount) for b in bal.available}
    return [f"need {Money(n, c).format()}, available {Money(have.get(c, 0), c).format()}"
            for c, n in sorted(need.items()) if have.get(c, 0) < n]


def run(ctx: CycleContext, progress: Callable[[int], Any] | None = None,
        total: Callable[[int], Any] | None = None) -> TransferReport:
    report = TransferReport(ctx.cycle_date.isoformat(), ctx.dry_run, "dry-run")
    with ctx.session() as s:
        run_row = engine.run_row(s, ctx)
        if ctx.dry_run:
            if run_row is None:
                plan = engine.compute_plan(s, ctx)
                report.requests = [transfer_request(
                    ledger_payout_id=p.ledger_payout_id, run_id=plan.run_id, studio_id=p.studio_id,
                    cycle_date=ctx.cycle_date, net=p.net, currency=p.currency, destination=p.destination)
                    | {"idempotency_key": idempotency_key(p.ledger_payout_id)} for p in plan.payouts]
            else:
                report.requests = [it.payload | {"idempotency_key": idempotency_key(it.ledger_payout_id)}
                                   for it in _items(s, ctx, ("scheduled", "pending"))]
            return report
        if run_row is None:
            raise PreconditionFailed(f"cycle {ctx.cycle_date} has no payout run: step 10-plan did not write it")
        if run_row.status in ("completed", "partial"):
            report.status = "done"
            report.notes.append(f"cycle {ctx.cycle_date} already finished ({run_row.status}): nothing sent")
            return report
        items = _items(s, ctx, ("scheduled", "pending"))
        disabled = engine.disabled_reason(s, ctx.settings)
    if disabled:
        pending = _fail_cycle(ctx, f"automated payouts disabled: {disabled}")
        sent = alert(ctx, f":rotating_light: Automated payout cycle {ctx.cycle_date} did not run — {disabled}. "
                           f"{pending} ledger payout(s) left pending for the manual fallback SOP.")
        raise CycleDisabled(f"cycle {ctx.cycle_date} failed on purpose — {disabled}; {pending} ledger payout(s) "
                            f"left pending for the manual fallback ({sent})")
    shortfalls = _balance_shortfalls(ctx, items)
    if shortfalls:
        pending = _fail_cycle(ctx, "insufficient platform balance: " + "; ".join(shortfalls))
        sent = alert(ctx, f":rotating_light: Payout cycle {ctx.cycle_date} stopped: insufficient platform balance "
                           f"({'; '.join(shortfalls)}). {pending} ledger payout(s) pending.")
        raise PreconditionFailed(f"insufficient platform balance for cycle {ctx.cycle_date}: {'; '.join(shortfalls)}; "
                                 f"no transfer was sent, {pending} ledger payout(s) left pending ({sent})")
    work = _claim_intents(ctx, items, report)
    if total:
        total(len(work))
    maybe_kill("cycle:after-intents")
    unknown = _send_all(ctx, work, report, progress)
    return _finish(ctx, report, unknown)


def _send_all(ctx: CycleContext, work: list[Item], report: TransferReport,
              progress: Callable[[int], Any] | None) -> list[Outcome]:
    send = _sender(ctx.settings)
    unknown: list[Outcome] = []
    buffer: list[Outcome] = []

    def flush() -> None:
        if buffer:
            with ctx.session() as s:
                _record(s, buffer, ctx.run_id)
            buffer.clear()

    with ThreadPoolExecutor(max_workers=ctx.settings.payout_cycle_concurrency) as pool:
        futures = [pool.submit(send, it) for it in work]
        for n, fut in enumerate(as_completed(futures), 1):
            out = fut.result()
            if n == 1:
                maybe_kill("cycle:after-first-call")  # Stripe has it; we have not recorded it
            buffer.append(out)
            if out.status == "created":
                report.created += 1
            elif out.status == "failed":
                report.failed.append({"ledger_payout_id": out.item.ledger_payout_id, "studio": out.item.studio,
                                      "error": str(out.error), "code": out.error.code if out.error else None})
            else:
                unknown.append(out)
            if len(buffer) >= FLUSH_EVERY:
                flush()
            if progress:
                progress(1)
    flush()
    return unknown


def _finish(ctx: CycleContext, report: TransferReport, unknown: list[Outcome]) -> TransferReport:
    rid = payout_run_id(ctx.cycle_date)
    if unknown:
        report.ok = False
        first = unknown[0].error
        raise PaymentError(f"{len(unknown)} transfer(s) of cycle {ctx.cycle_date} have an unknown outcome after "
                           f"retries (first: {first}); `payops runs resume {ctx.run_id} --live` re-sends them with "
                           "the same idempotency keys — no second transfer can result")
    with ctx.session() as s:
        rows = s.execute(select(LedgerPayout.status, LedgerPayout.net, LedgerPayout.currency)
                         .where(LedgerPayout.run_id == rid)).all()
        paid = [(n, c) for st, n, c in rows if st in ("transferred", "paid")]
        failed = sum(1 for st, _, _ in rows if st == "failed")
        totals: dict[str, int] = {}
        for n, c in paid:
            totals[c] = totals.get(c, 0) + int(n)
        status = "partial" if failed else "completed"
        held = engine.held_by_manual(s, rid)
        report.status = f"{status}, {engine.held_note(held)}" if held else status
        s.execute(update(PayoutRun).where(PayoutRun.id == rid).values(
            status=status, finished_at=utcnow(), studios_paid=len(paid), studios_failed=failed,
            totals_json=json.dumps(dict(sorted(totals.items()))),
            total=sum(totals.values()) if len(totals) == 1 else 0,
            currency=next(iter(totals)) if len(totals) == 1 else None))
    return report

