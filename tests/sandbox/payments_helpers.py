"""Helpers for the Connect / payments sandbox tests: a webhook receiver, onboarded accounts, charges."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import stripe

from payops.sandbox.testing import RunningSandbox

SECRET = "whsec_payments_tests"
CARD_ONLY = {"payment_method_types": ["card"]}


class WebhookReceiver:
    """A tiny HTTP server in a thread that records every POST (body, Stripe-Signature)."""

    def __init__(self) -> None:
        received: list[tuple[bytes, str]] = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append((body, self.headers["Stripe-Signature"]))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.received = received
        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> WebhookReceiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def events(self, secret: str = SECRET) -> list[stripe.Event]:
        """Every delivery so far, verified with the official SDK (raises on a bad signature)."""
        return [stripe.Webhook.construct_event(body, header, secret) for body, header in list(self.received)]

    def wait_for(self, event_type: str, secret: str = SECRET, timeout: float = 10) -> stripe.Event:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for event in self.events(secret):
                if event.type == event_type:
                    return event
            time.sleep(0.02)
        raise AssertionError(f"no {event_type} delivered; got {[e.type for e in self.events(secret)]}")


def new_account(client: stripe.StripeClient, **extra: Any) -> stripe.Account:
    params: dict[str, Any] = {"type": "express", "country": "CA", "email": "new-studio@example.com",
                              "capabilities": {"transfers": {"requested": True}}, **extra}
    return client.v1.accounts.create(params=params)


def onboarded_account(sb: RunningSandbox, client: stripe.StripeClient, **extra: Any) -> stripe.Account:
    """A new express account whose onboarding the control plane completed."""
    acct = new_account(client, **extra)
    sb.control("POST", "accounts", {"id": acct.id, "onboarding": "complete"})
    return client.v1.accounts.retrieve(acct.id)


def destination_charge(client: stripe.StripeClient, destination: str, amount: int = 10_000,
                       options: dict[str, Any] | None = None, **extra: Any) -> stripe.PaymentIntent:
    params: dict[str, Any] = {"amount": amount, "currency": "cad", "payment_method": "pm_card_visa", "confirm": True,
                              "transfer_data": {"destination": destination}, **CARD_ONLY, **extra}
    return client.v1.payment_intents.create(params=params, options=options or {})  # type: ignore[arg-type]


def amounts(rows: list[Any]) -> dict[str, int]:
    return {r.currency: r.amount for r in rows}
