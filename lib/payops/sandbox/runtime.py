"""One running sandbox: state + faults + webhook sender + ticker + persistence + request log."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

from payops.sandbox.auth import redact
from payops.sandbox.checkout import expire_due
from payops.sandbox.faults import FaultConfig, Faults
from payops.sandbox.seeds import apply_seed
from payops.sandbox.state import SandboxState
from payops.sandbox.webhooks import WebhookDispatcher

log = logging.getLogger(__name__)


class Sandbox:
    """Everything one server instance needs. ``state_file`` (if given) is loaded at start when it
    exists — a restart resumes where it stopped — and written atomically when dirty (at most every
    ``save_interval`` seconds) and on shutdown."""

    def __init__(self, seed: str = "demo", *, state_file: Path | None = None,
                 faults: FaultConfig | None = None, save_interval: float = 1.0,
                 tick_interval: float = 0.2) -> None:
        self.seed = seed
        self.state_file = Path(state_file) if state_file else None
        self.faults = Faults(faults)
        self.save_interval = save_interval
        self.tick_interval = tick_interval
        self.requests: deque[dict[str, Any]] = deque(maxlen=1000)
        if self.state_file is not None and self.state_file.exists():
            self.state = SandboxState.load(self.state_file)
            log.info("sandbox state loaded from %s (%d objects)", self.state_file, len(self.state.objects))
        else:
            self.state = SandboxState()
            with self.state.lock:
                apply_seed(self.state, seed)
        self.webhooks = WebhookDispatcher(self.state, faults=self.faults)
        self.state.on_event = self.webhooks.enqueue
        self.state.expiry_paused = lambda: self.faults.current.checkout_expiry_paused
        self.state.expire_sessions = expire_due
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- control -------------------------------------------------------------------------------
    def reset(self, seed: str | None = None) -> None:
        """Back to a fresh seed: objects, keys, clock, idempotency and faults."""
        seed = seed or self.seed
        with self.state.lock:
            self.state.clear()
            apply_seed(self.state, seed)
        self.faults.clear()
        self.requests.clear()
        self.webhooks.deliveries.clear()  # the old world's delivery log (what is in flight still settles)

    def reseed(self, seed: str | None = None) -> None:
        """Reload the Stripe objects from ``seed``; keep clock, faults, extra keys, webhook endpoints."""
        seed = seed or self.seed
        with self.state.lock:
            keys = dict(self.state.keys)
            endpoints = [(self.state.objects[i], self.state.webhook_secrets[i])
                         for i in getattr(self.state.indexes.get(("webhook_endpoints",)), "ids", [])]
            self.state.clear(keep_clock=True)
            apply_seed(self.state, seed)
            self.state.keys.update(keys)
            for endpoint, secret in endpoints:
                self.state.add(endpoint, "acct_test_platform", [("webhook_endpoints",)])
                self.state.webhook_secrets[endpoint["id"]] = secret

    def log_request(self, rid: str, method: str, path: str, status: int, key: str,
                    idempotency_key: str | None) -> None:
        self.requests.append({"id": rid, "method": method, "path": path, "status": status,
                              "key": redact(key) if key else None, "idempotency_key": idempotency_key,
                              "at": time.time()})

    # --- background ----------------------------------------------------------------------------
    def start_background(self) -> None:
        self.webhooks.start()
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="sandbox-ticker", daemon=True)
            self._thread.start()

    def stop_background(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self.webhooks.stop()
        self.save()

    def save(self) -> None:
        if self.state_file is not None:
            self.state.save(self.state_file)

    def _loop(self) -> None:
        last_save = time.monotonic()
        while not self._stop.wait(self.tick_interval):
            try:
                self.state.tick()
                if self.state_file is not None and self.state.dirty \
                        and time.monotonic() - last_save >= self.save_interval:
                    self.save()
                    last_save = time.monotonic()
            except Exception:
                log.exception("sandbox ticker failed; retrying on the next tick")
