"""Recorded approvals are re-verified where it matters — against the roster as it stood when they were
given — and approvals from before signatures existed show as "unsigned (legacy)" and never count.
SQLite and the real PostgreSQL; library level (the live preflight's ``golive.plan`` writes nothing)."""

from __future__ import annotations

import io
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from sqlalchemy import DateTime, column, insert, select, table, update
from typer.testing import CliRunner

from approval_helpers import run_record, sign
from payops import db, runstate
from payops.approvals import checks, golive, submit
from payops.approvals.roster import now_s
from payops.cli import app
from payops.config import Settings, get_settings
from payops.db.models import Approval, ApproverKey, ApproverPerson, ApproverRole, GoLiveSignature, RunbookRun
from payops.errors import ApprovalMissing
from payops.params import validate_manual_payout

pytestmark = pytest.mark.db
OPERATOR = "aaaaaaaa-0000-4000-8000-000000000001"
LEGACY_RUN = "0d0d0d0d-0000-4000-8000-000000000001"
ARGS = ["--studio-id", "11111111-1111-1111-1111-111111111111", "--studio-name", "Test Studio A",
        "--ledger-payout-id", "22222222-2222-2222-2222-222222222222", "--incident-id", "INC-9", "--amount", "875.50",
        "--reserve-after", "120.00", "--reason", "automated payout failed", "--destination-account",
        "acct_test_studio_a", "--currency", "CAD"]


@pytest.fixture()
def approved(roster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """A run with ops and finance approvals signed and recorded; returns its params and ids.

    The roster is moved an hour and the approvals a minute into the past (times are whole seconds, and what
    was revoked at second T no longer counts at T): a revocation "now" is then clearly after the approvals."""
    monkeypatch.setenv("PAYOPS_OPERATOR_ID", OPERATOR)
    get_settings(fresh=True)
    hour_ago = now_s() - timedelta(hours=1)
    with db.session_scope() as s:
        s.execute(update(ApproverKey).values(added_at=hour_ago))
        s.execute(update(ApproverPerson).values(created_at=hour_ago))
        s.execute(update(ApproverRole).values(granted_at=hour_ago))
    run = run_record(ARGS)
    for role in ("ops", "finance"):
        sig = sign(run.id, role, roster[role].key_path, tmp_path / "sigs")
        submit.approve(run.id, role=role, signature=sig, console=Console(file=io.StringIO()))
    with db.session_scope() as s:
        s.execute(update(Approval).values(decided_at=now_s() - timedelta(minutes=1)))
    params = validate_manual_payout(json.loads(run.params_json) | {"dry_run": False})
    return {"run": run, "params": params, "roster": roster}


def plan(a: dict[str, Any], settings: Settings | None = None) -> golive.GoLivePlan:
    return golive.plan(a["params"], settings or get_settings(), operator_key=a["roster"]["operator"].key_path)


def refused(a: dict[str, Any], *named: str, settings: Settings | None = None) -> str:
    with db.session_scope() as s:
        before = (len(s.scalars(select(RunbookRun)).all()), len(s.scalars(select(GoLiveSignature)).all()))
    with pytest.raises(ApprovalMissing) as info:
        plan(a, settings)
    for n in named:
        assert n in str(info.value), (n, str(info.value))
    with db.session_scope() as s:
        assert (len(s.scalars(select(RunbookRun)).all()), len(s.scalars(select(GoLiveSignature)).all())) == before
    return str(info.value)


def test_recorded_approvals_pass_and_the_go_live_is_signed(approved: dict[str, Any]) -> None:
    p = plan(approved)
    assert p.golive is not None and p.golive.person_id == OPERATOR and p.new_approvals == []
    assert f"approved by ops: {approved['roster']['ops'].person_id} with key " in p.golive.statement
    assert f"run: {p.run_id}" in p.golive.statement and "mode: live" in p.golive.statement


def test_a_key_revoked_after_the_approval_still_counts_one_revoked_before_does_not(approved: dict[str, Any]) -> None:
    fp = approved["roster"]["ops"].fingerprint
    res = CliRunner().invoke(app, ["approvers", "revoke", approved["roster"]["ops"].person_id, "--key", fp,
                                   "--reason", "rotated", "--by", OPERATOR])
    assert res.exit_code == 0, res.stderr
    assert plan(approved).golive is not None  # given while the key was active: it counts
    with db.session_scope() as s:  # the roster says the key was revoked before the approval was given
        decided = s.scalar(select(Approval.decided_at).where(Approval.role == "ops"))
        s.execute(update(ApproverKey).where(ApproverKey.fingerprint == fp)
                  .values(revoked_at=decided - timedelta(seconds=5)))
    refused(approved, "approvals.ops", "was revoked at", "parameters sha256")


def test_a_person_removed_after_approving_still_counts_enrolled_later_does_not(approved: dict[str, Any]) -> None:
    fin = approved["roster"]["finance"].person_id
    assert CliRunner().invoke(app, ["approvers", "revoke", fin, "--reason", "left", "--by", OPERATOR]).exit_code == 0
    assert plan(approved).golive is not None
    with db.session_scope() as s:
        later = now_s() + timedelta(hours=1)
        s.execute(update(ApproverKey).where(ApproverKey.person_id == fin).values(added_at=later))
    refused(approved, "approvals.finance", "was enrolled only at")


def test_a_tampered_approval_row_never_counts(approved: dict[str, Any], tmp_path: Path) -> None:
    roster, run = approved["roster"], approved["run"]
    with db.session_scope() as s:
        row = s.scalar(select(Approval).where(Approval.role == "ops"))
        original = (row.statement, row.signature)
        row.statement = row.statement.replace("amount: 875.50 CAD", "amount: 8755.00 CAD")
    refused(approved, "approvals.ops", "differs from the one payops shows")
    # a genuine signature by someone else swapped into the row (the row still names the ops approver)
    other = sign(run.id, "ops", roster["finance"].key_path, tmp_path / "swap").read_text()
    with db.session_scope() as s:
        row = s.scalar(select(Approval).where(Approval.role == "ops"))
        row.statement, row.signature = original[0], other
    refused(approved, "approvals.ops", "is not enrolled as ops")
    with db.session_scope() as s:
        s.scalar(select(Approval).where(Approval.role == "ops")).signature = original[1]
    assert plan(approved).golive is not None


def test_test_only_roster_entries_never_count_in_live_mode(approved: dict[str, Any],
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    for var, value in (("PAYOPS_ENVIRONMENT", "live"), ("PAYOPS_STRIPE_API_BASE", "https://api.stripe.com")):
        with monkeypatch.context() as mp:
            mp.setenv(var, value)
            live = get_settings(fresh=True)
            err = refused(approved, "approvals.ops", "approvals.finance", "approvals.operator",
                          "test-only roster entry", settings=live)
            assert err.count("never counts in live mode") >= 3
            with db.session_scope(live) as s:
                state = checks.approval_problems(s, params_hash=approved["params"].params_hash(), operator=OPERATOR,
                                                 settings=live)
            assert [p.field for p in state.problems] == ["approvals.ops", "approvals.finance"]
    get_settings(fresh=True)
    assert plan(approved).golive is not None


def test_verify_rechecks_the_go_live_of_a_live_run(approved: dict[str, Any]) -> None:
    from payops import runner

    p = plan(approved)
    live = runner.prepare_run("manual_payout", approved["params"], live=True, run_id=p.run_id, on_created=p.record)
    with db.session_scope() as s:
        state = checks.check_run(s, run_id=live.id, settings=get_settings(), require_golive=True)
        assert state.problems == [] and state.operator_problems == [] and set(state.signed) == {
            "ops", "finance", "operator"}
        # the go-live row cannot be rewritten (append-only) …
        with pytest.raises(Exception, match="refused"), db.session_scope() as s2:
            s2.execute(update(GoLiveSignature).values(statement="x"))
    # … and a live run without one is refused by verify and the transfer's defence in depth
    other = runner.prepare_run("manual_payout", approved["params"], live=True)
    with db.session_scope() as s:
        state = checks.check_run(s, run_id=other.id, settings=get_settings(), require_golive=True)
    assert [p.field for p in state.operator_problems] == ["approvals.operator"]
    assert "no go-live signature" in state.operator_problems[0].message


# --- approvals recorded before this change ---------------------------------------------------------
def test_legacy_approvals_show_as_unsigned_and_never_count(db_url: str, roster_free_env: None, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    flags = dict(zip(ARGS[::2], ARGS[1::2], strict=True))
    params = validate_manual_payout({k[2:].replace("-", "_"): v for k, v in flags.items()} | {"operator": OPERATOR})
    h = params.params_hash()
    db.upgrade(db_url, "0003")
    tz = DateTime(timezone=True)
    runs = table("runbook_runs", *(column(c) for c in ("id", "sop", "mode", "status", "params_json", "params_hash",
                                                       "subject_key", "operator")), column("created_at", tz))
    approvals = table("approvals", *(column(c) for c in ("run_id", "params_hash", "role", "approver_id")),
                      column("decided_at", tz))
    with db.get_engine(db_url).begin() as conn:  # what 0003 held: a dry run approved by two typed ids
        conn.execute(insert(runs).values(
            id=LEGACY_RUN, sop="manual_payout", mode="dry-run", status="succeeded",
            params_json=json.dumps(params.model_dump(mode="json"), sort_keys=True), params_hash=h,
            subject_key=params.ledger_payout_id, operator=OPERATOR, created_at=now_s()))
        for role, who in (("ops", "0f0f0f0f-1111-4111-8111-111111111111"),
                          ("finance", "0e0e0e0e-2222-4222-8222-222222222222")):
            conn.execute(insert(approvals).values(run_id=LEGACY_RUN, params_hash=h, role=role, approver_id=who,
                                                  decided_at=now_s()))
    assert db.upgrade(db_url) == db.head_revision()
    with db.session_scope() as s:
        assert [a.kind for a in s.scalars(select(Approval))] == ["unsigned", "unsigned"]
        assert runstate.approvals_for(s, h) == {}
        legacy = runstate.legacy_approvals(s, h)
    assert [(a.role, a.status) for a in legacy] == [("ops", "unsigned (legacy)"), ("finance", "unsigned (legacy)")]
    show = json.loads(CliRunner().invoke(app, ["runs", "show", LEGACY_RUN, "--format",
                                               "json"]).stdout)
    assert [(a["role"], a["status"], a["signed"]) for a in show["approvals"]] == [
        ("ops", "unsigned (legacy)", False), ("finance", "unsigned (legacy)", False)]
    shown = CliRunner().invoke(app, ["runs", "show", LEGACY_RUN]).stdout
    assert "unsigned (legacy)" in shown
    with pytest.raises(ApprovalMissing) as info:
        golive.plan(params.model_copy(update={"dry_run": False}), get_settings(), operator_key=tmp_path / "k")
    msg = str(info.value)
    assert "approvals.ops" in msg and "approvals.finance" in msg
    assert "the unsigned (legacy) one by 0f0f0f0f-1111-4111-8111-111111111111 never counts" in msg
    # a signed approval of the same parameters can be given beside the legacy row
    from payops.approvals.testkeys import enroll_test_roster

    team = enroll_test_roster(tmp_path / "keys", [("ops", "bbbbbbbb-0000-4000-8000-000000000002", "Olivia Ops",
                                                   ("ops",))], by=OPERATOR)
    sig = sign(LEGACY_RUN, "ops", team["ops"].key_path, tmp_path / "sigs")
    view = submit.approve(LEGACY_RUN, role="ops", signature=sig,
                          console=Console(file=io.StringIO()))
    assert view is not None and view.signed
    with db.session_scope() as s:
        assert set(runstate.approvals_for(s, h)) == {"ops"} and len(runstate.legacy_approvals(s, h)) == 2
        assert s.scalar(select(ApproverPerson.test_only)) is True


@pytest.fixture()
def roster_free_env(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAYOPS_DATABASE_URL", db_url)
    monkeypatch.setenv("PAYOPS_STRIPE_API_BASE", "http://127.0.0.1:9")
    get_settings(fresh=True)
