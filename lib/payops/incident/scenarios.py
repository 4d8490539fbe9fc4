"""The four scenarios' measurements: each reads its systems over the window and returns :class:`Findings` —
whether the alert's condition holds, the numbers behind it, who is affected, the detail tables, and the plan
(what a live run would change, listed item by item).

A — checkout failures: Stripe events and sessions, the webhook receiver's own records.
B — payment window: open sessions past the pending limit, ``checkout.session.expired`` over time, Redis keys.
C — retry backlog: the retry queue's depth, oldest age and messages.
D — receipts: the window's paid sessions against the receipts bucket and their download URLs.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from payops.db.models import WebhookEvent, WebhookFailure
from payops.incident import measure as m
from payops.incident.escalation import Signals
from payops.incident.stripe_pull import StripeWindow

LOOKBACK_DAYS = 7  # how far back open sessions are looked for (Stripe keeps a session open 24 h at most)
PEEK_MAX = 10_000
RECEIPTS_MAX = 2_000
URL_CHECKS = 50


@dataclass
class Findings:
    firing: bool
    numbers: list[dict[str, Any]]
    affected: m.Affected
    details: dict[str, Any]
    plan_items: list[dict[str, Any]]
    plan_description: str
    signals: Signals
    series: dict[str, Any] = field(default_factory=dict)


def _row(name: str, value: Any, threshold: str = "", bad: bool | None = None) -> dict[str, Any]:
    return {"number": name, "value": str(value), "threshold": threshold,
            "verdict": "" if bad is None else ("ALERT" if bad else "ok")}


def _iso(t: int) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds")


# --- A. checkout failures ----------------------------------------------------------------------------------
def checkout_failures(ctx: Any, lo: int, hi: int) -> Findings:
    st = ctx.settings
    win = StripeWindow(st)
    rate_lo = hi - st.incident_success_window_minutes * 60
    start = min(lo, rate_lo)
    events, sessions = win.events(start, hi), win.sessions(start, hi)
    in_window = [e for e in events if lo <= int(e["created"]) < hi]
    rate30, rate_win = m.payment_rate(events, rate_lo, hi), m.payment_rate(events, lo, hi)
    threshold = st.incident_success_threshold
    firing = not rate30.meets(threshold)
    affected = m.affected_by_failures(in_window, sessions)
    since = datetime.fromtimestamp(lo, UTC)
    with ctx.session() as s:
        rows = s.execute(select(WebhookEvent.id, WebhookEvent.created, WebhookEvent.received_at).where(
            WebhookEvent.received_at >= since, WebhookEvent.delivery == "webhook")).all()
        refused = s.scalars(select(WebhookFailure).where(WebhookFailure.received_at >= since)
                            .order_by(WebhookFailure.received_at)).all()
        recorded = set(s.scalars(select(WebhookEvent.id).where(
            WebhookEvent.id.in_([f.event_id for f in refused if f.event_id] or [""])))) if refused else set()
        failures = [{"received_at": f.received_at.isoformat(timespec="seconds"), "kind": f.kind,
                     "event_id": f.event_id, "event_type": f.event_type, "account": f.account,
                     "replayed": f.replayed_at is not None, "reason": f.reason[:160]} for f in refused]
    lag = m.lag_stats([(r.received_at.timestamp() - r.created) for r in rows if r.created is not None],
                      st.incident_webhook_lag_seconds)
    todo: dict[str, dict[str, Any]] = {}
    for f in failures:
        if f["event_id"] and f["event_id"] not in recorded and f["kind"] == "signature":
            todo.setdefault(f["event_id"], {"event_id": f["event_id"], "type": f["event_type"],
                                            "account": f["account"]})
    collisions, duplicates = m.idempotency_collisions(in_window), m.sessions_per_auction(
        [cs for cs in sessions if lo <= int(cs["created"]) < hi])
    statuses: dict[str, int] = {}
    for cs in sessions:
        if lo <= int(cs["created"]) < hi:
            statuses[cs["status"]] = statuses.get(cs["status"], 0) + 1
    sig = sum(f["kind"] == "signature" for f in failures)
    numbers = [
        _row(f"PaymentIntent success, last {st.incident_success_window_minutes} min", rate30.text(),
             f"≥ {threshold}%", firing),
        _row("PaymentIntent success, window", rate_win.text()),
        _row("Checkout Sessions created in the window", sum(statuses.values()),
             " · ".join(f"{k} {v}" for k, v in sorted(statuses.items()))),
        _row("payment_intent.payment_failed in the window", rate_win.failed),
        _row("webhook deliveries recorded (lag p50 / p95 / max s)", lag.deliveries,
             f"{lag.p50} / {lag.p95} / {lag.worst}"),
        _row(f"webhook deliveries later than {lag.threshold} s", lag.late, "0", lag.late > 0),
        _row("webhook deliveries refused (signature)", sig, "0", sig > 0),
        _row("refused events not recorded since (to replay)", len(todo), "0", bool(todo)),
        _row("idempotency keys that created several objects", len(collisions), "0", bool(collisions)),
        _row("auctions with several Checkout Sessions", len(duplicates), "0", bool(duplicates)),
    ]
    series = {"rate_buckets": [m.payment_rate(events, t, min(t + 300, hi)).as_dict() | {"from": t}
                               for t in range(start, hi, 300)], "threshold": str(threshold)}
    return Findings(
        firing=firing, numbers=numbers, affected=affected, series=series,
        details={"success_rate": rate30.as_dict(), "failures_by_code": m.failures_by_code(in_window),
                 "webhook_lag": lag.as_dict(), "webhook_failures": failures[-200:],
                 "idempotency_collisions": collisions, "sessions_per_auction": duplicates,
                 "sessions_by_status": statuses},
        plan_items=sorted(todo.values(), key=lambda x: x["event_id"]),
        plan_description=f"replay {len(todo)} refused webhook event(s) from Stripe into the receiver",
        signals=Signals(symptom=firing or bool(todo) or lag.late > 0, success_percent=str(rate30.percent)
                        if rate30.percent is not None else None, customers_affected=len(affected.customers),
                        signature_failures=sig, late_webhooks=lag.late))


# --- B. payment window not expiring --------------------------------------------------------------------------
def payment_window(ctx: Any, lo: int, hi: int) -> Findings:
    from payops.incident.redis_windows import PaymentWindows

    st = ctx.settings
    now, hours = hi - 1, st.incident_pending_hours
    cut = now - hours * 3600
    win = StripeWindow(st)
    overdue = m.pending_beyond(win.sessions(cut - LOOKBACK_DAYS * 86400, cut + 1, status="open"), now,
                               hours)
    day = hi - 86400
    expired = win.events(min(lo, day), hi, types=["checkout.session.expired"])
    expired_window = sum(lo <= int(e["created"]) < hi for e in expired)
    windows = PaymentWindows(st)
    try:
        keys = [k.as_dict() for k in windows.scan()]
    finally:
        windows.close()
    known: dict[str, dict[str, Any] | None] = {cs["id"]: cs for cs in overdue}
    known.update(win.retrieve_sessions([k["session_id"] for k in keys if k["session_id"] not in known][:2000]))
    classified = m.classify_window_keys(keys, known, now, hours)
    stale = [k for k in classified if k["stale"]]
    clear = [k for k in stale if (k["session_status"] != "open") or k["session_id"] in {cs["id"] for cs in overdue}]
    firing = bool(overdue)
    flat = expired_window == 0
    numbers = [
        _row(f"Checkout Sessions open beyond {hours} h", len(overdue), "0", firing),
        _row("checkout.session.expired in the window", expired_window, "> 0 while sessions are overdue",
             flat and firing),
        _row("payment-window keys in Redis", len(keys)),
        _row("stale payment-window keys", len(stale), "0", bool(stale)),
        _row("stale keys without a TTL", sum(k["ttl_seconds"] == -1 for k in stale), "0"),
    ]
    items = [{"session_id": cs["id"], "created": _iso(int(cs["created"])), "expires_at": _iso(int(cs["expires_at"])),
              "auction_id": (cs.get("metadata") or {}).get("auction_id"), "customer": m.session_customer(cs)}
             for cs in overdue]
    plan = [{"kind": "expire", **i} for i in items] + [
        {"kind": "clear_key", "key": k["key"], "session_id": k["session_id"], "why": k["why"]} for k in clear]
    return Findings(
        firing=firing, numbers=numbers, affected=m.affected_sessions(overdue),
        details={"overdue_sessions": items, "window_keys": classified[:500], "expired_in_window": expired_window,
                 "expired_flat": flat},
        series={"expired_per_hour": m.expired_series(expired, day, hi)},
        plan_items=plan, plan_description=f"expire {len(items)} Checkout Session(s) through Stripe and clear "
                                          f"{len(clear)} payment-window key(s)",
        signals=Signals(symptom=firing or bool(stale), customers_affected=len(m.affected_sessions(overdue).customers)))


# --- C. retry backlog -----------------------------------------------------------------------------------------
def retry_backlog(ctx: Any, lo: int, hi: int) -> Findings:
    from payops.incident.queues import open_queue

    st = ctx.settings
    now = ctx.now
    queue = open_queue(st)
    try:
        depth = queue.depth()
        msgs = queue.peek(min(depth, PEEK_MAX))
    finally:
        queue.close()
    ages = [a for a in (msg.age_seconds(now) for msg in msgs) if a is not None]
    oldest = max(ages) if ages else None
    firing = m.backlog_incident(depth, oldest, st.incident_retry_depth, st.incident_retry_age_minutes)
    bodies = [msg.body for msg in msgs]
    affected = m.Affected()
    for b in bodies:
        affected.add(b.get("session_id"), b.get("customer"), b.get("auction_id"))
    limit = st.incident_retry_age_minutes * 60
    old = [msg for msg in msgs if (msg.age_seconds(now) or 0) > limit]
    numbers = [
        _row(f"messages in {queue.name}", depth, f"> {st.incident_retry_depth} is the incident rule",
             depth > st.incident_retry_depth),
        _row("oldest message waiting (min)", "—" if oldest is None else round(oldest / 60, 1),
             f"> {st.incident_retry_age_minutes} is the incident rule",
             oldest is not None and oldest > limit),
        _row("incident rule (both)", "met" if firing else "not met", "", firing),
        _row("verification rule", f"depth {depth}", f"< {st.incident_retry_ok_depth}",
             not m.backlog_cleared(depth, st.incident_retry_ok_depth)),
        _row(f"messages older than {st.incident_retry_age_minutes} min", len(old)),
    ]
    buckets = [0] * 7  # by age: <5, 5–15, 15–30, 30–60, 60–120, 120–240, ≥240 min
    edges = (5, 15, 30, 60, 120, 240)
    for a in ages:
        buckets[sum(a / 60 >= e for e in edges)] += 1
    return Findings(
        firing=firing, numbers=numbers, affected=affected, series={"age_buckets": buckets},
        details={"queue": queue.name, "dead_letter_queue": queue.dead_letter, "depth": depth,
                 "oldest_age_seconds": oldest, "retry_errors": m.retry_errors(bodies),
                 "oldest_messages": [x.as_dict() for x in msgs[:20]]},
        plan_items=[{"message_id": x.message_id, "enqueued_at": x.enqueued_at.isoformat() if x.enqueued_at else None,
                     "session_id": x.body.get("session_id"),
                     "error": (x.body.get("last_error") or {}).get("code")} for x in old],
        plan_description=f"move the {len(old)} message(s) older than {st.incident_retry_age_minutes} min, oldest "
                         f"first, from {queue.name} to {queue.dead_letter}",
        signals=Signals(symptom=firing, backlog_incident=firing, customers_affected=len(affected.customers)))


# --- D. receipts ---------------------------------------------------------------------------------------------
def receipts(ctx: Any, lo: int, hi: int) -> Findings:
    from payops.incident.receipts import ReceiptStore

    st = ctx.settings
    bucket = ReceiptStore(st)
    bucket.check_bucket()
    paid = StripeWindow(st).sessions(lo, hi, status="complete")[:RECEIPTS_MAX]

    def examine(i_cs: tuple[int, dict[str, Any]]) -> dict[str, Any]:
        i, cs = i_cs
        rec = bucket.record(cs["id"])
        size = bucket.pdf_size(cs["id"]) if rec is not None else None
        url = None
        if rec is not None and rec.get("status") == "issued" and size and i < URL_CHECKS:
            url = bucket.check_url(rec.get("download_url"), rec.get("pdf_sha256"))
        problem = m.receipt_problem(rec, size, None if url is None else url.ok, url.detail if url else "")
        return {"session_id": cs["id"], "auction_id": (cs.get("metadata") or {}).get("auction_id"),
                "customer": m.session_customer(cs), "problem": problem,
                "url_status": url.status if url else None, "url": url.as_dict() if url else None}

    with ThreadPoolExecutor(max_workers=8, thread_name_prefix="receipts") as pool:
        checked = list(pool.map(examine, enumerate(paid)))
    errors = [c for c in checked if c["problem"]]
    sample = next((c for c in errors if c["url"]), None) or next((c for c in checked if c["url"]), None)
    affected = m.affected_sessions([cs for cs in paid if cs["id"] in {e["session_id"] for e in errors}])
    forbidden = sum(c["url_status"] == 403 for c in checked)
    by_problem: dict[str, int] = {}
    for e in errors:
        key = e["problem"].split(":")[0]
        by_problem[key] = by_problem.get(key, 0) + 1
    numbers = [
        _row("paid Checkout Sessions in the window", len(paid)),
        _row("receipt errors", len(errors), "0", bool(errors)),
        _row("download URLs answering 403", forbidden, "0", forbidden > 0),
        _row("sample receipt", sample["session_id"] if sample else "—",
             (sample["url"] or {}).get("detail", "") if sample else "no receipt to sample",
             bool(sample and sample["problem"])),
    ]
    return Findings(
        firing=bool(errors), numbers=numbers, affected=affected, series={"by_problem": by_problem},
        details={"bucket": st.s3_bucket, "receipt_errors": errors[:500], "sample": sample, "checked": len(checked)},
        plan_items=[{"session_id": e["session_id"], "problem": e["problem"]} for e in errors],
        plan_description=f"regenerate {len(errors)} receipt(s) (render, upload, fresh download URL)",
        signals=Signals(symptom=bool(errors), receipt_403=forbidden, customers_affected=len(affected.customers),
                        receipts_missing_customers=len(affected.customers)))


SCENARIOS = {"checkout-failures": checkout_failures, "payment-window": payment_window,
             "retry-backlog": retry_backlog, "receipts": receipts}
