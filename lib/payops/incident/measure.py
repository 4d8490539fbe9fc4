"""The runbook's numbers, as pure functions over what the systems returned (no clock, no I/O).

Thresholds are compared exactly (``Decimal`` percentages, integer counts, seconds), and each rule says on
which side its boundary falls — the runbook's words:

- success rate **≥ 97 %** passes (exactly 97 % passes; the alert fires below it);
- a session is **pending beyond 24 h** when it is open and was created *more than* 24 h ago;
- the retry backlog incident rule: **more than 200** messages **for more than 30 minutes** (the oldest
  message has waited more than 30 minutes): 200 messages, or an oldest message of exactly 30 minutes, is not
  an incident; verification wants the depth **below 10** (10 fails);
- webhook lag over the threshold counts a delivery as late (exactly the threshold is not late).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

SUCCEEDED, FAILED = "payment_intent.succeeded", "payment_intent.payment_failed"


# --- payment success --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Rate:
    succeeded: int
    failed: int

    @property
    def attempts(self) -> int:
        return self.succeeded + self.failed

    @property
    def percent(self) -> Decimal | None:
        if not self.attempts:
            return None
        return (Decimal(self.succeeded) * 100 / Decimal(self.attempts)).quantize(Decimal("0.01"), ROUND_HALF_UP)

    def meets(self, threshold: Decimal) -> bool:
        """``succeeded / attempts ≥ threshold %`` exactly (no attempts: nothing failed, so it meets it)."""
        return Decimal(self.succeeded) * 100 >= threshold * self.attempts

    def text(self) -> str:
        pct = self.percent
        return "no payment attempts" if pct is None else f"{pct}% ({self.succeeded}/{self.attempts})"

    def as_dict(self) -> dict[str, Any]:
        pct = self.percent
        return {"succeeded": self.succeeded, "failed": self.failed, "attempts": self.attempts,
                "percent": None if pct is None else str(pct)}


def payment_rate(events: Iterable[dict[str, Any]], lo: int, hi: int) -> Rate:
    """PaymentIntent attempts in ``[lo, hi)``: each ``succeeded`` and each ``payment_failed`` event is one."""
    counts = Counter(e["type"] for e in events if lo <= int(e["created"]) < hi)
    return Rate(counts[SUCCEEDED], counts[FAILED])


def trend(events: list[dict[str, Any]], lo: int, hi: int) -> tuple[Rate, Rate, bool]:
    """The window's two halves and whether success is trending up: the later half's rate is at least the
    earlier half's, or the later half has no failure at all."""
    mid = lo + (hi - lo) // 2
    early, late = payment_rate(events, lo, mid), payment_rate(events, mid, hi)
    if late.failed == 0:
        return early, late, True
    if early.attempts == 0 or late.attempts == 0:
        return early, late, False
    return early, late, late.succeeded * early.attempts >= early.succeeded * late.attempts


def _obj(event: dict[str, Any]) -> dict[str, Any]:
    return (event.get("data") or {}).get("object") or {}


def failures_by_code(events: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """``payment_intent.payment_failed`` by Stripe's error code and decline code, most frequent first."""
    counts: Counter[tuple[str, str]] = Counter()
    for e in events:
        if e["type"] == FAILED:
            err = _obj(e).get("last_payment_error") or {}
            counts[(str(err.get("code") or "unknown"), str(err.get("decline_code") or ""))] += 1
    return [{"code": code, "decline_code": decline, "count": n}
            for (code, decline), n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]


# --- who is affected ---------------------------------------------------------------------------------------
@dataclass
class Affected:
    sessions: list[str] = field(default_factory=list)
    customers: list[str] = field(default_factory=list)
    auctions: list[str] = field(default_factory=list)

    def add(self, session: str | None, customer: str | None, auction: str | None) -> None:
        for value, into in ((session, self.sessions), (customer, self.customers), (auction, self.auctions)):
            if value and value not in into:
                into.append(value)

    def as_dict(self) -> dict[str, Any]:
        return {"sessions": len(self.sessions), "customers": len(self.customers), "auctions": len(self.auctions),
                "session_ids": self.sessions, "customer_ids": self.customers, "auction_ids": self.auctions}


def session_customer(cs: dict[str, Any]) -> str | None:
    return (cs.get("customer_details") or {}).get("email") or cs.get("customer_email") or cs.get("customer")


def affected_by_failures(events: Iterable[dict[str, Any]], sessions: Iterable[dict[str, Any]]) -> Affected:
    """The sessions (via their PaymentIntent), customers and auctions behind failed payments."""
    by_pi = {cs["payment_intent"]: cs for cs in sessions if cs.get("payment_intent")}
    out = Affected()
    for e in sorted((e for e in events if e["type"] == FAILED), key=lambda e: (int(e["created"]), e["id"])):
        pi = _obj(e)
        cs = by_pi.get(pi.get("id"))
        meta = {**(pi.get("metadata") or {}), **((cs or {}).get("metadata") or {})}
        out.add(cs["id"] if cs else None, (session_customer(cs) if cs else None) or pi.get("receipt_email"),
                meta.get("auction_id"))
    return out


def affected_sessions(sessions: Iterable[dict[str, Any]]) -> Affected:
    out = Affected()
    for cs in sessions:
        out.add(cs["id"], session_customer(cs), (cs.get("metadata") or {}).get("auction_id"))
    return out


# --- idempotency -------------------------------------------------------------------------------------------
def idempotency_collisions(events: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Idempotency keys that created more than one object (a key reused after Stripe's 24 h window, or
    derived from something not unique): ``[{key, objects}]``, from the events' ``request.idempotency_key``."""
    by_key: dict[str, set[str]] = defaultdict(set)
    for e in events:
        key = (e.get("request") or {}).get("idempotency_key")
        if key and e["type"].endswith(".created"):
            by_key[key].add(str(_obj(e).get("id")))
    return [{"key": k, "objects": sorted(v)} for k, v in sorted(by_key.items()) if len(v) > 1]


def sessions_per_auction(sessions: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Auctions with more than one Checkout Session in the window (a missing or colliding key upstream)."""
    by_auction: dict[str, list[str]] = defaultdict(list)
    for cs in sessions:
        auction = (cs.get("metadata") or {}).get("auction_id")
        if auction:
            by_auction[auction].append(cs["id"])
    return [{"auction_id": a, "sessions": sorted(ids)} for a, ids in sorted(by_auction.items()) if len(ids) > 1]


# --- webhook lag --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Lag:
    deliveries: int
    p50: float | None
    p95: float | None
    worst: float | None
    late: int  # over the threshold
    threshold: int

    def as_dict(self) -> dict[str, Any]:
        return {"deliveries": self.deliveries, "p50_seconds": self.p50, "p95_seconds": self.p95,
                "max_seconds": self.worst, "late": self.late, "threshold_seconds": self.threshold}


def lag_stats(lags: list[float], threshold: int) -> Lag:
    """Percentiles (nearest rank) of ``received_at − created`` in seconds."""
    if not lags:
        return Lag(0, None, None, None, 0, threshold)
    xs = sorted(lags)

    def rank(p: int) -> float:
        return round(xs[max(0, -(-p * len(xs) // 100) - 1)], 3)

    return Lag(len(xs), rank(50), rank(95), round(xs[-1], 3), sum(x > threshold for x in xs), threshold)


# --- payment windows ------------------------------------------------------------------------------------
def pending_beyond(sessions: Iterable[dict[str, Any]], now: int, hours: int) -> list[dict[str, Any]]:
    """Open sessions created more than ``hours`` ago (exactly ``hours`` is not beyond), oldest first."""
    cut = now - hours * 3600
    return sorted((cs for cs in sessions if cs["status"] == "open" and int(cs["created"]) < cut),
                  key=lambda cs: (int(cs["created"]), cs["id"]))


def classify_window_keys(keys: Iterable[dict[str, Any]], sessions: dict[str, dict[str, Any] | None], now: int,
                         hours: int) -> list[dict[str, Any]]:
    """Each payment-window key with its session's status and why it is stale (or ``""`` if healthy).

    Stale: the session is gone, no longer open, or pending beyond ``hours``; or the key never expires."""
    out = []
    for k in keys:
        cs = sessions.get(k["session_id"])
        why = []
        if cs is None:
            why.append("no such Checkout Session")
        elif cs["status"] != "open":
            why.append(f"session {cs['status']}")
        elif int(cs["created"]) < now - hours * 3600:
            why.append(f"session open beyond {hours} h")
        if k["ttl_seconds"] == -1:
            why.append("key has no TTL")
        out.append({**k, "session_status": cs["status"] if cs else None, "stale": bool(why), "why": ", ".join(why)})
    return out


def expired_series(events: Iterable[dict[str, Any]], lo: int, hi: int, bucket: int = 3600) -> list[dict[str, Any]]:
    """``checkout.session.expired`` per ``bucket`` seconds over ``[lo, hi)`` — flat at 0 is the symptom."""
    n = max(1, -(-(hi - lo) // bucket))
    counts = [0] * n
    for e in events:
        t = int(e["created"])
        if e["type"] == "checkout.session.expired" and lo <= t < hi:
            counts[(t - lo) // bucket] += 1
    return [{"from": lo + i * bucket, "expired": c} for i, c in enumerate(counts)]


# --- retry queue ------------------------------------------------------------------------------------------
def backlog_incident(depth: int, oldest_age_seconds: float | None, depth_over: int, age_over_minutes: int) -> bool:
    """More than ``depth_over`` messages, the oldest waiting more than ``age_over_minutes``."""
    return depth > depth_over and oldest_age_seconds is not None and oldest_age_seconds > age_over_minutes * 60


def backlog_cleared(depth: int, below: int) -> bool:
    return depth < below


def retry_errors(messages: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Retries failing by Stripe error (``last_error.code`` / ``decline_code``), most frequent first."""
    counts: Counter[tuple[str, str]] = Counter()
    for body in messages:
        err = body.get("last_error") or {}
        counts[(str(err.get("code") or err.get("type") or "unknown"), str(err.get("decline_code") or ""))] += 1
    return [{"code": c, "decline_code": d, "count": n}
            for (c, d), n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]


# --- receipts ------------------------------------------------------------------------------------------
def receipt_problem(record: dict[str, Any] | None, pdf_size: int | None, url_ok: bool | None,
                    url_detail: str = "") -> str:
    """Why a paid session's receipt is in error (``""`` when it is fine)."""
    if record is None:
        return "no receipt record"
    if record.get("status") != "issued":
        return f"receipt {record.get('status', 'unknown')}: {record.get('error') or 'no detail'}"
    if not pdf_size:
        return "receipt PDF missing" if pdf_size is None else "receipt PDF empty"
    if url_ok is False:
        return f"download URL: {url_detail}"
    return ""
