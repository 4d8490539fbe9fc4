"""The runbook's five verification steps, each PASS or FAIL from the systems themselves, whatever the scenario:

1. **success rate** — PaymentIntent success ≥ ``PAYOPS_INCIDENT_SUCCESS_THRESHOLD`` (97 %) over the last
   ``PAYOPS_INCIDENT_SUCCESS_WINDOW`` (30) minutes (no attempt at all: nothing failed, PASS said so);
2. **no pending session** — no Checkout Session open beyond ``PAYOPS_INCIDENT_PENDING_HOURS`` (24 h);
3. **retry queue** — depth below ``PAYOPS_INCIDENT_RETRY_OK_DEPTH`` (10) with success trending up (the later
   half of the 30 minutes at least as good as the earlier, or without failures);
4. **receipts** — no receipt error among the window's paid sessions, and a sample receipt downloaded through
   its URL (200, the recorded PDF); with no paid session in the window the newest receipt is the sample;
5. **event counts** — every checkout event Stripe has for the window (older than the lag threshold) is in the
   receiver's ``webhook_events``, counted per type.

A system that does not answer fails its step with the error naming it; the other steps still run. The result
is recorded on the incident: ``verified`` when all five pass, else it stays ``open``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import stripe
from sqlalchemy import select

from payops.checks.report import FAIL, PASS, CheckReport, error_line
from payops.db.models import WebhookEvent
from payops.errors import ConfigError, ServiceUnreachable
from payops.incident import measure as m
from payops.incident import store
from payops.incident.stripe_pull import StripeWindow

CHECKOUT_EVENTS = ("payment_intent.succeeded", "payment_intent.payment_failed", "checkout.session.completed",
                   "checkout.session.expired")
STEPS = ("1 success rate", "2 no session pending", "3 retry queue", "4 receipts", "5 event counts")


def _success(ctx: Any, win: StripeWindow, lo: int, hi: int) -> tuple[bool, str, dict[str, Any]]:
    st = ctx.settings
    rate_lo = hi - st.incident_success_window_minutes * 60
    rate = m.payment_rate(win.events(rate_lo, hi, types=("payment_intent.succeeded", "payment_intent.payment_failed")),
                          rate_lo, hi)
    ok = rate.meets(st.incident_success_threshold)
    return ok, (f"{rate.text()} over the last {st.incident_success_window_minutes} min (≥ "
                f"{st.incident_success_threshold}%)"), rate.as_dict()


def _pending(ctx: Any, win: StripeWindow, lo: int, hi: int) -> tuple[bool, str, dict[str, Any]]:
    hours, now = ctx.settings.incident_pending_hours, hi - 1
    cut = now - hours * 3600
    overdue = m.pending_beyond(win.sessions(cut - 7 * 86400, cut + 1, status="open"), now, hours)
    ids = ", ".join(cs["id"] for cs in overdue[:5]) + (" …" if len(overdue) > 5 else "")
    return not overdue, (f"{len(overdue)} session(s) open beyond {hours} h" + (f": {ids}" if overdue else "")), {
        "pending": len(overdue)}


def _queue(ctx: Any, win: StripeWindow, lo: int, hi: int) -> tuple[bool, str, dict[str, Any]]:
    from payops.incident.queues import open_queue

    st = ctx.settings
    queue = open_queue(st)
    try:
        depth = queue.depth()
    finally:
        queue.close()
    rate_lo = hi - st.incident_success_window_minutes * 60
    events = win.events(rate_lo, hi, types=("payment_intent.succeeded", "payment_intent.payment_failed"))
    early, late, up = m.trend(events, rate_lo, hi)
    ok = m.backlog_cleared(depth, st.incident_retry_ok_depth) and up
    return ok, (f"depth {depth} (< {st.incident_retry_ok_depth} wanted) in {queue.name}; success "
                f"{'trending up or steady' if up else 'falling'}: {early.text()} then {late.text()}"), {
        "depth": depth, "early": early.as_dict(), "late": late.as_dict(), "trending_up": up}


def _receipts(ctx: Any, win: StripeWindow, lo: int, hi: int) -> tuple[bool, str, dict[str, Any]]:
    from payops.incident.receipts import ReceiptStore

    bucket = ReceiptStore(ctx.settings)
    bucket.check_bucket()
    paid = win.sessions(lo, hi, status="complete")[:500]
    errors = []
    sample_rec = None
    for cs in paid:
        rec = bucket.record(cs["id"])
        size = bucket.pdf_size(cs["id"]) if rec is not None else None
        problem = m.receipt_problem(rec, size, None)
        if problem:
            errors.append(f"{cs['id']}: {problem}")
        elif sample_rec is None:
            sample_rec = rec
    if sample_rec is None and not errors:
        latest = bucket.latest_records(1)
        sample_rec = latest[0] if latest else None
    if sample_rec is None:
        return False, f"{len(errors)} receipt error(s); no receipt to sample a download from", {"errors": len(errors)}
    check = bucket.check_url(sample_rec.get("download_url"), sample_rec.get("pdf_sha256"))
    ok = not errors and check.ok
    detail = (f"{len(errors)} receipt error(s) among {len(paid)} paid session(s)"
              + (f" (e.g. {errors[0]})" if errors else "")
              + f"; sample {sample_rec.get('session_id')}: {check.detail}")
    return ok, detail, {"errors": len(errors), "paid": len(paid), "sample": sample_rec.get("session_id"),
                        "sample_status": check.status}


def _events(ctx: Any, win: StripeWindow, lo: int, hi: int) -> tuple[bool, str, dict[str, Any]]:
    grace = ctx.settings.incident_webhook_lag_seconds
    stripe_events = win.events(lo, max(lo, hi - grace), types=CHECKOUT_EVENTS)
    ids = [e["id"] for e in stripe_events]
    with ctx.session() as s:
        got: set[str] = set()
        for i in range(0, len(ids), 500):
            got |= set(s.scalars(select(WebhookEvent.id).where(WebhookEvent.id.in_(ids[i:i + 500]))))
    in_stripe = Counter(e["type"] for e in stripe_events)
    received = Counter(e["type"] for e in stripe_events if e["id"] in got)
    missing = [t for t in sorted(in_stripe) if received[t] != in_stripe[t]]
    counts = ", ".join(f"{t} {received[t]}/{in_stripe[t]}" for t in sorted(in_stripe)) or "no checkout events"
    lost = sum(in_stripe[t] - received[t] for t in missing)
    detail = f"received/Stripe: {counts}" + (f" — missing {lost} event(s): replay them" if missing else "")
    return not missing, detail, {"stripe": dict(in_stripe), "received": dict(received)}


CHECKS: dict[str, Callable[[Any, StripeWindow, int, int], tuple[bool, str, dict[str, Any]]]] = dict(
    zip(STEPS, (_success, _pending, _queue, _receipts, _events), strict=True))


def run(ctx: Any) -> CheckReport:
    """Run the five steps, record the outcome on the incident, return the pass/fail table."""
    lo, hi = ctx.window
    report = CheckReport("incident verification", ctx.incident_id, secrets=ctx.settings.secret_values())
    numbers: dict[str, Any] = {}
    win = StripeWindow(ctx.settings, progress=False)
    for name, check in CHECKS.items():
        try:
            ok, detail, nums = check(ctx, win, lo, hi)
        except (ServiceUnreachable, ConfigError) as exc:
            ok, detail, nums = False, str(exc), {"error": error_line(exc)}
        except stripe.StripeError as exc:  # Stripe (or the sandbox) refused or did not answer: this step fails
            ok, detail, nums = False, f"Stripe at {ctx.settings.stripe_api_base}: {error_line(exc)}", {
                "error": error_line(exc)}
        report.add(name, PASS if ok else FAIL, detail)
        numbers[name] = nums
    with ctx.session() as s:
        row = store.require(s, ctx.incident_id, lock=True)
        store.record_verification(row, {**report.as_dict(), "numbers": numbers}, run_id=ctx.run_id)
    ctx.write_artifact("verification.json", {**report.as_dict(), "numbers": numbers})
    return report
