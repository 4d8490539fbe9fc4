"""Webhook delivery with Stripe's signature scheme, and object shapes vs Stripe's fixtures."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
import stripe
from sandbox_helpers import STUDIO_A, transfer_params

from payops.sandbox.testing import RunningSandbox

REFERENCE = json.loads((Path(__file__).parents[1] / "fixtures" / "stripe_reference.json").read_text())["resources"]
# Keys the sandbox adds on purpose (documented): Connect events name their account, account.updated
# carries previous_attributes, and a webhook endpoint's secret is returned by create only.
EXTRA_OK = {"event": {"account"}, "event.data": {"previous_attributes"}, "webhook_endpoint": {"secret"}}
# Nested values that are another resource in the sandbox (compared separately) or free-form.
SKIP = {"event.data.object", "metadata", "transfer.reversals.data", "account.external_accounts.data"}


class _Receiver(BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[bytes, str]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((body, self.headers["Stripe-Signature"]))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Any:
    _Receiver.received = []
    server = HTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/hooks", _Receiver.received
    server.shutdown()


def _wait_for(items: list[Any], n: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while len(items) < n and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(items) >= n, f"expected {n} deliveries, got {len(items)}"


def test_webhook_delivery_is_signed(client: stripe.StripeClient, receiver: Any) -> None:
    url, received = receiver
    endpoint = client.v1.webhook_endpoints.create(params={"url": url, "enabled_events": ["transfer.created"]})
    assert endpoint.secret.startswith("whsec_")
    assert "secret" not in client.v1.webhook_endpoints.retrieve(endpoint.id)
    tr = client.v1.transfers.create(params=transfer_params(100))
    _wait_for(received, 1)
    payload, header = received[0]
    event = stripe.Webhook.construct_event(payload, header, endpoint.secret)
    assert event.type == "transfer.created" and event.data.object.id == tr.id
    forged = header.replace("v1=", "v1=00")
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(payload, forged, endpoint.secret)
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(payload, header, "whsec_wrong")
    assert [e.id for e in client.v1.webhook_endpoints.list().data] == [endpoint.id]
    deleted = client.v1.webhook_endpoints.delete(endpoint.id)
    assert deleted.deleted is True


def test_control_plane_webhook_with_known_secret(sb: RunningSandbox, client: stripe.StripeClient,
                                                 receiver: Any) -> None:
    url, received = receiver
    secret = "whsec_known_for_tests"
    sb.control("POST", "webhooks", {"url": url, "enabled_events": ["payout.paid"], "secret": secret})
    client.v1.transfers.create(params=transfer_params(100))
    sb.advance_clock(5)
    _wait_for(received, 1)
    event = stripe.Webhook.construct_event(received[0][0], received[0][1], secret)
    assert event.type == "payout.paid" and event.account == STUDIO_A


def _shape(name: str, ref: Any, got: Any, path: str, problems: list[str]) -> None:
    if path in SKIP or path.rsplit(".", 1)[-1] in SKIP:
        return
    if ref is None:
        return  # null in the reference: any type allowed
    if isinstance(ref, dict):
        if not isinstance(got, dict):
            problems.append(f"{path}: expected object, got {type(got).__name__}")
            return
        missing = set(ref) - set(got)
        extra = set(got) - set(ref) - EXTRA_OK.get(path, set())
        if missing:
            problems.append(f"{path}: missing {sorted(missing)}")
        if extra:
            problems.append(f"{path}: undocumented extra {sorted(extra)}")
        for key in set(ref) & set(got):
            _shape(name, ref[key], got[key], f"{path}.{key}", problems)
    elif isinstance(ref, list):
        if not isinstance(got, list):
            problems.append(f"{path}: expected list")
        elif ref and got:
            for item in got:
                _shape(name, ref[0], item, path, problems)
    elif got is not None and type(ref) is not type(got):
        problems.append(f"{path}: expected {type(ref).__name__}, got {type(got).__name__}")


def assert_shape(resource: str, obj: Any) -> None:
    problems: list[str] = []
    data = obj.to_dict() if hasattr(obj, "to_dict") else obj
    _shape(resource, REFERENCE[resource], data, resource, problems)
    assert not problems, problems


def test_every_served_resource_matches_the_reference(sb: RunningSandbox, client: stripe.StripeClient) -> None:
    a = {"stripe_account": STUDIO_A}
    tr = client.v1.transfers.create(params=transfer_params(1_000))
    rev = client.v1.transfers.reversals.create(tr.id, params={"amount": 10})
    tr = client.v1.transfers.retrieve(tr.id)
    assert_shape("transfer", tr)
    assert_shape("transfer_reversal", rev)
    assert_shape("balance", client.v1.balance.retrieve())
    assert_shape("balance", client.v1.balance.retrieve(options=a))
    for txn in client.v1.balance_transactions.list(params={"limit": 100}).data:
        assert_shape("balance_transaction", txn)
    for txn in client.v1.balance_transactions.list(params={"limit": 100}, options=a).data:
        assert_shape("balance_transaction", txn)
    for acct in client.v1.accounts.list().data:
        assert_shape("account", acct)
    sb.set_faults(payout_failure={"account": STUDIO_A, "failure_code": "no_account"})
    client.v1.transfers.create(params=transfer_params(50))
    sb.advance_clock(5)
    for po in client.v1.payouts.list(params={"limit": 100}, options=a).data:
        assert_shape("payout", po)
    sb.control("POST", "accounts", {"id": STUDIO_A, "email": "new@example.com"})
    for evt in client.v1.events.list(params={"limit": 100}).data:
        assert_shape("event", evt)
    for evt in client.v1.events.list(params={"limit": 100}, options=a).data:
        assert_shape("event", evt)
        kind = evt.data.object.object
        assert_shape(kind, evt.data.object)
    endpoint = client.v1.webhook_endpoints.create(params={"url": "http://127.0.0.1:9/x", "enabled_events": ["*"]})
    assert_shape("webhook_endpoint", endpoint)
    assert_shape("webhook_endpoint", client.v1.webhook_endpoints.retrieve(endpoint.id))
    assert_shape("deleted_webhook_endpoint", client.v1.webhook_endpoints.delete(endpoint.id))
    listing = client.v1.transfers.list(params={"limit": 2})
    assert set(listing.to_dict()) == {"object", "data", "has_more", "url"}
    assert listing.url == "/v1/transfers"
