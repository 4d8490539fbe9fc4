"""The escalation level the findings call for, and the messages drafted for ``#eng-commerce`` / ``#ops-oncall``.

The runbook's path has three levels; the highest level any finding calls for is suggested, with every reason:

1. **Commerce Backend** — any confirmed symptom (the checkout code owns it first).
2. **Infrastructure/SRE** — the platform is implicated: a system unreachable, webhook signatures refused or
   deliveries late, the retry backlog over its incident rule, a receipt download refused (403).
3. **Finance & Compliance** — money or records reach customers wrongly: success below the severe threshold
   (``PAYOPS_INCIDENT_SEVERE_SUCCESS``), or at least ``PAYOPS_INCIDENT_ESCALATE_CUSTOMERS`` customers
   affected, or paid orders without a receipt for that many customers.

Messages are drafts (files in the run folder); the on-call engineer posts them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

LEVELS = {0: "none", 1: "Commerce Backend", 2: "Infrastructure/SRE", 3: "Finance & Compliance"}


@dataclass(frozen=True)
class Signals:
    """What a triage found, in the terms the escalation rules read."""

    symptom: bool
    success_percent: str | None = None  # Decimal text
    customers_affected: int = 0
    unreachable: list[str] = field(default_factory=list)
    signature_failures: int = 0
    late_webhooks: int = 0
    backlog_incident: bool = False
    receipt_403: int = 0
    receipts_missing_customers: int = 0


@dataclass
class Escalation:
    level: int
    reasons: list[str]

    @property
    def team(self) -> str:
        return LEVELS[self.level]

    def as_dict(self) -> dict[str, Any]:
        return {"level": self.level, "team": self.team, "reasons": self.reasons}


def suggest(sig: Signals, *, severe_percent: Any, customers_threshold: int) -> Escalation:
    from decimal import Decimal

    reasons: list[tuple[int, str]] = []
    if sig.symptom:
        reasons.append((1, "symptom confirmed by the numbers"))
    for name in sig.unreachable:
        reasons.append((2, f"{name} unreachable"))
    if sig.signature_failures:
        reasons.append((2, f"{sig.signature_failures} webhook delivery(ies) refused for their signature "
                           "(endpoint secret rotated or misconfigured?)"))
    if sig.late_webhooks:
        reasons.append((2, f"{sig.late_webhooks} webhook delivery(ies) later than the lag threshold"))
    if sig.backlog_incident:
        reasons.append((2, "retry queue over its incident rule"))
    if sig.receipt_403:
        reasons.append((2, f"{sig.receipt_403} receipt download(s) refused with 403 (bucket permissions/signing)"))
    if sig.success_percent is not None and Decimal(sig.success_percent) < Decimal(str(severe_percent)):
        reasons.append((3, f"success rate {sig.success_percent}% below the severe threshold {severe_percent}%"))
    if sig.customers_affected >= customers_threshold:
        reasons.append((3, f"{sig.customers_affected} customers affected (≥ {customers_threshold})"))
    if sig.receipts_missing_customers >= customers_threshold:
        reasons.append((3, f"{sig.receipts_missing_customers} customers paid without a usable receipt"))
    level = max((lvl for lvl, _ in reasons), default=0)
    return Escalation(level, [f"L{lvl} {LEVELS[lvl]}: {why}" for lvl, why in reasons])


def drafts(*, incident_id: str, scenario: str, alert: str, summary: str, escalation: Escalation,
           numbers: list[str], affected: dict[str, Any], incident_url: str, dry_run: bool) -> dict[str, str]:
    """``{"eng-commerce": text, "ops-oncall": text}`` — the on-call page only from level 2 up."""
    head = f"[{incident_id}] {scenario}: {alert}"
    body = [head, "", summary, ""] + [f"• {n}" for n in numbers]
    body += ["", f"Affected: {affected.get('sessions', 0)} session(s), {affected.get('customers', 0)} customer(s), "
                 f"{affected.get('auctions', 0)} auction(s)"]
    if affected.get("auction_ids"):
        body.append("Auctions: " + ", ".join(affected["auction_ids"][:10])
                    + (" …" if len(affected["auction_ids"]) > 10 else ""))
    body += ["", f"Escalation: L{escalation.level} {escalation.team}"] + [f"  – {r}" for r in escalation.reasons]
    body += ["", f"Runbook: payops incident checkout --scenario {scenario} --incident-id {incident_id}",
             f"Incident: {incident_url}"]
    if dry_run:
        body.insert(1, "(dry run: nothing was changed yet)")
    out = {"eng-commerce": "\n".join(body)}
    if escalation.level >= 2:
        out["ops-oncall"] = "\n".join([f"PAGE L{escalation.level} {escalation.team} — {head}", *body[1:]])
    return out
