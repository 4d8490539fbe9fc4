"""The payout cycle end to end: papermill runbooks, the real sandbox over HTTP, SQLite and PostgreSQL.

The demo seed leaves earnings due for 2026-12-01: A (CAD), B and E (USD) are paid; D nets below the
minimum payout and C has not finished onboarding, so both are skipped and carried.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import stripe
from sqlalchemy import func, select

from payops import demo_data as dd
from payops import runner
from payops.cycle.runbook import run_cycle_runbook
from payops.db import session_scope
from payops.db.models import LedgerPayout, PayoutRun, PayoutSkip, RunbookRun, StudioEarning, TransferIntent
from payops.errors import ConcurrentRun, StuckRun
from payops.ids import ledger_payout_id, payout_run_id

pytestmark = pytest.mark.db
CYCLE = dd.NEXT_CYCLE
PAID = {dd.STUDIO_A.studio_id: (dd.STUDIO_A, 104_500), dd.STUDIO_B.studio_id: (dd.STUDIO_B, 70_000),
        dd.STUDIO_E.studio_id: (dd.STUDIO_E, 52_000)}


def _client(env) -> stripe.StripeClient:  # type: ignore[no-untyped-def]
    return stripe.StripeClient("sk_test_payops_platform", base_addresses={"api": env.sandbox.url})


def _cycle_transfers(env) -> list[stripe.Transfer]:  # type: ignore[no-untyped-def]
    """Every sandbox transfer whose transfer_group is one of this cycle's ledger payouts."""
    client = _client(env)
    out = []
    for studio_id in [s.studio_id for s in dd.STUDIOS]:
        lp = ledger_payout_id(CYCLE, studio_id)
        out += list(client.v1.transfers.list({"transfer_group": lp, "limit": 100}).auto_paging_iter())
    return out


def _ledger(env) -> dict[str, LedgerPayout]:  # type: ignore[no-untyped-def]
    with session_scope(env.settings) as s:
        rows = s.scalars(select(LedgerPayout).where(LedgerPayout.run_id == payout_run_id(CYCLE))).all()
        return {r.studio_id: r for r in rows}


def test_dry_run_writes_nothing_and_shows_the_plan(payops_env) -> None:  # type: ignore[no-untyped-def]
    outcome = run_cycle_runbook(CYCLE, live=False, settings=payops_env.settings)
    plan = outcome.results["10-plan"]
    assert plan["state"] == "dry-run" and plan["payouts"] == 3
    assert plan["totals"] == {"CAD": 78_375, "USD": 91_500}  # 75% of 1045.00 CAD; of 700.00 + 520.00 USD
    assert {k["code"] for k in plan["skips"]} == {"below_threshold", "not_eligible"}
    req = outcome.results["20-transfer"]
    assert req["requests_total"] == 3 and req["created"] == 0
    with session_scope(payops_env.settings) as s:
        assert s.get(PayoutRun, payout_run_id(CYCLE)) is None
        assert s.scalar(select(func.count()).select_from(StudioEarning)
                        .where(StudioEarning.ledger_payout_id.is_(None))) == 10
    assert _cycle_transfers(payops_env) == []
    assert outcome.manifest is not None and (outcome.run_dir / "10-plan.html").is_file()


def test_live_cycle_pays_eligible_studios_once_and_carries_the_rest(payops_env) -> None:  # type: ignore[no-untyped-def]
    outcome = run_cycle_runbook(CYCLE, live=True, settings=payops_env.settings)
    assert outcome.status == "succeeded"
    summary = outcome.results["30-summary"]
    assert (summary["status"], summary["transferred"], summary["scheduled"], summary["skipped"]) == (
        "completed", 3, 3, 2)
    ledger = _ledger(payops_env)
    transfers = {t.transfer_group: t for t in _cycle_transfers(payops_env)}
    assert len(transfers) == 3
    for studio_id, (studio, gross) in PAID.items():
        lp = ledger[studio_id]
        assert (lp.gross, lp.fee + lp.reserve + lp.net) == (gross, gross)
        assert lp.fee == gross * 15 // 100 and lp.reserve == gross * 10 // 100
        assert lp.status == "transferred" and lp.stripe_destination_payment_id
        tr = transfers[lp.id]
        assert (tr.id, tr.amount, tr.currency, tr.destination) == (
            lp.stripe_transfer_id, lp.net, studio.currency.lower(), studio.account_id)
        assert tr.metadata["source"] == "automated" and tr.metadata["run_id"] == payout_run_id(CYCLE)
    with session_scope(payops_env.settings) as s:
        skips = {k.studio_id: k for k in s.scalars(select(PayoutSkip))}
        assert set(skips) == {dd.STUDIO_C.studio_id, dd.STUDIO_D.studio_id}
        d_skip = skips[dd.STUDIO_D.studio_id]
        assert d_skip.code == "below_threshold" and "minimum" in d_skip.reason
        carried = s.scalars(select(StudioEarning.studio_id).where(StudioEarning.ledger_payout_id.is_(None))).all()
        assert sorted(set(carried)) == sorted([dd.STUDIO_C.studio_id, dd.STUDIO_D.studio_id])
        intents = s.scalars(select(TransferIntent).where(TransferIntent.idempotency_key.like("payout-cycle:%"))).all()
        assert {i.status for i in intents} == {"created"} and len(intents) == 3

    again = run_cycle_runbook(CYCLE, live=True, settings=payops_env.settings)
    assert again.results["10-plan"]["state"] == "done"
    assert again.results["20-transfer"]["status"] == "done" and again.results["20-transfer"]["created"] == 0
    assert len(_cycle_transfers(payops_env)) == 3  # nothing new in Stripe


def test_disable_switch_fails_the_cycle_and_leaves_payouts_pending(payops_env) -> None:  # type: ignore[no-untyped-def]
    from payops.cycle import engine

    with session_scope(payops_env.settings) as s:
        engine.set_disabled(s, disabled=True, reason="Q4 fallback rehearsal", by="ops-lead")
    with pytest.raises(runner.StepFailed) as info:
        run_cycle_runbook(CYCLE, live=True, settings=payops_env.settings)
    assert info.value.step == "20-transfer" and info.value.exit_code == 14
    assert "Q4 fallback rehearsal" in info.value.error
    assert {lp.status for lp in _ledger(payops_env).values()} == {"pending"}
    with session_scope(payops_env.settings) as s:
        run = s.get(PayoutRun, payout_run_id(CYCLE))
        assert run is not None and run.status == "failed" and "disabled" in (run.failure_reason or "")
    assert _cycle_transfers(payops_env) == []
    slack = payops_env.sinks.slack_messages()
    assert any("did not run" in json.dumps(m) and "manual fallback" in json.dumps(m) for m in slack)

    # re-enabled, a re-run of the failed cycle pays what is still pending — once
    with session_scope(payops_env.settings) as s:
        engine.set_disabled(s, disabled=False, reason=None, by="ops-lead")
    retry = run_cycle_runbook(CYCLE, live=True, settings=payops_env.settings)
    assert retry.results["10-plan"]["state"] == "takeover"
    assert retry.results["30-summary"]["transferred"] == 3
    assert len(_cycle_transfers(payops_env)) == 3


def test_env_disable_switch(payops_env, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("PAYOUT_CYCLE_DISABLED", "true")
    from payops.config import get_settings

    settings = get_settings(fresh=True)
    with pytest.raises(runner.StepFailed) as info:
        run_cycle_runbook(CYCLE, live=True, settings=settings)
    assert info.value.exit_code == 14 and "PAYOUT_CYCLE_DISABLED" in info.value.error
    assert _cycle_transfers(payops_env) == []


def test_injected_failure_marks_the_ledger_payout_failed_with_stripes_reason(payops_env) -> None:  # type: ignore[no-untyped-def]
    # Studio E's account loses its transfers capability after planning: Stripe refuses that transfer
    r = httpx.post(f"{payops_env.sandbox.url}/_sandbox/accounts", json={"id": dd.STUDIO_E.account_id,
                                                                        "transfers": "inactive"})
    assert r.status_code == 200, r.text
    outcome = run_cycle_runbook(CYCLE, live=True, settings=payops_env.settings)
    summary = outcome.results["30-summary"]
    assert summary["status"] == "partial" and summary["transferred"] == 2 and len(summary["failed"]) == 1
    lp = _ledger(payops_env)[dd.STUDIO_E.studio_id]
    assert lp.status == "failed" and lp.failure_code and lp.failure_reason and lp.stripe_transfer_id is None
    assert summary["success_rate"] == pytest.approx(2 / 3)
    alerts = [json.dumps(m) for m in payops_env.sinks.slack_messages()]
    assert any("Manual fallback needed" in a and dd.STUDIO_E.name in a for a in alerts)
    # a re-run does not retry a definitive refusal (the fallback's job) and creates nothing new
    again = run_cycle_runbook(CYCLE, live=True, settings=payops_env.settings)
    assert again.results["20-transfer"]["created"] == 0
    assert len(_cycle_transfers(payops_env)) == 2


def _foreign_running_cycle(env, minutes_ago: int) -> str:  # type: ignore[no-untyped-def]
    other = runner.create_run("payout_cycle", params={"cycle_date": CYCLE.isoformat(), "dry_run": False,
                                                      "trigger": "test"},
                              params_hash="x" * 64, mode="live", subject_key="cycle", settings=env.settings).id
    with session_scope(env.settings) as s:
        s.add(PayoutRun(id=payout_run_id(CYCLE), cycle_date=CYCLE, status="running", runbook_run_id=other,
                        started_at=datetime.now(UTC) - timedelta(minutes=minutes_ago)))
    return other


@pytest.mark.parametrize(("minutes", "error", "code"), [(75, StuckRun, 13), (10, ConcurrentRun, 12)])
def test_running_cycle_is_refused_and_a_stuck_one_reported(payops_env, minutes, error, code) -> None:  # type: ignore[no-untyped-def]
    other = _foreign_running_cycle(payops_env, minutes)
    with pytest.raises(runner.StepFailed) as info:
        run_cycle_runbook(CYCLE, live=True, settings=payops_env.settings)
    assert info.value.step == "10-plan" and info.value.exit_code == code
    assert info.value.error.startswith(error.__name__) and other in info.value.error
    with session_scope(payops_env.settings) as s:
        run = s.get(PayoutRun, payout_run_id(CYCLE))
        assert run is not None and run.status == "running" and run.runbook_run_id == other  # untouched
        assert s.scalar(select(func.count()).select_from(LedgerPayout)
                        .where(LedgerPayout.run_id == payout_run_id(CYCLE))) == 0
        from payops.cycle import engine

        stuck = engine.stuck_runs(s, payops_env.settings)
        assert [r["runbook_run_id"] for r in stuck] == ([other] if minutes > 60 else [])
        assert s.get(RunbookRun, other) is not None
    assert _cycle_transfers(payops_env) == []


@pytest.mark.parametrize(("args", "field"), [
    (["--cycle-date", "2026-12-02"], "cycle_date: 2026-12-02 is not a payout day"),
    (["--cycle-date", "2026-12-1"], "cycle_date: '2026-12-1' is not a date"),
    (["--cycle-date", "2026-13-01"], "cycle_date:"),
    (["--cycle-date", "2099-01-01"], "is after the next scheduled cycle"),
    (["--cycle-date", "2026-12-01", "--dry-run", "--live"], "--live: cannot be combined with --dry-run"),
])
def test_bad_cycle_input_is_named_and_changes_nothing(payops_env, args, field) -> None:  # type: ignore[no-untyped-def]
    from typer.testing import CliRunner

    from payops.cli import app

    res = CliRunner().invoke(app, ["payout-cycle", "run", *args, "--live"] if "--live" not in args
                             else ["payout-cycle", "run", *args])
    assert res.exit_code == 2, res.output
    assert field in res.output
    with session_scope(payops_env.settings) as s:
        assert s.scalar(select(func.count()).select_from(RunbookRun)) == 0
        assert s.get(PayoutRun, payout_run_id(CYCLE)) is None
    assert _cycle_transfers(payops_env) == []


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # kernel-heavy; the takeover is one UPDATE
def test_manual_fallback_holds_are_named_and_a_refused_manual_intent_is_taken_over(payops_env, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Studio A's ledger payout was claimed by a manual fallback run whose transfer Stripe refused (no money
    moved): the cycle takes it over and pays it. Studio B's is held by a manual run in progress: the cycle
    leaves it, and its status and summary say so, naming the run — not a plain ``completed``."""
    from typer.testing import CliRunner

    from payops.cli import app

    a_lp, b_lp = ledger_payout_id(CYCLE, dd.STUDIO_A.studio_id), ledger_payout_id(CYCLE, dd.STUDIO_B.studio_id)
    manual_runs = {}
    for lp, status in ((a_lp, "failed"), (b_lp, "intent")):
        run = runner.create_run("manual_payout", params={}, params_hash="0" * 64, mode="live", subject_key=lp,
                                settings=payops_env.settings)
        manual_runs[lp] = run.id
        with session_scope(payops_env.settings) as s:
            s.add(TransferIntent(ledger_payout_id=lp, run_id=run.id, idempotency_key=f"manual-payout:{lp}:{run.id}",
                                 amount=1, currency="USD", destination="acct_x", status=status, attempts=1,
                                 error='{"message": "Stripe refused: no"}' if status == "failed" else None))
    outcome = run_cycle_runbook(CYCLE, live=True, settings=payops_env.settings)
    assert outcome.status == "succeeded"
    groups = {t.transfer_group for t in _cycle_transfers(payops_env)}
    assert a_lp in groups and b_lp not in groups and len(groups) == 2  # A taken over and paid, B left alone
    with session_scope(payops_env.settings) as s:
        taken = s.get(TransferIntent, a_lp)
        assert taken is not None and taken.status == "created" and taken.idempotency_key == f"payout-cycle:{a_lp}"
        assert s.get(PayoutRun, payout_run_id(CYCLE)).status == "completed"  # type: ignore[union-attr]
    transfer = outcome.results["20-transfer"]
    assert any("taken over from a manual fallback run" in n for n in transfer["notes"])
    summary = outcome.results["30-summary"]
    held = f"1 held by the manual fallback (run {manual_runs[b_lp]}: {dd.STUDIO_B.name})"
    assert summary["status"] == f"completed, {held}" and transfer["status"] == f"completed, {held}"
    assert [h["run_id"] for h in summary["held"]] == [manual_runs[b_lp]]
    from payops.cycle import cli as cycle_cli

    monkeypatch.setattr(cycle_cli.console, "width", 300)
    status = CliRunner().invoke(app, ["payout-cycle", "status"], catch_exceptions=False)
    assert "1 held (manual)" in status.stdout and manual_runs[b_lp] in " ".join(status.stdout.split()), status.stdout
