"""Disputes, and webhook delivery of the payment-cycle events, verified with stripe.Webhook.construct_event."""

from __future__ import annotations

import httpx
import pytest
import stripe
from payments_helpers import SECRET, WebhookReceiver, amounts, destination_charge, onboarded_account
from sandbox_helpers import STUDIO_A, transfer_params

from payops import demo_data
from payops.sandbox.charges import stripe_fee
from payops.sandbox.disputes import DISPUTE_FEE
from payops.sandbox.testing import RunningSandbox


def test_dispute_is_delivered_to_a_webhook_endpoint(sb: RunningSandbox, client: stripe.StripeClient) -> None:
    acct = onboarded_account(sb, client)
    with WebhookReceiver() as hooks:
        endpoint = client.v1.webhook_endpoints.create(params={
            "url": hooks.url, "enabled_events": ["charge.dispute.created", "charge.dispute.funds_withdrawn"]})
        pi = destination_charge(client, acct.id, 8_000)
        before = amounts(client.v1.balance.retrieve().available)["cad"]
        resp = httpx.post(f"{sb.url}/_sandbox/disputes", json={"charge": pi.latest_charge, "reason": "fraudulent"})
        assert resp.status_code == 200, resp.text
        du = resp.json()
        event = hooks.wait_for("charge.dispute.created", endpoint.secret)
        hooks.wait_for("charge.dispute.funds_withdrawn", endpoint.secret)
        # only the subscribed types were delivered (not charge.succeeded & co.)
        assert {e.type for e in hooks.events(endpoint.secret)} == {"charge.dispute.created",
                                                                   "charge.dispute.funds_withdrawn"}
        with pytest.raises(stripe.SignatureVerificationError):
            stripe.Webhook.construct_event(hooks.received[0][0], hooks.received[0][1], "whsec_wrong")
    dispute = event.data.object
    assert dispute.object == "dispute" and dispute.id == du["id"] and dispute.id.startswith("du_")
    assert dispute.charge == pi.latest_charge and dispute.payment_intent == pi.id
    assert dispute.reason == "fraudulent" and dispute.status == "needs_response" and dispute.amount == 8_000
    assert "account" not in event  # destination charges live on the platform
    got = client.v1.disputes.retrieve(du["id"])
    assert got.balance_transactions[0].amount == -8_000 and got.balance_transactions[0].fee == DISPUTE_FEE
    assert got.balance_transactions[0].reporting_category == "dispute"
    assert amounts(client.v1.balance.retrieve().available)["cad"] == before - 8_000 - DISPUTE_FEE
    assert client.v1.charges.retrieve(pi.latest_charge).disputed is True
    assert [d.id for d in client.v1.disputes.list(params={"charge": pi.latest_charge}).data] == [du["id"]]
    # a second dispute on the same charge is refused
    assert httpx.post(f"{sb.url}/_sandbox/disputes", json={"charge": pi.latest_charge}).status_code == 400


def test_dispute_close_won_and_accept(sb: RunningSandbox, client: stripe.StripeClient) -> None:
    pi = destination_charge(client, STUDIO_A, 6_000)
    du = sb.control("POST", "disputes", {"charge": pi.latest_charge, "reason": "product_not_received"})
    before = amounts(client.v1.balance.retrieve().available)["cad"]
    won = sb.control("POST", "disputes", {"dispute": du["id"], "status": "won"})
    assert won["status"] == "won" and len(won["balance_transactions"]) == 2
    assert amounts(client.v1.balance.retrieve().available)["cad"] == before + 6_000
    types = [e.type for e in client.v1.events.list(params={"type": "charge.dispute.*", "limit": 10}).data]
    assert types[:2] == ["charge.dispute.closed", "charge.dispute.funds_reinstated"]
    other = destination_charge(client, STUDIO_A, 7_000)
    inquiry = sb.control("POST", "disputes", {"charge": other.latest_charge, "inquiry": True, "reason": "general"})
    assert inquiry["status"] == "warning_needs_response" and inquiry["balance_transactions"] == []
    closed = client.v1.disputes.close(inquiry["id"])
    assert closed.status == "warning_closed"
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.disputes.close(inquiry["id"])


def test_create_dispute_test_card(client: stripe.StripeClient) -> None:
    pi = destination_charge(client, STUDIO_A, 5_000, payment_method="pm_card_createDispute")
    assert pi.status == "succeeded"
    disputes = client.v1.disputes.list(params={"payment_intent": pi.id}).data
    assert len(disputes) == 1 and disputes[0].reason == "fraudulent" and disputes[0].charge == pi.latest_charge


def test_payment_events_are_delivered_signed(sb: RunningSandbox, client: stripe.StripeClient) -> None:
    with WebhookReceiver() as hooks:
        sb.control("POST", "webhooks", {"url": hooks.url, "enabled_events": ["*"], "secret": SECRET})
        pi = destination_charge(client, STUDIO_A, 4_000)
        succeeded = hooks.wait_for("payment_intent.succeeded")
        charge = hooks.wait_for("charge.succeeded")
        transfer = hooks.wait_for("transfer.created")
        with pytest.raises(stripe.CardError):
            destination_charge(client, STUDIO_A, payment_method="pm_card_chargeDeclined")
        failed = hooks.wait_for("payment_intent.payment_failed")
        hooks.wait_for("charge.failed")
    assert succeeded.data.object.id == pi.id and charge.data.object.id == pi.latest_charge
    assert transfer.data.object.source_transaction == pi.latest_charge
    assert transfer.data.object.amount == 4_000
    assert failed.data.object.last_payment_error.decline_code == "generic_decline"
    fee = stripe_fee(4_000)
    txn = client.v1.balance_transactions.retrieve(charge.data.object.balance_transaction)
    assert txn.net == 4_000 - fee


def test_payout_and_account_events_are_delivered(sb: RunningSandbox, client: stripe.StripeClient) -> None:
    a = {"stripe_account": STUDIO_A}
    with WebhookReceiver() as hooks:
        sb.control("POST", "webhooks", {"url": hooks.url, "secret": SECRET, "enabled_events": [
            "payout.paid", "payout.failed", "payout.canceled", "account.updated"]})
        sb.set_faults(payout_failure={"account": STUDIO_A, "failure_code": "account_closed", "count": 1})
        client.v1.transfers.create(params=transfer_params(300))
        sb.advance_clock(5)
        failed = hooks.wait_for("payout.failed")
        client.v1.transfers.create(params=transfer_params(200, "usd", demo_data.STUDIO_B.account_id))
        sb.advance_clock(5)
        paid = hooks.wait_for("payout.paid")
        sb.control("POST", "accounts", {"id": STUDIO_A, "payout_interval": "manual"})
        updated = hooks.wait_for("account.updated")
        po = client.v1.payouts.create(params={"amount": 300, "currency": "cad"}, options=a)
        client.v1.payouts.cancel(po.id, options=a)
        canceled = hooks.wait_for("payout.canceled")
    assert failed.account == STUDIO_A and failed.data.object.failure_code == "account_closed"
    assert paid.account == demo_data.STUDIO_B.account_id and paid.data.object.status == "paid"
    assert updated.account == STUDIO_A
    assert updated.data.previous_attributes.settings.payouts.schedule.interval == "daily"
    assert canceled.data.object.id == po.id and canceled.data.object.status == "canceled"
