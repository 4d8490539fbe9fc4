"""``payops payout-cycle`` — the automated payout cycle from the command line (mounted by payops.cli).

    payops payout-cycle run [--cycle-date YYYY-MM-DD] [--dry-run | --live]
    payops payout-cycle status [--limit 10]
    payops payout-cycle disable --reason TEXT [--by UUID]      (the rehearsal's switch)
    payops payout-cycle enable [--by UUID]

``run`` is a dry run unless ``--live``; without ``--cycle-date`` it takes the latest scheduled cycle at
or before now. It executes ``runbooks/payout_cycle/`` through the runner (archived and sealed).
"""

from __future__ import annotations

import json
import time
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy import select

from payops.cli_support import handles_errors
from payops.errors import FieldProblem, ParamsInvalid
from payops.money import format_totals

app = typer.Typer(help="The automated twice-monthly payout cycle: run it, see it, switch it off for a rehearsal.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
console = Console(highlight=False)


@app.command("run")
@handles_errors
def run_cmd(
    cycle_date: Annotated[str | None, typer.Option("--cycle-date", help="A payout day (YYYY-MM-DD); default: "
                                                    "the latest scheduled cycle.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Plan only, send nothing (the default).")] = False,
    live: Annotated[bool, typer.Option("--live", help="Write the ledger and create the transfers.")] = False,
) -> None:
    """Run one payout cycle: plan, transfer, summary."""
    from payops import runner
    from payops.cycle.runbook import run_cycle_runbook

    if dry_run and live:
        raise ParamsInvalid(FieldProblem("--live", "cannot be combined with --dry-run"))
    t0 = time.monotonic()

    def on_step(step: str, status: str, elapsed: float) -> None:
        if status != "running":
            mark = "[green]✓[/]" if status == "succeeded" else "[red]✗[/]"
            console.print(f"  {mark} {step} ({elapsed:.1f}s)")

    console.print(f"payout cycle {cycle_date or '(latest scheduled)'} · {'LIVE' if live else 'dry run'}")
    try:
        outcome = run_cycle_runbook(cycle_date, live=live, trigger="cli", on_step=on_step)
    except runner.StepFailed as exc:
        console.print(f"archive: {exc.notebook.parent}", soft_wrap=True)
        raise
    plan = outcome.results.get("10-plan", {})
    summary = outcome.results.get("30-summary", {})
    transfer = outcome.results.get("20-transfer", {})
    console.print(f"cycle {plan.get('cycle_date')} · {plan.get('state')} · run {outcome.run_id}")
    for note in [*plan.get("notes", []), *transfer.get("notes", [])]:
        console.print(f"  note: {note}", soft_wrap=True)
    if live:
        totals = format_totals(summary.get("totals") or {})
        console.print(f"{summary.get('status')}: {summary.get('transferred')}/{summary.get('scheduled')} transferred "
                      f"({totals}), {len(summary.get('failed') or [])} failed, {summary.get('skipped')} skipped")
    else:
        totals = format_totals(plan.get("totals") or {})
        console.print(f"DRY RUN: would pay {plan.get('payouts')} studio(s), {totals}; "
                      f"{len(plan.get('skips') or [])} skipped. Nothing was written or sent.")
    console.print(f"archive: {outcome.run_dir} ({time.monotonic() - t0:.1f}s)", soft_wrap=True)


@app.command("status")
@handles_errors
def status_cmd(limit: Annotated[int, typer.Option("--limit")] = 10) -> None:
    """Recent cycles, newest first; a cycle running for over an hour is flagged STUCK."""
    from payops.config import get_settings
    from payops.cycle import engine
    from payops.db import session_scope
    from payops.db.models import PayoutRun

    settings = get_settings()
    with session_scope(settings) as s:
        stuck = {r["payout_run_id"] for r in engine.stuck_runs(s, settings)}
        rows = s.scalars(select(PayoutRun).order_by(PayoutRun.cycle_date.desc()).limit(limit)).all()
        disabled = engine.disabled_reason(s, settings)
        table = Table(title="payout cycles")
        for col in ("cycle", "status", "paid", "failed", "skipped"):
            table.add_column(col, no_wrap=True)
        table.add_column("transferred")
        table.add_column("note", overflow="fold")
        for r in rows:
            totals = json.loads(r.totals_json) if r.totals_json else {}
            shown = format_totals(totals, empty="")
            note = r.failure_reason or (f"run {r.runbook_run_id}" if r.runbook_run_id else "")
            held = engine.held_by_manual(s, r.id)
            if held:
                note = f"{engine.held_note(held)}; {note}" if note else engine.held_note(held)
            status = "STUCK" if r.id in stuck else r.status + (f" · {len(held)} held (manual)" if held else "")
            table.add_row(r.cycle_date.isoformat(), status,
                          f"{r.studios_paid}/{r.studios_scheduled}", str(r.studios_failed), str(r.studios_skipped),
                          shown, note)
    console.print(table)
    console.print(f"[red]automated cycle DISABLED[/]: {disabled}" if disabled else "automated cycle enabled")
    if stuck:
        raise typer.Exit(13)


def _switch(disabled: bool, reason: str | None, by: str | None) -> None:
    from payops.cycle import engine
    from payops.db import session_scope

    with session_scope() as s:
        engine.set_disabled(s, disabled=disabled, reason=reason, by=by)
    console.print("automated payout cycle [red]DISABLED[/]: runs fail on purpose and leave payouts pending"
                  if disabled else "automated payout cycle [green]enabled[/]")


@app.command("disable")
@handles_errors
def disable_cmd(
    reason: Annotated[str | None, typer.Option("--reason", help="Why (e.g. Q4 fallback rehearsal).")] = None,
    by: Annotated[str | None, typer.Option("--by", envvar="PAYOPS_OPERATOR_ID", help="Your UUID.")] = None,
) -> None:
    """Switch the automated cycle off: the next run fails on purpose, its payouts stay pending."""
    _switch(True, reason, by)


@app.command("enable")
@handles_errors
def enable_cmd(by: Annotated[str | None, typer.Option("--by", envvar="PAYOPS_OPERATOR_ID")] = None) -> None:
    """Switch the automated cycle back on."""
    _switch(False, None, by)
