"""Step 20 — transfer. Exactly once, or not at all.

Dry run: print the exact payload and metadata and stop. Live:

1. claim the ledger payout in ``transfer_intents`` (primary key = ledger payout id: a second run
   for the same ledger payout is refused by the database, not by a file lock) and commit the intent;
2. if an earlier attempt of this run may have reached Stripe, look the transfer up by
   ``transfer_group`` and adopt it (covers a lost reply even after Stripe's 24-hour idempotency window);
3. otherwise create it with the derived idempotency key, retrying 429/5xx/connection errors with
   the same key;
4. commit the result (``tr_…``, request id) and mark the ledger payout ``manual``.

A process killed anywhere leaves a state that resuming finishes without a second transfer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import stripe
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError

from payops import runstate
from payops.approvals.checks import check_run
from payops.db.models import LedgerPayout, TransferIntent, utcnow
from payops.errors import ApprovalMissing, ConcurrentRun, PaymentError
from payops.faultpoints import maybe_kill
from payops.sop.context import StepContext, dumps
from payops.stripe_api import to_payment_error, with_backoff


@dataclass
class TransferResult:
    run_id: str
    dry_run: bool
    payload: dict[str, Any]
    idempotency_key: str
    status: str  # dry-run · created · adopted · already-created
    transfer_id: str | None = None
    request_id: str | None = None
    response: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)
    ok: bool = True

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("run_id", "dry_run", "payload", "idempotency_key", "status",
                                                "transfer_id", "request_id", "notes", "ok")}

    def summary(self) -> str:
        if self.dry_run:
            return "DRY RUN — no transfer was created. This is the exact request a live run sends."
        return f"Transfer {self.transfer_id} ({self.status}); Stripe request {self.request_id or '—'}"


def build_payload(ctx: StepContext) -> dict[str, Any]:
    p = ctx.params
    with ctx.session() as s:
        approvals = runstate.approvals_for(s, ctx.params_hash)
    money = p.money
    ops_id, finance_id = runstate.approver_ids(approvals)
    metadata = {
        "incident_id": p.incident_id,
        "studio_id": p.studio_id,
        "ledger_payout_id": p.ledger_payout_id,
        "reason": p.reason[:500],
        "reserve_after": p.reserve_after,
        "run_id": ctx.run_id,
        "approver_ops_id": ops_id or "",  # Stripe metadata values are strings
        "approver_finance_id": finance_id or "",
        "operator": ctx.operator or "",
        "is_rehearsal": "true" if p.is_rehearsal else "false",
        "source": "payops-manual-fallback",
    }
    return {
        "amount": money.amount,
        "currency": money.stripe_currency,
        "destination": p.destination_account,
        "transfer_group": p.ledger_payout_id,
        "description": f"Manual payout {p.incident_id} for ledger payout {p.ledger_payout_id}",
        "metadata": metadata,
    }


def _claim_intent(ctx: StepContext, payload: dict[str, Any]) -> TransferIntent:
    """Insert or take over the ledger payout's intent row; refuse if another run holds it."""
    lp_id = ctx.params.ledger_payout_id
    for _ in range(3):
        with ctx.session() as s:
            row = s.get(TransferIntent, lp_id)
            if row is None:
                row = TransferIntent(
                    ledger_payout_id=lp_id, run_id=ctx.run_id, idempotency_key=ctx.idempotency_key,
                    amount=payload["amount"], currency=payload["currency"].upper(),
                    destination=payload["destination"], status="intent", attempts=0,
                )
                s.add(row)
                try:
                    s.flush()
                except IntegrityError:
                    s.rollback()
                    continue  # someone else inserted first: look again
                return row
            if row.run_id == ctx.run_id:
                return row
            if row.status == "failed":  # Stripe refused the earlier run: no money moved, take over
                res = s.execute(
                    update(TransferIntent)
                    .where(TransferIntent.ledger_payout_id == lp_id, TransferIntent.run_id == row.run_id,
                           TransferIntent.status == "failed")
                    .values(run_id=ctx.run_id, idempotency_key=ctx.idempotency_key, status="intent", attempts=0,
                            error=None, amount=payload["amount"], currency=payload["currency"].upper(),
                            destination=payload["destination"], updated_at=utcnow())
                )
                if res.rowcount == 1:  # type: ignore[attr-defined]
                    s.flush()
                    s.refresh(row)
                    return row
                continue
            raise ConcurrentRun(
                f"ledger payout {lp_id} is already being paid by run {row.run_id} "
                f"(transfer {row.status}{' ' + row.stripe_transfer_id if row.stripe_transfer_id else ''}); "
                "this run made no transfer"
            )
    raise ConcurrentRun(f"could not claim ledger payout {lp_id}: it changed hands repeatedly")


def _find_existing(ctx: StepContext) -> stripe.Transfer | None:
    client = ctx.stripe()
    page = with_backoff(lambda: client.v1.transfers.list(
        {"transfer_group": ctx.params.ledger_payout_id, "limit": 100}))
    for t in page.auto_paging_iter():
        if (t.metadata.to_dict() if t.metadata else {}).get("run_id") == ctx.run_id:
            return t
    return None


def _finish(ctx: StepContext, tr: stripe.Transfer, status: str, request_id: str | None) -> TransferResult:
    with ctx.session() as s:
        s.execute(update(TransferIntent).where(TransferIntent.ledger_payout_id == ctx.params.ledger_payout_id)
                  .values(status="created", stripe_transfer_id=tr.id, stripe_request_id=request_id,
                          updated_at=utcnow()))
        s.execute(update(LedgerPayout).where(LedgerPayout.id == ctx.params.ledger_payout_id)
                  .values(status="manual", stripe_transfer_id=tr.id, updated_at=utcnow()))
    return TransferResult(ctx.run_id, False, build_payload(ctx), ctx.idempotency_key, status, tr.id, request_id,
                          tr.to_dict())


def run(ctx: StepContext) -> TransferResult:
    payload = build_payload(ctx)
    if ctx.dry_run:
        res = TransferResult(ctx.run_id, True, payload, ctx.idempotency_key, "dry-run")
        ctx.write_artifact("stripe/transfer_request.json", {"payload": payload, "idempotency_key": ctx.idempotency_key})
        return res

    # defence in depth: verify checked these, but a live transfer never goes out without them — every
    # signature (ops, finance, the operator's go-live) verified again against the roster
    with ctx.session() as s:
        state = check_run(s, run_id=ctx.run_id, settings=ctx.settings, require_golive=True)
    problems = state.problems + state.operator_problems
    if problems:
        raise ApprovalMissing("; ".join(str(p) for p in problems))

    ctx.write_artifact("stripe/transfer_request.json", {"payload": payload, "idempotency_key": ctx.idempotency_key})
    intent = _claim_intent(ctx, payload)
    if intent.status == "created" and intent.stripe_transfer_id:
        tr = with_backoff(lambda: ctx.stripe().v1.transfers.retrieve(intent.stripe_transfer_id))  # type: ignore[arg-type]
        result = _finish(ctx, tr, "already-created", intent.stripe_request_id)
        result.notes.append("this run had already created the transfer; nothing sent again")
        ctx.write_artifact("stripe/transfer.json", result.response or {})
        return result

    notes: list[str] = []
    if intent.attempts > 0:  # an earlier attempt may have reached Stripe: look before sending again
        existing = _find_existing(ctx)
        if existing is not None:
            result = _finish(ctx, existing, "adopted", None)
            result.notes.append(f"found {existing.id} created by an earlier attempt of this run; adopted it")
            ctx.write_artifact("stripe/transfer.json", result.response or {})
            return result
        notes.append(f"{intent.attempts} earlier attempt(s) left no transfer in Stripe; sending with the same key")

    with ctx.session() as s:
        s.execute(update(TransferIntent).where(TransferIntent.ledger_payout_id == intent.ledger_payout_id)
                  .values(attempts=TransferIntent.attempts + 1, updated_at=utcnow()))

    def on_retry(attempt: int, exc: BaseException, delay: float) -> None:
        notes.append(f"attempt {attempt}: {type(exc).__name__} — retrying with the same key in {delay:.1f}s")
        print(notes[-1])

    client = ctx.stripe()
    maybe_kill("transfer:before-call")
    try:
        tr = with_backoff(
            lambda: client.v1.transfers.create(payload, options={"idempotency_key": intent.idempotency_key}),
            attempts=ctx.settings.stripe_max_network_retries + 1, on_retry=on_retry,
        )
    except stripe.StripeError as exc:
        err = to_payment_error(exc)
        definitive = not isinstance(exc, stripe.APIConnectionError) and (exc.http_status or 0) in range(400, 500) \
            and (exc.http_status or 0) not in (409, 429)
        with ctx.session() as s:
            s.execute(update(TransferIntent).where(TransferIntent.ledger_payout_id == intent.ledger_payout_id)
                      .values(status="failed" if definitive else "intent", error=dumps(err.as_dict()),
                              updated_at=utcnow()))
        ctx.write_artifact("stripe/transfer_error.json", err.as_dict())
        if not definitive:
            raise PaymentError(f"outcome unknown after retries ({err}); `payops runs resume {ctx.run_id} --live` "
                               "will look the transfer up before sending again", stripe_type=err.stripe_type,
                               code=err.code, request_id=err.request_id, http_status=err.http_status) from None
        raise err from None
    maybe_kill("transfer:after-call")  # Stripe has the transfer; we have not recorded it yet
    request_id = tr.last_response.request_id if tr.last_response else None
    result = _finish(ctx, tr, "created", request_id)
    result.notes.extend(notes)
    ctx.write_artifact("stripe/transfer.json", result.response or {})
    return result
