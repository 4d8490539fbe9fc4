"""``payops incident`` — checkout incidents from the command line (mounted by payops.cli).

    payops incident checkout --scenario checkout-failures|payment-window|retry-backlog|receipts \\
                             --incident-id INC-… [--since 30m] [--dry-run | --live] [--yes]
    payops incident approve INC-… --key ~/.ssh/id_ed25519   (payment-window: a rostered second person signs the list)
    payops incident verify INC-… [--since 30m]        (the five verification steps; exit 15 while one fails)
    payops incident close INC-…                       (only once verified: summary + record sealed)
    payops incident show INC-… [--format json]  ·  payops incident list

Bad input exits 2 naming the flag before anything is created. A system that does not answer exits 16 naming
it; the run is still archived and the incident keeps the finding.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from payops.cli_support import handles_errors
from payops.errors import FieldProblem, ParamsInvalid

app = typer.Typer(help="Checkout incidents: triage, act (dry run first), verify, close — archived runbooks.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
console = Console(highlight=False)
STYLE = {"ALERT": "bold red", "ok": "green", "PASS": "green", "FAIL": "bold red"}


def _table(title: str, columns: list[str], rows: list[list[Any]]) -> Table:
    table = Table(*columns, title=title)
    for r in rows:
        table.add_row(*(Text(str(v), style=STYLE.get(str(v), "")) for v in r))
    return table


def _on_step(step: str, status: str, elapsed: float) -> None:
    if status != "running":
        console.print(f"  {'[green]✓[/]' if status == 'succeeded' else '[red]✗[/]'} {step} ({elapsed:.1f}s)")


@app.command("checkout")
@handles_errors
def checkout_cmd(
    scenario: Annotated[str, typer.Option("--scenario", help="checkout-failures | payment-window | retry-backlog "
                                                             "| receipts")] = "",
    incident_id: Annotated[str, typer.Option("--incident-id", help="INC-… (opens the incident the first time)")] = "",
    since: Annotated[str, typer.Option("--since", help="Window ending now: 30m, 2h, 1d.")] = "30m",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Triage and list the action (the default).")] = False,
    live: Annotated[bool, typer.Option("--live", help="Do the action the last dry run listed.")] = False,
    yes: Annotated[bool, typer.Option("--yes", help="Confirm a live retry-backlog move without the prompt.")] = False,
) -> None:
    """Triage one checkout incident scenario and show (dry run) or do (--live) its action."""
    from payops import runner
    from payops.config import get_settings
    from payops.incident.params import validate_incident
    from payops.incident.runbook import create_incident_run, preflight

    if dry_run and live:
        raise ParamsInvalid(FieldProblem("--live", "cannot be combined with --dry-run"))
    params = validate_incident({"scenario": scenario, "incident_id": incident_id, "since": since, "dry_run": not live})
    settings = get_settings()
    plan = preflight(params, settings)
    if live and plan is not None and params.scenario == "retry-backlog" and not yes:
        typer.confirm(f"Move the {len(plan['items'])} message(s) the dry run listed from {settings.retry_queue} to "
                      f"{settings.dead_letter_queue}?", abort=True)
    console.print(f"incident {params.incident_id} · {params.scenario} · last {params.since} · "
                  f"{'LIVE' if live else 'dry run'}")
    try:
        outcome = runner.execute(create_incident_run(params, settings), settings=settings, on_step=_on_step)
    except runner.StepFailed as exc:
        console.print(f"archive: {exc.notebook.parent}", soft_wrap=True, markup=False)
        raise
    triage, act = outcome.results.get("10-triage", {}), outcome.results.get("20-act", {})
    console.print(_table(triage.get("alert", ""), ["number", "value", "threshold", "verdict"],
                         [[n["number"], n["value"], n["threshold"], n["verdict"]] for n in triage.get("numbers", [])]))
    a = triage.get("affected", {})
    console.print(f"affected: {a.get('sessions', 0)} session(s), {a.get('customers', 0)} customer(s), "
                  f"{a.get('auctions', 0)} auction(s)" + (f" — auctions {', '.join(a['auction_ids'][:8])}"
                                                         if a.get("auction_ids") else ""), markup=False)
    e = triage.get("escalation", {})
    console.print(f"escalate: L{e.get('level', 0)} {e.get('team', '')}", markup=False)
    for reason in e.get("reasons", []):
        console.print(f"  – {reason}", markup=False)
    console.print(("[bold]" if live else "") + Text(act.get("summary", "")).plain, soft_wrap=True)
    console.print(f"drafts: {outcome.run_dir / 'drafts'} ({', '.join(sorted(triage.get('drafts', {})))})",
                  soft_wrap=True, markup=False)
    if not live and act.get("done"):
        nxt = (f"payops incident approve {params.incident_id} --key ~/.ssh/id_ed25519   (a second person on the "
               "approver roster signs the list), then\n  "
               if params.scenario == "payment-window" else "")
        console.print(f"Next: {nxt}payops incident checkout --scenario {params.scenario} --incident-id "
                      f"{params.incident_id} --live", markup=False)
    console.print(f"archive: {outcome.run_dir}", soft_wrap=True, markup=False)


@app.command("approve")
@handles_errors
def approve_cmd(
    incident_id: Annotated[str, typer.Argument(help="INC-…")],
    key: Annotated[Path | None, typer.Option("--key", help="Your roster key (private key file, or its .pub with "
                                             "ssh-agent): sign the plan's statement now.")] = None,
    signature: Annotated[Path | None, typer.Option("--signature", help="A .sig you made elsewhere with ssh-keygen "
                                                   "-Y sign over --statement-only's text.")] = None,
    statement_only: Annotated[bool, typer.Option("--statement-only", help="Print the statement to sign and stop.")]
    = False,
    approver: Annotated[str | None, typer.Option("--approver", hidden=True)] = None,
) -> None:
    """Approve, signed with your roster key, the live action the incident's last dry run listed (bound to that
    exact list; a rostered ops approver who is not the operator)."""
    from payops.config import get_settings
    from payops.db import session_scope
    from payops.incident import approval, store

    if approver is not None:
        raise ParamsInvalid(FieldProblem("--approver", f"{approver!r} is a typed id, which proves nothing: sign the "
                                         f"plan with your roster key (`{approval.commands(incident_id)[0]}`)"),
                            "approval")
    if not statement_only and (key is None) == (signature is None):
        raise ParamsInvalid([FieldProblem("--key", "give exactly one of --key (sign now) or --signature (signed "
                                                   "elsewhere), or --statement-only"),
                             FieldProblem("--signature", "give exactly one of --key or --signature")], "approval")
    sig_text: str | None = None
    if signature is not None:
        try:
            sig_text = signature.expanduser().read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ParamsInvalid(FieldProblem("--signature", f"cannot read {signature}: {exc}"), "approval") from None
    settings = get_settings()
    with session_scope(settings) as s:
        row = store.require(s, incident_id)
        text = approval.statement(row)
    if statement_only:
        sys.stdout.write(text)
        return
    console.rule(f"You are approving the live action of incident {incident_id}", style="bold")
    console.print(text, markup=False, highlight=False, soft_wrap=True, end="")
    console.rule()
    if key is not None:
        from payops.approvals import sshkeys

        try:
            sig_text = sshkeys.sign(text, key)
        except sshkeys.KeyProblem as exc:
            raise ParamsInvalid(FieldProblem("--key", str(exc)), "approval") from None
    assert sig_text is not None
    with session_scope(settings) as s:
        row = store.require(s, incident_id, lock=True)
        if approval.statement(row) != text:
            raise ParamsInvalid(FieldProblem("INC", "a new dry run changed the plan while you were signing: read the "
                                             "new list and approve again"), "approval")
        appr, new = approval.record(s, row, sig_text, field="--key" if key is not None else "--signature",
                                    operator=row.operator or settings.operator_id, settings=settings)
        plan = store.plan_of(row) or {}
        verb = "approved" if new else "already approved"
        console.print(f"✔ {verb} by {appr.approver_id} (key {appr.key_fingerprint}): {plan.get('description')} "
                      f"(plan {row.plan_sha256})", markup=False, soft_wrap=True)


@app.command("verify")
@handles_errors
def verify_cmd(incident_id: Annotated[str, typer.Argument(help="INC-…")],
               since: Annotated[str, typer.Option("--since")] = "30m") -> None:
    """The runbook's five verification steps; the incident stays open until they all pass (exit 15)."""
    from payops import runner
    from payops.incident.runbook import run_verify

    try:
        outcome = run_verify({"incident_id": incident_id, "since": since})
    except runner.StepFailed as exc:
        _print_verification(exc.run_id)
        console.print(f"archive: {exc.notebook.parent}", soft_wrap=True, markup=False)
        raise
    _print_verification(outcome.run_id)
    console.print(f"archive: {outcome.run_dir}", soft_wrap=True, markup=False)


def _print_verification(run_id: str) -> None:
    from payops.checks.report import CheckReport
    from payops.db import session_scope
    from payops.runstate import steps_of

    with session_scope() as s:
        steps = [json.loads(st.result_json) for st in steps_of(s, run_id) if st.result_json]
    if steps:
        rep = CheckReport.from_dict(steps[0])
        console.print(_table(f"verification {rep.subject}", ["step", "status", "detail"],
                             [[c.name, c.status, c.detail] for c in rep.checks]))
        console.print(rep.summary(), markup=False, soft_wrap=True)


@app.command("close")
@handles_errors
def close_cmd(incident_id: Annotated[str, typer.Argument(help="INC-…")]) -> None:
    """Close a verified incident: the summary for the incidents page and the record, sealed in the archive."""
    from payops.incident.runbook import run_close

    outcome = run_close({"incident_id": incident_id})
    console.print(f"incident {incident_id} closed", markup=False)
    console.print(f"summary: {outcome.run_dir / 'summary.md'}", soft_wrap=True, markup=False)
    console.print(f"archive: {outcome.run_dir}", soft_wrap=True, markup=False)


@app.command("show")
@handles_errors
def show_cmd(incident_id: Annotated[str, typer.Argument(help="INC-…")],
             fmt: Annotated[str, typer.Option("--format", help="table | json")] = "table") -> None:
    """One incident: status, numbers, plan, actions, timeline."""
    from payops.db import session_scope
    from payops.incident import store

    with session_scope() as s:
        rec = store.as_dict(store.require(s, incident_id))
    if fmt == "json":
        console.print_json(json.dumps(rec, default=str))
        return
    console.print(f"{rec['id']} · {rec['scenario']} · {rec['status']} · escalation L{rec['escalation_level']}",
                  markup=False)
    console.print(_table("timeline (UTC)", ["at", "what"], [[t["at"], t["what"]] for t in rec["timeline"]]))


@app.command("list")
@handles_errors
def list_cmd(limit: Annotated[int, typer.Option("--limit")] = 20) -> None:
    """Recent incidents, newest first."""
    from sqlalchemy import select

    from payops.db import session_scope
    from payops.db.models import Incident

    with session_scope() as s:
        rows = s.scalars(select(Incident).order_by(Incident.opened_at.desc()).limit(limit)).all()
        data = [[r.id, r.scenario, r.status, f"L{r.escalation_level or 0}", r.opened_at.strftime("%Y-%m-%d %H:%M")]
                for r in rows]
    console.print(_table("checkout incidents", ["incident", "scenario", "status", "escalation", "opened (UTC)"], data)
                  if data else "no incidents recorded")
