"""The payment-window keys in Redis: ``{PAYOPS_REDIS_KEY_PREFIX}payment:window:{sessionId}``.

The checkout backend opens a payment window for an auction's winner by setting this key with a TTL
(``SET … EX``) next to the Checkout Session; the key should go when the session completes or expires.

Contract:

1. Keys are found with ``SCAN MATCH`` (never ``KEYS``), and their TTLs read with ``PTTL`` in one pipeline per
   batch; ``-1`` (no expiry) and ``-2`` (gone meanwhile) are kept as Redis says them.
2. Only the keys listed by the caller are deleted (``DEL`` in one call); the count Redis deleted is returned.
3. Any connection or timeout error becomes ``ServiceUnreachable`` naming the Redis URL (password hidden).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from payops.config import Settings
from payops.incident.services import unreachable

KEY_PATTERN = "payment:window:"
SCAN_BATCH = 500


@dataclass(frozen=True)
class WindowKey:
    key: str
    session_id: str
    ttl_seconds: float  # -1: no expiry; -2: the key is gone

    def as_dict(self) -> dict[str, Any]:
        return {"key": self.key, "session_id": self.session_id, "ttl_seconds": self.ttl_seconds}


class PaymentWindows:
    """The Redis adapter (``redis`` client from ``PAYOPS_REDIS_URL``)."""

    def __init__(self, settings: Settings) -> None:
        import redis

        self.url = settings.redis_url
        self.prefix = settings.redis_key_prefix + KEY_PATTERN
        self._errors = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)
        self.client = redis.Redis.from_url(self.url, socket_timeout=settings.service_timeout_seconds,
                                           socket_connect_timeout=settings.service_timeout_seconds,
                                           decode_responses=True)

    @contextmanager
    def _talking(self, doing: str) -> Iterator[None]:
        try:
            yield
        except self._errors as exc:
            raise unreachable("Redis", self.url, exc, doing) from exc

    def key_for(self, session_id: str) -> str:
        return self.prefix + session_id

    def open_window(self, session_id: str, ttl_seconds: int | None) -> None:
        """What the checkout backend does when a winner's payment window opens (``None``: no expiry)."""
        with self._talking("opening a payment window"):
            self.client.set(self.key_for(session_id), "open", ex=ttl_seconds)

    def scan(self, limit: int = 100_000) -> list[WindowKey]:
        """Every payment-window key with its TTL (at most ``limit``)."""
        out: list[WindowKey] = []
        with self._talking("scanning the payment-window keys"):
            batch: list[str] = []
            for key in self.client.scan_iter(match=self.prefix + "*", count=SCAN_BATCH):
                batch.append(key)
                if len(batch) >= SCAN_BATCH:
                    out += self._ttls(batch)
                    batch = []
                if len(out) + len(batch) >= limit:
                    break
            out += self._ttls(batch)
        return out[:limit]

    def _ttls(self, keys: list[str]) -> list[WindowKey]:
        if not keys:
            return []
        pipe = self.client.pipeline(transaction=False)
        for k in keys:
            pipe.pttl(k)
        ttls = pipe.execute()
        return [WindowKey(k, k[len(self.prefix):], ms if ms < 0 else ms / 1000)
                for k, ms in zip(keys, ttls, strict=True)]

    def delete(self, keys: list[str]) -> int:
        if not keys:
            return 0
        with self._talking("clearing the payment-window keys"):
            return int(self.client.delete(*keys))

    def close(self) -> None:
        self.client.close()
