"""PaymentIntents and destination charges through the official SDK: money, events, declines, idempotency."""

from __future__ import annotations

import pytest
import stripe
from payments_helpers import CARD_ONLY, amounts, destination_charge, new_account, onboarded_account
from sandbox_helpers import STUDIO_A, STUDIO_C

from payops import demo_data
from payops.sandbox.charges import stripe_fee
from payops.sandbox.testing import RunningSandbox


def test_destination_charge_moves_money_and_emits_events(sb: RunningSandbox, client: stripe.StripeClient) -> None:
    acct = onboarded_account(sb, client, settings={"payouts": {"schedule": {"interval": "manual"}}})
    dest = {"stripe_account": acct.id}
    before = amounts(client.v1.balance.retrieve().available)["cad"]
    pi = destination_charge(client, acct.id, 10_000, application_fee_amount=1_000,
                            metadata={"order": "o-1"}, description="class pass")
    assert pi.id.startswith("pi_") and pi.status == "succeeded" and pi.amount_received == 10_000
    assert pi.latest_charge.startswith("ch_") and pi.payment_method.startswith("pm_")
    assert pi.transfer_data.destination == acct.id and pi.application_fee_amount == 1_000
    assert pi.transfer_group == f"group_{pi.id}"
    ch = client.v1.charges.retrieve(pi.latest_charge)
    assert ch.status == "succeeded" and ch.paid and ch.captured and ch.payment_intent == pi.id
    assert ch.transfer.startswith("tr_") and ch.transfer_data.destination == acct.id
    assert ch.metadata.to_dict() == {"order": "o-1"} and ch.payment_method_details.card.last4 == "4242"
    # platform: charge +10,000 minus Stripe's fee, transfer −9,000
    fee = stripe_fee(10_000)
    txn = client.v1.balance_transactions.retrieve(ch.balance_transaction)
    assert (txn.type, txn.amount, txn.fee, txn.net, txn.source) == ("charge", 10_000, fee, 10_000 - fee, ch.id)
    assert txn.fee_details[0].type == "stripe_fee"
    tr = client.v1.transfers.retrieve(ch.transfer)
    assert tr.amount == 9_000 and tr.destination == acct.id and tr.source_transaction == ch.id
    assert tr.transfer_group == pi.transfer_group
    assert amounts(client.v1.balance.retrieve().available)["cad"] == before + 10_000 - fee - 9_000
    # the connected account got the destination payment
    assert amounts(client.v1.balance.retrieve(options=dest).available) == {"cad": 9_000}
    payment = client.v1.balance_transactions.list(params={"type": "payment"}, options=dest).data[0]
    assert payment.amount == 9_000 and payment.source == tr.destination_payment
    assert tr.destination_payment.startswith("py_")
    kinds = [e.type for e in client.v1.events.list(params={"created": {"gte": pi.created}, "limit": 20}).data]
    assert {"payment_intent.created", "charge.succeeded", "payment_intent.succeeded", "transfer.created"} <= set(kinds)
    succeeded = client.v1.events.list(params={"type": "payment_intent.succeeded", "limit": 1}).data[0]
    assert succeeded.data.object.id == pi.id and succeeded.data.object.status == "succeeded"
    charge_evt = client.v1.events.list(params={"type": "charge.succeeded", "limit": 1}).data[0]
    assert charge_evt.data.object.transfer == tr.id
    assert client.v1.payment_intents.list(params={"limit": 5}).data[0].id == pi.id
    assert [c.id for c in client.v1.charges.list(params={"payment_intent": pi.id}).data] == [ch.id]
    expanded = client.v1.payment_intents.retrieve(pi.id, params={"expand": ["latest_charge"]})
    assert expanded.latest_charge.id == ch.id


def test_destination_charge_is_paid_out_like_a_transfer(sb: RunningSandbox, client: stripe.StripeClient) -> None:
    acct = onboarded_account(sb, client)
    dest = {"stripe_account": acct.id}
    pi = destination_charge(client, acct.id, 5_000, transfer_data={"destination": acct.id, "amount": 4_500})
    tr = client.v1.transfers.retrieve(client.v1.charges.retrieve(pi.latest_charge).transfer)
    assert tr.amount == 4_500
    po = client.v1.payouts.list(params={"limit": 1}, options=dest).data[0]
    assert po.automatic and po.amount == 4_500 and po.status == "pending"
    sb.advance_clock(5)
    assert client.v1.payouts.retrieve(po.id, options=dest).status == "paid"
    assert client.v1.events.list(params={"type": "payout.paid"}, options=dest).data[0].data.object.id == po.id


def test_declined_card_is_a_card_error(client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.CardError) as err:
        destination_charge(client, STUDIO_A, payment_method="pm_card_chargeDeclined")
    e = err.value
    assert e.http_status == 402 and e.code == "card_declined" and e.error.type == "card_error"
    assert e.error.decline_code == "generic_decline" and e.user_message == "Your card was declined."
    pi = client.v1.payment_intents.retrieve(e.error.payment_intent.id)
    assert pi.status == "requires_payment_method" and pi.payment_method is None
    assert pi.last_payment_error.code == "card_declined" and pi.last_payment_error.payment_method.id
    ch = client.v1.charges.retrieve(e.error.charge)
    assert ch.status == "failed" and ch.failure_code == "card_declined" and ch.balance_transaction is None
    assert ch.outcome.type == "issuer_declined" and not hasattr(ch, "transfer")
    assert client.v1.events.list(params={"type": "payment_intent.payment_failed", "limit": 1}).data[0].data.object.id \
        == pi.id
    assert client.v1.events.list(params={"type": "charge.failed", "limit": 1}).data[0].data.object.id == ch.id
    with pytest.raises(stripe.CardError) as err:
        destination_charge(client, STUDIO_A, payment_method="pm_card_chargeDeclinedInsufficientFunds")
    assert err.value.error.decline_code == "insufficient_funds"
    with pytest.raises(stripe.CardError) as err:
        destination_charge(client, STUDIO_A, payment_method="pm_card_chargeDeclinedExpiredCard")
    assert err.value.code == "expired_card"
    # a retry with a good card on the same intent succeeds
    ok = client.v1.payment_intents.confirm(pi.id, params={"payment_method": "pm_card_visa"})
    assert ok.status == "succeeded" and ok.latest_charge != ch.id


def test_idempotent_payment_intent_create(client: stripe.StripeClient) -> None:
    opts = {"idempotency_key": "smoke:pi:1"}
    first = destination_charge(client, STUDIO_A, 2_000, options=opts)
    again = destination_charge(client, STUDIO_A, 2_000, options=opts)
    assert again.id == first.id and again.latest_charge == first.latest_charge
    assert again.last_response.headers["Idempotent-Replayed"] == "true"
    assert len(client.v1.charges.list(params={"payment_intent": first.id}).data) == 1
    assert len([e for e in client.v1.events.list(params={"type": "payment_intent.succeeded", "limit": 100}).data
                if e.data.object.id == first.id]) == 1
    with pytest.raises(stripe.IdempotencyError):
        destination_charge(client, STUDIO_A, 2_001, options=opts)
    # a decline is saved under its key too: the retry replays the 402 without a second charge
    bad = {"idempotency_key": "smoke:pi:declined"}
    with pytest.raises(stripe.CardError) as one:
        destination_charge(client, STUDIO_A, options=bad, payment_method="pm_card_chargeDeclined")
    with pytest.raises(stripe.CardError) as two:
        destination_charge(client, STUDIO_A, options=bad, payment_method="pm_card_chargeDeclined")
    assert one.value.error.charge == two.value.error.charge
    assert two.value.headers["Idempotent-Replayed"] == "true"


def test_validation_like_stripe(client: stripe.StripeClient) -> None:
    base = {"amount": 1_000, "currency": "cad", "payment_method": "pm_card_visa", "confirm": True}
    with pytest.raises(stripe.InvalidRequestError) as err:  # automatic payment methods need a return_url
        client.v1.payment_intents.create(params=base)  # type: ignore[arg-type]
    assert "return_url" in str(err.value)
    ok = client.v1.payment_intents.create(params={  # type: ignore[arg-type]
        **base, "automatic_payment_methods": {"enabled": True, "allow_redirects": "never"}})
    assert ok.status == "succeeded" and ok.automatic_payment_methods.allow_redirects == "never"
    assert ok.transfer_data is None and not hasattr(client.v1.charges.retrieve(ok.latest_charge), "transfer")
    cases = [
        ({"amount": 10}, "amount_too_small"),
        ({"payment_method": "pm_card_unknown"}, "resource_missing"),
        ({"transfer_data": {"destination": STUDIO_C}}, "insufficient_capabilities_for_transfer"),
        ({"transfer_data": {"destination": "acct_nope"}}, "resource_missing"),
        ({"application_fee_amount": 10}, "parameter_invalid"),
        ({"transfer_data": {"destination": STUDIO_A}, "on_behalf_of": demo_data.STUDIO_B.account_id},
         "parameter_invalid"),
    ]
    for extra, code in cases:
        with pytest.raises(stripe.InvalidRequestError) as err:
            client.v1.payment_intents.create(params={**base, **CARD_ONLY, **extra})  # type: ignore[arg-type]
        assert err.value.code == code, (extra, err.value)


def test_confirm_later_and_cancel(sb: RunningSandbox, client: stripe.StripeClient) -> None:
    acct = onboarded_account(sb, client, capabilities={"transfers": {"requested": True},
                                                       "card_payments": {"requested": True}})
    assert acct.capabilities.card_payments == "active"
    pi = client.v1.payment_intents.create(params={
        "amount": 3_000, "currency": "cad", "payment_method": "pm_card_visa", "on_behalf_of": acct.id,
        "transfer_data": {"destination": acct.id}, **CARD_ONLY})  # type: ignore[typeddict-item]
    assert pi.status == "requires_confirmation" and pi.latest_charge is None and pi.on_behalf_of == acct.id
    done = client.v1.payment_intents.confirm(pi.id)
    assert done.status == "succeeded" and client.v1.charges.retrieve(done.latest_charge).on_behalf_of == acct.id
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.payment_intents.cancel(pi.id)
    assert err.value.code == "payment_intent_unexpected_state"
    other = client.v1.payment_intents.create(params={"amount": 3_000, "currency": "cad", **CARD_ONLY})
    assert other.status == "requires_payment_method"
    updated = client.v1.payment_intents.update(other.id, params={"metadata": {"k": "v"}})
    assert updated.metadata.to_dict() == {"k": "v"}
    canceled = client.v1.payment_intents.cancel(other.id, params={"cancellation_reason": "abandoned"})
    assert canceled.status == "canceled" and canceled.canceled_at
    assert client.v1.events.list(params={"type": "payment_intent.canceled"}).data[0].data.object.id == other.id


def test_on_behalf_of_needs_card_payments(client: stripe.StripeClient, sb: RunningSandbox) -> None:
    acct = new_account(client)  # transfers only, not onboarded
    sb.control("POST", "accounts", {"id": acct.id, "onboarding": "complete"})
    with pytest.raises(stripe.InvalidRequestError) as err:
        destination_charge(client, acct.id, on_behalf_of=acct.id)
    assert err.value.param == "on_behalf_of"


def test_restricted_keys_need_payment_intents_permission(sb: RunningSandbox) -> None:
    for key in (demo_data.FALLBACK_KEY, demo_data.READONLY_KEY):
        restricted = sb.client(key)
        with pytest.raises(stripe.PermissionError) as err:
            destination_charge(restricted, STUDIO_A)
        assert err.value.http_status == 403 and "rak_payment_intent_write" in str(err.value)
        with pytest.raises(stripe.PermissionError):
            restricted.v1.payment_intents.list()
        with pytest.raises(stripe.PermissionError):
            restricted.v1.charges.list()
    sb.control("POST", "keys", {"key": "rk_test_pi_reader", "permissions": {"payment_intents": "read"}})
    reader = sb.client("rk_test_pi_reader")
    assert reader.v1.payment_intents.list().data == []
    with pytest.raises(stripe.PermissionError):
        destination_charge(reader, STUDIO_A)
