"""``payops recon`` — Finance reconciliation from the command line (mounted by :mod:`payops.cli`).

    payops recon --from 2026-09-01 --to 2026-11-30 [--ledger db|FILE.csv|FILE.parquet]
                 [--stripe api|FILE.csv] [--tolerance 0] [--timezone UTC] [--max-unexplained 0]
                 [--cutoff-margin-days 3]
    payops recon explain BREAK_ID --note TEXT [--by UUID]
    payops recon signoff RUN_ID --preparer UUID --approver UUID
    payops recon breaks [RUN_ID] [--format table|json]

The first form validates the parameters, creates a ``reconciliation`` run (mode ``report``),
executes ``notebooks/reconciliation/payouts_vs_ledger.ipynb`` through the runner (archived and
sealed like every run), prints the summary and the archive folder, and exits 10
(``ReconciliationBreaks``) when the unexplained breaks exceed ``--max-unexplained``.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from payops.cli_support import handles_errors
from payops.errors import FieldProblem, ParamsInvalid
from payops.money import Money, MoneyError

app = typer.Typer(help="Finance reconciliation: Stripe payouts vs the ledger; breaks, explanations, sign-off.",
                  invoke_without_command=True, pretty_exceptions_enable=False)
console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


@app.callback()
@handles_errors
def recon(
    ctx: typer.Context,
    period_from: Annotated[str | None, typer.Option("--from", help="First day of the period (YYYY-MM-DD).")] = None,
    period_to: Annotated[str | None, typer.Option("--to", help="Last day of the period, inclusive.")] = None,
    ledger: Annotated[str, typer.Option("--ledger", help="db | FILE.csv | FILE.parquet")] = "db",
    stripe: Annotated[str, typer.Option("--stripe", help="api | FILE.csv")] = "api",
    tolerance: Annotated[int, typer.Option("--tolerance", help="Minor units accepted as a match.")] = 0,
    timezone: Annotated[str, typer.Option("--timezone", help="IANA zone of the period's days.")] = "UTC",
    max_unexplained: Annotated[int, typer.Option("--max-unexplained", help="Exit 10 above this.")] = 0,
    cutoff_margin_days: Annotated[int, typer.Option("--cutoff-margin-days")] = 3,
) -> None:
    """Reconcile Stripe transfers and payouts against the ledger for a period (see subcommands too)."""
    if ctx.invoked_subcommand is not None:
        return
    if period_from is None and period_to is None:
        console.print(ctx.get_help())
        raise typer.Exit(0)
    from payops.reconcile.params import validate_recon

    problems = [FieldProblem(flag, "is required") for flag, v in (("--from", period_from), ("--to", period_to))
                if v is None]
    if problems:
        raise ParamsInvalid(problems, "reconciliation parameters")
    params = validate_recon({
        "period_from": period_from, "period_to": period_to, "ledger": ledger, "stripe": stripe,
        "tolerance": tolerance, "timezone": timezone, "max_unexplained": max_unexplained,
        "cutoff_margin_days": cutoff_margin_days})
    run_reconciliation(params)


def run_reconciliation(params: Any) -> str:
    """Create and execute the run; print the summary; raise ReconciliationBreaks over the threshold."""
    from payops.reconcile.run import execute_reconciliation

    outcome = execute_reconciliation(params, on_created=lambda run_id: console.print(
        f"reconciliation {params.subject_key} · run [bold]{run_id}[/]", soft_wrap=True))
    _print_summary(outcome.breaks)
    console.print(f"archive: {outcome.folder}", soft_wrap=True)
    if outcome.over_threshold:
        raise outcome.error("--max-unexplained")
    console.print(f"[green]✓[/] {outcome.unexplained} unexplained break(s), threshold {params.max_unexplained}")
    return outcome.run_id


def _total(amount: int, currency: str) -> str:
    """``Money.format`` (thousands separators); a sum past ``Money``'s per-payout bound is written plainly."""
    try:
        return Money(amount, currency).format()
    except MoneyError:
        from payops.reconcile.report import fmt_amount

        return f"{fmt_amount(amount, currency)} {currency}"


def _print_summary(breaks: list[dict[str, Any]]) -> None:
    counts = Counter((b["category"], b["currency"]) for b in breaks)
    amounts: Counter[tuple[str, str]] = Counter()
    for b in breaks:
        amounts[(b["category"], b["currency"])] += b["amount"]
    open_by = Counter((b["category"], b["currency"]) for b in breaks if b["explanation"] is None)
    table = Table("category", "currency", "breaks", "unexplained", "amount", title="breaks")
    for key in sorted(counts):
        table.add_row(key[0], key[1], str(counts[key]), str(open_by[key]), _total(amounts[key], key[1]))
    console.print(table if breaks else "no breaks: every ledger row and every transfer matched")


@app.command("explain")
@handles_errors
def explain_cmd(
    break_id: Annotated[str, typer.Argument(help="The break's id (see `payops recon breaks`).")],
    note: Annotated[str, typer.Option("--note", help="Why the break is acceptable / what was done.")],
    by: Annotated[str | None, typer.Option("--by", envvar="PAYOPS_OPERATOR_ID",
                                           help="Your UUID (default $PAYOPS_OPERATOR_ID).")] = None,
) -> None:
    """Explain a break; the explanation follows the break into later reconciliations."""
    from payops.reconcile import store

    row = store.explain(break_id, note, by)
    console.print(f"[green]✓[/] {row['category']} {row['break_key']} explained by {row['explained_by'] or '—'}")


@app.command("signoff")
@handles_errors
def signoff_cmd(
    run_id: Annotated[str, typer.Argument(help="The reconciliation run.")],
    preparer: Annotated[str, typer.Option("--preparer", help="Preparer's UUID.")],
    approver: Annotated[str, typer.Option("--approver", help="Approver's UUID (another person).")],
) -> None:
    """Sign a reconciliation off (two distinct people; refused while too many breaks are unexplained)."""
    from payops.reconcile import store

    info = store.signoff(run_id, preparer, approver)
    console.print(f"[green]✓[/] reconciliation {run_id} signed off at {info['signed_off_at']}")


@app.command("breaks")
@handles_errors
def breaks_cmd(
    run_id: Annotated[str | None, typer.Argument(help="Default: the latest reconciliation.")] = None,
    fmt: Annotated[str, typer.Option("--format", help="table | json")] = "table",
) -> None:
    """List a reconciliation's breaks with evidence, age and explanation."""
    from payops.reconcile import store

    if fmt not in ("table", "json"):
        raise ParamsInvalid(FieldProblem("--format", f"must be table or json, got {fmt!r}"))
    rid = run_id or store.latest_run_id()
    rows = store.breaks_of(rid)
    if fmt == "json":
        console.print_json(json.dumps({"run_id": rid, "breaks": rows}))
        return
    table = Table("category", "amount", "first seen", "ledger id", "transfer", "payout", "explained")
    table.add_column("break (copy this id)", no_wrap=True)
    for b in rows:
        table.add_row(b["category"], f"{b['amount']} {b['currency']}", b["first_seen"], b["ledger_payout_id"] or "",
                      b["transfer_id"] or "", b["payout_id"] or "", "yes" if b["explanation"] else "", b["id"])
    console.print(table)


def archive_of(run_id: str) -> Path:
    """The run's archive folder."""
    from payops import runstate
    from payops.db import session_scope

    with session_scope() as s:
        return Path(runstate.get_run(s, run_id).output_dir or ".")


__all__ = ["app", "run_reconciliation"]
