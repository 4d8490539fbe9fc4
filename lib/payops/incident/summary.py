"""Post-incident: the summary for the incidents page (markdown) and the sealed record.

``close`` writes ``summary.md`` (timeline, impact, actions taken, verification, follow-ups) and
``incident.json`` (the whole ``incidents`` row) into its run folder, which the runner seals into the chain;
the incident is then ``closed`` with that run's id. Only a verified incident can be closed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from payops.incident import store

FOLLOW_UPS = {
    "checkout-failures": ["Find why payments were declined (card mix, fraud rules, an issuer) from the failure codes.",
                          "If signatures were refused: confirm the endpoint's signing secret matches "
                          "STRIPE_WEBHOOK_SECRET after any rotation."],
    "payment-window": ["Find why Checkout Sessions stopped expiring on their own (expiry job, Stripe status).",
                       "Make the payment-window keys expire with their session (TTL ≤ the session's expires_at)."],
    "retry-backlog": ["Reprocess or refund the messages moved to the dead-letter queue, one by one.",
                      "Find why retries kept failing (the Stripe error codes above) before re-enabling them."],
    "receipts": ["Find why the receipt generator issued unusable download URLs (signing credentials, bucket "
                 "policy).", "Tell the affected customers their receipts are available again."],
}


def _md_escape(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


@dataclass
class Closing:
    incident_id: str
    markdown: str
    record: dict[str, Any]
    ok: bool = True

    def as_dict(self) -> dict[str, Any]:
        return {"incident_id": self.incident_id, "summary_md": "summary.md", "status": "closed", "ok": self.ok}


def markdown(rec: dict[str, Any]) -> str:
    triage = rec.get("triage") or {}
    verification = rec.get("verification") or {}
    affected = triage.get("affected") or {}
    lines = [f"# {rec['id']} — {rec['scenario']}", "",
             f"**Alert:** {rec['alert']}  ", f"**Opened:** {rec['opened_at']} · **Verified:** {rec['verified_at']} · "
             f"**Closed:** {rec.get('closed_at') or 'now'}  ",
             f"**Escalation:** L{rec.get('escalation_level') or 0}", "", "## Impact", "",
             f"- {affected.get('sessions', 0)} Checkout Session(s), {affected.get('customers', 0)} customer(s), "
             f"{affected.get('auctions', 0)} auction(s) affected (at the last triage, window "
             f"{(triage.get('window') or {}).get('from')} → {(triage.get('window') or {}).get('to')})"]
    lines += [f"- {n['number']}: **{_md_escape(n['value'])}**" + (f" (threshold: {_md_escape(n['threshold'])})"
                                                                   if n.get("threshold") else "")
              for n in triage.get("numbers", []) if n.get("verdict") == "ALERT"]
    lines += ["", "## Timeline (UTC)", "", "| at | what |", "|---|---|"]
    lines += [f"| {t['at']} | {_md_escape(t['what'])} |" for t in rec.get("timeline", [])]
    lines += ["", "## Actions taken", ""]
    lines += [f"- {a['at']} — {'LIVE' if a.get('live') else 'dry run'}: {_md_escape(a['summary'])} (run "
              f"`{a['run_id']}`)" for a in rec.get("actions", [])] or ["- none"]
    lines += ["", "## Verification", "", "| step | status | detail |", "|---|---|---|"]
    lines += [f"| {c['name']} | {c['status']} | {_md_escape(c['detail'])} |" for c in verification.get("checks", [])]
    lines += ["", "## Follow-ups", ""] + [f"- [ ] {f}" for f in FOLLOW_UPS.get(rec["scenario"], [])]
    return "\n".join(lines) + "\n"


def close(ctx: Any) -> Closing:
    """Write the summary and the record into the run folder and mark the incident closed."""
    with ctx.session() as s:
        row = store.require(s, ctx.incident_id, lock=True)
        store.closable(row)
        store.mark_closed(row, run_id=ctx.run_id)
        rec = store.as_dict(row)
    md = markdown(rec)
    ctx.write_artifact("summary.md", md)
    ctx.write_artifact("incident.json", rec)
    return Closing(ctx.incident_id, md, rec)
