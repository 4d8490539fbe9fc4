"""``payops check`` — the go-live, pre-run and post-run checks (mounted by payops.cli).

    payops check go-live [--target test|live]
    payops check pre-run [--cycle-date YYYY-MM-DD]      (default: the next cycle)
    payops check post-run [--cycle-date YYYY-MM-DD]     (default: the latest cycle)

Each runs its notebook through the runner (archived), prints the pass/fail table and exits 0, or 15
(``ChecksFailed``) when any check failed.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from payops.checks.report import CheckReport
from payops.cli_support import handles_errors

app = typer.Typer(help="Go-live, pre-run and post-run checks: a pass/fail table, exit 15 on a failure.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
console = Console(highlight=False)
STYLE = {"PASS": "green", "FAIL": "bold red", "WARN": "yellow", "SKIP": "dim"}


def print_report(report: CheckReport) -> None:
    table = Table("check", "status", "detail", title=f"{report.check} check {report.subject}".strip())
    for c in report.checks:
        table.add_row(c.name, f"[{STYLE[c.status]}]{c.status}[/]", c.detail)
    console.print(table)
    console.print(report.summary(), soft_wrap=True, markup=False)


def _run(name: str, **kw: object) -> None:
    from payops import runner
    from payops.checks.run import load_report, run_check

    try:
        outcome = run_check(name, **kw)  # type: ignore[arg-type]
    except runner.StepFailed as exc:
        report = load_report(exc.run_id)
        if report is not None:
            print_report(report)
        console.print(f"archive: {exc.notebook}", soft_wrap=True, markup=False)
        if report is not None and exc.exit_code == 15:
            raise typer.Exit(15) from None
        raise
    print_report(outcome.report)
    console.print(f"archive: {outcome.run_dir}", soft_wrap=True, markup=False)


@app.command("go-live")
@handles_errors
def go_live_cmd(target: Annotated[str, typer.Option("--target", help="test or live: the Stripe mode going live. "
                                                                      "Smoke tests run for test only.")] = "test"
                ) -> None:
    """Environment, Stripe webhook endpoint, migrations, scheduler, Slack and (test only) smoke tests."""
    _run("go-live", target=target)


@app.command("pre-run")
@handles_errors
def pre_run_cmd(cycle_date: Annotated[str | None, typer.Option("--cycle-date", help="The coming cycle "
                                                               "(YYYY-MM-DD); default: the next one.")] = None) -> None:
    """Before a cycle: scheduler armed, cycle enabled, balance sufficient, studios to pay, no stuck run."""
    _run("pre-run", cycle_date=cycle_date)


@app.command("post-run")
@handles_errors
def post_run_cmd(cycle_date: Annotated[str | None, typer.Option("--cycle-date", help="The cycle that ran "
                                                                "(YYYY-MM-DD); default: the latest.")] = None) -> None:
    """After a cycle: status, transfers and payouts in Stripe, failures, KPIs, summary to Slack."""
    _run("post-run", cycle_date=cycle_date)
