"""``payops rehearse`` (a lazy top-level command: see ``payops.cli.FAMILIES``)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from payops.cli_support import handles_errors, parse_duration

app = typer.Typer(help="The quarterly fallback rehearsal, end to end in its own world, judged against the playbook.",
                  invoke_without_command=True, pretty_exceptions_enable=False)
console = Console(highlight=False)


def print_outcome(outcome: object, console: Console) -> None:
    """The criteria table, the SLA timings and where the HTML report is."""
    wrap = outcome.wrap_up  # type: ignore[attr-defined]
    if wrap:
        t = Table("criterion", "result", "evidence", title=f"Rehearsal {wrap.get('ticket')}: success criteria")
        for c in wrap["criteria"]:
            style = "green" if c["result"] == "PASS" else "bold red"
            t.add_row(c["title"], f"[{style}]{c['result']}[/]", c["evidence"])
        console.print(t)
        s = Table("event", "at (UTC)", "minutes from start", "within SLA", title="SLA timings (45 min)")
        for r in wrap["timings"]:
            s.add_row(r["event"], r["at (UTC)"], "—" if r["minutes from start"] is None else
                      f"{r['minutes from start']:.1f}", "—" if r["within SLA"] is None else str(r["within SLA"]))
        console.print(s)
        for a in wrap["actions"]:
            console.print(f"action: {a['text']} — owner {a['owner']}", markup=False, soft_wrap=True)
        console.print(wrap["summary"], markup=False, soft_wrap=True)
        console.print(f"report: {outcome.report_html}", markup=False, soft_wrap=True)  # type: ignore[attr-defined]
    if outcome.message:  # type: ignore[attr-defined]
        console.print(outcome.message, markup=False, soft_wrap=True)  # type: ignore[attr-defined]
    console.print(f"rehearsal run {outcome.run_id}: {outcome.status}", markup=False)  # type: ignore[attr-defined]


@app.callback()
@handles_errors
def rehearse(
    ticket: Annotated[str | None, typer.Option("--ticket", help="Default REH-<year>-Q<n> from today.")] = None,
    params_file: Annotated[Path | None, typer.Option("--params-file", help="params/rehearsal/NAME.yaml "
                                                     "(default params/rehearsal/default.yaml)")] = None,
    operator: Annotated[str | None, typer.Option("--operator", envvar="PAYOPS_OPERATOR_ID",
                                                 help="Your UUID (default $PAYOPS_OPERATOR_ID).")] = None,
    key: Annotated[Path | None, typer.Option("--key", help="Attended: your roster key, to sign the go-live.")] = None,
    wait: Annotated[str, typer.Option("--wait", help="How long to wait for the two approvals.")] = "30m",
    unattended: Annotated[bool, typer.Option("--unattended", help="CI/demo: rehearsal-only approvers with keys "
                                             "generated for the rehearsal database (refused anywhere else).")] = False,
    action: Annotated[list[str] | None, typer.Option("--action", help="An action item 'text=owner' (repeatable).")]
    = None,
    continue_run: Annotated[str | None, typer.Option("--continue", help="Continue a waiting rehearsal RUN_ID.")]
    = None,
    settle_wait: Annotated[str, typer.Option("--settle-wait", help="How long the SOP follows the payout.")] = "5m",
    dry_part: Annotated[bool, typer.Option("--dry-part", help="Only steps 1-6's dry part, then tell "
                                           "#payments-rehearsal who runs what next (what the scheduler runs).")]
    = False,
) -> None:
    """Run the rehearsal: checks, a failed payout, dual approval, the SOP dry then live, validation, wrap-up."""
    from payops.rehearsal import flow
    from payops.rehearsal.params import gather

    wait_s, settle_s = parse_duration(wait), parse_duration(settle_wait)
    if continue_run:
        outcome = flow.continue_rehearsal(continue_run, wait_seconds=wait_s, operator_key=key, settle_wait=settle_s,
                                          console=console)
    else:
        params = gather(params_file=params_file, ticket=ticket, operator=operator, actions=list(action or []),
                        unattended=unattended, live=not dry_part, wait_seconds=wait_s, today=datetime.now(UTC).date())
        outcome = flow.rehearse(flow.default_operator(params), operator_key=key, settle_wait=settle_s,
                                console=console)
    print_outcome(outcome, console)
    if outcome.status == "failed":
        raise flow.RehearsalFailed(f"rehearsal {outcome.run_id} failed a criterion: see {outcome.report_html}")
