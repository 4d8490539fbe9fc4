"""The ``incidents`` table's lifecycle on SQLite and PostgreSQL: one scenario per incident, the plan and its
signed approval (a rostered ops approver's ssh signature over the plan's statement, never the operator's, bound
to the plan's sha256), verification gating the close, closed for good."""

from __future__ import annotations

import pytest

from payops import runner
from payops.approvals import sshkeys
from payops.approvals.testkeys import enroll_test_roster, new_key
from payops.config import get_settings
from payops.db import session_scope
from payops.db.models import Approval
from payops.errors import ApprovalMissing, ParamsInvalid, PayopsError, PreconditionFailed
from payops.incident import approval, store

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

    with session_scope() as s:  # a new dry run lists something else: its sha256 changes
        row = store.require(s, "INC-S", lock=True)
        store.record_triage(row, {"n": 2}, run_id=run_id, summary="firing", level=1,
                            plan=_plan(run_id, ["cs_1", "cs_2"]))
        assert row.plan_sha256 != first_plan

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
    assert whats[0].startswith("alert fired: alert text")
    assert [w.split(":")[0] for w in whats if w.startswith("verification")] == ["verification failed",
                                                                                 "verification passed",
                                                                                 "verification passed"]
    assert whats[-1].startswith("incident closed")


@pytest.mark.parametrize("db_url", ["sqlite", "postgresql"], indirect=True)
def test_the_live_action_needs_a_rostered_second_persons_signature_over_this_plan(migrated_db: str, tmp_path,  # type: ignore[no-untyped-def]
                                                                                  monkeypatch) -> None:
    monkeypatch.setenv("PAYOPS_STRIPE_API_BASE", "http://127.0.0.1:9")  # not real Stripe: test-only keys may count
    settings = get_settings(fresh=True)
    team = enroll_test_roster(tmp_path, [("operator", OPERATOR, "Oscar Operator", ("operator", "ops")),
                                         ("ops", OTHER, "Olivia Ops", ("ops",)),
                                         ("ops2", THIRD, "Otto Ops", ("ops",)),
                                         ("finance", "ffffffff-0000-4000-8000-000000000006", "Farid Finance",
                                          ("finance",))], by=OPERATOR, settings=settings)
    stranger, _ = new_key(tmp_path, "stranger", "not on the roster")
    run_id = _run()
    with session_scope() as s:
        row = store.open_or_get(s, "INC-S", "payment-window", "alert text", OPERATOR, run_id)
        store.record_triage(row, {"n": 1}, run_id=run_id, summary="firing", level=1, plan=_plan(run_id, ["cs_1"]))
        first = approval.statement(row)
    assert f"parameters sha256: {row.plan_sha256}" in first and 'item: "cs_1"' in first and "incident: INC-S" in first

    def attempt(key, text=first):  # type: ignore[no-untyped-def]
        with session_scope() as s:
            return approval.record(s, store.require(s, "INC-S", lock=True), sshkeys.sign(text, key), field="--key",
                                   operator=OPERATOR, settings=settings)

    with session_scope() as s:
        assert "no approval" in (approval.problem(s, store.require(s, "INC-S"), OPERATOR, settings) or "")
    for key, words in ((team["operator"].key_path, "the operator cannot approve their own live action"),
                       (stranger, "which is not in the approver roster"),
                       (team["finance"].key_path, "is not enrolled as ops")):
        with pytest.raises(ParamsInvalid, match=words):
            attempt(key)
    with session_scope() as s:
        assert s.query(Approval).count() == 0  # every refusal wrote nothing

    appr, new = attempt(team["ops"].key_path)
    assert new and appr.approver_id == OTHER and appr.key_fingerprint == team["ops"].fingerprint
    assert attempt(team["ops"].key_path)[1] is False  # the same person again: already recorded
    with session_scope() as s:
        timeline = store.as_dict(store.require(s, "INC-S"))["timeline"]
    assert [w["what"] for w in timeline if "approved by" in w["what"]] == [
        f"live action approved by Olivia Ops ({OTHER}), signed with roster key {team['ops'].fingerprint} "
        f"(plan {row.plan_sha256[:12]}…)"]
    with pytest.raises(ApprovalMissing, match="already approved"):
        attempt(team["ops2"].key_path)
    with session_scope() as s:
        assert approval.problem(s, store.require(s, "INC-S"), OPERATOR, settings) is None
        # the recorded signature is altered: the live action refuses, naming it
        s.query(Approval).update({Approval.signature: sshkeys.sign(first + "x", team["ops"].key_path)})
    with session_scope() as s:
        assert "no longer verifies" in (approval.problem(s, store.require(s, "INC-S"), OPERATOR, settings) or "")
        s.query(Approval).delete()

    with session_scope() as s:  # a new dry run lists more: a signature of the old list does not carry over
        row = store.require(s, "INC-S", lock=True)
        store.record_triage(row, {"n": 2}, run_id=run_id, summary="firing", level=1,
                            plan=_plan(run_id, ["cs_1", "cs_2"]))
    with pytest.raises(ParamsInvalid, match="does not verify over this incident's plan statement"):
        attempt(team["ops"].key_path, first)
    with session_scope() as s:
        assert "no approval" in (approval.problem(s, store.require(s, "INC-S"), OPERATOR, settings) or "")
        # an unsigned approval row (before #18) is shown as legacy and never counts
        row = store.require(s, "INC-S")
        s.add(Approval(run_id=run_id, params_hash=row.plan_sha256, role="ops", approver_id=OTHER, kind="unsigned"))
    with session_scope() as s:
        assert "unsigned (legacy)" in (approval.problem(s, store.require(s, "INC-S"), OPERATOR, settings) or "")
