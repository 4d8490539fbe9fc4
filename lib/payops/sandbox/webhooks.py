"""Webhook delivery: Stripe's ``Stripe-Signature`` scheme, a background sender with retries.

``sign(payload, secret, timestamp)`` builds ``t=<unix>,v1=<hex hmac-sha256(secret, "t.payload")>``,
which ``stripe.Webhook.construct_event(payload, header, secret)`` accepts. The timestamp is real
time (not the sandbox clock) because the SDK checks it against the local clock (300 s tolerance).

:class:`WebhookDispatcher` queues one delivery per (event, endpoint) and posts from one daemon
thread, retrying failures ``RETRY_DELAYS`` times; every attempt is kept in ``deliveries`` (shown at
``GET /_sandbox/webhooks/deliveries``). A delivered event's ``pending_webhooks`` is decremented.
With the faults (:mod:`payops.sandbox.faults`) a delivery first waits ``webhook_delay_ms``, and a share
``webhook_bad_signature_rate`` of attempts is signed with a wrong secret (the receiver must refuse them;
the attempt is kept with ``"bad_signature": true``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import queue
import threading
import time
from collections import deque
from typing import Any

import httpx

from payops.sandbox.events import endpoints_for
from payops.sandbox.faults import Faults
from payops.sandbox.state import SandboxState

log = logging.getLogger(__name__)
RETRY_DELAYS = (0.5, 1.0, 2.0)
WRONG_SECRET = "whsec_" + "0" * 32  # what a bad-signature fault signs with


def sign(payload: bytes, secret: str, timestamp: int | None = None) -> str:
    ts = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{ts}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={ts},v1={mac}"


class WebhookDispatcher:
    """Posts events to webhook endpoints from a background thread."""

    def __init__(self, state: SandboxState, *, timeout: float = 5.0, faults: Faults | None = None) -> None:
        self.state = state
        self.faults = faults
        self.timeout = timeout
        self.queue: queue.Queue[tuple[str, str, str, bytes, int] | None] = queue.Queue()
        self.deliveries: deque[dict[str, Any]] = deque(maxlen=1000)
        self.outstanding = 0  # deliveries queued, delayed or waiting to be retried (not yet done or given up)
        self._count = threading.Lock()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="sandbox-webhooks", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self.queue.put(None)
            self._thread.join(timeout=5)
            self._thread = None

    def enqueue(self, event: dict[str, Any]) -> None:
        """Called by the state (lock held) for every new event."""
        targets = endpoints_for(self.state, event["type"])
        if not targets:
            return
        event["pending_webhooks"] = len(targets)
        payload = json.dumps(event, indent=2).encode()
        # the secret is looked up at send time (the endpoint may be deleted meanwhile)
        delay = self.faults.webhook_delay_seconds() if self.faults is not None else 0.0
        self._settle(len(targets))
        for endpoint, _secret in targets:
            item = (event["id"], endpoint["id"], endpoint["url"], payload, 0)
            if delay > 0:
                timer = threading.Timer(delay, self.queue.put, args=(item,))
                timer.daemon = True
                timer.start()
            else:
                self.queue.put(item)
        self.state.dirty = True

    def _settle(self, n: int) -> None:
        with self._count:
            self.outstanding += n

    def _run(self) -> None:
        with httpx.Client(timeout=self.timeout) as client:
            while True:
                item = self.queue.get()
                if item is None:
                    return
                self._deliver(client, *item)

    def _deliver(self, client: httpx.Client, event_id: str, we_id: str, url: str, payload: bytes,
                 attempt: int) -> None:
        with self.state.lock:
            secret = self.state.webhook_secrets.get(we_id)
        if secret is None:
            self._settle(-1)
            return  # endpoint deleted meanwhile
        record: dict[str, Any] = {"event": event_id, "endpoint": we_id, "url": url, "attempt": attempt + 1,
                                  "at": time.time()}
        if self.faults is not None and self.faults.take_bad_signature():
            secret = WRONG_SECRET
            record["bad_signature"] = True
        try:
            resp = client.post(url, content=payload, headers={
                "Content-Type": "application/json; charset=utf-8", "Stripe-Signature": sign(payload, secret),
                "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)"})
            record["status"] = resp.status_code
            ok = 200 <= resp.status_code < 300
        except httpx.HTTPError as exc:
            log.warning("webhook %s to %s failed (attempt %d): %s", event_id, url, attempt + 1, exc)
            record["error"] = str(exc)
            ok = False
        self.deliveries.append(record)
        if ok:
            self._settle(-1)
            with self.state.lock:
                evt = self.state.objects.get(event_id)
                if evt is not None and evt["pending_webhooks"] > 0:
                    evt["pending_webhooks"] -= 1
                    self.state.dirty = True
            return
        if attempt < len(RETRY_DELAYS):
            delay = RETRY_DELAYS[attempt]
            timer = threading.Timer(delay, self.queue.put, args=((event_id, we_id, url, payload, attempt + 1),))
            timer.daemon = True
            timer.start()
        else:
            self._settle(-1)
            log.error("webhook %s to %s abandoned after %d attempts", event_id, url, attempt + 1)
