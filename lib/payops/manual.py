"""The manual payout runbook as the CLI drives it: gather parameters, preflight, run, report.

Kept apart from ``cli.py`` so the same flow serves ``payops manual-payout``, the SOP's
``scripts/manual_payout.py`` and the demo.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from payops import runner, runstate
from payops.config import Settings, get_settings
from payops.db import session_scope
from payops.errors import FieldProblem, ParamsInvalid, PayopsError
from payops.params import ManualPayoutParams, load_params_file, validate_manual_payout

# `payops runs list` / `runs show` read runs with Core (payops.runrecords): re-exported for the lab and older callers
from payops.runrecords import list_runs, print_run, show_run  # noqa: F401

SOP = "manual_payout"


def gather_params(flags: dict[str, Any], *, params_file: Path | None, live: bool, rehearsal: bool,
                  send: bool) -> ManualPayoutParams:
    data: dict[str, Any] = load_params_file(params_file) if params_file else {}
    data.update({k: v for k, v in flags.items() if v is not None})
    data["dry_run"] = not live
    data["is_rehearsal"] = bool(rehearsal or data.get("is_rehearsal", False))
    data["send_notifications"] = send
    data.setdefault("notes", "")
    return validate_manual_payout(data)


def _check_approval_flags(approvals: dict[str, str], live: bool) -> dict[str, Any]:
    """``--approve-ops/--approve-finance`` are signature files (read here; verified by the live preflight)."""
    if not approvals:
        return {}
    if not live:
        raise ParamsInvalid([FieldProblem(f"--approve-{role}", "signatures go with --live (or on their own: "
                                                               f"`payops approve RUN_ID --role {role} --signature "
                                                               "FILE`)") for role in approvals], "approvals")
    from payops.approvals.golive import load_flags

    return load_flags(approvals)


@contextmanager
def _progress(console: Console | None) -> Iterator[Any]:
    if console is None:
        yield None
        return
    status = console.status("starting…")
    status.start()

    def on_step(step: str, state: str, elapsed: float) -> None:
        if state == "running":
            status.update(f"running {step}…")
        else:
            mark = "[green]✔[/]" if state == "succeeded" else "[red]✘[/]"
            console.print(f"  {mark} {step:<16} {elapsed:5.1f} s")

    try:
        yield on_step
    finally:
        status.stop()


def _show_golive(console: Console | None) -> Any:
    def show(text: str) -> None:
        if console is not None:
            console.rule("[bold]Go-live statement you are signing")
            console.print(text, markup=False, highlight=False, soft_wrap=True, end="")
            console.rule()
    return show


def run_manual_payout(
    flags: dict[str, Any], *, params_file: Path | None = None, live: bool = False, rehearsal: bool = False,
    send: bool = True, approvals: dict[str, str] | None = None, detected_at: datetime | None = None,
    wait_seconds: float = 120.0, console: Console | None = None, settings: Settings | None = None,
    operator_key: Path | None = None,
) -> runner.RunOutcome:
    """Validate everything that can be validated before any write, then create and execute the run.

    ``approvals`` maps ops/finance to signature files; a live run also needs ``operator_key`` (the
    operator signs the go-live). See ``payops.approvals.golive``."""
    settings = settings or get_settings()
    params = gather_params(flags, params_file=params_file, live=live, rehearsal=rehearsal, send=send)
    submissions = _check_approval_flags(approvals or {}, live)
    params = runner.resolve_manual_payout(params, settings)
    runner.preflight_key(params, settings)
    plan = None
    if live:
        resumed = _resume_interrupted(params, settings, submissions=submissions, operator_key=operator_key,
                                      wait_seconds=wait_seconds, console=console)
        if resumed is not None:
            return resumed
        plan = runner.preflight_live(params, settings, submissions=submissions, operator_key=operator_key,
                                     show=_show_golive(console))
    run = runner.prepare_run(SOP, params, live=live, settings=settings, detected_at=detected_at,
                             run_id=plan.run_id if plan else None, on_created=plan.record if plan else None)
    if console:
        console.print(f"[bold]{'LIVE' if live else 'DRY RUN'}[/] manual payout · run [cyan]{run.id}[/] · "
                      f"params sha256 {run.params_hash}")
    return _execute(run.id, settings, wait_seconds, console)


def _resume_interrupted(params: ManualPayoutParams, settings: Settings, *, submissions: dict[str, Any],
                        operator_key: Path | None, wait_seconds: float,
                        console: Console | None) -> runner.RunOutcome | None:
    """Crash recovery without a run id: when an unfinished live run holds this ledger payout, a live
    command for the same parameters by the same operator resumes it (approvals and the operator's key
    checked again, nothing new recorded); anything else holding it is refused naming the command to run.
    None: nothing holds the payout, start a new live run."""
    from payops import recovery

    with session_scope(settings) as s:
        holder = recovery.holder_of(s, params.ledger_payout_id)
    if holder is None:
        return None
    recovery.check_resumable(holder, params_hash=params.params_hash(), operator=params.operator)
    # the same checks as a new live run: key, operator, every signature (fresh ones of the same statement
    # count), the operator's key proven by signing the interrupted run's go-live statement again
    runner.preflight_live(params, settings, submissions=submissions, operator_key=operator_key,
                          show=_show_golive(console), run_id=holder.run_id)
    if console:
        console.print(f"[bold]LIVE[/] resuming {escape(holder.describe())}: same parameters (sha256 "
                      f"{holder.params_hash}) and approvals — no new run", soft_wrap=True)
    return _execute(holder.run_id, settings, wait_seconds, console)


def _execute(run_id: str, settings: Settings, wait_seconds: float, console: Console | None) -> runner.RunOutcome:
    with _progress(console) as on_step:
        try:
            outcome = runner.execute(run_id, settings=settings, overrides={"wait_seconds": wait_seconds},
                                     on_step=on_step)
        except PayopsError:
            if console:
                report(runner.outcome_of(run_id, settings=settings), console)
            raise
    if console:
        report(outcome, console)
    return outcome


def report(outcome: runner.RunOutcome, console: Console) -> None:
    """What the old script printed (payload, metadata, SQL), then where the archived run lives."""
    from rich.syntax import Syntax

    res = outcome.results
    for w in (res.get("10-verify") or {}).get("warnings") or []:
        console.print(f"[bold red]⚠ WARNING[/] {escape(w)}", soft_wrap=True)
    tr = res.get("20-transfer")
    if tr:
        console.rule("Stripe transfer request")
        console.print(f"Idempotency-Key: {tr['idempotency_key']}")
        console.print(Syntax(json.dumps(tr["payload"], indent=2, ensure_ascii=False), "json", word_wrap=True))
        if tr.get("transfer_id"):
            console.print(f"transfer [bold]{tr['transfer_id']}[/] ({tr['status']}), request {tr.get('request_id')}")
    audit = res.get("30-audit-insert")
    if audit:
        console.rule("Audit insert (manual_payouts)" + (" — DRY RUN, not executed" if audit["dry_run"] else ""))
        console.print(Syntax(audit["sql"], "sql", word_wrap=True))
    note = res.get("40-notify")
    if note:
        console.rule("Notifications")
        first = note["slack_text"].splitlines()[0] if note["slack_text"] else ""
        console.print(f"Slack: {escape(first)}")
        console.print(f"Email: {escape(note['email_to'])} — {escape(note['email_subject'])}")
        for ch, d in (note.get("deliveries") or {}).items():
            console.print(f"  delivered {ch}: {escape(str(d.get('status')))} {escape(str(d.get('detail')))}")
    st = res.get("50-settle")
    if st and st.get("status") != "skipped":
        console.rule("Settlement")
        console.print(f"payout {st.get('payout_id')} {st.get('payout_status')} · minutes to paid "
                      f"{st.get('minutes_to_paid') and round(st['minutes_to_paid'], 1)} · within SLA "
                      f"{st.get('within_sla')}")
    console.rule()
    console.print(f"run {outcome.run_id}: [bold]{outcome.status}[/]")
    console.print(f"archive: {outcome.run_dir}")
    with session_scope() as s:
        run = runstate.get_run(s, outcome.run_id)
        mode, phash = run.mode, run.params_hash
    if outcome.status == "succeeded" and mode == "dry-run":
        from payops.approvals.statement import commands

        console.print("\nNext: each approver reviews the statement and signs it with their own key, then the "
                      "operator goes live, signing the go-live with theirs:", soft_wrap=True)
        for role in ("ops", "finance", "operator"):
            for cmd in commands(outcome.run_id, role):
                console.print(f"  {cmd}", markup=False, soft_wrap=True)
        console.print(f"(approvals are bound to params sha256 {phash}; `payops approvers list` shows who may sign)",
                      soft_wrap=True)


def outcome_dict(outcome: runner.RunOutcome) -> dict[str, Any]:
    return {"run_id": outcome.run_id, "status": outcome.status, "run_dir": str(outcome.run_dir),
            "manifest": str(outcome.manifest) if outcome.manifest else None, "steps": outcome.steps,
            "results": outcome.results}


def resume(run_id: str, *, live: bool, wait_seconds: float, console: Console | None,
           settings: Settings | None = None, operator_key: Path | None = None) -> runner.RunOutcome:
    settings = settings or get_settings()
    with session_scope(settings) as s:
        run = runstate.get_run(s, run_id)
        mode, status, params_json, sop = run.mode, run.status, run.params_json, run.sop
    if sop != SOP:  # another runbook (payout cycle, reconciliation, checks): finish it from its first open step
        if status == "succeeded":
            raise PayopsError(f"run {run_id} ({sop}) already succeeded; nothing to resume")
        with _progress(console) as on_step:
            outcome = runner.execute(run_id, settings=settings, on_step=on_step)
        if console:
            console.print(f"{sop} run {run_id}: {outcome.status} · archive {outcome.run_dir}", soft_wrap=True)
        return outcome
    if mode == "dry-run" and live:
        params = validate_manual_payout(json.loads(params_json) | {"dry_run": False})
        resumed = _resume_interrupted(params, settings, submissions={}, operator_key=operator_key,
                                      wait_seconds=wait_seconds, console=console)
        if resumed is not None:
            return resumed
        plan = runner.preflight_live(params, settings, operator_key=operator_key, show=_show_golive(console))
        new = runner.prepare_run(SOP, params, live=True, settings=settings, parent_run_id=run_id,
                                 run_id=plan.run_id, on_created=plan.record)
        if console:
            console.print(f"[bold]LIVE[/] run [cyan]{new.id}[/] from approved dry run {run_id}")
        return _execute(new.id, settings, wait_seconds, console)
    if status == "succeeded":
        raise PayopsError(f"run {run_id} already succeeded; nothing to resume"
                          + (" (add --live to start the live run)" if mode == "dry-run" else ""))
    if mode != "dry-run":
        _refuse_if_stripe_refused(run_id, settings)
    return _execute(run_id, settings, wait_seconds, console)


def _refused(err: dict[str, Any], message: str) -> PayopsError:
    from payops.errors import PaymentError

    exc = PaymentError(message)
    exc.stripe_type, exc.code, exc.request_id, exc.http_status = (err.get("type"), err.get("code"),
                                                                  err.get("request_id"), err.get("http_status"))
    return exc


def _refuse_if_stripe_refused(run_id: str, settings: Settings) -> None:
    """A live run whose transfer Stripe refused outright cannot be finished: its idempotency key would get
    the same answer again. Say so, and name the way forward (a new live run takes the payout over)."""
    from sqlalchemy import select

    from payops.db.models import TransferIntent

    with session_scope(settings) as s:
        intent = s.scalar(select(TransferIntent).where(TransferIntent.run_id == run_id,
                                                       TransferIntent.status == "failed"))
        if intent is None:
            return
        run = runstate.get_run(s, run_id)
        parent = run.parent_run_id
        try:
            err = json.loads(intent.error or "{}")
        except ValueError:
            err = {}
    said = str(err.get("message") or "the transfer").removeprefix("Stripe refused: ")
    new_run = (f"`payops runs resume {parent} --live --key ~/.ssh/id_ed25519`" if parent else "")
    raise _refused(err,
        f"{said} (the transfer of live run {run_id}). No money moved. Resuming would send the same request "
        "with the same idempotency key and get the same answer, so this run stays failed. Fix the cause, then start "
        "a new live run, which takes the ledger payout over: "
        + (f"{new_run}, or repeat your `payops manual-payout … --live` command" if new_run
           else "repeat your `payops manual-payout … --live` command"),
    )


def settle(run_id: str, *, wait_seconds: float, console: Console | None) -> runner.RunOutcome:
    settings = get_settings()
    with session_scope(settings) as s:
        run = runstate.get_run(s, run_id)
        step = runstate.step_row(s, run_id, "50-settle")
        if run.mode == "dry-run":
            raise PayopsError(f"run {run_id} is a dry run: there is no transfer to settle")
        result = json.loads(step.result_json) if step.result_json else {}
    if step.status == "succeeded" and result.get("status") == "paid":
        if console:
            console.print(f"run {run_id} already settled: payout {result.get('payout_id')} paid")
        return runner.outcome_of(run_id, settings=settings)
    # a settle step succeeds only once the payout is paid (handled above): here it failed or never ran
    return _execute(run_id, settings, wait_seconds, console)
