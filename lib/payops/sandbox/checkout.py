"""``/v1/checkout/sessions``: Stripe Checkout Sessions (``mode=payment``), their expiry and their payment.

API (like Stripe's)::

    POST /v1/checkout/sessions               mode=payment, line_items[i][price_data][currency|unit_amount|
                                             product_data][name]] + [quantity], success_url, cancel_url?,
                                             customer_email?, client_reference_id?, metadata?, expires_at?
                                             (30 min … 24 h after creation; default 24 h),
                                             payment_method_types[]=card?, payment_intent_data[metadata|
                                             description|receipt_email|transfer_data|application_fee_amount]
    GET  /v1/checkout/sessions               limit, starting_after, ending_before, created (range),
                                             status (open · complete · expired), payment_intent,
                                             customer_details[email]
    GET  /v1/checkout/sessions/{id}
    POST /v1/checkout/sessions/{id}/expire   open → expired (``checkout.session.expired``); any other
                                             status answers 400 like Stripe

Expiry: an open session expires by itself at ``expires_at`` (the sandbox ticker, on the sandbox clock),
emitting ``checkout.session.expired``. The fault ``checkout_expiry_paused`` holds overdue sessions open —
the "payment window not expiring" incident; lifting it expires them on the next tick.

Paying: offline there is no hosted page, so the control plane plays the customer —
``POST /_sandbox/checkout/pay {"session": "cs_…", "payment_method": "pm_card_visa"}``. Like Stripe's page it
creates the session's PaymentIntent on the first attempt (``payment_intent_data`` applied) and confirms it
with the card: a success completes the session (``payment_status`` paid, ``customer_details``,
``checkout.session.completed`` after ``payment_intent.succeeded``); a decline (Stripe's test cards, see
:mod:`payops.sandbox.charges`) leaves it open with ``payment_intent.payment_failed``. The fault
``checkout_failure_rate`` declines that share of payments with ``checkout_failure_card``.

History: ``POST /_sandbox/checkout/sessions {"sessions": [{"created", "amount", "currency", "metadata"?,
"customer_email"?, "client_reference_id"?, "expires_at"?, "status": "open"|"expired"}]}`` books sessions made
before now (the world as it was), the way the seeds book the payout history.
"""

from __future__ import annotations

import heapq
import secrets
from typing import Any

from payops.sandbox.api_errors import StripeAPIError, invalid_param, missing
from payops.sandbox.context import Ctx, expand, list_objects
from payops.sandbox.forms import Params
from payops.sandbox.payments import _amount_ok, confirm_payment_intent, create_payment_intent
from payops.sandbox.state import PLATFORM, SandboxState

DEFAULT_TTL = 24 * 3600
MIN_TTL = 30 * 60
STATUSES = ("open", "complete", "expired")
CREATE_PARAMS = ["mode", "line_items", "success_url", "cancel_url", "customer_email", "client_reference_id",
                 "metadata", "expires_at", "payment_method_types", "payment_intent_data", "ui_mode", "locale",
                 "submit_type"]
PI_DATA = ("metadata", "description", "receipt_email", "transfer_data", "application_fee_amount")


def session_id() -> str:
    """``cs_test_`` + 58 alphanumerics, like Stripe's."""
    raw = secrets.token_urlsafe(48).replace("-", "").replace("_", "")
    while len(raw) < 58:
        raw += secrets.token_hex(8)
    return "cs_test_" + raw[:58]


def build_session(*, cs_id: str, created: int, expires_at: int, amount: int, currency: str,
                  success_url: str | None, cancel_url: str | None, customer_email: str | None,
                  client_reference_id: str | None, metadata: dict[str, str], locale: str | None = None,
                  submit_type: str | None = None) -> dict[str, Any]:
    """An open, unpaid payment-mode session with every field of Stripe's ``checkout.session``."""
    return {
        "adaptive_pricing": {"enabled": False}, "after_expiration": None, "allow_promotion_codes": None,
        "amount_subtotal": amount, "amount_total": amount,
        "automatic_tax": {"enabled": False, "liability": None, "provider": None, "status": None},
        "billing_address_collection": None, "cancel_url": cancel_url, "client_reference_id": client_reference_id,
        "client_secret": None, "collected_information": None, "consent": None, "consent_collection": None,
        "created": created, "currency": currency, "currency_conversion": None, "custom_fields": [],
        "custom_text": {"after_submit": None, "shipping_address": None, "submit": None,
                        "terms_of_service_acceptance": None},
        "customer": None, "customer_account": None, "customer_creation": "if_required", "customer_details": None,
        "customer_email": customer_email, "discounts": [], "expires_at": expires_at, "id": cs_id,
        "integration_identifier": None, "invoice": None,
        "invoice_creation": {"enabled": False, "invoice_data": {
            "account_tax_ids": None, "custom_fields": None, "description": None, "footer": None, "issuer": None,
            "metadata": {}, "rendering_options": None}},
        "livemode": False, "locale": locale, "managed_payments": {"enabled": False}, "metadata": metadata,
        "mode": "payment", "object": "checkout.session", "origin_context": None, "payment_intent": None,
        "payment_link": None, "payment_method_collection": "if_required",
        "payment_method_configuration_details": None,
        "payment_method_options": {"card": {"request_three_d_secure": "automatic"}},
        "payment_method_types": ["card"], "payment_status": "unpaid", "permissions": None,
        "phone_number_collection": {"enabled": False}, "recovered_from": None,
        "saved_payment_method_options": None, "setup_intent": None, "shipping_address_collection": None,
        "shipping_cost": None, "shipping_options": [], "status": "open", "submit_type": submit_type,
        "subscription": None, "success_url": success_url,
        "total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0}, "ui_mode": "hosted",
        "url": f"https://checkout.stripe.com/c/pay/{cs_id}", "wallet_options": None,
    }


def add_session(state: SandboxState, cs: dict[str, Any], account: str = PLATFORM,
                pi_data: dict[str, Any] | None = None) -> dict[str, Any]:
    """Store a session with its indexes; an open one is queued for expiry at ``expires_at``."""
    state.add(cs, account, [("checkout_sessions", account), ("checkout_status", account, cs["status"])])
    state.checkout_extra[cs["id"]] = {"payment_intent_data": pi_data or {}}
    if cs["status"] == "open":
        heapq.heappush(state.expiries, (int(cs["expires_at"]), cs["id"]))
    return cs


def _set_status(state: SandboxState, cs: dict[str, Any], status: str) -> None:
    account = state.owner[cs["id"]]
    state.index_remove(cs["id"], ("checkout_status", account, cs["status"]))
    cs["status"] = status
    state.index_add(cs["id"], ("checkout_status", account, status))
    state.dirty = True


def expire_session(state: SandboxState, cs: dict[str, Any], *, request_id: str | None = None,
                   idempotency_key: str | None = None, when: int | None = None) -> dict[str, Any]:
    """open → expired, with ``checkout.session.expired`` (the PaymentIntent, if any, is canceled)."""
    _set_status(state, cs, "expired")
    pi = state.objects.get(cs["payment_intent"] or "")
    if pi is not None and pi["status"] in ("requires_payment_method", "requires_confirmation", "requires_action"):
        pi.update(status="canceled", canceled_at=when or state.now_int(), cancellation_reason="abandoned")
    state.emit("checkout.session.expired", cs, account=state.owner[cs["id"]], request_id=request_id,
               idempotency_key=idempotency_key, created=when)
    return cs


def expire_due(state: SandboxState) -> int:
    """Expire every open session whose ``expires_at`` has passed (called by ``SandboxState.tick``)."""
    now = state.now()
    done = 0
    while state.expiries and state.expiries[0][0] <= now:
        _, cs_id = heapq.heappop(state.expiries)
        cs = state.get(cs_id, "checkout.session")
        if cs is not None and cs["status"] == "open":
            expire_session(state, cs, when=int(now))
            done += 1
    return done


def _line_items_amount(p: Params) -> tuple[int, str]:
    items = p.data.get("line_items")
    if not items:
        raise StripeAPIError(400, "Missing required param: line_items.", code="parameter_missing", param="line_items")
    if not isinstance(items, list):
        raise invalid_param("line_items", "Invalid array: line_items")
    total, currency = 0, None
    for i, item in enumerate(items):
        where = f"line_items[{i}]"
        if not isinstance(item, dict) or not isinstance(item.get("price_data"), dict):
            raise invalid_param(f"{where}[price_data]", "The payops sandbox supports line items with price_data "
                                "only (no Price objects).")
        pd = Params({f"{where}[price_data][{k}]": v for k, v in item["price_data"].items()})
        cur = pd.currency(f"{where}[price_data][currency]")
        unit = pd.int(f"{where}[price_data][unit_amount]", required=True, minimum=0)
        qty = Params({f"{where}[quantity]": item.get("quantity", "1")}).int(f"{where}[quantity]", minimum=1)
        if currency is not None and cur != currency:
            raise invalid_param(f"{where}[price_data][currency]", "All line items must use the same currency.")
        currency = cur
        total += int(unit or 0) * int(qty or 1)
    assert currency is not None
    return total, currency


def create_session(state: SandboxState, ctx: Ctx, p: Params) -> dict[str, Any]:
    p.check_known(CREATE_PARAMS)
    mode = p.str("mode", required=True)
    if mode != "payment":
        raise invalid_param("mode", f"The payops sandbox supports Checkout Sessions with mode=payment only, not "
                            f"{mode!r}.")
    if p.str("ui_mode", default="hosted") != "hosted":
        raise invalid_param("ui_mode", "The payops sandbox supports ui_mode=hosted only.")
    success_url = p.str("success_url", required=True)
    for name in ("success_url", "cancel_url"):
        url = p.str(name)
        if url is not None and not url.startswith(("http://", "https://")):
            raise invalid_param(name, f"Not a valid URL: {url}", "url_invalid")
    types = p.str_list("payment_method_types")
    if types is not None and set(types) != {"card"}:
        raise invalid_param("payment_method_types", "The payops sandbox supports payment_method_types ['card'] only.")
    amount, currency = _line_items_amount(p)
    _amount_ok(amount, currency)
    now = state.now_int()
    expires_at = p.int("expires_at")
    if expires_at is None:
        expires_at = now + DEFAULT_TTL
    elif not MIN_TTL <= expires_at - now <= DEFAULT_TTL:
        raise invalid_param("expires_at", "The `expires_at` timestamp must be between 30 minutes and 24 hours "
                            "after the Checkout Session is created.")
    pi_data = p.data.get("payment_intent_data") or {}
    if not isinstance(pi_data, dict) or set(pi_data) - set(PI_DATA):
        bad = sorted(set(pi_data) - set(PI_DATA)) if isinstance(pi_data, dict) else ["?"]
        raise StripeAPIError(400, f"Received unknown parameter: payment_intent_data[{bad[0]}]",
                             code="parameter_unknown", param=f"payment_intent_data[{bad[0]}]")
    cs = build_session(cs_id=session_id(), created=now, expires_at=expires_at, amount=amount, currency=currency,
                       success_url=success_url, cancel_url=p.str("cancel_url"),
                       customer_email=p.str("customer_email"), client_reference_id=p.str("client_reference_id"),
                       metadata=p.metadata() or {}, locale=p.str("locale"), submit_type=p.str("submit_type"))
    add_session(state, cs, ctx.account, pi_data)
    return expand(state, cs, p)


def _get(state: SandboxState, ctx: Ctx, cs_id: str) -> dict[str, Any]:
    cs = state.get(cs_id, "checkout.session", ctx.account)
    if cs is None:
        raise missing("checkout.session", cs_id)
    return cs


def retrieve_session(state: SandboxState, ctx: Ctx, p: Params, cs_id: str) -> dict[str, Any]:
    return expand(state, _get(state, ctx, cs_id), p)


def expire_endpoint(state: SandboxState, ctx: Ctx, p: Params, cs_id: str) -> dict[str, Any]:
    p.check_known([])
    cs = _get(state, ctx, cs_id)
    if cs["status"] != "open":
        raise StripeAPIError(400, f"Only Checkout Sessions with a status of `open` can be expired. This Checkout "
                             f"Session has a status of `{cs['status']}`.", param="session")
    return expand(state, expire_session(state, cs, request_id=ctx.request_id, idempotency_key=ctx.idempotency_key),
                  p)


def list_sessions(state: SandboxState, ctx: Ctx, p: Params) -> dict[str, Any]:
    p.check_known(["limit", "starting_after", "ending_before", "created", "status", "payment_intent",
                   "customer_details", "customer", "payment_link", "subscription"])
    status = p.str("status")
    if status is not None and status not in STATUSES:
        raise invalid_param("status", f"Invalid status: must be one of {', '.join(STATUSES)}")
    preds = []
    pi = p.str("payment_intent")
    if pi:
        preds.append(lambda oid: state.objects[oid]["payment_intent"] == pi)
    details = p.data.get("customer_details")
    if details is not None:
        email = details.get("email") if isinstance(details, dict) else None
        if not email:
            raise invalid_param("customer_details[email]", "Missing required param: customer_details[email].")
        preds.append(lambda oid: (state.objects[oid]["customer_details"] or {}).get("email") == email)
    for name in ("customer", "payment_link", "subscription"):  # the sandbox makes none of these
        if p.str(name):
            preds.append(lambda oid: False)
    key = ("checkout_status", ctx.account, status) if status else ("checkout_sessions", ctx.account)
    return list_objects(state, p, url="/v1/checkout/sessions", kind="checkout.session",
                        index=state.indexes.get(key),
                        predicate=(lambda oid: all(f(oid) for f in preds)) if preds else None)


# --- the customer on the hosted page (control plane) ------------------------------------------------------
def pay(state: SandboxState, ctx: Ctx, cs_id: str, payment_method: str) -> dict[str, Any]:
    """One payment attempt on the session's page. Returns ``{"session", "payment_intent", "error"?}``."""
    cs = _get(state, ctx, cs_id)
    if cs["status"] != "open":
        raise StripeAPIError(400, f"This Checkout Session is no longer active (status {cs['status']}).",
                             param="session")
    card = ctx.faults.take_checkout_failure() if ctx.faults is not None else None
    card = card or payment_method
    if cs["payment_intent"] is None:
        data = dict(state.checkout_extra.get(cs_id, {}).get("payment_intent_data") or {})
        form: dict[str, Any] = {"amount": str(cs["amount_total"]), "currency": cs["currency"],
                                "payment_method_types": ["card"], **data}
        if cs["customer_email"] and "receipt_email" not in form:
            form["receipt_email"] = cs["customer_email"]
        pi = create_payment_intent(state, ctx, Params(form))
        cs["payment_intent"] = pi["id"]
    error: dict[str, Any] | None = None
    try:
        confirm_payment_intent(state, ctx, Params({"payment_method": card}), cs["payment_intent"])
    except StripeAPIError as exc:
        if exc.status != 402:
            raise
        error = exc.body()["error"]
    pi = state.objects[cs["payment_intent"]]
    if error is None:
        email = cs["customer_email"] or f"customer+{cs_id[-8:].lower()}@example.com"
        cs.update(payment_status="paid", customer_details={
            "address": None, "business_name": None, "email": email, "individual_name": None, "name": None,
            "phone": None, "tax_exempt": "none", "tax_ids": []})
        _set_status(state, cs, "complete")
        state.emit("checkout.session.completed", cs, account=state.owner[cs_id], request_id=ctx.request_id)
    state.dirty = True
    return {"session": cs, "payment_intent": pi, **({"error": error} if error else {})}


def book_history(state: SandboxState, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Sessions created in the past (control plane): open, or already expired at their ``expires_at``."""
    out = []
    now = state.now_int()
    for i, row in enumerate(rows):
        created = int(row["created"])
        if created > now:
            raise ValueError(f"sessions[{i}].created is in the future")
        amount = int(row.get("amount", 5000))
        status = row.get("status", "open")
        if status not in ("open", "expired") or amount < 1:
            raise ValueError(f"sessions[{i}]: status must be open or expired, amount ≥ 1")
        expires_at = int(row.get("expires_at", created + DEFAULT_TTL))
        cs = build_session(cs_id=session_id(), created=created, expires_at=expires_at, amount=amount,
                           currency=str(row.get("currency", "cad")).lower(),
                           success_url=row.get("success_url", "https://auctions.example.com/checkout/success"),
                           cancel_url=None, customer_email=row.get("customer_email"),
                           client_reference_id=row.get("client_reference_id"), metadata=dict(row.get("metadata") or {}))
        if status == "expired":
            cs["status"] = "expired"
        add_session(state, cs, PLATFORM, row.get("payment_intent_data"))
        if status == "expired":
            state.emit("checkout.session.expired", cs, created=min(now, cs["expires_at"]))
        out.append(cs)
    return out
