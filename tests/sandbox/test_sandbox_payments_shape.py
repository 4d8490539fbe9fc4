"""Shapes of the Connect / payment objects vs Stripe's fixtures (tests/fixtures + stripe_reference_payments.json).

Stricter about what exists than about values: every key of the reference must be present, extra
keys must be listed in EXTRA_OK, types must match — except where the reference shows an object
that Stripe returns as null in the state the sandbox produces (NULLABLE), an expandable field the
API returns as an id (reference ``{"id", "object"}``), or an empty hash (free-form, e.g.
``payment_method_options``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import stripe
from payments_helpers import destination_charge, onboarded_account
from sandbox_helpers import STUDIO_A

from payops.sandbox.testing import RunningSandbox

HERE = Path(__file__).parent
REFERENCE = {
    **json.loads((HERE.parent / "fixtures" / "stripe_reference.json").read_text())["resources"],
    **json.loads((HERE / "stripe_reference_payments.json").read_text())["resources"],
}
EXTRA_OK = {
    "event": {"account"}, "event.data": {"previous_attributes"},
    "account.controller": {"fees", "is_controller", "losses", "requirement_collection", "stripe_dashboard"},
    "charge": {"transfer"}, "payment_intent.transfer_data": {"amount"},
    "payment_intent.automatic_payment_methods": {"allow_redirects"},
    "payment_intent.last_payment_error": {"charge", "code", "decline_code", "doc_url", "message", "payment_method"},
}
NULLABLE = {
    "payment_intent.last_payment_error", "payment_intent.next_action", "payment_intent.processing",
    "payment_intent.shipping", "payment_intent.managed_payments", "payment_intent.transfer_data",
    "payment_intent.payment_method_configuration_details", "payment_intent.automatic_payment_methods",
    "charge.shipping", "charge.source", "charge.transfer_data", "charge.payment_method_details.card.installments",
    "charge.payment_method_details.card.three_d_secure", "charge.payment_method_details.card.wallet",
    "payment_method.card.wallet", "payment_method.card.generated_from",
}
SKIP = {"event.data.object", "metadata", "transfer.reversals.data", "account.external_accounts.data",
        "account.capabilities"}  # capabilities: one key per requested capability


def _shape(ref: Any, got: Any, path: str, problems: list[str]) -> None:
    if path in SKIP or path.rsplit(".", 1)[-1] in SKIP or ref is None:
        return
    if isinstance(ref, dict):
        if got is None and path in NULLABLE:
            return
        if isinstance(got, str) and set(ref) == {"id", "object"}:
            return  # an expandable field, not expanded
        if not isinstance(got, dict):
            problems.append(f"{path}: expected object, got {type(got).__name__}")
            return
        if not ref:
            return  # free-form hash
        missing = set(ref) - set(got)
        extra = set(got) - set(ref) - EXTRA_OK.get(path, set())
        if missing:
            problems.append(f"{path}: missing {sorted(missing)}")
        if extra:
            problems.append(f"{path}: undocumented extra {sorted(extra)}")
        for key in set(ref) & set(got):
            _shape(ref[key], got[key], f"{path}.{key}", problems)
    elif isinstance(ref, list):
        if not isinstance(got, list):
            problems.append(f"{path}: expected list")
        elif ref and got:
            for item in got:
                _shape(ref[0], item, path, problems)
    elif got is not None and type(ref) is not type(got):
        problems.append(f"{path}: expected {type(ref).__name__}, got {type(got).__name__}")


def assert_shape(resource: str, obj: Any) -> None:
    problems: list[str] = []
    data = obj.to_dict() if hasattr(obj, "to_dict") else obj
    _shape(REFERENCE[resource], data, resource, problems)
    assert not problems, problems


def test_connect_and_payment_objects_match_the_reference(sb: RunningSandbox, client: stripe.StripeClient) -> None:
    acct = onboarded_account(sb, client, metadata={"k": "v"})
    assert_shape("account", client.v1.accounts.retrieve(acct.id))
    assert_shape("account", client.v1.accounts.create(params={"type": "custom", "country": "US"}))
    pi = destination_charge(client, acct.id, 9_000, application_fee_amount=900)
    assert_shape("payment_intent", pi)
    assert_shape("payment_intent", client.v1.payment_intents.create(params={
        "amount": 1_000, "currency": "cad", "automatic_payment_methods": {"enabled": True}}))
    ch = client.v1.charges.retrieve(pi.latest_charge, params={"expand": ["payment_method"]})
    assert_shape("payment_method", ch.payment_method)
    assert_shape("charge", client.v1.charges.retrieve(pi.latest_charge))
    assert_shape("transfer", client.v1.transfers.retrieve(ch.transfer))
    with pytest.raises(stripe.CardError) as err:
        destination_charge(client, STUDIO_A, payment_method="pm_card_chargeDeclined")
    assert err.value.error is not None
    assert_shape("payment_intent", err.value.error.payment_intent)
    assert_shape("charge", client.v1.charges.retrieve(err.value.error.charge))
    du = sb.control("POST", "disputes", {"charge": pi.latest_charge})
    assert_shape("dispute", client.v1.disputes.retrieve(du["id"]))
    for item in client.v1.disputes.list().data:
        assert_shape("dispute", item)
    for txn in client.v1.balance_transactions.list(params={"limit": 10}).data:
        assert_shape("balance_transaction", txn)
    for txn in client.v1.balance_transactions.list(params={"limit": 10}, options={"stripe_account": acct.id}).data:
        assert_shape("balance_transaction", txn)
    for evt in client.v1.events.list(params={"created": {"gte": pi.created}, "limit": 100}).data:
        assert_shape("event", evt)
        assert_shape(evt.data.object.object, evt.data.object)
    for evt in client.v1.events.list(params={"limit": 100}, options={"stripe_account": acct.id}).data:
        assert_shape("event", evt)
        assert_shape(evt.data.object.object, evt.data.object)
    for item in client.v1.payment_intents.list().data:
        assert_shape("payment_intent", item)
    for item in client.v1.charges.list().data:
        assert_shape("charge", item)
    assert_shape("deleted_account", client.v1.accounts.delete(acct.id))
