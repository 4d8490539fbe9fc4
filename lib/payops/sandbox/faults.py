"""Fault injection: latency, per-key rate limit, 500s, lost responses, failing payouts.

Configured at start (``serve`` options, ``start_sandbox(**faults)``) and at run time through
``/_sandbox/faults`` (GET shows, POST merges, DELETE restores the start-up configuration).
The JSON shape (every key optional on POST)::

    {
      "latency_ms": 0, "jitter_ms": 0,          # added to every /v1 request (uniform 0..jitter)
      "rate_limit": 25,                         # requests/s per API key (token bucket), 0 = off
      "error_rate": 0.0, "error_seed": 0,       # share of /v1 requests answered 500 (seeded RNG)
      "fail_next": {"POST /v1/transfers": 2},   # the next N matching requests answer 500
      "lost_response": {"POST /v1/transfers": 1},  # the next N matching writes commit, then the
                                                # connection is dropped before the reply
      "payout_failure": [{"account": "acct_…", "failure_code": "account_closed", "count": 1}],
      "payout_delay_seconds": 3,                # pending → in_transit (half) → paid (full)
      "checkout_failure_rate": 0.0,             # share of Checkout payments declined (seeded RNG) …
      "checkout_failure_card": "pm_card_chargeDeclined",  # … as if paid with this declining test card
      "checkout_expiry_paused": false,          # open Checkout Sessions stay open past expires_at
      "webhook_delay_ms": 0,                    # each webhook delivery waits this long before its first attempt
      "webhook_bad_signature_rate": 0.0         # share of delivery attempts signed with a wrong secret (seeded)
    }

Patterns are ``"METHOD /path"`` with shell wildcards (``"POST /v1/transfers/*/reversals"``,
``"* /v1/*"``). Injected 500s happen before the request executes and are not stored under the
idempotency key, so a retry can succeed.
"""

from __future__ import annotations

import copy
import random
import threading
import time
from dataclasses import asdict, dataclass, field, fields
from fnmatch import fnmatchcase
from typing import Any


@dataclass
class FaultConfig:
    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    rate_limit: float = 25.0
    error_rate: float = 0.0
    error_seed: int = 0
    fail_next: dict[str, int] = field(default_factory=dict)
    lost_response: dict[str, int] = field(default_factory=dict)
    payout_failure: list[dict[str, Any]] = field(default_factory=list)
    payout_delay_seconds: float = 3.0
    checkout_failure_rate: float = 0.0
    checkout_failure_card: str = "pm_card_chargeDeclined"
    checkout_expiry_paused: bool = False
    webhook_delay_ms: float = 0.0
    webhook_bad_signature_rate: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def parse_spec(spec: str) -> tuple[str, int]:
    """``'POST /v1/transfers:2'`` → ``('POST /v1/transfers', 2)`` (count defaults to 1)."""
    pattern, sep, count = spec.rpartition(":")
    if not sep or not count.isdigit():
        return spec.strip(), 1
    return pattern.strip(), int(count)


def _validate(cfg: FaultConfig) -> None:
    from payops.sandbox.charges import CARDS, DECLINES

    for name in ("error_rate", "checkout_failure_rate", "webhook_bad_signature_rate"):
        if not 0.0 <= getattr(cfg, name) <= 1.0:
            raise ValueError(f"{name} must be between 0 and 1")
    card = CARDS.get(cfg.checkout_failure_card)
    if card is None or card[1] not in DECLINES:
        raise ValueError(f"checkout_failure_card must be one of Stripe's declining test cards "
                         f"({', '.join(k for k, v in CARDS.items() if v[1] in DECLINES)}), "
                         f"got {cfg.checkout_failure_card!r}")
    for name in ("latency_ms", "jitter_ms", "rate_limit", "payout_delay_seconds", "webhook_delay_ms"):
        if getattr(cfg, name) < 0:
            raise ValueError(f"{name} must be >= 0")
    for name in ("fail_next", "lost_response"):
        for pattern, count in getattr(cfg, name).items():
            if " " not in pattern or int(count) < 0:
                raise ValueError(f"{name}: expected {{'METHOD /path': count}}, got {pattern!r}: {count!r}")
    for rule in cfg.payout_failure:
        if "account" not in rule:
            raise ValueError("payout_failure rules need an 'account'")


class Faults:
    """The live fault configuration plus the runtime state it needs (RNG, token buckets)."""

    def __init__(self, startup: FaultConfig | None = None) -> None:
        self.lock = threading.Lock()
        self.startup = copy.deepcopy(startup or FaultConfig())
        _validate(self.startup)
        self.current = copy.deepcopy(self.startup)
        self.rng = random.Random(self.current.error_seed)
        self.buckets: dict[str, tuple[float, float]] = {}  # key → (tokens, last refill monotonic)

    @classmethod
    def from_kwargs(cls, **kwargs: Any) -> Faults:
        names = {f.name for f in fields(FaultConfig)}
        unknown = set(kwargs) - names
        if unknown:
            raise TypeError(f"unknown fault option(s): {sorted(unknown)}; known: {sorted(names)}")
        return cls(FaultConfig(**kwargs))

    def to_json(self) -> dict[str, Any]:
        with self.lock:
            return self.current.to_json()

    def merge(self, changes: dict[str, Any]) -> dict[str, Any]:
        """POST semantics: set the given knobs; dict knobs merge, a count of 0 removes a pattern."""
        names = {f.name for f in fields(FaultConfig)}
        unknown = set(changes) - names
        if unknown:
            raise ValueError(f"unknown fault(s): {sorted(unknown)}; known: {sorted(names)}")
        with self.lock:
            cfg = copy.deepcopy(self.current)
            for name, value in changes.items():
                if name in ("fail_next", "lost_response"):
                    merged = {**getattr(cfg, name), **{k: int(v) for k, v in dict(value).items()}}
                    setattr(cfg, name, {k: v for k, v in merged.items() if v > 0})
                elif name == "payout_failure":
                    rules = [value] if isinstance(value, dict) else list(value)
                    cfg.payout_failure = [*cfg.payout_failure, *[{"count": 1, **r} for r in rules]]
                elif name == "error_seed":
                    cfg.error_seed = int(value)
                    self.rng = random.Random(cfg.error_seed)
                elif name == "checkout_expiry_paused":
                    if not isinstance(value, bool):
                        raise ValueError(f"checkout_expiry_paused must be true or false, got {value!r}")
                    cfg.checkout_expiry_paused = value
                elif name == "checkout_failure_card":
                    cfg.checkout_failure_card = str(value)
                else:
                    setattr(cfg, name, float(value))
            _validate(cfg)
            self.current = cfg
            if "rate_limit" in changes:
                self.buckets.clear()
            return cfg.to_json()

    def clear(self) -> dict[str, Any]:
        with self.lock:
            self.current = copy.deepcopy(self.startup)
            self.rng = random.Random(self.current.error_seed)
            self.buckets.clear()
            return self.current.to_json()

    # --- per request ---------------------------------------------------------------------------
    def delay_seconds(self) -> float:
        with self.lock:
            cfg = self.current
            if cfg.latency_ms <= 0 and cfg.jitter_ms <= 0:
                return 0.0
            return (cfg.latency_ms + (self.rng.uniform(0, cfg.jitter_ms) if cfg.jitter_ms else 0.0)) / 1000

    def rate_limited(self, key: str) -> float | None:
        """Token bucket per key: ``None`` when allowed, else seconds until a token is free."""
        with self.lock:
            rate = self.current.rate_limit
            if rate <= 0:
                return None
            now = time.monotonic()
            tokens, last = self.buckets.get(key, (rate, now))
            tokens = min(rate, tokens + (now - last) * rate)
            if tokens >= 1.0:
                self.buckets[key] = (tokens - 1.0, now)
                return None
            self.buckets[key] = (tokens, now)
            return (1.0 - tokens) / rate

    def _take(self, table: dict[str, int], method: str, path: str) -> bool:
        target = f"{method} {path}"
        for pattern, count in table.items():
            if count > 0 and fnmatchcase(target, pattern):
                if count == 1:
                    del table[pattern]
                else:
                    table[pattern] = count - 1
                return True
        return False

    def should_fail(self, method: str, path: str) -> bool:
        with self.lock:
            if self._take(self.current.fail_next, method, path):
                return True
            rate = self.current.error_rate
            return rate > 0 and self.rng.random() < rate

    def take_lost_response(self, method: str, path: str) -> bool:
        with self.lock:
            return self._take(self.current.lost_response, method, path)

    def take_checkout_failure(self) -> str | None:
        """The declining card to pay with instead, for this share of Checkout payments (else None)."""
        with self.lock:
            rate = self.current.checkout_failure_rate
            return self.current.checkout_failure_card if rate > 0 and self.rng.random() < rate else None

    def webhook_delay_seconds(self) -> float:
        with self.lock:
            return self.current.webhook_delay_ms / 1000

    def take_bad_signature(self) -> bool:
        """Whether this webhook delivery attempt is signed with a wrong secret."""
        with self.lock:
            rate = self.current.webhook_bad_signature_rate
            return rate > 0 and self.rng.random() < rate

    def take_payout_failure(self, account: str) -> dict[str, Any] | None:
        with self.lock:
            for rule in self.current.payout_failure:
                if rule.get("account") == account and int(rule.get("count", 1)) > 0:
                    rule["count"] = int(rule.get("count", 1)) - 1
                    if rule["count"] == 0:
                        self.current.payout_failure.remove(rule)
                    return rule
            return None
