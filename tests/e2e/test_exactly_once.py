"""No path creates a second transfer for the same ledger payout: crashes at every step boundary and
around the Stripe call (SIGKILL, no cleanup), lost responses, 429/500 retries, concurrent runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from e2e_helpers import (
    SOP_ARGS,
    approved_dry_run,
    cli,
    cli_subprocess,
    counts,
    latest_run,
    operator_key,
    popen_cli,
    sandbox_requests,
    stripe_transfers,
)

from approval_helpers import signed_live_args
from payops.archive import verify_archive

pytestmark = [pytest.mark.e2e, pytest.mark.db, pytest.mark.slow]



@pytest.fixture()
def live_args(payops_env, roster, tmp_path: Path) -> list[str]:  # type: ignore[no-untyped-def]
    """The live command with the ops and finance signatures and the operator's key."""
    return signed_live_args(roster, SOP_ARGS, tmp_path / "sigs")


def _assert_paid_once(env) -> None:  # type: ignore[no-untyped-def]
    assert len(stripe_transfers(env.sandbox)) == 1
    c = counts()
    assert c["manual_payouts"] == 1 and c["intents"] == 1
    assert len(env.sinks.slack_messages()) == 1, env.sinks.slack_messages()
    assert len(env.sinks.emails()) == 1
    report = verify_archive(env.output_dir)
    assert report.ok, report.problems


# every step boundary (before the first step, after each one — killed before its success is recorded —
# and between a step's success and the next step) and both sides of the Stripe call
KILL_POINTS = [
    "before:10-verify", "after:10-verify", "transfer:before-call", "transfer:after-call", "after:20-transfer",
    "before:30-audit-insert", "after:30-audit-insert", "after:40-notify", "after:50-settle",
]


def _killed(live_args: list[str], point: str) -> dict:  # type: ignore[type-arg]
    """Run the live command with a SIGKILL at ``point``; the live run as listed afterwards."""
    proc = cli_subprocess(*live_args, env_extra={"PAYOPS_FAULT_KILL_AT": point})
    run = latest_run("live")
    if point.startswith("transfer:"):  # the kernel making the Stripe call is killed; the runner records it
        assert proc.returncode == 1 and "Kernel died" in proc.stderr, proc.stdout + proc.stderr
        assert run["status"] == "failed", run
    else:  # the payops process itself: no handler, no cleanup
        assert proc.returncode == -9, proc.stdout + proc.stderr
        assert run["status"] == "interrupted", run  # marked running, but its process is gone
    return run


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("point", KILL_POINTS)
def test_killed_anywhere_then_the_same_command_finishes_it(payops_env, live_args, roster, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                         point: str) -> None:
    """The operator's natural move after a crash: repeat the same approved live command. It resumes the
    interrupted run (no run id needed) — one transfer, audit row, Slack post, email, sealed archive, and
    no extra (failed) run."""
    run = _killed(live_args, point)
    assert len(stripe_transfers(payops_env.sandbox)) <= 1
    if point == "after:10-verify":  # the approvers signed again (a fresh statement of the same parameters)
        live_args = signed_live_args(roster, SOP_ARGS, tmp_path / "fresh-sigs")
    again = cli(*live_args)
    assert again.exit_code == 0, again.stdout + again.stderr
    assert f"resuming run {run['id']}" in " ".join(again.stdout.split())
    assert counts()["live_runs"] == 1  # the interrupted run finished; nothing new, nothing failed
    assert latest_run("live")["status"] == "succeeded"
    _assert_paid_once(payops_env)


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
@pytest.mark.parametrize("point", ["transfer:before-call", "transfer:after-call"])
def test_killed_around_the_stripe_call_then_repeated_on_postgres(payops_env, live_args, point: str) -> None:  # type: ignore[no-untyped-def]
    """Both sides of the Stripe call on PostgreSQL (the whole matrix runs on SQLite above)."""
    run = _killed(live_args, point)
    assert len(stripe_transfers(payops_env.sandbox)) == (1 if point == "transfer:after-call" else 0)
    again = cli(*live_args)
    assert again.exit_code == 0, again.stdout + again.stderr
    assert counts()["live_runs"] == 1
    _assert_paid_once(payops_env)
    show = json.loads(cli("runs", "show", run["id"], "--format", "json").stdout)
    assert show["status"] == "succeeded" and [s["attempts"] for s in show["steps"]][1] == 2


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_runs_resume_dry_run_live_after_a_crash_finishes_the_interrupted_run(payops_env, roster, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The other natural move: `payops runs resume DRY_RUN_ID --live --key K` again. `runs list` / `runs show`
    meanwhile say the run is interrupted, how far it got and that money moved."""
    dry = approved_dry_run(roster)
    go = ("runs", "resume", dry, "--live", "--key", operator_key(roster))
    proc = cli_subprocess(*go, env_extra={"PAYOPS_FAULT_KILL_AT": "after:30-audit-insert"})
    assert proc.returncode == -9, proc.stdout + proc.stderr
    run = latest_run("live")
    tr = stripe_transfers(payops_env.sandbox)[0].id
    assert (run["status"], run["last_finished"], run["money_moved"]) == ("interrupted", "30-audit-insert",
                                                                          f"yes ({tr})")
    from payops import cli_support

    monkeypatch.setattr(cli_support.console, "width", 250)  # a wide terminal: the whole table
    listed = cli("runs", "list", "--limit", "5")
    assert "interrupted" in listed.stdout and "money moved" in listed.stdout and "last finished" in listed.stdout
    shown = " ".join(cli("runs", "show", run["id"]).stdout.split())
    assert "interrupted" in shown and f"money moved yes ({tr})" in shown and "last finished 30-audit-insert" in shown

    res = cli(*go)
    assert res.exit_code == 0, res.stdout + res.stderr
    assert counts()["live_runs"] == 1 and latest_run("live")["id"] == run["id"]
    assert latest_run("live")["status"] == "succeeded"
    _assert_paid_once(payops_env)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_lost_response_is_retried_with_the_same_key(payops_env, live_args) -> None:  # type: ignore[no-untyped-def]
    payops_env.sandbox.set_faults(lost_response={"POST /v1/transfers": 1})
    res = cli(*live_args)
    assert res.exit_code == 0, res.stdout + res.stderr
    posts = sandbox_requests(payops_env.sandbox, "POST", "/v1/transfers")
    assert len(posts) >= 2 and len({p["idempotency_key"] for p in posts}) == 1
    _assert_paid_once(payops_env)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_lost_response_without_retries_then_resume_adopts(payops_env, live_args, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("PAYOPS_STRIPE_MAX_RETRIES", "0")
    payops_env.sandbox.set_faults(lost_response={"POST /v1/transfers": 1})
    res = cli(*live_args)
    assert res.exit_code == 5 and "outcome unknown" in res.stderr
    assert len(stripe_transfers(payops_env.sandbox)) == 1
    assert counts()["manual_payouts"] == 0
    run = latest_run("live")
    again = cli("runs", "resume", run["id"])
    assert again.exit_code == 0, again.stdout + again.stderr
    assert "(adopted)" in again.stdout
    assert len(sandbox_requests(payops_env.sandbox, "POST", "/v1/transfers")) == 1  # never sent twice
    _assert_paid_once(payops_env)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_500s_and_429s_are_retried_into_one_transfer(payops_env, live_args) -> None:  # type: ignore[no-untyped-def]
    payops_env.sandbox.set_faults(fail_next={"POST /v1/transfers": 2}, rate_limit=1)
    res = cli(*live_args)
    assert res.exit_code == 0, res.stdout + res.stderr
    statuses = [r["status"] for r in sandbox_requests(payops_env.sandbox, "POST", "/v1/transfers")]
    assert statuses.count(500) == 2 and statuses[-1] == 200, statuses
    all_statuses = [r["status"] for r in payops_env.sandbox.control("GET", "requests")["data"]]
    assert 429 in all_statuses, "the rate limit was never hit: the test would prove nothing"
    payops_env.sandbox.clear_faults()  # the checks below read Stripe too: not through the 1 req/s limit
    _assert_paid_once(payops_env)


def test_two_concurrent_live_runs_pay_once(payops_env, roster) -> None:  # type: ignore[no-untyped-def]
    dry = approved_dry_run(roster)
    procs = [popen_cli("runs", "resume", dry, "--live", "--key", operator_key(roster)) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes[0] == 0 and codes[1] != 0, outs
    loser = outs[[p.returncode for p in procs].index(codes[1])]
    assert "22222222-2222-2222-2222-222222222222" in loser[1] or "holds this ledger payout" in loser[1], loser
    _assert_paid_once(payops_env)
