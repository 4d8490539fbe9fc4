"""Checkout Sessions in the sandbox, through the official SDK: create, retrieve, list (status, created, pagination,
payment intent, customer email), expire, expiry on the sandbox clock, payment by test card on the "hosted page",
their events — and the faults: decline rate, paused expiry, webhook delay and bad signatures."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import stripe

from payops.sandbox.testing import RunningSandbox

REFERENCE = json.loads((Path(__file__).parent / "stripe_reference_checkout.json").read_text())["resources"]
NULLABLE = {"after_expiration", "automatic_tax.liability", "consent", "consent_collection", "customer_details",
            "invoice_creation.invoice_data.issuer", "invoice_creation.invoice_data.rendering_options",
            "payment_method_configuration_details", "saved_payment_method_options", "shipping_address_collection",
            "shipping_cost", "collected_information", "permissions", "currency_conversion", "wallet_options",
            "discounts", "custom_text.after_submit", "custom_text.shipping_address", "custom_text.submit",
            "custom_text.terms_of_service_acceptance", "invoice_creation.invoice_data.metadata",
            "consent.promotions"}


def _new(client: stripe.StripeClient, **extra: Any) -> Any:
    return client.v1.checkout.sessions.create(params={
        "mode": "payment", "success_url": "https://auctions.example.com/ok",
        "line_items": [{"price_data": {"currency": "cad", "unit_amount": 2500, "product_data": {"name": "Lot"}},
                        "quantity": 2}], **extra})


def _pay(sb: RunningSandbox, cs_id: str, card: str = "pm_card_visa") -> dict[str, Any]:
    return sb.control("POST", "checkout/pay", {"session": cs_id, "payment_method": card})


def _shape(ref: Any, got: Any, path: str = "") -> list[str]:
    if isinstance(ref, dict) and ref:
        if got is None and path in NULLABLE:
            return []
        if not isinstance(got, dict):
            return [f"{path}: expected an object"]
        out = [f"{path}.{k}: missing" for k in set(ref) - set(got)]
        out += [f"{path}.{k}: not in Stripe's object" for k in set(got) - set(ref)]
        for k in set(ref) & set(got):
            if k != "metadata":
                out += _shape(ref[k], got[k], f"{path}.{k}".lstrip("."))
        return out
    if ref is not None and got is not None and type(ref) is not type(got) and not isinstance(ref, dict):
        return [f"{path}: {type(got).__name__} instead of {type(ref).__name__}"]
    return []


def test_create_retrieve_shape_and_validation(client: stripe.StripeClient) -> None:
    cs = _new(client, customer_email="w@example.com", metadata={"auction_id": "AUC-1"})
    assert (cs.status, cs.payment_status, cs.amount_total, cs.currency, cs.mode) == ("open", "unpaid", 5000, "cad",
                                                                                     "payment")
    assert cs.id.startswith("cs_test_") and cs.expires_at - cs.created == 86400 and cs.url.endswith(cs.id)
    assert _shape(REFERENCE["checkout.session"], client.v1.checkout.sessions.retrieve(cs.id).to_dict()) == []
    bad = [({"mode": "subscription"}, "mode"), ({"expires_at": int(time.time()) + 600}, "expires_at"),
           ({"expires_at": int(time.time()) + 25 * 3600}, "expires_at"), ({"success_url": "ftp://x"}, "success_url")]
    for extra, param in bad:
        with pytest.raises(stripe.InvalidRequestError) as info:
            _new(client, **extra)
        assert info.value.param == param
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.checkout.sessions.create(params={"mode": "payment", "success_url": "https://x.io"})
    assert info.value.param == "line_items"
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.checkout.sessions.retrieve("cs_test_nope")
    assert info.value.http_status == 404


def test_pay_by_test_card_events_and_list_filters(sb: RunningSandbox, client: stripe.StripeClient) -> None:
    ok, declined, idle = _new(client, customer_email="ok@example.com"), _new(client), _new(client)
    nsf = _pay(sb, declined.id, "pm_card_chargeDeclinedInsufficientFunds")
    assert nsf["error"]["code"] == "card_declined" and nsf["error"]["decline_code"] == "insufficient_funds"
    assert nsf["session"]["status"] == "open" and nsf["payment_intent"]["status"] == "requires_payment_method"
    paid = _pay(sb, ok.id)
    assert "error" not in paid and paid["session"]["status"] == "complete"
    assert paid["session"]["customer_details"]["email"] == "ok@example.com"
    assert paid["payment_intent"]["status"] == "succeeded" and paid["payment_intent"]["amount"] == 5000
    types = [e.type for e in client.v1.events.list(params={"limit": 20}).data]
    assert types.index("checkout.session.completed") < types.index("payment_intent.succeeded")  # newest first
    assert "payment_intent.payment_failed" in types
    assert [s.id for s in client.v1.checkout.sessions.list(params={"status": "complete"}).data] == [ok.id]
    assert {s.id for s in client.v1.checkout.sessions.list(params={"status": "open"}).data} == {declined.id, idle.id}
    by_pi = client.v1.checkout.sessions.list(params={"payment_intent": paid["payment_intent"]["id"]}).data
    assert [s.id for s in by_pi] == [ok.id]
    by_email = client.v1.checkout.sessions.list(params={"customer_details": {"email": "ok@example.com"}}).data
    assert [s.id for s in by_email] == [ok.id]
    page1 = client.v1.checkout.sessions.list(params={"limit": 2})
    page2 = client.v1.checkout.sessions.list(params={"limit": 2, "starting_after": page1.data[-1].id})
    assert page1.has_more and not page2.has_more
    assert [s.id for s in [*page1.data, *page2.data]] == [idle.id, declined.id, ok.id]
    later = client.v1.checkout.sessions.list(params={"created": {"gt": int(time.time()) + 60}}).data
    assert later == []
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.checkout.sessions.list(params={"status": "paid"})


def test_expire_and_expiry_on_the_sandbox_clock(sb: RunningSandbox, client: stripe.StripeClient) -> None:
    cs = _new(client)
    assert client.v1.checkout.sessions.expire(cs.id).status == "expired"
    with pytest.raises(stripe.InvalidRequestError, match="status of `open` can be expired"):
        client.v1.checkout.sessions.expire(cs.id)
    with pytest.raises(stripe.InvalidRequestError, match="no longer active"):
        _pay_raises(sb, cs.id)
    soon = _new(client, expires_at=int(time.time()) + 1900)
    sb.set_faults(checkout_expiry_paused=True)
    sb.advance_clock(2000)
    assert client.v1.checkout.sessions.retrieve(soon.id).status == "open"  # the incident: it did not expire
    sb.set_faults(checkout_expiry_paused=False)
    assert client.v1.checkout.sessions.retrieve(soon.id).status == "expired"
    expired = [e for e in client.v1.events.list(params={"type": "checkout.session.expired"}).data]
    assert {e.data.object["id"] for e in expired} == {cs.id, soon.id}


def _pay_raises(sb: RunningSandbox, cs_id: str) -> None:
    resp = httpx.post(sb.url + "/_sandbox/checkout/pay", json={"session": cs_id, "payment_method": "pm_card_visa"})
    if resp.status_code >= 400:
        raise stripe.InvalidRequestError(resp.json()["error"], None)


def test_checkout_failure_rate_fault(sb: RunningSandbox, client: stripe.StripeClient) -> None:
    sb.set_faults(checkout_failure_rate=1.0, checkout_failure_card="pm_card_chargeDeclinedExpiredCard")
    got = _pay(sb, _new(client).id)
    assert got["error"]["code"] == "expired_card"
    sb.set_faults(checkout_failure_rate=0.0)
    assert "error" not in _pay(sb, _new(client).id)
    for bad in ({"checkout_failure_rate": 1.5}, {"checkout_failure_card": "pm_card_visa"},
                {"checkout_expiry_paused": "yes"}, {"webhook_bad_signature_rate": -1}):
        resp = httpx.post(sb.url + "/_sandbox/faults", json=bad)
        assert resp.status_code == 400 and next(iter(bad)) in resp.text


def test_restricted_key_needs_checkout_permission(sb: RunningSandbox) -> None:
    with pytest.raises(stripe.PermissionError, match="rak_checkout_session_read"):
        sb.client("rk_test_payops_readonly").v1.checkout.sessions.list()
