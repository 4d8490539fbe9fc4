"""``/v1/payouts`` on connected accounts (``Stripe-Account`` header) and their lifecycle.

A payout moves the account's available funds to its bank: it is created ``pending`` with a
``payout`` balance transaction (negative), becomes ``in_transit`` after half of
``payout_delay_seconds`` of sandbox time and ``paid`` (event ``payout.paid``) after the full delay —
or ``failed`` (event ``payout.failed``, funds returned by a ``payout_failure`` balance
transaction) when a ``payout_failure`` fault names the account. Automatic payouts (``automatic:
true``) are started when a transfer lands on an account with payouts enabled; they sweep the
account's unpaid balance transactions in that currency, which ``GET /v1/balance_transactions
?payout=po_…`` then lists together with the payout's own transaction. The timed steps themselves
(pending → in_transit → paid/failed) are :mod:`payops.sandbox.transitions`, applied by the state's clock.
"""

from __future__ import annotations

from typing import Any

from payops.sandbox.api_errors import StripeAPIError, invalid_param, missing
from payops.sandbox.context import Ctx, expand, list_objects
from payops.sandbox.forms import Params
from payops.sandbox.state import SandboxState, random_id

FAILURE_MESSAGES = {
    "account_closed": "The bank account has been closed.",
    "account_frozen": "The bank account has been frozen.",
    "bank_account_restricted": "The bank account has restrictions on either the type, or the number, of "
                               "payouts allowed. This normally indicates that the bank account is a "
                               "savings or other non-checking account.",
    "could_not_process": "The bank could not process this payout.",
    "debit_not_authorized": "Debit transactions are not approved on the bank account.",
    "declined": "The bank has declined this transfer.",
    "insufficient_funds": "Your Stripe account has insufficient funds to cover the payout.",
    "invalid_account_number": "The routing number seems correct, but the account number is invalid.",
    "no_account": "The bank account details on file are probably incorrect. No bank account could be "
                  "located with those details.",
}
INSUFFICIENT = "You have insufficient funds in your Stripe account for this transfer."


def bank_account_id(account: str) -> str:
    return "ba_" + account.removeprefix("acct_")


def record_payout(state: SandboxState, ctx: Ctx | None, *, account: str, amount: int, currency: str,
                  automatic: bool, created: float, delay: float, description: str | None = None,
                  metadata: dict[str, str] | None = None, statement_descriptor: str | None = None,
                  po_id: str | None = None, txn_id: str | None = None, arrival_date: int | None = None,
                  sweep: list[str] | None = None, schedule: bool = True,
                  event_id: str | None = None) -> dict[str, Any]:
    """Book a payout: debit the account, link the swept transactions, schedule its transitions."""
    po_id = po_id or random_id("po")
    created_int = int(created)
    txn = state.post_txn(account, amount=-amount, currency=currency, type="payout",
                         reporting_category="payout", source=po_id, description=description or "STRIPE PAYOUT",
                         created=created_int, txn_id=txn_id)
    po: dict[str, Any] = {
        "amount": amount, "application_fee": None, "application_fee_amount": None,
        "arrival_date": arrival_date if arrival_date is not None else int(created + delay),
        "automatic": automatic, "balance_transaction": txn["id"], "created": created_int,
        "currency": currency, "description": description or "STRIPE PAYOUT",
        "destination": bank_account_id(account), "failure_balance_transaction": None,
        "failure_code": None, "failure_message": None, "id": po_id, "livemode": False,
        "metadata": metadata or {}, "method": "standard", "object": "payout", "original_payout": None,
        "reconciliation_status": "in_progress" if automatic else "not_applicable", "reversed_by": None,
        "source_type": "card", "statement_descriptor": statement_descriptor, "status": "pending",
        "type": "bank_account", "trace_id": {"status": "pending", "value": None}, "payout_method": None,
    }
    state.add(po, account, [("payouts", account)])
    state.payout_txns[po_id] = [*(sweep or []), txn["id"]]
    if schedule:
        state.schedule_at(created + delay / 2, po_id, "in_transit")
        state.schedule_at(created + delay, po_id, "settle")
        rule = ctx.faults.take_payout_failure(account) if ctx is not None and ctx.faults else None
        if rule is not None:
            code = str(rule.get("failure_code") or "could_not_process")
            state.payout_plans[po_id] = {"fail": code, "message": rule.get("failure_message")
                                         or FAILURE_MESSAGES.get(code, "The payout failed.")}
    req = ctx.request_id if ctx else None
    state.emit("payout.created", po, account=account, request_id=req, created=created_int,
               event_id=event_id, deliver=schedule)
    return po


def automatic_payout(state: SandboxState, ctx: Ctx, account: str, currency: str) -> dict[str, Any] | None:
    """Pay out everything available in ``currency`` if the account takes automatic payouts."""
    acct = state.get(account, "account")
    if acct is None or not acct["payouts_enabled"]:
        return None
    if acct["settings"]["payouts"]["schedule"].get("interval") == "manual":
        return None
    available = state.balance(account, currency)["available"]
    if available <= 0:
        return None
    sweep = state.unswept.pop(f"{account}|{currency}", [])
    return record_payout(state, ctx, account=account, amount=available, currency=currency,
                         automatic=True, created=state.now(), delay=ctx.payout_delay(), sweep=sweep)


def _get_payout(state: SandboxState, ctx: Ctx, po_id: str) -> dict[str, Any]:
    po = state.get(po_id, "payout", ctx.account)
    if po is None:
        raise missing("payout", po_id)
    return po


def create_payout(state: SandboxState, ctx: Ctx, p: Params) -> dict[str, Any]:
    p.check_known(["amount", "currency", "description", "metadata", "method", "statement_descriptor",
                   "destination", "source_type"])
    amount = p.int("amount", required=True, minimum=1)
    currency = p.currency()
    method = p.str("method", default="standard")
    if method not in ("standard", "instant"):
        raise invalid_param("method", f"Invalid method: {method}")
    assert amount is not None and currency is not None
    if state.balance(ctx.account, currency)["available"] < amount:
        raise StripeAPIError(400, INSUFFICIENT, code="balance_insufficient", param="amount", save_idempotent=True)
    po = record_payout(state, ctx, account=ctx.account, amount=amount, currency=currency, automatic=False,
                       created=state.now(), delay=ctx.payout_delay(), description=p.str("description"),
                       metadata=p.metadata() or {}, statement_descriptor=p.str("statement_descriptor"))
    return expand(state, po, p)


def retrieve_payout(state: SandboxState, ctx: Ctx, p: Params, po_id: str) -> dict[str, Any]:
    return expand(state, _get_payout(state, ctx, po_id), p)


def cancel_payout(state: SandboxState, ctx: Ctx, p: Params, po_id: str) -> dict[str, Any]:
    p.check_known([])
    po = _get_payout(state, ctx, po_id)
    if po["status"] != "pending":
        raise StripeAPIError(400, f"Payouts can only be canceled while they are pending; {po_id} is "
                             f"{po['status']}.")
    txn = state.post_txn(ctx.account, amount=po["amount"], currency=po["currency"], type="payout_cancel",
                         reporting_category="payout_reversal", source=po_id, description="Payout cancel")
    po["status"] = "canceled"
    state.unswept.setdefault(f"{ctx.account}|{po['currency']}", []).extend(
        [*state.payout_txns.get(po_id, []), txn["id"]])
    state.emit("payout.canceled", po, account=ctx.account, request_id=ctx.request_id,
               idempotency_key=ctx.idempotency_key)
    return expand(state, po, p)


def list_payouts(state: SandboxState, ctx: Ctx, p: Params) -> dict[str, Any]:
    p.check_known(["limit", "starting_after", "ending_before", "created", "status", "arrival_date",
                   "destination"])
    status = p.str("status")
    arrival = p.range("arrival_date")
    dest = p.str("destination")
    checks = []
    if status:
        checks.append(lambda po: po["status"] == status)
    if arrival:
        low, high = arrival
        checks.append(lambda po: (low is None or po["arrival_date"] >= low)
                      and (high is None or po["arrival_date"] <= high))
    if dest:
        checks.append(lambda po: po["destination"] == dest)
    pred = (lambda oid: all(c(state.objects[oid]) for c in checks)) if checks else None
    return list_objects(state, p, url="/v1/payouts", kind="payout",
                        index=state.indexes.get(("payouts", ctx.account)), predicate=pred)
