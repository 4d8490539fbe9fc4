"""``/v1/payment_intents``: card payments on the platform, destination charges to connected accounts.

``POST /v1/payment_intents`` with ``amount``, ``currency``, ``payment_method`` (a Stripe test alias,
see :mod:`payops.sandbox.charges`), ``confirm=true`` and optionally ``transfer_data[destination]``
(an account whose ``transfers`` capability is active), ``application_fee_amount`` or
``transfer_data[amount]``, ``on_behalf_of`` (must equal the destination and have ``card_payments``
active), ``metadata``,
``description``, ``transfer_group``… creates the PaymentIntent (``payment_intent.created``) and
confirms it: the charge ``ch_…`` succeeds (``charge.succeeded``, ``payment_intent.succeeded``, and
for destination charges ``transfer.created``) or the card declines — HTTP 402 ``card_error`` with
``decline_code``, ``charge``, ``payment_intent`` and ``payment_method`` in the error, the intent back
to ``requires_payment_method`` with ``last_payment_error`` (``charge.failed``,
``payment_intent.payment_failed``). A decline is saved under the ``Idempotency-Key`` like Stripe
(a retry replays the 402); validation errors are not. Without ``confirm`` the intent waits in
``requires_confirmation`` (or ``requires_payment_method``) for ``POST …/{id}/confirm``;
``POST …/{id}/cancel`` cancels an unfinished one (``payment_intent.canceled``).

Like Stripe since API 2023-08-16, an intent without ``payment_method_types`` uses automatic payment
methods, which may redirect: confirming it needs a ``return_url`` unless
``automatic_payment_methods[allow_redirects]=never`` — otherwise 400, exactly the error real Stripe
gives. Pass ``payment_method_types[]=card`` (the only type the sandbox has) or ``allow_redirects=never``.

Only the platform makes payments (no ``Stripe-Account`` direct charges); ``capture_method=manual``
and customers are not modelled.
"""

from __future__ import annotations

import secrets
from typing import Any

from payops.sandbox.api_errors import DOC_BASE, StripeAPIError, invalid_param, missing
from payops.sandbox.charges import DISPUTE_LAST4, build_charge, resolve_payment_method, settle_charge
from payops.sandbox.context import Ctx, expand, list_objects
from payops.sandbox.disputes import open_dispute
from payops.sandbox.forms import Params
from payops.sandbox.payouts import automatic_payout
from payops.sandbox.state import SandboxState, clone, random_id
from payops.sandbox.transfers import check_destination

MAX_AMOUNT = 99_999_999
MINIMUM = {"gbp": 30, "jpy": 50, "hkd": 400, "sek": 300, "nok": 300, "dkk": 250, "mxn": 1000}
SYMBOL = {"usd": "$", "cad": "$", "aud": "$", "nzd": "$", "eur": "€", "gbp": "£"}
RETURN_URL_NEEDED = (
    "A `return_url` must be specified because this Payment Intent is configured to automatically accept the "
    "payment methods enabled in the Dashboard, some of which may require a full page redirect to succeed. If "
    "you do not want to accept redirect-based payment methods, set `automatic_payment_methods[enabled]` to "
    "`true` and `automatic_payment_methods[allow_redirects]` to `never` when creating Setup Intents and "
    "Payment Intents.")
CREATE_PARAMS = ["amount", "currency", "payment_method", "confirm", "transfer_data", "application_fee_amount",
                 "on_behalf_of", "metadata", "description", "receipt_email", "statement_descriptor",
                 "statement_descriptor_suffix", "transfer_group", "payment_method_types",
                 "automatic_payment_methods", "return_url", "capture_method", "confirmation_method"]
UNFINISHED = ("requires_payment_method", "requires_confirmation", "requires_action")
CANCEL_REASONS = ("duplicate", "fraudulent", "requested_by_customer", "abandoned")


def _amount_ok(amount: int, currency: str) -> None:
    least = MINIMUM.get(currency, 50)
    if amount < least:
        shown = f"{SYMBOL.get(currency, '')}{least / 100:.2f}" if currency != "jpy" else f"¥{least}"
        raise StripeAPIError(400, f"Amount must be at least {shown} {currency}", code="amount_too_small",
                             param="amount")


def _hash(p: Params, name: str, allowed: tuple[str, ...]) -> dict[str, Any]:
    value = p.data.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise invalid_param(name, f"Invalid hash: {name}")
    for key in value:
        if key not in allowed:
            raise StripeAPIError(400, f"Received unknown parameter: {name}[{key}]", code="parameter_unknown",
                                 param=f"{name}[{key}]")
    return value


def _money(state: SandboxState, p: Params, amount: int) -> tuple[dict[str, Any] | None, int | None, str | None]:
    """``transfer_data``, ``application_fee_amount`` and ``on_behalf_of``, checked like Stripe."""
    td = _hash(p, "transfer_data", ("destination", "amount"))
    fee = p.int("application_fee_amount", minimum=0)
    obo = p.str("on_behalf_of")
    transfer_data = None
    if td:
        dest = Params(td).str("destination")
        if not dest:
            raise StripeAPIError(400, "Missing required param: transfer_data[destination].",
                                 code="parameter_missing", param="transfer_data[destination]")
        check_destination(state, dest, param="transfer_data[destination]")
        transfer_data = {"destination": dest}
        if "amount" in td:
            td_amount = Params({"transfer_data[amount]": td["amount"]}).int("transfer_data[amount]", minimum=1)
            if fee is not None:
                raise invalid_param("application_fee_amount", "You may only specify one of these parameters: "
                                    "application_fee_amount, transfer_data[amount].")
            if td_amount is not None and td_amount > amount:
                raise invalid_param("transfer_data[amount]", "transfer_data[amount] cannot be greater than "
                                    "the PaymentIntent's amount.")
            transfer_data = {"amount": td_amount, "destination": dest}
    if fee is not None:
        if transfer_data is None:
            raise invalid_param("application_fee_amount", "Can only apply an application_fee_amount when the "
                                "PaymentIntent is attempting a direct payment (using an OAuth key or Stripe-Account "
                                "header) or destination payment (using `transfer_data[destination]`).")
        if fee > amount:
            raise invalid_param("application_fee_amount", "The application fee amount cannot be greater than "
                                "the PaymentIntent's amount.")
    if obo:
        acct = state.get(obo, "account")
        if acct is None:
            raise missing("account", obo, param="on_behalf_of", status=400)
        if transfer_data and transfer_data["destination"] != obo:
            raise invalid_param("on_behalf_of", "When `on_behalf_of` is set, `transfer_data[destination]` must be "
                                "the same account.")
        if acct["capabilities"].get("card_payments") != "active":
            raise invalid_param("on_behalf_of", f"The account {obo} referenced by `on_behalf_of` needs the "
                                "card_payments capability active to process payments.")
    return transfer_data, fee, obo


def _methods(p: Params) -> tuple[list[str], dict[str, Any] | None]:
    types = p.str_list("payment_method_types")
    apm = _hash(p, "automatic_payment_methods", ("enabled", "allow_redirects"))
    if types is not None and apm:
        raise invalid_param("automatic_payment_methods", "You may only specify one of these parameters: "
                            "automatic_payment_methods, payment_method_types.")
    if types is not None:
        if set(types) != {"card"}:
            raise invalid_param("payment_method_types", "The payops sandbox supports payment_method_types "
                                f"['card'] only, not {types}.")
        return ["card"], None
    redirects = apm.get("allow_redirects", "always")
    if redirects not in ("always", "never"):
        raise invalid_param("automatic_payment_methods[allow_redirects]", f"Invalid allow_redirects: {redirects}")
    if apm.get("enabled", "true") != "true":
        raise invalid_param("automatic_payment_methods[enabled]", "Pass payment_method_types instead of "
                            "disabling automatic_payment_methods.")
    return ["card"], {"allow_redirects": redirects, "enabled": True}


def create_payment_intent(state: SandboxState, ctx: Ctx, p: Params) -> dict[str, Any]:
    p.check_known(CREATE_PARAMS)
    ctx.require_platform("Payments in the sandbox (destination charges)")
    amount = p.int("amount", required=True, minimum=1, maximum=MAX_AMOUNT)
    currency = p.currency()
    assert amount is not None and currency is not None
    _amount_ok(amount, currency)
    transfer_data, fee, obo = _money(state, p, amount)
    types, apm = _methods(p)
    capture = p.str("capture_method", default="automatic_async")
    if capture not in ("automatic", "automatic_async"):
        raise invalid_param("capture_method", "The payops sandbox captures automatically only "
                            "(capture_method automatic or automatic_async).")
    confirmation = p.str("confirmation_method", default="automatic")
    if confirmation not in ("automatic", "manual"):
        raise invalid_param("confirmation_method", f"Invalid confirmation_method: {confirmation}")
    confirm = p.bool("confirm", default=False)
    pm_ref = p.str("payment_method")
    if confirm:
        _check_return_url(apm, p.str("return_url"))
        if not pm_ref:
            raise _no_payment_method()
    pm = resolve_payment_method(state, pm_ref, ctx.account) if pm_ref else None
    pi_id = random_id("pi")
    pi: dict[str, Any] = {
        "amount": amount, "amount_capturable": 0, "amount_details": {"tip": {}}, "amount_received": 0,
        "application": None, "application_fee_amount": fee, "automatic_payment_methods": apm,
        "canceled_at": None, "cancellation_reason": None, "capture_method": capture,
        "client_secret": f"{pi_id}_secret_{secrets.token_urlsafe(18).replace('-', 'x').replace('_', 'y')}",
        "confirmation_method": confirmation, "created": state.now_int(), "currency": currency, "customer": None,
        "description": p.str("description"), "id": pi_id, "last_payment_error": None, "latest_charge": None,
        "livemode": False, "metadata": p.metadata() or {}, "next_action": None, "object": "payment_intent",
        "on_behalf_of": obo, "payment_method": pm["id"] if pm else None,
        "payment_method_configuration_details": None,
        "payment_method_options": {"card": {"installments": None, "mandate_options": None, "network": None,
                                            "request_three_d_secure": "automatic"}},
        "payment_method_types": types, "processing": None, "receipt_email": p.str("receipt_email"),
        "review": None, "setup_future_usage": None, "shipping": None,
        "statement_descriptor": p.str("statement_descriptor"),
        "statement_descriptor_suffix": p.str("statement_descriptor_suffix"),
        "status": "requires_confirmation" if pm else "requires_payment_method",
        "transfer_data": transfer_data,
        "transfer_group": p.str("transfer_group") or (f"group_{pi_id}" if transfer_data else None),
        "source": None, "excluded_payment_method_types": None, "customer_account": None, "managed_payments": None,
    }
    state.add(pi, ctx.account, [("payment_intents", ctx.account)])
    state.emit("payment_intent.created", pi, request_id=ctx.request_id, idempotency_key=ctx.idempotency_key)
    if confirm:
        _confirm(state, ctx, pi)
    return expand(state, pi, p)


def _check_return_url(apm: dict[str, Any] | None, return_url: str | None) -> None:
    if apm and apm["allow_redirects"] != "never" and not return_url:
        raise StripeAPIError(400, RETURN_URL_NEEDED)


def _no_payment_method() -> StripeAPIError:
    return StripeAPIError(400, "You cannot confirm this PaymentIntent because it's missing a payment method. "
                          "You can either update the PaymentIntent with a payment method and then confirm it "
                          "again, or confirm it again directly with a payment method.",
                          code="payment_intent_unexpected_state")


def _confirm(state: SandboxState, ctx: Ctx, pi: dict[str, Any]) -> None:
    """Charge the intent's payment method; on a decline raise the 402 (the state changes stay)."""
    pm = state.objects[pi["payment_method"]]
    ch = build_charge(state, pi, pm, ctx.account)
    req = {"request_id": ctx.request_id, "idempotency_key": ctx.idempotency_key}
    pi["latest_charge"] = ch["id"]
    if ch["status"] == "failed":
        code, decline_code, message = ch["failure_code"], ch["outcome"]["reason"], ch["failure_message"]
        error = {"charge": ch["id"], "code": code, "decline_code": decline_code, "doc_url": DOC_BASE + code,
                 "message": message, "payment_method": clone(pm), "type": "card_error"}
        pi.update(status="requires_payment_method", payment_method=None, last_payment_error=error)
        state.emit("charge.failed", ch, **req)
        state.emit("payment_intent.payment_failed", pi, **req)
        raise StripeAPIError(402, message, type="card_error", code=code, save_idempotent=True,
                             extra={"charge": ch["id"], "decline_code": decline_code,
                                    "payment_intent": clone(pi), "payment_method": clone(pm)})
    tr = settle_charge(state, ch, ctx.account)
    pi.update(status="succeeded", amount_received=pi["amount"], last_payment_error=None)
    state.emit("charge.succeeded", ch, **req)
    state.emit("payment_intent.succeeded", pi, **req)
    if tr is not None:
        state.emit("transfer.created", tr, **req)
        automatic_payout(state, ctx, tr["destination"], tr["currency"])
    if pm["card"]["last4"] == DISPUTE_LAST4:
        open_dispute(state, ch, reason="fraudulent", request_id=ctx.request_id)


def _get(state: SandboxState, ctx: Ctx, pi_id: str) -> dict[str, Any]:
    pi = state.get(pi_id, "payment_intent", ctx.account)
    if pi is None:
        raise missing("payment_intent", pi_id)
    return pi


def _unexpected(pi: dict[str, Any], action: str, allowed: tuple[str, ...]) -> StripeAPIError:
    done = {"confirm": "confirmed", "cancel": "canceled", "update": "updated"}[action]
    return StripeAPIError(400, f"You cannot {action} this PaymentIntent because it has a status of "
                          f"{pi['status']}. Only a PaymentIntent with one of the following statuses may be "
                          f"{done}: {', '.join(allowed)}.", code="payment_intent_unexpected_state")


def confirm_payment_intent(state: SandboxState, ctx: Ctx, p: Params, pi_id: str) -> dict[str, Any]:
    p.check_known(["payment_method", "return_url", "receipt_email"])
    pi = _get(state, ctx, pi_id)
    if pi["status"] not in UNFINISHED:
        raise _unexpected(pi, "confirm", UNFINISHED)
    _check_return_url(pi["automatic_payment_methods"], p.str("return_url"))
    if p.str("payment_method"):
        pi["payment_method"] = resolve_payment_method(state, str(p.str("payment_method")), ctx.account)["id"]
    if not pi["payment_method"]:
        raise _no_payment_method()
    if p.has("receipt_email"):
        pi["receipt_email"] = p.str("receipt_email") or None
    _confirm(state, ctx, pi)
    return expand(state, pi, p)


def update_payment_intent(state: SandboxState, ctx: Ctx, p: Params, pi_id: str) -> dict[str, Any]:
    p.check_known(["metadata", "description", "receipt_email", "payment_method", "amount"])
    pi = _get(state, ctx, pi_id)
    if (p.has("amount") or p.has("payment_method")) and pi["status"] not in UNFINISHED:
        raise _unexpected(pi, "update", UNFINISHED)
    meta = p.metadata()
    if meta is not None:
        new = {} if meta == {} else {**pi["metadata"], **meta}
        pi["metadata"] = {k: v for k, v in new.items() if v != ""}
    for name in ("description", "receipt_email"):
        if p.has(name):
            pi[name] = p.str(name) or None
    if p.has("amount"):
        amount = p.int("amount", minimum=1, maximum=MAX_AMOUNT)
        assert amount is not None
        _amount_ok(amount, pi["currency"])
        pi["amount"] = amount
    if p.str("payment_method"):
        pi["payment_method"] = resolve_payment_method(state, str(p.str("payment_method")), ctx.account)["id"]
        if pi["status"] == "requires_payment_method":
            pi["status"] = "requires_confirmation"
    state.dirty = True
    return expand(state, pi, p)


def cancel_payment_intent(state: SandboxState, ctx: Ctx, p: Params, pi_id: str) -> dict[str, Any]:
    p.check_known(["cancellation_reason"])
    pi = _get(state, ctx, pi_id)
    if pi["status"] not in UNFINISHED:
        raise _unexpected(pi, "cancel", UNFINISHED)
    reason = p.str("cancellation_reason")
    if reason is not None and reason not in CANCEL_REASONS:
        raise invalid_param("cancellation_reason", f"Invalid cancellation_reason: must be one of "
                            f"{', '.join(CANCEL_REASONS)}")
    pi.update(status="canceled", canceled_at=state.now_int(), cancellation_reason=reason)
    state.emit("payment_intent.canceled", pi, request_id=ctx.request_id, idempotency_key=ctx.idempotency_key)
    return expand(state, pi, p)


def retrieve_payment_intent(state: SandboxState, ctx: Ctx, p: Params, pi_id: str) -> dict[str, Any]:
    p.check_known(["client_secret"])
    return expand(state, _get(state, ctx, pi_id), p)


def list_payment_intents(state: SandboxState, ctx: Ctx, p: Params) -> dict[str, Any]:
    p.check_known(["limit", "starting_after", "ending_before", "created"])
    return list_objects(state, p, url="/v1/payment_intents", kind="payment_intent",
                        index=state.indexes.get(("payment_intents", ctx.account)))
