"""Crash recovery without a run id, at library level on SQLite and PostgreSQL: who holds a ledger payout,
how an interrupted run is shown, what a live command for a held payout does (the end-to-end kill matrix
is tests/e2e/test_exactly_once.py)."""

from __future__ import annotations

import json
import os
import socket
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, update

from payops import db, manual, recovery, runner, runstate
from payops.config import get_settings
from payops.db.models import RunbookRun, TransferIntent, utcnow
from payops.db.seed import seed_ledger
from payops.errors import ConcurrentRun, PaymentError
from payops.params import validate_manual_payout

pytestmark = pytest.mark.db

OPERATOR = "aaaaaaaa-0000-4000-8000-000000000001"
OTHER_OPERATOR = "dddddddd-0000-4000-8000-000000000004"
LP = "22222222-2222-2222-2222-222222222222"
BASE: dict[str, Any] = {
    "studio_id": "11111111-1111-1111-1111-111111111111", "studio_name": "Test Studio A", "ledger_payout_id": LP,
    "incident_id": "INC-1", "amount": "875.50", "reserve_after": "120.00", "reason": "automated payout failed",
    "destination_account": "acct_test_studio_a", "currency": "CAD", "operator": OPERATOR,
}
DEAD = f"{socket.gethostname()}:999999999"  # no such pid on this host


@pytest.fixture()
def world(migrated_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("PAYOPS_OUTPUT_DIR", str(tmp_path / "outputs"))
    monkeypatch.setenv("STRIPE_FALLBACK_SECRET_KEY", "rk_test_payops_fallback")
    monkeypatch.setenv("PAYOPS_ENVIRONMENT", "test")
    get_settings(fresh=True)
    seed_ledger()
    return migrated_db


def live_run(**over: Any) -> RunbookRun:
    """A dry run and its live run (records only: nothing executed)."""
    params = validate_manual_payout({**BASE, **over})
    runner.prepare_run("manual_payout", params, live=False)
    return runner.prepare_run("manual_payout", params, live=True)


def hold(run_id: str, owner: str, *, expires_in: timedelta = timedelta(minutes=10), status: str = "running") -> None:
    with db.session_scope() as s:
        s.execute(update(RunbookRun).where(RunbookRun.id == run_id)
                  .values(status=status, lease_owner=owner, lease_expires_at=utcnow() + expires_in))


def finish_steps(run_id: str, *steps: str) -> None:
    with db.session_scope() as s:
        for st in steps:
            runstate.set_step(s, run_id, st, status="succeeded", attempts=1)


def intent(run_id: str, status: str, *, attempts: int = 1, tr: str | None = None, error: str | None = None) -> None:
    with db.session_scope() as s:
        s.add(TransferIntent(ledger_payout_id=LP, run_id=run_id, idempotency_key=f"manual-payout:{LP}:{run_id}",
                             amount=87550, currency="CAD", destination="acct_test_studio_a", status=status,
                             attempts=attempts, stripe_transfer_id=tr, error=error))


def runs_count() -> int:
    with db.session_scope() as s:
        return s.scalar(select(func.count()).select_from(RunbookRun)) or 0


def test_a_crashed_run_is_listed_interrupted_with_its_last_step_and_money(world: str) -> None:
    run = live_run()
    hold(run.id, DEAD)
    finish_steps(run.id, "10-verify", "20-transfer")
    intent(run.id, "created", tr="tr_123")
    row = next(r for r in manual.list_runs(sop=None, limit=10) if r["id"] == run.id)
    assert (row["status"], row["last_finished"], row["money_moved"]) == ("interrupted", "20-transfer", "yes (tr_123)")
    info = manual.show_run(run.id)
    assert info["status"] == "interrupted" and info["lease_owner"] == DEAD
    dry = next(r for r in manual.list_runs(sop=None, limit=10) if r["mode"] == "dry-run")
    assert (dry["status"], dry["money_moved"], dry["last_finished"]) == ("created", "—", None)


def test_interrupted_is_a_run_nobody_holds(world: str) -> None:
    alive = f"{socket.gethostname()}:{os.getppid()}"
    cases = [
        (alive, timedelta(minutes=10), "running"),                         # its process is still there
        (alive, timedelta(seconds=-5), "interrupted"),                     # lease expired (hung, renewals stopped)
        ("some-other-host.example:1", timedelta(minutes=10), "running"),   # cannot tell: waits for the lease
        ("some-other-host.example:1", timedelta(seconds=-5), "interrupted"),
        (DEAD, timedelta(minutes=10), "interrupted"),                       # SIGKILLed on this host
    ]
    run = live_run()
    for owner, expires_in, shown in cases:
        hold(run.id, owner, expires_in=expires_in)
        with db.session_scope() as s:
            assert runstate.shown_status(s.get(RunbookRun, run.id)) == shown, (owner, expires_in)  # type: ignore[arg-type]


def test_money_moved_says_what_the_intent_knows(world: str) -> None:
    run = live_run()
    with db.session_scope() as s:
        assert recovery.money_moved(s, s.get(RunbookRun, run.id)) == "no"  # type: ignore[arg-type]
    intent(run.id, "intent", attempts=0)
    for status, attempts, moved in (("intent", 0, "no"), ("intent", 1, "unknown"), ("failed", 1, "no (Stripe refused"),
                                    ("created", 1, "yes (tr_9)")):
        with db.session_scope() as s:
            s.execute(update(TransferIntent).values(status=status, attempts=attempts,
                                                    stripe_transfer_id="tr_9" if status == "created" else None))
        with db.session_scope() as s:
            assert recovery.money_moved(s, s.get(RunbookRun, run.id)).startswith(moved), status  # type: ignore[arg-type]


def test_holder_of_a_ledger_payout(world: str) -> None:
    with db.session_scope() as s:
        assert recovery.holder_of(s, LP) is None
    run = live_run()
    hold(run.id, DEAD)  # crashed before its transfer step: no intent yet, still holds the payout
    with db.session_scope() as s:
        h = recovery.holder_of(s, LP)
        assert h is not None and (h.run_id, h.status, h.alive) == (run.id, "interrupted", False)
    intent(run.id, "failed", error=json.dumps({"message": "Stripe refused: no"}))
    with db.session_scope() as s:  # Stripe refused its transfer: holds nothing any more (a new run takes over)
        assert recovery.holder_of(s, LP) is None
    with db.session_scope() as s:
        s.execute(update(TransferIntent).values(status="created", stripe_transfer_id="tr_1"))
        s.execute(update(RunbookRun).where(RunbookRun.id == run.id).values(status="failed", lease_owner=None))
    with db.session_scope() as s:  # failed after the transfer (Slack down…): still the holder, to be finished
        h = recovery.holder_of(s, LP)
        assert h is not None and h.status == "failed" and h.money_moved == "yes (tr_1)"
    with db.session_scope() as s:
        s.execute(update(RunbookRun).where(RunbookRun.id == run.id).values(status="succeeded"))
    with db.session_scope() as s:  # paid and finished: nothing to resume (verify names the run)
        assert recovery.holder_of(s, LP) is None


def test_only_the_same_parameters_by_the_same_operator_resume(world: str) -> None:
    run = live_run()
    hold(run.id, DEAD)
    with db.session_scope() as s:
        h = recovery.holder_of(s, LP)
    assert h is not None
    recovery.check_resumable(h, params_hash=h.params_hash, operator=OPERATOR)  # resumes: no error
    with pytest.raises(ConcurrentRun) as other_params:
        recovery.check_resumable(h, params_hash="f" * 64, operator=OPERATOR)
    assert f"`payops runs resume {run.id}`" in str(other_params.value) and "other parameters" in str(other_params.value)
    with pytest.raises(ConcurrentRun) as other_person:
        recovery.check_resumable(h, params_hash=h.params_hash, operator=OTHER_OPERATOR)
    msg = str(other_person.value)
    assert OPERATOR in msg and f"`payops runs resume {run.id}`" in msg and "Nothing was started" in msg

    hold(run.id, f"{socket.gethostname()}:{os.getppid()}")  # still being executed
    with db.session_scope() as s:
        alive = recovery.holder_of(s, LP)
    assert alive is not None and alive.alive
    with pytest.raises(ConcurrentRun) as busy:
        recovery.check_resumable(alive, params_hash=alive.params_hash, operator=OPERATOR)
    assert "still being executed" in str(busy.value) and f"`payops runs show {run.id}`" in str(busy.value)


def test_a_live_command_for_a_payout_held_with_other_parameters_writes_nothing(world: str) -> None:
    run = live_run()
    hold(run.id, DEAD)
    before = runs_count()
    flags = {k: v for k, v in BASE.items() if k != "currency"} | {"incident_id": "INC-OTHER"}
    with pytest.raises(ConcurrentRun) as info:
        manual.run_manual_payout(flags, live=True)
    assert f"`payops runs resume {run.id}`" in str(info.value) and "holds this ledger payout" in str(info.value)
    assert runs_count() == before  # no new run, failed or otherwise


def test_resuming_a_run_whose_transfer_stripe_refused_names_the_new_live_run(
        world: str, monkeypatch: pytest.MonkeyPatch) -> None:
    run = live_run()
    assert run.parent_run_id is not None
    err = PaymentError("Insufficient funds in Stripe account.", stripe_type="invalid_request_error",
                       code="balance_insufficient", request_id="req_1", http_status=400)
    intent(run.id, "failed", error=json.dumps(err.as_dict()))
    with db.session_scope() as s:
        runstate.release(s, run.id, status="failed", error=str(err), failed_step="20-transfer")

    def never(*_a: object, **_k: object) -> None:
        raise AssertionError("resume replayed the refused transfer")

    monkeypatch.setattr(runner, "execute", never)
    with pytest.raises(PaymentError) as info:
        manual.resume(run.id, live=False, wait_seconds=1, console=None)
    msg = str(info.value)
    assert "Insufficient funds" in msg and "No money moved" in msg and "same idempotency key" in msg
    assert f"`payops runs resume {run.parent_run_id} --live --key" in msg
    assert msg.count("Stripe refused:") == 1 and info.value.code == "balance_insufficient"
