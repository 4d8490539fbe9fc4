"""Balances, balance transactions, accounts, payouts and events through the official SDK."""

from __future__ import annotations

import pytest
import stripe
from sandbox_helpers import STUDIO_A, STUDIO_B, STUDIO_C, transfer_params

from payops import demo_data
from payops.sandbox.testing import RunningSandbox

A = {"stripe_account": STUDIO_A}


def _amounts(rows: list[stripe.StripeObject]) -> dict[str, int]:
    return {r.currency: r.amount for r in rows}


def test_platform_and_connected_balance(client: stripe.StripeClient) -> None:
    bal = client.v1.balance.retrieve()
    assert bal.object == "balance" and bal.livemode is False
    assert _amounts(bal.available) == demo_data.PLATFORM_BALANCE
    assert _amounts(bal.pending) == demo_data.PLATFORM_PENDING
    assert _amounts(bal.connect_reserved) == {"cad": 0, "usd": 0}
    client.v1.transfers.create(params=transfer_params(1_234))
    assert _amounts(client.v1.balance.retrieve().available)["cad"] == demo_data.PLATFORM_BALANCE["cad"] - 1_234
    # the transfer landed on Studio A and was swept by an automatic payout right away
    assert _amounts(client.v1.balance.retrieve(options=A).available)["cad"] == 0


def test_balance_transactions_filters(client: stripe.StripeClient) -> None:
    tr = client.v1.transfers.create(params=transfer_params(5_000))
    platform = client.v1.balance_transactions.list(params={"type": "transfer", "limit": 1})
    txn = platform.data[0]
    assert txn.id == tr.balance_transaction and txn.amount == -5_000 and txn.source == tr.id
    assert client.v1.balance_transactions.retrieve(txn.id).type == "transfer"
    usd = client.v1.balance_transactions.list(params={"currency": "usd", "limit": 100})
    assert usd.data and all(t.currency == "usd" for t in usd.data)
    payments = client.v1.balance_transactions.list(params={"type": "payment"}, options=A)
    assert payments.data[0].source == tr.destination_payment and payments.data[0].amount == 5_000
    po = client.v1.payouts.list(params={"limit": 1}, options=A).data[0]
    assert po.automatic is True and po.amount == 5_000
    settled = client.v1.balance_transactions.list(params={"payout": po.id}, options=A)
    assert {t.type for t in settled.data} == {"payment", "payout"}
    assert sum(t.amount for t in settled.data) == 0
    assert po.balance_transaction in [t.id for t in settled.data]
    hp = next(h for h in demo_data.demo_history() if h.payout_id)
    seeded = client.v1.balance_transactions.list(params={"payout": hp.payout_id},
                                                  options={"stripe_account": hp.studio.account_id})
    assert sorted(t.amount for t in seeded.data) == [-hp.net, hp.net]


def test_accounts_list_and_retrieve(client: stripe.StripeClient) -> None:
    accounts = client.v1.accounts.list()
    by_id = {a.id: a for a in accounts.data}
    assert set(by_id) == {s.account_id for s in demo_data.STUDIOS}
    a = client.v1.accounts.retrieve(STUDIO_A)
    assert a.business_profile.name == "Test Studio A" and a.metadata["studio_id"] == demo_data.STUDIO_A.studio_id
    assert a.capabilities.transfers == "active" and a.payouts_enabled and a.charges_enabled
    assert a.default_currency == "cad" and a.email == "studio-a@example.com"
    c = by_id[STUDIO_C]
    assert c.capabilities.transfers == "inactive" and not c.payouts_enabled
    assert c.requirements.currently_due and c.requirements.disabled_reason
    assert by_id[STUDIO_B].default_currency == "usd"


def test_payout_lifecycle_with_the_clock(sb: RunningSandbox, client: stripe.StripeClient) -> None:
    sb.set_faults(payout_delay_seconds=100)
    tr = client.v1.transfers.create(params=transfer_params(2_500))
    po = client.v1.payouts.list(params={"limit": 1}, options=A).data[0]
    assert po.status == "pending" and po.amount == 2_500 and po.automatic
    assert po.arrival_date >= tr.created + 100
    sb.advance_clock(60)
    assert client.v1.payouts.retrieve(po.id, options=A).status == "in_transit"
    sb.advance_clock(60)
    assert client.v1.payouts.retrieve(po.id, options=A).status == "paid"
    paid = client.v1.events.list(params={"type": "payout.paid", "limit": 1}, options=A).data[0]
    assert paid.data.object.id == po.id and paid.account == STUDIO_A
    assert [p.id for p in client.v1.payouts.list(params={"status": "paid", "limit": 100}, options=A).data
            ].count(po.id) == 1
    window = client.v1.payouts.list(params={"arrival_date": {"gte": po.arrival_date}}, options=A)
    assert [p.id for p in window.data] == [po.id]


def test_payout_paid_by_default_within_seconds(sb: RunningSandbox, client: stripe.StripeClient) -> None:
    client.v1.transfers.create(params=transfer_params(700, "usd", STUDIO_B))
    opts = {"stripe_account": STUDIO_B}
    po = client.v1.payouts.list(params={"limit": 1}, options=opts).data[0]  # type: ignore[arg-type]
    sb.advance_clock(3)
    assert client.v1.payouts.retrieve(po.id, options=opts).status == "paid"  # type: ignore[arg-type]


def test_payout_failure_returns_funds(sb: RunningSandbox, client: stripe.StripeClient) -> None:
    sb.set_faults(payout_failure={"account": STUDIO_A, "failure_code": "account_closed", "count": 1})
    client.v1.transfers.create(params=transfer_params(3_000))
    po = client.v1.payouts.list(params={"limit": 1}, options=A).data[0]
    sb.advance_clock(5)
    po = client.v1.payouts.retrieve(po.id, options=A)
    assert po.status == "failed" and po.failure_code == "account_closed"
    assert po.failure_message and po.failure_balance_transaction
    assert _amounts(client.v1.balance.retrieve(options=A).available)["cad"] == 3_000
    failed = client.v1.events.list(params={"type": "payout.failed"}, options=A)
    assert failed.data[0].data.object.id == po.id
    # the rule was used up: the next payout succeeds
    client.v1.transfers.create(params=transfer_params(10))
    nxt = client.v1.payouts.list(params={"limit": 1}, options=A).data[0]
    assert nxt.amount == 3_010
    sb.advance_clock(5)
    assert client.v1.payouts.retrieve(nxt.id, options=A).status == "paid"


def test_manual_payout_and_cancel(sb: RunningSandbox, client: stripe.StripeClient) -> None:
    sb.control("POST", "accounts", {"id": STUDIO_A, "payout_interval": "manual"})
    client.v1.transfers.create(params=transfer_params(4_000))
    assert client.v1.payouts.list(params={"status": "pending"}, options=A).data == []
    po = client.v1.payouts.create(params={"amount": 1_500, "currency": "cad"}, options=A)
    assert po.automatic is False and po.status == "pending"
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.payouts.create(params={"amount": 10_000, "currency": "cad"}, options=A)
    assert err.value.code == "balance_insufficient"
    canceled = client.v1.payouts.cancel(po.id, options=A)
    assert canceled.status == "canceled"
    assert _amounts(client.v1.balance.retrieve(options=A).available)["cad"] == 4_000


def test_events_list_and_retrieve(client: stripe.StripeClient, sb: RunningSandbox) -> None:
    tr = client.v1.transfers.create(params=transfer_params(10), options={"idempotency_key": "evt-test"})
    evts = client.v1.events.list(params={"type": "transfer.created", "limit": 3})
    evt = evts.data[0]
    assert evt.type == "transfer.created" and evt.data.object.id == tr.id
    assert evt.request.idempotency_key == "evt-test" and evt.request.id.startswith("req_")
    assert client.v1.events.retrieve(evt.id).id == evt.id
    many = client.v1.events.list(params={"types": ["payout.created", "payout.paid"], "limit": 100}, options=A)
    assert many.data and {e.type for e in many.data} <= {"payout.created", "payout.paid"}
    wildcard = client.v1.events.list(params={"type": "payout.*", "limit": 100}, options=A)
    assert len(wildcard.data) == len(many.data)
    recent = client.v1.events.list(params={"created": {"gte": tr.created}})
    assert evt.id in [e.id for e in recent.data]
    sb.control("POST", "accounts", {"id": STUDIO_A, "payouts_enabled": False})
    upd = client.v1.events.list(params={"type": "account.updated"}, options=A).data[0]
    assert upd.data.object.payouts_enabled is False
    assert upd.data.previous_attributes.payouts_enabled is True
    assert client.v1.accounts.retrieve(STUDIO_A).payouts_enabled is False
