"""Helpers of the JupyterLab tests (imported by basename, like e2e_helpers)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from payops import demo_data
from payops.db import session_scope
from payops.db.models import ManualPayout, RunbookRun

OPERATOR = "aaaaaaaa-0000-4000-8000-000000000001"
LP = demo_data.REHEARSAL_LEDGER_PAYOUT_ID
#: the form as ops fills it for the demo seed's failed payout of Test Studio A
FORM = {
    "studio_id": demo_data.STUDIO_A.studio_id, "studio_name": "Test Studio A", "ledger_payout_id": LP,
    "incident_id": "INC-LAB-1", "amount": "875.50", "reserve_after": "120.00", "reason": "automated payout failed",
    "destination_account": "acct_test_studio_a", "operator": OPERATOR,
}


def runs() -> list[RunbookRun]:
    with session_scope() as s:
        rows = list(s.scalars(select(RunbookRun).order_by(RunbookRun.created_at)))
        s.expunge_all()
        return rows


def audit_rows() -> int:
    with session_scope() as s:
        return s.scalar(select(func.count()).select_from(ManualPayout)) or 0


def fill(form: Any, values: dict[str, str]) -> None:
    for k, v in values.items():
        form.inputs[k].value = v
