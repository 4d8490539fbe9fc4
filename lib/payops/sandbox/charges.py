"""Charges (``GET /v1/charges[/{id}]``), Stripe's test payment methods, and a charge's money.

Charges are made by confirming a PaymentIntent (:mod:`payops.sandbox.payments`). The payment
method is one of Stripe's test aliases (each use makes a fresh ``pm_…`` object, which can be
reused by id); the card's last four digits decide the outcome:

- succeed: ``pm_card_visa``, ``pm_card_visa_debit``, ``pm_card_mastercard``, ``pm_card_amex``,
  ``pm_card_ca`` (a Canadian Visa), ``pm_card_bypassPending``
- succeed, then disputed at once (``fraudulent``, ``charge.dispute.created``): ``pm_card_createDispute``
- declined (HTTP 402 ``card_error``, a ``failed`` charge, ``charge.failed`` and
  ``payment_intent.payment_failed``): ``pm_card_chargeDeclined`` (``card_declined`` /
  ``generic_decline``), ``…InsufficientFunds``, ``…LostCard``, ``…StolenCard``, ``…Fraudulent``
  (``card_declined`` with that ``decline_code``), ``…ExpiredCard`` (``expired_card``),
  ``…IncorrectCvc`` (``incorrect_cvc``), ``…ProcessingError`` (``processing_error``)

Money of a succeeded charge (every balance transaction ``available`` at once — a simplification:
Stripe holds card funds ``pending`` for a few days):

- platform ``charge`` +amount, ``fee`` = Stripe's processing fee (2.9% + 30), net amount − fee
- destination charges (``transfer_data[destination]``): a transfer ``tr_…`` of amount −
  ``application_fee_amount`` (or ``transfer_data[amount]``) with ``source_transaction`` = the
  charge and ``transfer_group`` ``group_pi_…``: platform ``transfer`` −that, destination
  ``payment`` +that (source the destination payment ``py_…``), booked like ``POST /v1/transfers``
  — so an automatic payout follows when the account takes them. ``charge.transfer`` names the
  transfer, ``charge.transfer_data.destination`` the account (the API has no ``charge.destination``
  any more). ``charge.application_fee`` stays null (no ``fee_…`` objects).
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime
from typing import Any

from payops.sandbox.api_errors import missing
from payops.sandbox.context import Ctx, expand, list_objects
from payops.sandbox.forms import Params
from payops.sandbox.state import SandboxState, clone, random_id
from payops.sandbox.transfers import record_transfer

# alias → (brand, last4, country, funding)
CARDS = {
    "pm_card_visa": ("visa", "4242", "US", "credit"),
    "pm_card_visa_debit": ("visa", "5556", "US", "debit"),
    "pm_card_mastercard": ("mastercard", "4444", "US", "credit"),
    "pm_card_amex": ("amex", "8431", "US", "credit"),
    "pm_card_ca": ("visa", "0000", "CA", "credit"),
    "pm_card_bypassPending": ("visa", "0077", "US", "credit"),
    "pm_card_createDispute": ("visa", "0259", "US", "credit"),
    "pm_card_chargeDeclined": ("visa", "0002", "US", "credit"),
    "pm_card_visa_chargeDeclined": ("visa", "0002", "US", "credit"),
    "pm_card_chargeDeclinedInsufficientFunds": ("visa", "9995", "US", "credit"),
    "pm_card_visa_chargeDeclinedInsufficientFunds": ("visa", "9995", "US", "credit"),
    "pm_card_chargeDeclinedLostCard": ("visa", "9987", "US", "credit"),
    "pm_card_chargeDeclinedStolenCard": ("visa", "9979", "US", "credit"),
    "pm_card_chargeDeclinedFraudulent": ("visa", "0019", "US", "credit"),
    "pm_card_chargeDeclinedExpiredCard": ("visa", "0069", "US", "credit"),
    "pm_card_chargeDeclinedIncorrectCvc": ("visa", "0127", "US", "credit"),
    "pm_card_chargeDeclinedProcessingError": ("visa", "0119", "US", "credit"),
}
# last4 → (code, decline_code, message)
DECLINES = {
    "0002": ("card_declined", "generic_decline", "Your card was declined."),
    "9995": ("card_declined", "insufficient_funds", "Your card has insufficient funds."),
    "9987": ("card_declined", "lost_card", "Your card was declined."),
    "9979": ("card_declined", "stolen_card", "Your card was declined."),
    "0019": ("card_declined", "fraudulent", "Your card was declined."),
    "0069": ("expired_card", "expired_card", "Your card has expired."),
    "0127": ("incorrect_cvc", "incorrect_cvc", "Your card's security code is incorrect."),
    "0119": ("processing_error", "processing_error",
             "An error occurred while processing your card. Try again in a little bit."),
}
DISPUTE_LAST4 = "0259"
NETWORK_REASON = {"fraudulent": "10.4", "product_not_received": "13.1", "duplicate": "12.6.1",
                  "credit_not_processed": "13.6", "subscription_canceled": "13.2",
                  "product_unacceptable": "13.3", "unrecognized": "10.4", "general": "13.7"}
STATEMENT_DESCRIPTOR = "PAYOPS SANDBOX"


def stripe_fee(amount: int) -> int:
    """Stripe's card processing fee: 2.9% + 30 minor units (rounded half up)."""
    return (amount * 29 + 500) // 1000 + 30


def resolve_payment_method(state: SandboxState, ref: str, owner: str) -> dict[str, Any]:
    """A test alias makes a new ``pm_…``; a ``pm_…`` made earlier is reused."""
    stored = state.get(ref, "payment_method")
    if stored is not None:
        return stored
    card = CARDS.get(ref)
    if card is None:
        raise missing("PaymentMethod", ref, param="payment_method", status=400)
    brand, last4, country, funding = card
    now = state.now_int()
    year = datetime.fromtimestamp(state.now(), UTC).year + 1
    pm = {
        "allow_redisplay": "unspecified",
        "billing_details": {"address": {"city": None, "country": None, "line1": None, "line2": None,
                                        "postal_code": None, "state": None},
                            "email": None, "name": None, "phone": None, "tax_id": None},
        "card": {"brand": brand,
                 "checks": {"address_line1_check": None, "address_postal_code_check": None, "cvc_check": None},
                 "country": country, "display_brand": brand, "exp_month": 12, "exp_year": year,
                 "fingerprint": hashlib.sha256(last4.encode()).hexdigest()[:16], "funding": funding,
                 "generated_from": None, "last4": last4,
                 "networks": {"available": [brand], "preferred": None},
                 "three_d_secure_usage": {"supported": True}, "wallet": None, "regulated_status": "unregulated"},
        "created": now, "customer": None, "id": random_id("pm"), "livemode": False, "metadata": {},
        "object": "payment_method", "type": "card", "customer_account": None,
    }
    return state.add(pm, owner, [])


def decline_for(pm: dict[str, Any]) -> tuple[str, str, str] | None:
    return DECLINES.get(pm["card"]["last4"])


def build_charge(state: SandboxState, pi: dict[str, Any], pm: dict[str, Any], owner: str) -> dict[str, Any]:
    """A charge for ``pi`` paid with ``pm``: ``succeeded``, or ``failed`` when the card declines."""
    ch_id = random_id("ch")
    decline = decline_for(pm)
    card = pm["card"]
    amount, currency = pi["amount"], pi["currency"]
    dest = (pi["transfer_data"] or {}).get("destination")
    outcome = {"advice_code": None, "network_advice_code": None, "network_decline_code": None,
               "network_status": "approved_by_network", "reason": None, "seller_message": "Payment complete.",
               "type": "authorized"}
    if decline:
        outcome.update(network_status="declined_by_network", reason=decline[1], type="issuer_declined",
                       seller_message="The bank did not return any further details with this decline.")
    ch: dict[str, Any] = {
        "amount": amount, "amount_captured": 0 if decline else amount, "amount_refunded": 0, "application": None,
        "application_fee": None, "application_fee_amount": pi["application_fee_amount"],
        "balance_transaction": None, "billing_details": clone(pm["billing_details"]),
        "calculated_statement_descriptor": STATEMENT_DESCRIPTOR, "captured": not decline,
        "created": state.now_int(), "currency": currency, "customer": None, "description": pi["description"],
        "disputed": False, "failure_balance_transaction": None,
        "failure_code": decline[0] if decline else None, "failure_message": decline[2] if decline else None,
        "fraud_details": {}, "id": ch_id, "livemode": False, "metadata": dict(pi["metadata"]), "object": "charge",
        "on_behalf_of": pi["on_behalf_of"], "outcome": outcome, "paid": not decline,
        "payment_intent": pi["id"], "payment_method": pm["id"],
        "payment_method_details": {"card": {
            "amount_authorized": None if decline else amount, "authorization_code": None if decline else "123456",
            "brand": card["brand"],
            "checks": {"address_line1_check": None, "address_postal_code_check": None,
                       "cvc_check": "fail" if decline and decline[0] == "incorrect_cvc" else "pass"},
            "country": card["country"], "exp_month": card["exp_month"], "exp_year": card["exp_year"],
            "extended_authorization": {"status": "disabled"}, "fingerprint": card["fingerprint"],
            "funding": card["funding"], "incremental_authorization": {"status": "unavailable"},
            "installments": None, "last4": card["last4"], "mandate": None,
            "multicapture": {"status": "unavailable"}, "network": card["brand"], "network_token": {"used": False},
            "network_transaction_id": None if decline else str(secrets.randbelow(10**15)).zfill(15),
            "overcapture": {"maximum_amount_capturable": amount, "status": "unavailable"},
            "regulated_status": "unregulated", "three_d_secure": None, "transaction_link_id": None,
            "wallet": None}, "type": "card"},
        "receipt_email": pi["receipt_email"], "receipt_number": None,
        "receipt_url": f"https://pay.stripe.com/receipts/payment/{secrets.token_urlsafe(40)}",
        "refunded": False,
        "refunds": {"data": [], "has_more": False, "object": "list", "url": f"/v1/charges/{ch_id}/refunds"},
        "review": None, "shipping": None, "source_transfer": None,
        "statement_descriptor": pi["statement_descriptor"],
        "statement_descriptor_suffix": pi["statement_descriptor_suffix"],
        "status": "failed" if decline else "succeeded",
        "transfer_data": ({"amount": pi["transfer_data"].get("amount"), "destination": dest} if dest else None),
        "transfer_group": pi["transfer_group"] if dest else None, "source": None,
    }
    return state.add(ch, owner, [("charges", owner), ("charges_pi", pi["id"])])


def settle_charge(state: SandboxState, ch: dict[str, Any], owner: str) -> dict[str, Any] | None:
    """Book a succeeded charge's money; for a destination charge return the transfer it made."""
    amount, currency = ch["amount"], ch["currency"]
    fee = stripe_fee(amount)
    txn = state.post_txn(owner, amount=amount, currency=currency, type="charge", reporting_category="charge",
                         source=ch["id"], description=ch["description"], created=ch["created"], fee=fee,
                         fee_details=[{"amount": fee, "application": None, "currency": currency,
                                       "description": "Stripe processing fees", "type": "stripe_fee"}])
    ch["balance_transaction"] = txn["id"]
    if not ch["transfer_data"]:
        return None
    out = ch["transfer_data"]["amount"] or amount - (ch["application_fee_amount"] or 0)
    if out <= 0:
        return None
    tr = record_transfer(state, amount=out, currency=currency, destination=ch["transfer_data"]["destination"],
                         created=ch["created"], metadata={}, transfer_group=ch["transfer_group"],
                         source_transaction=ch["id"])
    ch["transfer"] = tr["id"]
    return tr


def retrieve_charge(state: SandboxState, ctx: Ctx, p: Params, ch_id: str) -> dict[str, Any]:
    ch = state.get(ch_id, "charge", ctx.account)
    if ch is None:
        raise missing("charge", ch_id)
    return expand(state, ch, p)


def list_charges(state: SandboxState, ctx: Ctx, p: Params) -> dict[str, Any]:
    p.check_known(["limit", "starting_after", "ending_before", "created", "payment_intent", "transfer_group"])
    pi = p.str("payment_intent")
    group = p.str("transfer_group")
    if pi:
        index = state.indexes.get(("charges_pi", pi)) if state.owner.get(pi) == ctx.account else None
    else:
        index = state.indexes.get(("charges", ctx.account))
    pred = (lambda oid: state.objects[oid]["transfer_group"] == group) if group else None
    return list_objects(state, p, url="/v1/charges", kind="charge", index=index, predicate=pred)
