"""The runner's state on SQLite and the real PostgreSQL: approvals bound to the params hash, leases,
and the transfer-intent lock."""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from approval_helpers import sign
from payops import db, runstate
from payops.approvals import checks, submit
from payops.config import get_settings
from payops.db.models import Approval, RunbookRun, RunbookStep, TransferIntent, utcnow
from payops.db.seed import seed_ledger
from payops.errors import ApprovalMissing, ConcurrentRun, ParamsInvalid, PayopsError
from payops.params import ManualPayoutParams, validate_manual_payout
from payops.runner import SOPS, prepare_run

pytestmark = pytest.mark.db

OPERATOR = "aaaaaaaa-0000-4000-8000-000000000001"
OPS_APPROVER = "bbbbbbbb-0000-4000-8000-000000000002"
FINANCE_APPROVER = "cccccccc-0000-4000-8000-000000000003"
SOMEONE_ELSE = "dddddddd-0000-4000-8000-000000000004"
LEDGER_PAYOUT = "22222222-2222-2222-2222-222222222222"

BASE: dict[str, Any] = {
    "studio_id": "11111111-1111-1111-1111-111111111111",
    "studio_name": "Test Studio A",
    "ledger_payout_id": LEDGER_PAYOUT,
    "incident_id": "INC-1",
    "amount": "875.50",
    "reserve_after": "120.00",
    "reason": "automated payout failed",
    "destination_account": "acct_test_studio_a",
    "currency": "CAD",
    "operator": OPERATOR,
}


@pytest.fixture()
def world(migrated_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("PAYOPS_OUTPUT_DIR", str(tmp_path / "outputs"))
    get_settings(fresh=True)
    seed_ledger()
    return migrated_db


def mp(**over: Any) -> ManualPayoutParams:
    return validate_manual_payout({**BASE, **over})


def new_run(**over: Any) -> RunbookRun:
    return prepare_run("manual_payout", mp(**over), live=False)


def approve(run_id: str, role: str, key: Path, tmp: Path) -> runstate.ApprovalView:
    """Sign ``role``'s statement of ``run_id`` with ``key`` (offline, plain ssh-keygen) and submit it."""
    sig = sign(run_id, role, key, tmp / "sigs", name=f"{role}-{key.name}-{run_id[:8]}.statement")
    view = submit.approve(run_id, role=role, signature=sig, console=Console(file=io.StringIO()))
    assert view is not None
    return view


def approvals(params_hash: str) -> dict[str, runstate.ApprovalView]:
    with db.session_scope() as s:
        return runstate.approvals_for(s, params_hash)


# --- the run itself ------------------------------------------------------------------------------
def test_prepare_run_records_run_and_steps(world: str, tmp_path: Path) -> None:
    run = new_run()
    assert run.mode == "dry-run" and run.status == "created"
    assert run.params_hash == mp().params_hash()
    assert run.subject_key == LEDGER_PAYOUT
    assert run.operator == OPERATOR
    assert Path(run.output_dir or "").is_dir()
    assert Path(run.output_dir or "").is_relative_to(tmp_path / "outputs")
    with db.session_scope() as s:
        steps = runstate.steps_of(s, run.id)
        assert [st.step for st in steps] == list(SOPS["manual_payout"])
        assert all(st.status == "pending" and st.attempts == 0 for st in steps)
        assert s.get(RunbookRun, run.id) is not None


# --- approvals (signed: see tests/approvals for every refusal) ------------------------------------
@pytest.fixture()
def people(world: str, roster, tmp_path: Path):  # type: ignore[no-untyped-def]
    """The roster plus a second ops approver (SOMEONE_ELSE) and "both", enrolled as ops and finance."""
    from payops.approvals.testkeys import enroll_test_roster

    extra = enroll_test_roster(tmp_path / "keys", [("someone", SOMEONE_ELSE, "Sam Else", ("ops",)),
                                                   ("both", "eeeeeeee-0000-4000-8000-000000000005", "Bo Both",
                                                    ("ops", "finance"))], by=OPERATOR)
    roster.members.update(extra.members)
    return roster


def test_ops_and_finance_recorded_and_bound_to_hash(people, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    run = new_run()
    ops = approve(run.id, "ops", people["ops"].key_path, tmp_path)
    fin = approve(run.id, "finance", people["finance"].key_path, tmp_path)
    assert (ops.role, ops.approver_id, ops.run_id, ops.params_hash) == ("ops", OPS_APPROVER, run.id, run.params_hash)
    assert (fin.role, fin.approver_id, fin.params_hash) == ("finance", FINANCE_APPROVER, run.params_hash)
    got = approvals(run.params_hash)
    assert set(got) == {"ops", "finance"}
    assert got["ops"].approver_id == OPS_APPROVER
    assert got["finance"].approver_id == FINANCE_APPROVER
    assert got["ops"].decided_at.tzinfo is not None
    assert runstate.approval_problems(got, OPERATOR) == []
    assert got["ops"].as_dict()["params_hash"] == run.params_hash
    # the approval is the signature: bound to the approver's roster key, the statement kept verbatim
    assert got["ops"].signed and got["ops"].key_fingerprint == people["ops"].fingerprint
    assert f"run: {run.id}" in (got["ops"].statement or "") and f"parameters sha256: {run.params_hash}" in (
        got["ops"].statement or "")
    with db.session_scope() as s:
        state = checks.approval_problems(s, params_hash=run.params_hash, operator=OPERATOR, settings=get_settings())
    assert state.problems == [] and state.people() == {"ops": OPS_APPROVER, "finance": FINANCE_APPROVER}


def test_approver_id_is_canonicalized(world: str, roster, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The approver id comes from the roster entry the key belongs to, enrolled in canonical form."""
    from payops.approvals.testkeys import enroll_test_roster

    upper = "ffffffff-0000-4000-8000-00000000000a"
    team = enroll_test_roster(tmp_path / "keys", [("upper", upper.upper(), "Upper Case", ("ops",))],
                              by=OPERATOR.upper())
    assert team["upper"].person_id == upper.upper()  # as typed …
    run = new_run()
    view = approve(run.id, "ops", team["upper"].key_path, tmp_path)
    assert view.approver_id == upper  # … stored canonical
    assert approvals(run.params_hash)["ops"].approver_id == upper


@pytest.mark.parametrize("operator", [OPERATOR, OPERATOR.upper()])
@pytest.mark.parametrize("role", ["ops", "finance"])
def test_operator_cannot_approve_own_run(people, tmp_path: Path, role: str, operator: str) -> None:  # type: ignore[no-untyped-def]
    run = new_run(operator=operator)
    with pytest.raises(ParamsInvalid) as info:
        approve(run.id, role, people["operator"].key_path, tmp_path)
    assert info.value.fields == ["--signature"]
    assert "operator" in str(info.value) and "cannot approve their own payout" in str(info.value)
    assert approvals(run.params_hash) == {}


def test_same_person_cannot_hold_both_roles(people, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    run = new_run()
    approve(run.id, "ops", people["both"].key_path, tmp_path)
    with pytest.raises(ParamsInvalid) as info:
        approve(run.id, "finance", people["both"].key_path, tmp_path)
    assert info.value.fields == ["--signature"]
    assert "must differ" in str(info.value)
    assert set(approvals(run.params_hash)) == {"ops"}


@pytest.mark.parametrize(
    ("role", "signature", "fields"),
    [
        ("ops", "not a signature", ["--signature"]),
        ("ops", "-----BEGIN SSH SIGNATURE-----\n!!!\n-----END SSH SIGNATURE-----\n", ["--signature"]),
        ("ops", "", ["--signature"]),
        ("treasury", None, ["--role"]),
        ("Ops", None, ["--role"]),
        ("admin", "bob", ["--role", "--signature"]),
    ],
)
def test_bad_approver_or_role_named(people, tmp_path: Path, role: str, signature: str | None,  # type: ignore[no-untyped-def]
                                    fields: list[str]) -> None:
    run = new_run()
    sig = sign(run.id, "ops", people["ops"].key_path, tmp_path / "good")
    if signature is not None:
        sig = tmp_path / "bad.sig"
        sig.write_text(signature)
    with pytest.raises(ParamsInvalid) as info:
        submit.approve(run.id, role=role, signature=sig, console=Console(file=io.StringIO()))
    assert info.value.fields == fields
    assert approvals(run.params_hash) == {}


def test_reapproval_by_same_person_is_idempotent(people, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    run = new_run()
    first = approve(run.id, "ops", people["ops"].key_path, tmp_path)
    again = approve(run.id, "ops", people["ops"].key_path, tmp_path)
    assert again.approver_id == first.approver_id and again.params_hash == first.params_hash
    assert again.decided_at == first.decided_at
    with db.session_scope() as s:
        rows = s.scalars(select(Approval).where(Approval.params_hash == run.params_hash)).all()
    assert len(rows) == 1


def test_different_person_for_an_approved_role(people, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    run = new_run()
    approve(run.id, "ops", people["ops"].key_path, tmp_path)
    with pytest.raises(ApprovalMissing, match="already given by " + OPS_APPROVER):
        approve(run.id, "ops", people["someone"].key_path, tmp_path)
    assert approvals(run.params_hash)["ops"].approver_id == OPS_APPROVER


def test_approvals_carry_over_to_a_rerun_with_the_same_parameters(people, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    first = new_run()
    approve(first.id, "ops", people["ops"].key_path, tmp_path)
    approve(first.id, "finance", people["finance"].key_path, tmp_path)
    again = new_run(amount="875.5")  # same parameters, other spelling
    assert again.id != first.id and again.params_hash == first.params_hash
    assert set(approvals(again.params_hash)) == {"ops", "finance"}


def test_changed_amount_voids_approvals(people, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    first = new_run()
    approve(first.id, "ops", people["ops"].key_path, tmp_path)
    approve(first.id, "finance", people["finance"].key_path, tmp_path)
    changed = new_run(amount="800.00")
    assert changed.params_hash != first.params_hash
    assert approvals(changed.params_hash) == {}
    with db.session_scope() as s:
        voided = runstate.other_hash_approvals(s, changed.subject_key, changed.params_hash)
        assert sorted(voided) == sorted([f"ops approval for parameters {first.params_hash[:12]}…",
                                         f"finance approval for parameters {first.params_hash[:12]}…"])
        # from the first run's point of view nothing is voided
        assert runstate.other_hash_approvals(s, first.subject_key, first.params_hash) == []
        # another subject sees nothing
        assert runstate.other_hash_approvals(s, "44444444-4444-4444-4444-444444444444", changed.params_hash) == []
        assert runstate.other_hash_approvals(s, None, changed.params_hash) == []
    problems = runstate.approval_problems(approvals(changed.params_hash), OPERATOR)
    assert [p.field for p in problems] == ["approvals.ops", "approvals.finance"]
    # the same people may approve the new amount
    approve(changed.id, "ops", people["ops"].key_path, tmp_path)
    approve(changed.id, "finance", people["finance"].key_path, tmp_path)
    assert set(approvals(changed.params_hash)) == {"ops", "finance"}


def _view(role: str, who: str) -> runstate.ApprovalView:
    return runstate.ApprovalView(role, who, "run", "h" * 64, utcnow())


@pytest.mark.parametrize(
    ("given", "fields"),
    [
        ({}, ["approvals.ops", "approvals.finance"]),
        ({"ops": OPS_APPROVER}, ["approvals.finance"]),
        ({"finance": FINANCE_APPROVER}, ["approvals.ops"]),
        ({"ops": OPS_APPROVER, "finance": FINANCE_APPROVER}, []),
        ({"ops": OPS_APPROVER, "finance": OPS_APPROVER}, ["approvals"]),
        ({"ops": OPERATOR, "finance": FINANCE_APPROVER}, ["approvals.ops"]),
        ({"ops": OPS_APPROVER, "finance": OPERATOR}, ["approvals.finance"]),
        ({"ops": OPERATOR}, ["approvals.finance", "approvals.ops"]),
    ],
)
def test_approval_problems(given: dict[str, str], fields: list[str]) -> None:
    view = {role: _view(role, who) for role, who in given.items()}
    got = runstate.approval_problems(view, OPERATOR)
    assert [p.field for p in got] == fields
    for p in got:
        if p.field.startswith("approvals.") and "no " in p.message:
            role = p.field.split(".")[1]
            assert f"--role {role}" in p.message  # says how to record the missing one


# --- leases --------------------------------------------------------------------------------------
def _hold(run_id: str, owner: str, *, expires_in: timedelta = timedelta(minutes=10)) -> None:
    with db.session_scope() as s:
        s.execute(update(RunbookRun).where(RunbookRun.id == run_id)
                  .values(status="running", lease_owner=owner, lease_expires_at=utcnow() + expires_in))


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    with pytest.raises(ProcessLookupError):
        os.kill(proc.pid, 0)
    return proc.pid


def _run_row(run_id: str) -> RunbookRun:
    with db.session_scope() as s:
        run = s.get(RunbookRun, run_id)
        assert run is not None
        return run


def test_claim_and_release(world: str) -> None:
    run = new_run()
    with db.session_scope() as s:
        claimed = runstate.claim(s, run.id)
        assert claimed.status == "running"
        assert claimed.lease_owner == runstate.lease_owner()
        assert claimed.lease_expires_at is not None and claimed.lease_expires_at > utcnow()
        assert claimed.started_at is not None
    with db.session_scope() as s:
        runstate.claim(s, run.id)  # the holder may claim again (resume in the same process)
    with db.session_scope() as s:
        runstate.release(s, run.id, status="failed", error="boom", failed_step="20-transfer")
    row = _run_row(run.id)
    assert (row.status, row.lease_owner, row.lease_expires_at) == ("failed", None, None)
    assert (row.error, row.failed_step) == ("boom", "20-transfer")
    assert row.finished_at is not None
    with db.session_scope() as s:  # a released run can be claimed again; the error is cleared
        again = runstate.claim(s, run.id)
        assert again.lease_owner == runstate.lease_owner() and again.error is None


def test_claim_refused_while_a_live_process_holds_the_lease(world: str) -> None:
    run = new_run()
    other = f"{socket.gethostname()}:{os.getppid()}"
    _hold(run.id, other)
    with pytest.raises(ConcurrentRun) as info, db.session_scope() as s:
        runstate.claim(s, run.id)
    assert other in str(info.value)
    assert info.value.exit_code == 12
    assert _run_row(run.id).lease_owner == other  # untouched


def test_claim_refused_while_another_host_holds_the_lease(world: str) -> None:
    run = new_run()
    _hold(run.id, "some-other-host.example:1")
    with pytest.raises(ConcurrentRun), db.session_scope() as s:
        runstate.claim(s, run.id)


def test_lease_of_a_dead_process_is_taken_over(world: str) -> None:
    run = new_run()
    dead = f"{socket.gethostname()}:{_dead_pid()}"
    _hold(run.id, dead)
    with db.session_scope() as s:
        claimed = runstate.claim(s, run.id)
        assert claimed.lease_owner == runstate.lease_owner()
    assert _run_row(run.id).lease_owner == runstate.lease_owner()


@pytest.mark.parametrize("owner", ["live-here", "some-other-host.example:1"])
def test_expired_lease_is_taken_over(world: str, owner: str) -> None:
    run = new_run()
    if owner == "live-here":
        owner = f"{socket.gethostname()}:{os.getppid()}"
    _hold(run.id, owner, expires_in=timedelta(seconds=-5))
    with db.session_scope() as s:
        assert runstate.claim(s, run.id).lease_owner == runstate.lease_owner()


def test_claim_unknown_run(world: str) -> None:
    with pytest.raises(PayopsError, match="no run with id"), db.session_scope() as s:
        runstate.claim(s, "00000000-0000-4000-8000-000000000000")


# --- the write-ahead transfer intent is one per ledger payout ------------------------------------
def _intent(run_id: str, key: str) -> TransferIntent:
    return TransferIntent(ledger_payout_id=LEDGER_PAYOUT, run_id=run_id, idempotency_key=key, amount=87550,
                          currency="CAD", destination="acct_test_studio_a", status="intent")


def test_second_transfer_intent_for_same_ledger_payout_fails(world: str) -> None:
    first, second = new_run(), new_run(incident_id="INC-2")
    with db.session_scope() as s:
        s.add(_intent(first.id, f"manual-payout:{LEDGER_PAYOUT}:{first.id}"))
    with pytest.raises(IntegrityError) as info, db.session_scope() as s:
        s.add(_intent(second.id, f"manual-payout:{LEDGER_PAYOUT}:{second.id}"))
    text = str(info.value.orig)
    # the primary key (not the idempotency key) is what refused it
    assert "pk_transfer_intents" in text or "transfer_intents.ledger_payout_id" in text, text
    with db.session_scope() as s:
        rows = s.scalars(select(TransferIntent)).all()
        assert [(r.ledger_payout_id, r.run_id) for r in rows] == [(LEDGER_PAYOUT, first.id)]
        # the runs and their steps are untouched by the failed insert
        assert len(s.scalars(select(RunbookStep).where(RunbookStep.run_id == second.id)).all()) == len(
            SOPS["manual_payout"])
