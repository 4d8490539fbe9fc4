"""Building the monitor's world row by row (imported by basename), so each rule's inputs are exactly what a test
says — no demo seed in the way of a threshold."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from typer.testing import CliRunner

from payops.cli import app
from payops.db import session_scope
from payops.db.models import (
    Alert,
    AlertDelivery,
    Credential,
    LedgerPayout,
    ManualPayout,
    PayoutRun,
    RunbookRun,
    RunbookStep,
    ScheduledExecution,
    Studio,
    TransferIntent,
)

T0 = datetime(2026, 12, 1, 6, 0, tzinfo=UTC)  # a payout slot (PAYOUT_SCHEDULE_CRON default: 1st and 15th, 06:00)
OPS = "bbbbbbbb-0000-4000-8000-000000000002"
FIN = "cccccccc-0000-4000-8000-000000000003"
JIRA_TOKEN = "jira-pat-for-tests"


def cli(*args: str) -> Any:
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def studio(name: str = "Studio M", currency: str = "CAD", minimum: int = 0) -> str:
    sid = str(uuid.uuid4())
    with session_scope() as s:
        s.add(Studio(id=sid, name=name, email=f"{sid[:8]}@example.com", stripe_account_id=f"acct_{sid[:12]}",
                     currency=currency, reserve_minimum=minimum, charges_enabled=True, payouts_enabled=True))
    return sid


def payout_run(cycle: date, *, status: str = "completed", started: datetime | None = None,
               finished: datetime | None = None, paid: int = 0, unpaid: int = 0, currency: str = "CAD",
               net: int = 100_00, reserve: int = 10_00, gross: int | None = None, studio_ids: list[str] | None = None,
               unpaid_status: str = "pending", runbook_status: str | None = None) -> str:
    """A payout run with ``paid`` ledger payouts paid and ``unpaid`` left ``unpaid_status``."""
    started = started or datetime(cycle.year, cycle.month, cycle.day, 6, 0, tzinfo=UTC)
    run_id = str(uuid.uuid4())
    ids = studio_ids or [studio(f"S{i}") for i in range(paid + unpaid)]
    rb_id = None
    with session_scope() as s:
        if runbook_status is not None:
            rb_id = str(uuid.uuid4())
            s.add(RunbookRun(id=rb_id, sop="payout_cycle", mode="live", status=runbook_status, params_json="{}",
                             params_hash="0" * 64, failed_step="20-transfer" if runbook_status == "failed" else None,
                             error="PaymentError: boom" if runbook_status == "failed" else None))
        s.add(PayoutRun(id=run_id, cycle_date=cycle, status=status, started_at=started, finished_at=finished,
                        studios_scheduled=paid + unpaid, studios_paid=paid, runbook_run_id=rb_id,
                        failure_reason="balance too low" if status == "failed" else None))
        s.flush()
        for i, sid in enumerate(ids):
            s.add(LedgerPayout(id=str(uuid.uuid4()), run_id=run_id, studio_id=sid, gross=gross or net + reserve,
                               fee=(gross or net + reserve) - net - reserve, reserve=reserve, net=net,
                               currency=currency, status="paid" if i < paid else unpaid_status))
    return run_id


def live_manual(transferred_at: datetime, *, amount: int = 500_00, currency: str = "CAD", audit: bool = True,
                notified: bool = True, settled: bool = True, mode: str = "live", run_status: str = "failed",
                lease_until: datetime | None = None, incident: str = "INC-42") -> str:
    """A manual payout run whose transfer exists, with its later records present or missing."""
    sid = studio("Studio Fallback")
    run_id, lp_id = str(uuid.uuid4()), str(uuid.uuid4())
    params = {"incident_id": incident, "studio_id": sid, "studio_name": "Studio Fallback", "ledger_payout_id": lp_id,
              "is_rehearsal": mode == "rehearsal"}
    tr = f"tr_{uuid.uuid4().hex[:20]}"
    with session_scope() as s:
        s.add(RunbookRun(id=run_id, sop="manual_payout", mode=mode, status=run_status, params_json=json.dumps(params),
                         params_hash=uuid.uuid4().hex * 2, subject_key=lp_id, detected_at=transferred_at - timedelta(
                             minutes=20), lease_owner="h:1" if lease_until else None, lease_expires_at=lease_until))
        s.add(LedgerPayout(id=lp_id, run_id=None, studio_id=sid, gross=amount, fee=0, reserve=0, net=amount,
                           currency=currency, status="manual", stripe_transfer_id=tr))
        s.flush()
        s.add(TransferIntent(ledger_payout_id=lp_id, run_id=run_id, idempotency_key=f"manual-payout:{lp_id}:{run_id}",
                             amount=amount, currency=currency, destination="acct_x", status="created",
                             stripe_transfer_id=tr, attempts=1, created_at=transferred_at, updated_at=transferred_at))
        for pos, step in enumerate(("10-verify", "20-transfer", "30-audit-insert", "40-notify", "50-settle")):
            done = pos < 2 or (step == "30-audit-insert" and audit) or (step == "40-notify" and notified) or (
                step == "50-settle" and settled)
            s.add(RunbookStep(run_id=run_id, step=step, position=pos, status="succeeded" if done else "pending",
                              attempts=1 if done else 0))
        if audit:
            s.add(ManualPayout(run_id=run_id, incident_id=incident, studio_id=sid, studio_name="Studio Fallback",
                               ledger_payout_id=lp_id, amount=amount, currency=currency, reserve_after=0,
                               reason="test", destination_account="acct_x", stripe_transfer_id=tr,
                               idempotency_key=f"manual-payout:{lp_id}:{run_id}", approver_ops_id=OPS,
                               approver_finance_id=FIN, operator="op", is_rehearsal=mode == "rehearsal",
                               status="settled" if settled else "transferred", transferred_at=transferred_at,
                               settled_at=transferred_at + timedelta(minutes=3) if settled else None))
    return run_id


def credential(name: str, kind: str, **dates: datetime | None) -> None:
    with session_scope() as s:
        s.add(Credential(name=name, kind=kind, created_at=dates.pop("created_at", None), **dates))


def missed_slot(slot_at: datetime, status: str = "missed") -> None:
    with session_scope() as s:
        s.add(ScheduledExecution(job="payout-cycle", slot_at=slot_at, status=status, error="not run: test"))


def alerts() -> list[dict[str, Any]]:
    from payops.monitor.store import recent_alerts

    with session_scope() as s:
        return recent_alerts(s, 500)


def count(model: Any) -> int:
    with session_scope() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def table_counts() -> dict[str, int]:
    return {"alerts": count(Alert), "deliveries": count(AlertDelivery), "credentials": count(Credential)}


def pd_events(sinks: Any, action: str | None = None) -> list[dict[str, Any]]:
    return [e["event"] for e in sinks.pagerduty_events() if action in (None, e["event"]["event_action"])]
