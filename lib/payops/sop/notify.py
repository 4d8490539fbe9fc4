"""Step 40 — notify. Renders the #payments-alerts post and the studio email, saves both as drafts
in the run folder and, in a live run that asks for it, sends them and records each delivery.

A resumed run never posts twice: a channel already delivered (recorded in the step's progress) is
skipped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from payops import runstate
from payops.db.models import Studio, TransferIntent
from payops.errors import NotificationError
from payops.notify import PayoutNotice, render_drafts, send_email, send_slack
from payops.sop.context import StepContext


@dataclass
class NotifyResult:
    run_id: str
    dry_run: bool
    sent: bool
    drafts: list[str]
    slack_text: str
    email_subject: str
    email_to: str
    deliveries: dict[str, dict[str, Any]] = field(default_factory=dict)
    ok: bool = True

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("run_id", "dry_run", "sent", "drafts", "slack_text", "email_subject",
                                                "email_to", "deliveries", "ok")}


def build_notice(ctx: StepContext) -> PayoutNotice:
    p = ctx.params
    with ctx.session() as s:
        studio = s.get(Studio, p.studio_id)
        intent = s.get(TransferIntent, p.ledger_payout_id)
        approvals = runstate.approvals_for(s, ctx.params_hash)
    ops_id, finance_id = runstate.approver_ids(approvals)
    transfer_id = intent.stripe_transfer_id if (intent and intent.run_id == ctx.run_id and not ctx.dry_run) else None
    return PayoutNotice(
        run_id=ctx.run_id, incident_id=p.incident_id,
        incident_url=ctx.settings.incident_url_template.format(incident_id=p.incident_id),
        studio_id=p.studio_id, studio_name=p.studio_name, studio_email=studio.email if studio else "",
        ledger_payout_id=p.ledger_payout_id, amount=p.money, reason=p.reason, reserve_after=p.reserve_money,
        transfer_id=transfer_id,
        approver_ops_id=ops_id, approver_finance_id=finance_id,
        operator_id=ctx.operator, is_rehearsal=p.is_rehearsal, dry_run=ctx.dry_run,
        sla_minutes=ctx.settings.sla_minutes,
    )


def run(ctx: StepContext) -> NotifyResult:
    notice = build_notice(ctx)
    if not ctx.dry_run and notice.transfer_id is None:
        raise NotificationError("no transfer recorded for this run; nothing to announce")
    drafts = render_drafts(notice, sender=ctx.settings.email_from, channel=ctx.settings.slack_channel)
    folder = ctx.artifact_path("drafts")
    written = [str(p.relative_to(ctx.run_dir)) for p in drafts.write(folder)]
    result = NotifyResult(
        ctx.run_id, ctx.dry_run, sent=False, drafts=written, slack_text=str(drafts.slack_payload.get("text", "")),
        email_subject=str(drafts.email["Subject"]), email_to=str(drafts.email["To"]),
    )
    if ctx.dry_run or not ctx.params.send_notifications:
        return result

    previous = (ctx.previous_result() or {}).get("deliveries", {})
    result.deliveries = {k: v for k, v in previous.items() if v.get("ok")}
    s = ctx.settings
    if "slack" not in result.deliveries:
        if s.slack_webhook_url is None:
            raise NotificationError("PAYOPS_SLACK_WEBHOOK_URL is not set; set it and resume, or rerun with --no-send")
        result.deliveries["slack"] = send_slack(s.slack_webhook_url.get_secret_value(), drafts.slack_payload,
                                                timeout=s.smtp_timeout_seconds).as_dict()
        ctx.save_progress(result.as_dict())
    if "email" not in result.deliveries:
        result.deliveries["email"] = send_email(drafts.email, s).as_dict()
        ctx.save_progress(result.as_dict())
    result.sent = True
    return result
