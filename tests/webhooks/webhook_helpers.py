"""Helpers for the webhook receiver tests: signed posts, sandbox events, ledger rows, a live server."""

from __future__ import annotations

import contextlib
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import stripe
import uvicorn
from sqlalchemy import select
from starlette.applications import Starlette

from payops.config import Settings
from payops.db import session_scope
from payops.db.models import LedgerPayout, Studio, WebhookEvent
from payops.sandbox.testing import listening_socket
from payops.sandbox.webhooks import sign

WEBHOOK_SECRET = "whsec_payops_receiver_tests"
CRON_SECRET = "cron-token-for-tests-3f9c1e"


def encode(event: dict[str, Any]) -> bytes:
    """The payload bytes as Stripe (and the sandbox) send them."""
    return json.dumps(event, indent=2).encode()


def post_event(http: Any, event: dict[str, Any] | bytes, *, secret: str = WEBHOOK_SECRET,
               timestamp: int | None = None, signature: str | None = None, signed: bool = True) -> httpx.Response:
    """POST a (signed) event to ``/stripe/webhook`` with an httpx.Client."""
    payload = event if isinstance(event, bytes) else encode(event)
    headers = {"Content-Type": "application/json; charset=utf-8"}
    if signed:
        headers["Stripe-Signature"] = signature or sign(payload, secret, timestamp)
    return http.post("/stripe/webhook", content=payload, headers=headers)


def make_event(event_type: str, obj: dict[str, Any], *, account: str | None = None, livemode: bool = False,
               created: int | None = None, event_id: str | None = None) -> dict[str, Any]:
    """An event in Stripe's shape (for types the sandbox does not emit)."""
    event: dict[str, Any] = {
        "api_version": "2024-06-20", "created": created or int(time.time()), "data": {"object": obj},
        "id": event_id or "evt_" + uuid.uuid4().hex[:24], "livemode": livemode, "object": "event",
        "pending_webhooks": 1, "request": {"id": None, "idempotency_key": None}, "type": event_type,
    }
    if account:
        event["account"] = account
    return event


def sandbox_events(sandbox: Any, event_type: str, *, account: str | None = None) -> list[dict[str, Any]]:
    """Raw events of one type from the sandbox's ``/v1/events`` (newest first), as Stripe would send them."""
    headers = {"Authorization": f"Bearer {sandbox.platform_key}"}
    if account:
        headers["Stripe-Account"] = account
    resp = httpx.get(f"{sandbox.url}/v1/events", params={"type": event_type, "limit": 100}, headers=headers,
                     timeout=10)
    resp.raise_for_status()
    return list(resp.json()["data"])


def sandbox_event_for(sandbox: Any, event_type: str, object_id: str, *, account: str | None = None,
                      timeout: float = 10) -> dict[str, Any]:
    """The sandbox's ``event_type`` event about ``object_id`` (waits for the ticker if needed)."""
    deadline = time.monotonic() + timeout
    while True:
        for evt in sandbox_events(sandbox, event_type, account=account):
            if evt["data"]["object"]["id"] == object_id:
                return evt
        if time.monotonic() > deadline:
            raise AssertionError(f"no {event_type} event for {object_id} in the sandbox")
        time.sleep(0.05)


def transfer(client: stripe.StripeClient, account: str, amount: int, currency: str = "cad") -> Any:
    """A platform → studio transfer through the SDK (as the payout cycle makes them)."""
    return client.v1.transfers.create(params={"amount": amount, "currency": currency, "destination": account,
                                              "transfer_group": "lp-" + uuid.uuid4().hex[:8]})


def latest_payout(client: stripe.StripeClient, account: str) -> Any:
    page = client.v1.payouts.list({"limit": 1}, {"stripe_account": account})
    assert page.data, f"no payout on {account}"
    return page.data[0]


def add_ledger_payout(settings: Settings, studio_id: str, *, status: str = "transferred", tr: Any = None,
                      net: int = 5000, currency: str = "CAD", payout_id: str | None = None,
                      destination_payment: str | None = None) -> str:
    """A ledger payout row (no run) carrying the transfer's ids; returns its id."""
    lp_id = str(uuid.uuid4())
    with session_scope(settings) as s:
        s.add(LedgerPayout(
            id=lp_id, run_id=None, studio_id=studio_id, gross=net, fee=0, reserve=0, net=net, currency=currency,
            status=status, stripe_transfer_id=tr.id if tr is not None else None,
            stripe_destination_payment_id=destination_payment or (tr.destination_payment if tr is not None else None),
            stripe_payout_id=payout_id))
    return lp_id


def ledger_payout(settings: Settings, lp_id: str) -> LedgerPayout:
    with session_scope(settings) as s:
        row = s.get(LedgerPayout, lp_id)
        assert row is not None
        return row


def studio(settings: Settings, studio_id: str) -> Studio:
    with session_scope(settings) as s:
        row = s.get(Studio, studio_id)
        assert row is not None
        return row


def recorded(settings: Settings) -> list[WebhookEvent]:
    with session_scope(settings) as s:
        return list(s.scalars(select(WebhookEvent).order_by(WebhookEvent.received_at, WebhookEvent.id)))


def wait_until(check: Callable[[], Any], timeout: float = 15, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@contextlib.contextmanager
def serving(app: Starlette) -> Iterator[str]:
    """Serve ``app`` with uvicorn in a thread on a free port; yields its base URL."""
    sock = listening_socket()
    port = int(sock.getsockname()[1])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           access_log=False, lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name=f"receiver-{port}", daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: _answers(url), timeout=15, what=f"the receiver on {url}")
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url + "/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False
