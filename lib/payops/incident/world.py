"""A checkout world to rehearse the incident runbook in — for ``make incident-demo``, the tests and the benchmark.

The systems are the real ones the runbook reads: the Stripe sandbox (Checkout, events, signed webhooks), the
webhook receiver (served here), Redis, RabbitMQ, and an S3-compatible server (``moto`` in server mode on a free
port, configured by endpoint URL like a real bucket). Only the *symptoms* are planted, each through the
interface the checkout backend itself would use: sessions created with the official SDK and paid on the
sandbox's "hosted page", keys set in Redis, messages published to the queue, receipts written to the bucket.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from payops.config import Settings

CHECKOUT_EVENTS = ["payment_intent.succeeded", "payment_intent.payment_failed", "payment_intent.created",
                   "checkout.session.completed", "checkout.session.expired"]


@dataclass
class Served:
    """A server running in a daemon thread of this process."""

    url: str
    stop: Callable[[], None]


def start_s3() -> Served:
    """``moto`` in server mode on 127.0.0.1, a free port."""
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per S3 request in the demo's output
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    return Served(f"http://{host}:{port}", server.stop)


def serve_receiver(settings: Settings) -> Served:
    """The webhook receiver (``payops webhooks serve``'s app) on a free port."""
    import httpx
    import uvicorn

    from payops.sandbox.testing import free_port
    from payops.webhooks.app import create_app

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings, trigger=lambda *_: "no cycle here"),
                                           host="127.0.0.1", port=port, log_level="warning", access_log=False,
                                           lifespan="off"))
    thread = threading.Thread(target=server.run, name=f"receiver-{port}", daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 15
    while True:
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.02)

    def stop() -> None:
        server.should_exit = True
        thread.join(timeout=10)

    return Served(url, stop)


class CheckoutWorld:
    """Plants symptoms in the configured systems (``settings``) and the running sandbox (``sandbox``)."""

    def __init__(self, settings: Settings, sandbox: Any) -> None:
        self.settings = settings
        self.sandbox = sandbox
        self.client = sandbox.client()

    # --- Stripe ------------------------------------------------------------------------------------------
    def subscribe(self, receiver_url: str, secret: str) -> None:
        """The sandbox sends the checkout events to the receiver, signed with ``secret``."""
        self.sandbox.control("POST", "webhooks", {"url": receiver_url + "/stripe/webhook",
                                                  "enabled_events": CHECKOUT_EVENTS, "secret": secret})

    def session(self, auction_id: str, email: str, amount: int = 12_500, currency: str = "cad") -> dict[str, Any]:
        cs = self.client.v1.checkout.sessions.create(params={
            "mode": "payment", "success_url": "https://auctions.example.com/checkout/success",
            "line_items": [{"price_data": {"currency": currency, "unit_amount": amount,
                                           "product_data": {"name": f"Winning bid {auction_id}"}}, "quantity": 1}],
            "customer_email": email, "metadata": {"auction_id": auction_id},
            "payment_intent_data": {"metadata": {"auction_id": auction_id}}})
        return dict(cs.to_dict())

    def pay(self, cs_id: str, card: str = "pm_card_visa") -> dict[str, Any]:
        return self.sandbox.control("POST", "checkout/pay", {"session": cs_id, "payment_method": card})

    def checkouts(self, n: int, *, card: str = "pm_card_visa", tag: str = "") -> list[dict[str, Any]]:
        """``n`` auction winners checking out with ``card``; returns the pay results."""
        tag = tag or uuid.uuid4().hex[:6]
        out = []
        for i in range(n):
            cs = self.session(f"AUC-{tag}-{i:03d}", f"winner{i}.{tag}@example.com")
            out.append(self.pay(cs["id"], card))
        return out

    def stale_sessions(self, n: int, *, hours_ago: float = 26, tag: str = "") -> list[dict[str, Any]]:
        """``n`` sessions opened ``hours_ago`` (history) that did not expire (the sandbox's expiry paused)."""
        self.sandbox.set_faults(checkout_expiry_paused=True)
        tag = tag or uuid.uuid4().hex[:6]
        created = int(time.time() - hours_ago * 3600)
        rows = [{"created": created + i, "amount": 9_900, "currency": "cad",
                 "customer_email": f"stale{i}.{tag}@example.com", "metadata": {"auction_id": f"AUC-{tag}-S{i:02d}"}}
                for i in range(n)]
        return list(self.sandbox.control("POST", "checkout/sessions", {"sessions": rows})["data"])

    # --- Redis -------------------------------------------------------------------------------------------
    def payment_windows(self, session_ids: list[str], ttl_seconds: int | None) -> None:
        from payops.incident.redis_windows import PaymentWindows

        windows = PaymentWindows(self.settings)
        try:
            for sid in session_ids:
                windows.open_window(sid, ttl_seconds)
        finally:
            windows.close()

    # --- RabbitMQ ----------------------------------------------------------------------------------------
    def backlog(self, n: int, *, minutes_ago: float, code: str = "card_declined",
                decline_code: str = "insufficient_funds", tag: str = "") -> list[str]:
        """``n`` failed checkout operations waiting for a retry since ``minutes_ago`` (oldest first)."""
        from payops.incident.queues import RabbitRetryQueue

        tag = tag or uuid.uuid4().hex[:6]
        queue = RabbitRetryQueue(self.settings)
        start = datetime.now(UTC) - timedelta(minutes=minutes_ago)
        ids = []
        try:
            queue.declare()
            for i in range(n):
                mid = f"retry-{tag}-{i:05d}"
                queue.publish({"session_id": f"cs_test_{tag}{i:05d}", "payment_intent": None,
                               "auction_id": f"AUC-{tag}-R{i:04d}", "customer": f"retry{i}.{tag}@example.com",
                               "operation": "confirm_payment", "attempts": 5,
                               "last_error": {"type": "card_error", "code": code, "decline_code": decline_code}},
                              message_id=mid, enqueued_at=start + timedelta(seconds=i * 0.01))
                ids.append(mid)
        finally:
            queue.close()
        return ids

    # --- S3 ----------------------------------------------------------------------------------------------
    def bucket(self) -> None:
        from payops.incident.receipts import ReceiptStore

        ReceiptStore(self.settings).s3.create_bucket(Bucket=self.settings.s3_bucket)

    def receipts(self, session_ids: list[str], *, broken: str | None = None) -> None:
        """Issue the sessions' receipts like the backend; ``broken``: ``"403"`` (the URL handed out is the
        object's plain address — the private bucket refuses it) or ``"failed"`` (generation failed: no PDF)."""
        from payops.incident.receipts import ReceiptStore

        store = ReceiptStore(self.settings)
        for sid in session_ids:
            cs = dict(self.client.v1.checkout.sessions.retrieve(sid).to_dict())
            if broken == "failed":
                store.write_record({"session_id": sid, "auction_id": cs["metadata"].get("auction_id"),
                                    "status": "error", "error": "PDF renderer timed out", "download_url": None})
                continue
            record = store.issue(cs, issued_by="checkout-backend")
            if broken == "403":
                record["download_url"] = record["download_url"].split("?", 1)[0]
                store.write_record(record)
