"""Step 20 of a checkout incident: the scenario's action — shown in a dry run, done in a live run.

Invariant: **a live run acts only on the plan of the incident's last dry run** (the list a person read),
never on what it happens to find now; each item is done at most once whatever is retried:

1. A dry run changes nothing anywhere: it prints the plan the triage stored.
2. A live run loads the plan (refused without one) and, for the payment-window expiry, the approval of
   that exact plan by someone other than the operator (checked again here: a notebook may be run by hand).
3. Per scenario:
   A. replay each listed refused webhook event: fetched from Stripe by id and applied by the receiver
      (one ``webhook_events`` row per event id: a second replay is ``duplicate``);
   B. expire each listed session (``POST /v1/checkout/sessions/{id}/expire``, idempotency key
      ``incident:{id}:expire:{cs}``; a session no longer open is skipped and said so), then delete the
      listed payment-window keys;
   C. move the listed messages, oldest first, to the dead-letter queue (copy confirmed before the
      original is acknowledged; stops at the first message not listed);
   D. regenerate each listed receipt from its Checkout Session (render, upload, fresh URL, record).
4. What was done is recorded on the incident (actions, timeline) and in the run folder.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import stripe

from payops.errors import ApprovalMissing, PayopsError
from payops.incident import approval, store
from payops.incident.runbook import APPROVED_SCENARIOS
from payops.stripe_api import make_client, to_payment_error, with_backoff


@dataclass
class ActionResult:
    incident_id: str
    scenario: str
    live: bool
    description: str
    done: list[dict[str, Any]] = field(default_factory=list)
    ok: bool = True

    @property
    def summary_line(self) -> str:
        if not self.live:
            return f"would {self.description} (DRY RUN: nothing changed)"
        counts: dict[str, int] = {}
        for d in self.done:
            counts[d["outcome"]] = counts.get(d["outcome"], 0) + int(d.get("keys", 1))
        return f"{self.description}: " + (", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "nothing to do")

    def as_dict(self) -> dict[str, Any]:
        return {"incident_id": self.incident_id, "scenario": self.scenario, "live": self.live,
                "description": self.description, "summary": self.summary_line, "done": self.done, "ok": self.ok}

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.done[:200])


def run(ctx: Any) -> ActionResult:
    params = ctx.params
    with ctx.session() as s:
        row = store.require(s, params.incident_id)
        plan = store.plan_of(row)
        problem = approval.problem(s, row, ctx.operator, ctx.settings) if (
            not ctx.dry_run and params.scenario in APPROVED_SCENARIOS) else None
    if plan is None:
        raise PayopsError(f"incident {params.incident_id} has no plan: the dry run's triage did not finish")
    result = ActionResult(params.incident_id, params.scenario, not ctx.dry_run, plan["description"])
    if ctx.dry_run:
        result.done = [{**item, "outcome": "planned"} for item in plan["items"]]
    else:
        if problem:
            raise ApprovalMissing(f"live action refused: {problem}")
        result.done = ACTIONS[params.scenario](ctx, plan["items"])
    ctx.write_artifact("actions/plan.json", plan)
    ctx.write_artifact("actions/done.json", result.as_dict())
    with ctx.session() as s:
        row = store.require(s, params.incident_id, lock=True)
        store.record_action(row, {"live": result.live, "summary": result.summary_line,
                                  "items": len(plan["items"]), "plan_sha256": row.plan_sha256}, run_id=ctx.run_id)
    return result


# --- A ------------------------------------------------------------------------------------------------------
def replay_events(ctx: Any, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    from payops.webhooks.receiver import WebhookReceiver

    receiver = WebhookReceiver(ctx.settings)
    out = []
    for item in items:
        try:
            outcome = receiver.replay(item["event_id"], item.get("account"))
            out.append({"event_id": item["event_id"], "outcome": "duplicate" if outcome == "duplicate"
                        else "replayed", "detail": outcome})
        except stripe.InvalidRequestError as exc:
            if exc.http_status != 404:
                raise
            out.append({"event_id": item["event_id"], "outcome": "not in Stripe", "detail": str(exc)[:200]})
    return out


# --- B ------------------------------------------------------------------------------------------------------
def expire_sessions(ctx: Any, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    from payops.incident.redis_windows import PaymentWindows

    client = make_client(settings=ctx.settings, purpose="platform")
    out = []
    for item in (i for i in items if i["kind"] == "expire"):
        cs_id = item["session_id"]
        key = f"incident:{ctx.params.incident_id}:expire:{cs_id}"
        try:
            cs = with_backoff(lambda cs_id=cs_id, key=key: client.v1.checkout.sessions.expire(
                cs_id, options={"idempotency_key": key}))
            out.append({"session_id": cs_id, "outcome": "expired", "detail": f"status {cs.status}"})
        except stripe.InvalidRequestError as exc:
            current = with_backoff(lambda cs_id=cs_id: client.v1.checkout.sessions.retrieve(cs_id))
            if current.status == "open":
                raise to_payment_error(exc) from exc
            out.append({"session_id": cs_id, "outcome": "skipped", "detail": f"already {current.status}"})
    keys = [i["key"] for i in items if i["kind"] == "clear_key"]
    if keys:
        windows = PaymentWindows(ctx.settings)
        try:
            deleted = windows.delete(keys)
        finally:
            windows.close()
        out.append({"keys": len(keys), "outcome": "keys cleared", "detail": f"{deleted} deleted of {len(keys)}"})
    return out


# --- C ------------------------------------------------------------------------------------------------------
def move_to_dead_letter(ctx: Any, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    from payops.incident.queues import open_queue

    queue = open_queue(ctx.settings)
    try:
        moved = queue.move_to_dead_letter([i["message_id"] for i in items],
                                          moved_by=f"{ctx.params.incident_id} run {ctx.run_id}")
    finally:
        queue.close()
    done = set(moved)
    return [{"message_id": i["message_id"], "session_id": i.get("session_id"),
             "outcome": "moved" if i["message_id"] in done else "not at the head (left)",
             "detail": f"→ {ctx.settings.dead_letter_queue}" if i["message_id"] in done else ""} for i in items]


# --- D ------------------------------------------------------------------------------------------------------
def regenerate_receipts(ctx: Any, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    from payops.incident.receipts import ReceiptStore

    bucket = ReceiptStore(ctx.settings)
    client = make_client(settings=ctx.settings, purpose="platform")
    out = []
    for item in items:
        cs = with_backoff(lambda sid=item["session_id"]: client.v1.checkout.sessions.retrieve(sid)).to_dict()
        if cs["payment_status"] != "paid":
            out.append({"session_id": cs["id"], "outcome": "skipped", "detail": f"not paid ({cs['status']})"})
            continue
        record = bucket.issue(cs, issued_by=f"{ctx.params.incident_id} run {ctx.run_id}")
        check = bucket.check_url(record["download_url"], record["pdf_sha256"])
        out.append({"session_id": cs["id"], "outcome": "regenerated" if check.ok else "regenerated, URL failing",
                    "detail": check.detail})
    return out


ACTIONS = {"checkout-failures": replay_events, "payment-window": expire_sessions,
           "retry-backlog": move_to_dead_letter, "receipts": regenerate_receipts}
