"""The playbook's four success criteria, judged from evidence alone (a pure function: no I/O).

1. ``transfer`` — a ``tr_…`` transfer in Stripe test mode, made from the SOP's payload with no edits: the
   live run sent exactly what the approved dry run previewed (amount, currency, destination, transfer
   group, description, metadata other than the run id and approver ids), and Stripe holds that.
2. ``audit`` — the generated SQL was executed against the rehearsal database: the ``manual_payouts`` row
   read back carries the transfer, the amounts, the ledger payout, the ticket, both approvers, and is
   marked ``is_rehearsal``.
3. ``notifications`` — Slack and email were delivered to the rehearsal channel and alias (never the
   production channel), each with a visible rehearsal marker: Slack text, email subject and body.
4. ``sla`` — the studio's payout is ``paid`` and the rehearsal, start to finish, took at most the SLA
   (45 minutes): the times come from Stripe's clock (the sandbox's in tests, which can be moved).

Each criterion is judged only on its own evidence, so breaking one thing fails exactly that criterion.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

MARKER = "[REHEARSAL]"
BANNER = "This is a rehearsal in Stripe test mode"
# what may differ between the dry run's preview and the live request: who ran and approved it
RUN_SPECIFIC = ("run_id", "approver_ops_id", "approver_finance_id", "operator")
CRITERIA = ("transfer", "audit", "notifications", "sla")
TITLES = {
    "transfer": "Stripe transfer created from the SOP's payload with no edits",
    "audit": "Audit row written by the generated SQL, read back correct and marked rehearsal",
    "notifications": "Slack and email delivered to the rehearsal channel and alias, with rehearsal markers",
    "sla": "Studio paid and the rehearsal finished within the SLA",
}


@dataclass
class Evidence:
    """Everything the criteria are judged on (collected by ``payops.rehearsal.evidence``)."""

    sla_minutes: int = 45
    started_at: datetime | None = None
    failed_at: datetime | None = None
    transfer_at: datetime | None = None
    finished_at: datetime | None = None
    sop_error: str | None = None
    transfer_id: str | None = None
    transfer_error: str | None = None
    payload_dry: dict[str, Any] | None = None
    payload_live: dict[str, Any] | None = None
    stripe_transfer: dict[str, Any] | None = None
    audit_row: dict[str, Any] | None = None
    expected_audit: dict[str, Any] = field(default_factory=dict)
    slack: dict[str, Any] | None = None  # channel, text, delivered
    email: dict[str, Any] | None = None  # to, subject, body, delivered
    rehearsal_channel: str = "#payments-rehearsal"
    production_channel: str = "#payments-alerts"
    rehearsal_email: str = "payments-rehearsal@example.com"
    payout_id: str | None = None
    payout_status: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Evidence:
        out = dict(data)
        for k in ("started_at", "failed_at", "transfer_at", "finished_at"):
            if isinstance(out.get(k), str):
                out[k] = datetime.fromisoformat(out[k])
        return cls(**{k: v for k, v in out.items() if k in cls.__dataclass_fields__})


@dataclass(frozen=True)
class Criterion:
    name: str
    ok: bool
    evidence: str

    @property
    def title(self) -> str:
        return TITLES[self.name]

    def as_dict(self) -> dict[str, Any]:
        return {"criterion": self.name, "title": self.title, "result": "PASS" if self.ok else "FAIL",
                "evidence": self.evidence}


def business_payload(payload: dict[str, Any] | None) -> dict[str, Any]:
    """The payload without what legitimately differs between the dry run and the live run."""
    if not payload:
        return {}
    out = dict(payload)
    out["metadata"] = {k: v for k, v in (payload.get("metadata") or {}).items() if k not in RUN_SPECIFIC}
    return out


def _money(amount: Any, currency: Any) -> str:
    from payops.money import Money

    try:
        return Money(int(amount), str(currency).upper()).format()
    except Exception:  # noqa: BLE001 — evidence text only: show what is there
        return f"{amount} {currency}"


def _transfer(e: Evidence) -> Criterion:
    if e.transfer_error or not (e.transfer_id or "").startswith("tr_"):
        return Criterion("transfer", False, f"no tr_… transfer: {e.transfer_error or e.sop_error or 'none recorded'}")
    dry, live = business_payload(e.payload_dry), business_payload(e.payload_live)
    if not dry or dry != live:
        diff = sorted(k for k in set(dry) | set(live) if dry.get(k) != live.get(k))
        return Criterion("transfer", False, f"{e.transfer_id}: the live payload differs from the approved dry run "
                                            f"in {', '.join(diff) or 'everything'} (an edit)")
    st = e.stripe_transfer or {}
    held = {k: st.get(k) for k in ("amount", "currency", "destination", "transfer_group")}
    sent = {k: live.get(k) for k in held}
    if held != sent:
        return Criterion("transfer", False, f"{e.transfer_id} in Stripe is {held}, the payload said {sent}")
    return Criterion("transfer", True, f"{e.transfer_id}: {_money(st.get('amount'), st.get('currency'))} → "
                                       f"{st.get('destination')}, payload identical to the approved dry run")


def _audit(e: Evidence) -> Criterion:
    row = e.audit_row
    if not row:
        return Criterion("audit", False, "no manual_payouts row for the live run in the rehearsal database")
    wrong = [f"{k}={row.get(k)!r} (expected {v!r})" for k, v in e.expected_audit.items() if row.get(k) != v]
    if row.get("is_rehearsal") is not True:
        wrong.append("is_rehearsal is not true")
    for k in ("approver_ops_id", "approver_finance_id"):
        if not row.get(k):
            wrong.append(f"{k} missing")
    if wrong:
        return Criterion("audit", False, f"manual_payouts {row.get('id')}: " + "; ".join(wrong))
    amount = _money(row.get("amount"), row.get("currency"))
    return Criterion("audit", True, f"manual_payouts {row.get('id')} read back: {amount}, "
                                    f"{row.get('stripe_transfer_id')}, is_rehearsal true")


def _notifications(e: Evidence) -> Criterion:
    problems: list[str] = []
    sl, em = e.slack or {}, e.email or {}
    if not sl.get("delivered"):
        problems.append("Slack not delivered")
    if sl.get("channel") != e.rehearsal_channel or sl.get("channel") == e.production_channel:
        problems.append(f"Slack went to {sl.get('channel')!r}, not {e.rehearsal_channel}")
    if MARKER not in str(sl.get("text", "")) and BANNER not in str(sl.get("text", "")):
        problems.append("Slack text has no rehearsal marker")
    if not em.get("delivered"):
        problems.append("email not delivered")
    if e.rehearsal_email.lower() not in str(em.get("to", "")).lower():
        problems.append(f"email went to {em.get('to')!r}, not {e.rehearsal_email}")
    if MARKER not in str(em.get("subject", "")):
        problems.append("email subject has no [REHEARSAL] marker")
    if BANNER not in str(em.get("body", "")):
        problems.append("email body has no rehearsal banner")
    if problems:
        return Criterion("notifications", False, "; ".join(problems))
    return Criterion("notifications", True, f"Slack {e.rehearsal_channel} and email {e.rehearsal_email} "
                                            f"delivered, markers in Slack text, subject and body")


def minutes(a: datetime | None, b: datetime | None) -> float | None:
    return None if a is None or b is None else round((b - a).total_seconds() / 60, 2)


def _sla(e: Evidence) -> Criterion:
    took = minutes(e.started_at, e.finished_at)
    if e.payout_status != "paid":
        return Criterion("sla", False, f"the studio's payout is {e.payout_status or 'not found'} "
                                       f"({e.payout_id or 'no payout'}), not paid")
    if took is None:
        return Criterion("sla", False, "start or finish time not recorded")
    if took > e.sla_minutes:
        return Criterion("sla", False, f"took {took:.1f} min, over the {e.sla_minutes}-minute SLA")
    return Criterion("sla", True, f"payout {e.payout_id} paid; {took:.1f} min of {e.sla_minutes}")


def judge(e: Evidence) -> list[Criterion]:
    """The four criteria, in the playbook's order."""
    return [_transfer(e), _audit(e), _notifications(e), _sla(e)]


def timings(e: Evidence) -> list[dict[str, Any]]:
    """Start, failure, manual transfer and finish, each with its minutes from the start, against the SLA."""
    rows = []
    for label, at in (("start", e.started_at), ("automation failed", e.failed_at),
                      ("manual transfer", e.transfer_at), ("finish", e.finished_at)):
        m = minutes(e.started_at, at)
        rows.append({"event": label, "at (UTC)": at.strftime("%Y-%m-%d %H:%M:%S") if at else "—",
                     "minutes from start": m, "within SLA": None if m is None else m <= e.sla_minutes})
    return rows
