"""Disputes: opened by the control plane (or ``pm_card_createDispute``), read and accepted through ``/v1``.

``POST /_sandbox/disputes {"charge": "ch_…", "reason": "fraudulent"}`` opens a dispute ``du_…``
like a cardholder's bank would: a chargeback (``needs_response``) withdraws the disputed amount
(default: the whole charge) plus Stripe's 15.00 dispute fee from the charge's account — the
platform, for destination charges — with an ``adjustment`` balance transaction (reporting category
``dispute``), sets ``charge.disputed`` and emits ``charge.dispute.created`` then
``charge.dispute.funds_withdrawn``. ``"inquiry": true`` opens an inquiry instead
(``warning_needs_response``, no money moves, ``charge.dispute.created`` only).

``POST /_sandbox/disputes {"dispute": "du_…", "status": "won" | "lost" | "warning_closed"}``
closes it: ``won`` returns the disputed amount (not the fee; ``charge.dispute.funds_reinstated``),
every close emits ``charge.dispute.closed``. ``POST /v1/disputes/{id}/close`` (accepting the
dispute) closes it as ``lost``. Evidence submission is not modelled.
"""

from __future__ import annotations

from typing import Any

from payops.sandbox.api_errors import StripeAPIError, invalid_param, missing
from payops.sandbox.charges import NETWORK_REASON
from payops.sandbox.context import Ctx, expand, list_objects
from payops.sandbox.forms import Params
from payops.sandbox.state import SandboxState, clone, random_id

REASONS = ("bank_cannot_process", "check_returned", "credit_not_processed", "customer_initiated",
           "debit_not_authorized", "duplicate", "fraudulent", "general", "incorrect_account_details",
           "insufficient_funds", "noncompliant", "product_not_received", "product_unacceptable",
           "subscription_canceled", "unrecognized")
DISPUTE_FEE = 1_500
RESPONSE_WINDOW = 7 * 86_400
EVIDENCE_FIELDS = (
    "access_activity_log", "billing_address", "cancellation_policy", "cancellation_policy_disclosure",
    "cancellation_rebuttal", "customer_communication", "customer_email_address", "customer_name",
    "customer_purchase_ip", "customer_signature", "duplicate_charge_documentation",
    "duplicate_charge_explanation", "duplicate_charge_id", "product_description", "receipt", "refund_policy",
    "refund_policy_disclosure", "refund_refusal_explanation", "service_date", "service_documentation",
    "shipping_address", "shipping_carrier", "shipping_date", "shipping_documentation",
    "shipping_tracking_number", "uncategorized_file", "uncategorized_text")
OPEN = ("needs_response", "warning_needs_response", "under_review", "warning_under_review")


def open_dispute(state: SandboxState, ch: dict[str, Any], *, reason: str = "fraudulent", amount: int | None = None,
                 inquiry: bool = False, request_id: str | None = None) -> dict[str, Any]:
    """Dispute a succeeded charge (the caller holds the lock)."""
    if reason not in REASONS:
        raise invalid_param("reason", f"Invalid reason {reason!r}: one of {', '.join(REASONS)}")
    if ch["status"] != "succeeded":
        raise invalid_param("charge", f"Charge {ch['id']} has status {ch['status']}; only succeeded charges can "
                            "be disputed.")
    if ch["disputed"]:
        raise invalid_param("charge", f"Charge {ch['id']} is already disputed.")
    amount = ch["amount"] - ch["amount_refunded"] if amount is None else amount
    if not 0 < amount <= ch["amount"]:
        raise invalid_param("amount", f"The disputed amount must be between 1 and {ch['amount']}.")
    owner = state.owner[ch["id"]]
    now = state.now_int()
    du_id = random_id("du")
    card = ch["payment_method_details"]["card"]
    dispute: dict[str, Any] = {
        "amount": amount, "balance_transactions": [], "charge": ch["id"], "created": now,
        "currency": ch["currency"], "enhanced_eligibility_types": [],
        "evidence": {**dict.fromkeys(EVIDENCE_FIELDS), "enhanced_evidence": {}},
        "evidence_details": {"due_by": now + RESPONSE_WINDOW, "enhanced_eligibility": {}, "has_evidence": False,
                             "past_due": False, "submission_count": 0},
        "id": du_id, "is_charge_refundable": inquiry, "livemode": False, "metadata": {}, "object": "dispute",
        "payment_intent": ch["payment_intent"],
        "payment_method_details": {"card": {"brand": card["brand"], "case_type": "inquiry" if inquiry else "chargeback",
                                            "network": card["network"],
                                            "network_reason_code": NETWORK_REASON.get(reason)},
                                   "type": "card"},
        "reason": reason, "status": "warning_needs_response" if inquiry else "needs_response",
    }
    state.add(dispute, owner, [("disputes", owner), ("disputes_charge", ch["id"])])
    ch["disputed"] = True
    if not inquiry:
        txn = state.post_txn(owner, amount=-amount, currency=ch["currency"], type="adjustment",
                             reporting_category="dispute", source=du_id, created=now, fee=DISPUTE_FEE,
                             description=f"Chargeback withdrawal for {ch['id']}",
                             fee_details=[{"amount": DISPUTE_FEE, "application": None, "currency": ch["currency"],
                                           "description": "Dispute fee", "type": "stripe_fee"}])
        dispute["balance_transactions"].append(clone(txn))
    state.emit("charge.dispute.created", dispute, account=owner, request_id=request_id)
    if not inquiry:
        state.emit("charge.dispute.funds_withdrawn", dispute, account=owner, request_id=request_id)
    return dispute


def close_dispute(state: SandboxState, dispute: dict[str, Any], status: str,
                  request_id: str | None = None, idempotency_key: str | None = None) -> dict[str, Any]:
    inquiry = dispute["status"].startswith("warning_")
    allowed = ("warning_closed",) if inquiry else ("won", "lost")
    if dispute["status"] not in OPEN:
        raise StripeAPIError(400, f"This dispute is already closed ({dispute['status']}).")
    if status not in allowed:
        raise invalid_param("status", f"A{'n inquiry' if inquiry else ' chargeback'} closes as "
                            f"{' or '.join(allowed)}, not {status!r}.")
    owner = state.owner[dispute["id"]]
    previous = {"status": dispute["status"]}
    dispute["status"] = status
    dispute["is_charge_refundable"] = False
    if status == "won":
        txn = state.post_txn(owner, amount=dispute["amount"], currency=dispute["currency"], type="adjustment",
                             reporting_category="dispute_reversal", source=dispute["id"],
                             description=f"Chargeback reversal for {dispute['charge']}")
        dispute["balance_transactions"].append(clone(txn))
        state.emit("charge.dispute.funds_reinstated", dispute, account=owner, request_id=request_id,
                   idempotency_key=idempotency_key)
    state.emit("charge.dispute.closed", dispute, account=owner, request_id=request_id,
               idempotency_key=idempotency_key, previous=previous)
    return dispute


def control(state: SandboxState, body: dict[str, Any]) -> dict[str, Any]:
    """``POST /_sandbox/disputes``: open (``charge``) or close (``dispute`` + ``status``) a dispute."""
    if body.get("dispute"):
        dispute = state.get(str(body["dispute"]), "dispute")
        if dispute is None:
            raise missing("dispute", str(body["dispute"]))
        return close_dispute(state, dispute, str(body.get("status", "")))
    unknown = set(body) - {"charge", "reason", "amount", "inquiry"}
    if unknown:
        raise invalid_param(sorted(unknown)[0], f"unknown dispute field(s) {sorted(unknown)}")
    ch = state.get(str(body.get("charge", "")), "charge")
    if ch is None:
        raise missing("charge", str(body.get("charge")), param="charge")
    amount = body.get("amount")
    if amount is not None and (not isinstance(amount, int) or isinstance(amount, bool)):
        raise invalid_param("amount", "amount must be an integer in minor units")
    return open_dispute(state, ch, reason=str(body.get("reason") or "fraudulent"), amount=amount,
                        inquiry=bool(body.get("inquiry", False)))


def _get(state: SandboxState, ctx: Ctx, du_id: str) -> dict[str, Any]:
    dispute = state.get(du_id, "dispute", ctx.account)
    if dispute is None:
        raise missing("dispute", du_id)
    return dispute


def retrieve_dispute(state: SandboxState, ctx: Ctx, p: Params, du_id: str) -> dict[str, Any]:
    return expand(state, _get(state, ctx, du_id), p)


def close(state: SandboxState, ctx: Ctx, p: Params, du_id: str) -> dict[str, Any]:
    p.check_known([])
    dispute = _get(state, ctx, du_id)
    lost = "warning_closed" if dispute["status"].startswith("warning_") else "lost"
    return expand(state, close_dispute(state, dispute, lost, ctx.request_id, ctx.idempotency_key), p)


def list_disputes(state: SandboxState, ctx: Ctx, p: Params) -> dict[str, Any]:
    p.check_known(["limit", "starting_after", "ending_before", "created", "charge", "payment_intent"])
    charge = p.str("charge")
    pi = p.str("payment_intent")
    if charge:
        index = state.indexes.get(("disputes_charge", charge)) if state.owner.get(charge) == ctx.account else None
    else:
        index = state.indexes.get(("disputes", ctx.account))
    pred = (lambda oid: state.objects[oid]["payment_intent"] == pi) if pi else None
    return list_objects(state, p, url="/v1/disputes", kind="dispute", index=index, predicate=pred)
