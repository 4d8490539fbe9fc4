"""The ``incidents`` table's lifecycle on SQLite and PostgreSQL: one scenario per incident, the plan and its
approval (bound to the plan's sha256, never by the operator), verification gating the close, closed for good."""

from __future__ import annotations

import pytest

from payops import runner
from payops.db import session_scope
from payops.errors import ApprovalMissing, ParamsInvalid, PayopsError, PreconditionFailed
from payops.incident import store

pytestmark = pytest.mark.db
OPERATOR, OTHER, THIRD = ("aaaaaaaa-0000-4000-8000-000000000001", "dddddddd-0000-4000-8000-000000000004",
                          "eeeeeeee-0000-4000-8000-000000000005")


def _run() -> str:
    return runner.create_run("checkout_incident", params={"x": 1}, params_hash="h" * 64, mode="dry-run",
                             subject_key="incident:INC-S", operator=OPERATOR).id


def _plan(run_id: str, items: list[str]) -> dict[str, object]:
    return {"scenario": "payment-window", "description": f"expire {len(items)}", "items": items, "run_id": run_id}


def _report(ok: bool) -> dict[str, object]:
    return {"ok": ok, "checks": [{"name": "1 success rate", "status": "PASS", "detail": "fine"},
                                 {"name": "2 no session pending", "status": "PASS" if ok else "FAIL",
                                  "detail": "0 session(s)" if ok else "2 session(s) open beyond 24 h"}]}


@pytest.mark.parametrize("db_url", ["sqlite", "postgresql"], indirect=True)
def test_incident_lifecycle(migrated_db: str) -> None:
    run_id = _run()
    with session_scope() as s:
        row = store.open_or_get(s, "INC-S", "payment-window", "alert text", OPERATOR, run_id)
        store.record_triage(row, {"n": 1}, run_id=run_id, summary="firing", level=1, plan=_plan(run_id, ["cs_1"]))
        first_plan = row.plan_sha256
    with session_scope() as s, pytest.raises(ParamsInvalid, match="--scenario: incident INC-S is a payment-window"):
        store.check_scenario(s, "INC-S", "receipts")

    with session_scope() as s:  # the approval: someone else, bound to this plan
        row = store.require(s, "INC-S")
        assert "no approval" in (store.approval_problem(s, row, OPERATOR) or "")
        with pytest.raises(ParamsInvalid, match="--approver"):
            store.record_approval(s, row, OPERATOR, operator=OPERATOR)
        store.record_approval(s, row, OTHER, operator=OPERATOR)
        assert store.approval_problem(s, row, OPERATOR) is None
        with pytest.raises(ApprovalMissing, match="already approved"):
            store.record_approval(s, row, THIRD, operator=OPERATOR)
    with session_scope() as s:  # a new dry run lists something else: the approval no longer applies
        row = store.require(s, "INC-S", lock=True)
        store.record_triage(row, {"n": 2}, run_id=run_id, summary="firing", level=1,
                            plan=_plan(run_id, ["cs_1", "cs_2"]))
        assert row.plan_sha256 != first_plan
        assert "no approval" in (store.approval_problem(s, row, OPERATOR) or "")

    with session_scope() as s:
        row = store.require(s, "INC-S")
        with pytest.raises(PreconditionFailed, match="never verified"):
            store.closable(row)
        store.record_verification(row, _report(False), run_id=run_id)
        assert row.status == "open"
        with pytest.raises(PreconditionFailed, match="2 no session pending: 2 session"):
            store.closable(row)
        store.record_verification(row, _report(True), run_id=run_id)
        assert row.status == "verified" and row.verified_at is not None
        store.record_triage(row, {"n": 3}, run_id=run_id, summary="firing again", level=1, plan=None)
        assert row.status == "open"  # the symptom came back: verify again
        with pytest.raises(PreconditionFailed):
            store.closable(row)
        store.record_verification(row, _report(True), run_id=run_id)
        store.closable(row)
        store.mark_closed(row, run_id=run_id)
    with session_scope() as s:
        rec = store.as_dict(store.require(s, "INC-S"))
        with pytest.raises(PayopsError, match="already closed"):
            store.closable(store.require(s, "INC-S"))
        with pytest.raises(ParamsInvalid, match="--incident-id: incident INC-S was closed"):
            store.check_scenario(s, "INC-S", "payment-window")
    assert rec["status"] == "closed" and rec["closed_at"]
    whats = [t["what"] for t in rec["timeline"]]
    assert whats[0].startswith("alert fired: alert text") and any("approved by" in w for w in whats)
    assert [w.split(":")[0] for w in whats if w.startswith("verification")] == ["verification failed",
                                                                                 "verification passed",
                                                                                 "verification passed"]
    assert whats[-1].startswith("incident closed")
