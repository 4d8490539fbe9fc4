"""Connected accounts through the API: create (onboarding incomplete), onboard, update, delete."""

from __future__ import annotations

import pytest
import stripe
from payments_helpers import SECRET, WebhookReceiver, new_account, onboarded_account
from sandbox_helpers import STUDIO_C, transfer_params

from payops import demo_data
from payops.sandbox.testing import RunningSandbox


def test_new_express_account_starts_with_onboarding_incomplete(client: stripe.StripeClient) -> None:
    acct = new_account(client, metadata={"studio_id": "s-new"}, default_currency="cad")
    assert acct.id.startswith("acct_") and acct.object == "account" and acct.type == "express"
    assert acct.charges_enabled is False and acct.payouts_enabled is False and acct.details_submitted is False
    assert acct.requirements.currently_due and acct.requirements.disabled_reason == "requirements.past_due"
    assert acct.capabilities.to_dict() == {"transfers": "inactive"}
    assert acct.country == "CA" and acct.default_currency == "cad" and acct.email == "new-studio@example.com"
    assert acct.metadata.to_dict() == {"studio_id": "s-new"}
    assert acct.controller.stripe_dashboard.type == "express"
    assert client.v1.accounts.retrieve(acct.id).to_dict() == acct.to_dict()
    assert acct.id in [a.id for a in client.v1.accounts.list(params={"limit": 100}).data]
    # like Stripe: no transfers to an account whose transfers capability is not active yet
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.transfers.create(params=transfer_params(100, destination=acct.id))
    assert err.value.code == "insufficient_capabilities_for_transfer"


def test_account_create_defaults_and_validation(client: stripe.StripeClient) -> None:
    us = client.v1.accounts.create(params={"type": "custom", "country": "US",
                                           "capabilities": {"card_payments": {"requested": True},
                                                            "transfers": {"requested": True}}})
    assert us.default_currency == "usd" and us.type == "custom"
    assert us.capabilities.to_dict() == {"card_payments": "inactive", "transfers": "inactive"}
    via_controller = client.v1.accounts.create(params={"controller": {"stripe_dashboard": {"type": "express"}}})
    assert via_controller.type == "express" and via_controller.country == "CA"
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.accounts.create(params={"type": "premium"})  # type: ignore[typeddict-item]
    assert err.value.param == "type"
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.accounts.create(params={"type": "express", "favourite_colour": "blue"})  # type: ignore[typeddict-unknown-key]
    assert err.value.code == "parameter_unknown"
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.accounts.create(params={"type": "express"}, options={"stripe_account": demo_data.STUDIO_A.account_id})


def test_completing_onboarding_emits_account_updated(sb: RunningSandbox, client: stripe.StripeClient) -> None:
    acct = new_account(client)
    with WebhookReceiver() as hooks:
        sb.control("POST", "webhooks", {"url": hooks.url, "enabled_events": ["account.updated"], "secret": SECRET})
        sb.control("POST", "accounts", {"id": acct.id, "charges_enabled": True, "payouts_enabled": True})
        delivered = hooks.wait_for("account.updated")
    assert delivered.account == acct.id and delivered.data.object.id == acct.id
    done = client.v1.accounts.retrieve(acct.id)
    assert done.charges_enabled and done.payouts_enabled and done.details_submitted
    assert done.requirements.currently_due == [] and done.requirements.disabled_reason is None
    assert done.capabilities.transfers == "active" and done.tos_acceptance.date
    event = client.v1.events.list(params={"type": "account.updated"}, options={"stripe_account": acct.id}).data[0]
    assert event.id == delivered.id and event.account == acct.id
    previous = event.data.previous_attributes
    assert previous.charges_enabled is False and previous.payouts_enabled is False
    assert previous.details_submitted is False and previous.capabilities.transfers == "inactive"
    assert previous.requirements.currently_due
    # now it can receive transfers
    tr = client.v1.transfers.create(params=transfer_params(100, destination=acct.id))
    assert tr.destination == acct.id


def test_onboarding_knob_and_seeded_studio_c(sb: RunningSandbox, client: stripe.StripeClient) -> None:
    sb.control("POST", "accounts", {"id": STUDIO_C, "onboarding": "complete"})
    c = client.v1.accounts.retrieve(STUDIO_C)
    assert c.capabilities.to_dict() == {"card_payments": "active", "transfers": "active"}
    assert c.requirements.currently_due == [] and c.details_submitted
    sb.control("POST", "accounts", {"id": STUDIO_C, "onboarding": "incomplete"})
    c = client.v1.accounts.retrieve(STUDIO_C)
    assert not c.payouts_enabled and c.capabilities.transfers == "inactive" and c.requirements.currently_due


def test_update_account_emits_account_updated(sb: RunningSandbox, client: stripe.StripeClient) -> None:
    acct = onboarded_account(sb, client, metadata={"studio_id": "s-1", "tier": "gold"})
    upd = client.v1.accounts.update(acct.id, params={
        "email": "billing@example.com", "metadata": {"tier": "", "region": "qc"},
        "business_profile": {"name": "Studio New", "url": "https://studio.example.com"},
        "settings": {"payouts": {"schedule": {"interval": "manual"}}}})
    assert upd.email == "billing@example.com" and upd.business_profile.name == "Studio New"
    assert upd.metadata.to_dict() == {"studio_id": "s-1", "region": "qc"}
    assert upd.settings.payouts.schedule.interval == "manual"
    event = client.v1.events.list(params={"type": "account.updated", "limit": 1},
                                  options={"stripe_account": acct.id}).data[0]
    assert event.data.object.email == "billing@example.com"
    prev = event.data.previous_attributes.to_dict()
    assert prev["email"] == "new-studio@example.com"
    assert prev["metadata"] == {"tier": "gold", "region": None}
    assert prev["business_profile"] == {"name": None, "url": None}
    assert prev["settings"]["payouts"]["schedule"] == {"interval": "daily"}
    before = len(client.v1.events.list(params={"type": "account.updated", "limit": 100},
                                       options={"stripe_account": acct.id}).data)
    client.v1.accounts.update(acct.id, params={"email": "billing@example.com"})  # no change → no event
    after = client.v1.events.list(params={"type": "account.updated", "limit": 100}, options={"stripe_account": acct.id})
    assert len(after.data) == before
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.accounts.update("acct_does_not_exist", params={"email": "x@example.com"})
    assert err.value.http_status == 404


def test_delete_account(client: stripe.StripeClient) -> None:
    acct = new_account(client)
    deleted = client.v1.accounts.delete(acct.id)
    assert deleted.to_dict() == {"deleted": True, "id": acct.id, "object": "account"}
    assert acct.id not in [a.id for a in client.v1.accounts.list(params={"limit": 100}).data]
    with pytest.raises(stripe.StripeError):
        client.v1.accounts.retrieve(acct.id)
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.accounts.delete(demo_data.PLATFORM_ACCOUNT)


def test_restricted_keys_need_accounts_write(sb: RunningSandbox) -> None:
    for key in (demo_data.FALLBACK_KEY, demo_data.READONLY_KEY):
        with pytest.raises(stripe.PermissionError) as err:
            new_account(sb.client(key))
        assert err.value.http_status == 403 and "rak_connected_account_write" in str(err.value)
    sb.control("POST", "keys", {"key": "rk_test_connect_writer", "permissions": {"accounts": "write"}})
    acct = new_account(sb.client("rk_test_connect_writer"))
    assert acct.id.startswith("acct_")
    with pytest.raises(stripe.PermissionError):
        sb.client(demo_data.READONLY_KEY).v1.accounts.update(acct.id, params={"email": "x@example.com"})
