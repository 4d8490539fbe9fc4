"""Steps 70 (validate) and 90 (wrap-up): collect the evidence, judge the four criteria, close the rehearsal.

``70-validate`` (:func:`collect`) reads what happened — never trusting a step's own word alone: the
transfer from Stripe, the ``manual_payouts`` row back from the rehearsal database, the messages from
the live run's delivery records and drafts, the payout's status. It records evidence and never fails.

``90-wrap-up`` (:func:`wrap_up`) always runs, even when a step failed: it switches the automation back
on (in the rehearsal database), stamps the finish on Stripe's clock, judges the criteria
(:mod:`payops.rehearsal.criteria`), lists the action items with owners and writes the short summary for
the weekly Payments Ops meeting. The CLI exits non-zero when a criterion fails.
"""

from __future__ import annotations

import email
import email.policy
import json
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import select

from payops import runstate
from payops.config import Settings
from payops.db import session_scope
from payops.db.models import ManualPayout, RunbookRun
from payops.rehearsal import criteria, world
from payops.rehearsal.params import parse_action
from payops.rehearsal.steps import RehearsalContext, styled

__all__ = ["RehearsalContext", "Validation", "WrapUp", "collect", "conclude", "switch_automation_on", "validate",
           "wrap_up"]

AUDIT_FIELDS = ("id", "run_id", "incident_id", "studio_id", "ledger_payout_id", "amount", "currency", "reserve_after",
                "reason", "destination_account", "stripe_transfer_id", "approver_ops_id", "approver_finance_id",
                "operator", "is_rehearsal", "status", "settled_at")


def sop_runs(settings: Settings, ledger_payout_id: str | None) -> tuple[RunbookRun | None, RunbookRun | None]:
    """The SOP's newest dry run and newest live (rehearsal-mode) run for this ledger payout."""
    if not ledger_payout_id:
        return None, None
    with session_scope(settings) as s:
        q = (select(RunbookRun).where(RunbookRun.sop == "manual_payout", RunbookRun.subject_key == ledger_payout_id)
             .order_by(RunbookRun.created_at.desc()))
        runs = list(s.scalars(q))
        s.expunge_all()
    dry = next((r for r in runs if r.mode == "dry-run"), None)
    live = next((r for r in runs if r.mode != "dry-run"), None)
    return dry, live


def _results(settings: Settings, run: RunbookRun | None) -> dict[str, dict[str, Any]]:
    if run is None:
        return {}
    with session_scope(settings) as s:
        return {st.step: json.loads(st.result_json) for st in runstate.steps_of(s, run.id) if st.result_json}


def _email_draft(run: RunbookRun | None) -> dict[str, Any]:
    if run is None:
        return {}
    drafts = sorted(Path(run.output_dir or ".").glob("drafts*/email.eml"))
    if not drafts:
        return {}
    msg = email.message_from_bytes(drafts[-1].read_bytes(), policy=email.policy.default)
    body = msg.get_body(preferencelist=("plain",))
    return {"to": str(msg["To"]), "subject": str(msg["Subject"]), "body": body.get_content() if body else ""}


def _stripe_transfer(ctx: RehearsalContext, transfer_id: str | None) -> tuple[dict[str, Any] | None, datetime | None]:
    if not (transfer_id or "").startswith("tr_"):
        return None, None
    import stripe

    from payops.stripe_api import with_backoff

    try:
        obj = with_backoff(lambda: ctx.stripe("platform").v1.transfers.retrieve(transfer_id))  # type: ignore[arg-type]
    except stripe.StripeError as exc:
        return {"error": str(exc)}, None
    tr = obj.to_dict()
    data = {k: tr.get(k) for k in ("id", "amount", "currency", "destination", "transfer_group")}
    data["metadata"] = dict(tr.get("metadata") or {})
    return data, datetime.fromtimestamp(int(tr["created"]), UTC)


def collect(ctx: RehearsalContext) -> criteria.Evidence:
    """The evidence for the four criteria, from Stripe, the rehearsal database and the run folders."""
    kick = (ctx.result_of("10-kickoff").get("facts") or {})
    failed = (ctx.result_of("30-failed-payout").get("facts") or {})
    req = (ctx.result_of("40-request").get("facts") or {}).get("sop_params") or {}
    s = ctx.settings
    ev = criteria.Evidence(sla_minutes=s.sla_minutes, rehearsal_channel=s.slack_channel,
                           production_channel=os.environ.get("PAYOPS_REHEARSAL_PRODUCTION_CHANNEL",
                                                                   "#payments-alerts"),
                           rehearsal_email=s.rehearsal_email_to)
    ev.started_at = datetime.fromisoformat(kick["started_at"]) if kick.get("started_at") else None
    ev.failed_at = datetime.fromisoformat(failed["failed_at"]) if failed.get("failed_at") else None
    dry, live = sop_runs(s, req.get("ledger_payout_id"))
    dry_res, live_res = _results(s, dry), _results(s, live)
    ev.payload_dry = (dry_res.get("20-transfer") or {}).get("payload")
    tr = live_res.get("20-transfer") or {}
    ev.payload_live, ev.transfer_id = tr.get("payload"), tr.get("transfer_id")
    if live is None:
        ev.sop_error = "the SOP's live run never started" + (f" (dry run {dry.status})" if dry else " (no dry run)")
    elif live.status != "succeeded":
        ev.sop_error = f"live run {live.id} {live.status}: {live.error}"
    if live is not None and live.failed_step == "20-transfer":
        ev.transfer_error = live.error
    ev.stripe_transfer, ev.transfer_at = _stripe_transfer(ctx, ev.transfer_id)
    if ev.stripe_transfer and "error" in ev.stripe_transfer:
        ev.transfer_error = ev.stripe_transfer["error"]
    if live is not None:
        with ctx.session() as sess:
            mp = sess.scalar(select(ManualPayout).where(ManualPayout.run_id == live.id))
            ev.audit_row = None if mp is None else {
                k: (v.isoformat() if isinstance(v, datetime) else v) for k in AUDIT_FIELDS
                for v in (getattr(mp, k),)}
    ev.expected_audit = {"run_id": live.id if live else None, "incident_id": req.get("incident_id"),
                         "ledger_payout_id": req.get("ledger_payout_id"), "studio_id": req.get("studio_id"),
                         "destination_account": req.get("destination_account"), "reason": req.get("reason"),
                         "currency": req.get("currency"), "stripe_transfer_id": ev.transfer_id}
    if ev.payload_live:
        ev.expected_audit["amount"] = ev.payload_live.get("amount")
    note = live_res.get("40-notify") or {}
    deliveries = note.get("deliveries") or {}
    slack_draft = {}
    if live is not None:
        for p in sorted(Path(live.output_dir or ".").glob("drafts*/slack.json")):
            slack_draft = json.loads(p.read_text())
    ev.slack = {"channel": slack_draft.get("channel"), "text": note.get("slack_text") or slack_draft.get("text", ""),
                "delivered": bool((deliveries.get("slack") or {}).get("ok"))}
    ev.email = {**_email_draft(live), "delivered": bool((deliveries.get("email") or {}).get("ok"))}
    settle = live_res.get("50-settle") or {}
    ev.payout_id, ev.payout_status = settle.get("payout_id"), settle.get("payout_status")
    return ev


@dataclass
class Validation:
    evidence: criteria.Evidence
    ok: bool = True  # collecting never fails: the criteria decide

    def as_dict(self) -> dict[str, Any]:
        return {"evidence": self.evidence.as_dict(), "ok": True}

    def frame(self) -> Any:
        e = self.evidence
        rows = [("transfer", e.transfer_id or e.transfer_error or "—"),
                ("audit row", (e.audit_row or {}).get("id", "missing")),
                ("Slack", f"{(e.slack or {}).get('channel')} delivered={(e.slack or {}).get('delivered')}"),
                ("email", f"{(e.email or {}).get('to')} — {(e.email or {}).get('subject')}"),
                ("payout", f"{e.payout_id} {e.payout_status}")]
        return styled(pd.DataFrame(rows, columns=["evidence", "value"]))


def validate(ctx: RehearsalContext) -> Validation:
    return Validation(collect(ctx))


# --- 90 ---------------------------------------------------------------------------------------------
@dataclass
class WrapUp:
    ticket: str
    criteria: list[criteria.Criterion]
    timings: list[dict[str, Any]]
    actions: list[dict[str, str]]
    automation: str
    summary: str
    evidence: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return all(c.ok for c in self.criteria)

    @property
    def ok(self) -> bool:  # recorded as succeeded either way: the verdict is in ``passed``
        return True

    def as_dict(self) -> dict[str, Any]:
        return {"ticket": self.ticket, "passed": self.passed, "criteria": [c.as_dict() for c in self.criteria],
                "timings": self.timings, "actions": self.actions, "automation": self.automation,
                "summary": self.summary, "evidence": self.evidence, "ok": True}

    def criteria_frame(self) -> Any:
        rows = [{"criterion": c.title, "result": "PASS" if c.ok else "FAIL", "evidence": c.evidence}
                for c in self.criteria]
        return styled(pd.DataFrame(rows))

    def timings_frame(self) -> Any:
        return styled(pd.DataFrame(self.timings))

    def actions_frame(self) -> Any:
        return styled(pd.DataFrame(self.actions, columns=["text", "owner"]))


def switch_automation_on(settings: Settings, by: str | None) -> str:
    """The rehearsal database's cycle switch back on; what it says now."""
    from payops.cycle import engine

    with session_scope(settings) as s:
        engine.set_disabled(s, disabled=False, reason=None, by=by)
        return engine.disabled_reason(s, settings) or "enabled"


def conclude(ticket: str, ev: criteria.Evidence, action_texts: list[str], automation: str) -> WrapUp:
    """Judge, time and summarise (no I/O): what the wrap-up notebook shows and records."""
    verdict = criteria.judge(ev)
    actions = [parse_action(a) for a in action_texts]
    for c in verdict:
        if not c.ok:
            actions.append({"text": f"Fix: {c.title} — {c.evidence}", "owner": "Payments Ops lead"})
    took = criteria.minutes(ev.started_at, ev.finished_at)
    to_transfer = criteria.minutes(ev.started_at, ev.transfer_at)
    passed = sum(c.ok for c in verdict)
    summary = (f"Fallback rehearsal {ticket}: {'PASSED' if passed == len(verdict) else 'FAILED'} — {passed}/"
               f"{len(verdict)} criteria. Manual transfer {ev.transfer_id or 'not made'} at "
               f"{to_transfer if to_transfer is not None else '—'} min, finished at "
               f"{took if took is not None else '—'} min of the {ev.sla_minutes}-minute SLA. Automation back on "
               f"({automation}). " + (f"Failed: {', '.join(c.name for c in verdict if not c.ok)}. " if passed <
                                      len(verdict) else "") + f"{len(actions)} action item(s).")
    return WrapUp(ticket, verdict, criteria.timings(ev), actions, automation, summary, ev.as_dict())


def wrap_up(ctx: RehearsalContext) -> WrapUp:
    """Always: automation on, finish time, criteria, actions, summary (the evidence from step 70)."""
    automation = switch_automation_on(ctx.settings, ctx.operator)
    data = (ctx.result_of("70-validate") or {}).get("evidence")
    ev = criteria.Evidence.from_dict(data) if data else collect(ctx)
    ev.finished_at = world.stripe_now(ctx.settings)
    result = conclude(ctx.params.ticket, ev, list(ctx.params.actions), automation)
    ctx.write_artifact("summary.md", f"# {ctx.params.ticket}\n\n{result.summary}\n\n" + "\n".join(
        f"- {c.as_dict()['result']} {c.title}: {c.evidence}" for c in result.criteria) + "\n")
    return result
