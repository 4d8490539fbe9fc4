"""Step 30 — audit insert. Writes the ``manual_payouts`` row, reads it back, prints the equivalent SQL.

A live (not rehearsal) row also marks ``STRIPE_FALLBACK_SECRET_KEY`` due for rotation in the credential
inventory, in the same transaction (the SOP rotates the key after every real incident; ``payops monitor``
reminds until ``payops credentials rotate`` records it).

Idempotent: a resumed run finds its own row and reads it back instead of inserting a second one
(``manual_payouts.ledger_payout_id`` and ``run_id`` are unique).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from payops import runstate
from payops.db.models import ManualPayout, TransferIntent, utcnow
from payops.errors import AuditWriteError
from payops.sop.context import StepContext

COLUMNS = (
    "incident_id", "studio_id", "studio_name", "ledger_payout_id", "amount", "currency", "reserve_after", "reason",
    "destination_account", "notes", "stripe_transfer_id", "idempotency_key", "stripe_request_id", "approver_ops_id",
    "approver_finance_id", "operator", "is_rehearsal", "status", "created_at", "transferred_at", "run_id",
)


def sql_literal(value: Any) -> str:
    """A SQL literal for the ticket's INSERT: strings quoted with doubled quotes, never interpolated raw."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, datetime):
        return f"'{value.isoformat()}'"
    text = str(value).replace("'", "''")
    if "\n" in text or "\\" in text:
        return "E'" + text.replace("\\", "\\\\").replace("\n", "\\n") + "'"
    return f"'{text}'"


def insert_sql(values: dict[str, Any]) -> str:
    cols = [c for c in COLUMNS if c in values]
    rows = ",\n  ".join(sql_literal(values[c]) for c in cols)
    return f"INSERT INTO manual_payouts (\n  {', '.join(cols)}\n) VALUES (\n  {rows}\n);"


@dataclass
class AuditResult:
    run_id: str
    dry_run: bool
    row: dict[str, Any]
    sql: str
    inserted: bool
    ok: bool = True

    def as_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "dry_run": self.dry_run, "row": self.row, "sql": self.sql,
                "inserted": self.inserted, "ok": self.ok}


def _values(ctx: StepContext, intent: TransferIntent | None, approvals: dict[str, Any]) -> dict[str, Any]:
    p = ctx.params
    ops_id, finance_id = runstate.approver_ids(approvals)
    return {
        "run_id": ctx.run_id,
        "incident_id": p.incident_id,
        "studio_id": p.studio_id,
        "studio_name": p.studio_name,
        "ledger_payout_id": p.ledger_payout_id,
        "amount": p.money.amount,
        "currency": p.money.currency,
        "reserve_after": p.reserve_money.amount,
        "reason": p.reason,
        "destination_account": p.destination_account,
        "notes": p.notes or None,
        "stripe_transfer_id": intent.stripe_transfer_id if intent else "<tr_… from the live transfer>",
        "idempotency_key": ctx.idempotency_key,
        "stripe_request_id": intent.stripe_request_id if intent else None,
        "approver_ops_id": ops_id,
        "approver_finance_id": finance_id,
        "operator": ctx.operator,
        "is_rehearsal": p.is_rehearsal,
        "status": "transferred",
        "transferred_at": intent.updated_at if intent else None,
    }


def _row_dict(row: ManualPayout) -> dict[str, Any]:
    return {c: getattr(row, c) for c in ("id", *COLUMNS, "settled_at")}


def run(ctx: StepContext) -> AuditResult:
    with ctx.session() as s:
        approvals = runstate.approvals_for(s, ctx.params_hash)
        intent = None if ctx.dry_run else s.get(TransferIntent, ctx.params.ledger_payout_id)
    if ctx.dry_run:
        values = _values(ctx, None, approvals)
        sql = insert_sql(values)
        ctx.write_artifact("audit/manual_payouts_insert.sql", "-- DRY RUN: not executed\n" + sql)
        return AuditResult(ctx.run_id, True, values, sql, inserted=False)

    if intent is None or intent.run_id != ctx.run_id or intent.status != "created" or not intent.stripe_transfer_id:
        raise AuditWriteError(
            f"no completed transfer for this run (intent: {intent.status if intent else 'none'}); "
            "the audit row is written only after step 20 recorded the transfer")
    values = _values(ctx, intent, approvals)
    if values["approver_ops_id"] is None or values["approver_finance_id"] is None or not ctx.operator:
        raise AuditWriteError("approvers and operator must be known before the audit row is written")
    inserted = False
    try:
        with ctx.session() as s:
            row = s.scalar(select(ManualPayout).where(ManualPayout.run_id == ctx.run_id))
            if row is None:
                row = ManualPayout(**values)
                s.add(row)
                s.flush()
                inserted = True
                if not ctx.params.is_rehearsal:  # a real incident used the fallback key: rotate it (same transaction)
                    from payops.monitor.credentials import mark_fallback_rotation_due

                    mark_fallback_rotation_due(s, at=values["transferred_at"] or utcnow(), reason=(
                        f"used by live manual payout {ctx.params.incident_id} (run {ctx.run_id})"))
    except IntegrityError as exc:
        raise AuditWriteError(f"manual_payouts refused the row: {str(exc.orig).splitlines()[0]}") from exc
    with ctx.session() as s:  # read it back from the database, not from memory
        back = s.scalar(select(ManualPayout).where(ManualPayout.run_id == ctx.run_id))
        if back is None or back.stripe_transfer_id != intent.stripe_transfer_id or back.amount != values["amount"]:
            raise AuditWriteError("the audit row read back does not match what was written")
        row_dict = _row_dict(back)
    values["created_at"] = row_dict["created_at"]
    sql = insert_sql(values)
    ctx.write_artifact("audit/manual_payouts_insert.sql", sql)
    ctx.write_artifact("audit/manual_payouts_row.json", row_dict)
    return AuditResult(ctx.run_id, False, row_dict, sql, inserted=inserted)
