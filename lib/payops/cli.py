"""``payops`` — the command line (Typer + Rich).

Errors print one readable line (plus the failed notebook's path) and exit non-zero with the error
tree's exit code.

Fast to answer: this module imports Typer, Rich and :mod:`payops.cli_support` only. Each command imports
what it uses inside its function, and each command *family* (``payops recon …``, ``payops sandbox …``)
is imported only when one of its commands runs — ``payops --help`` lists them from :data:`FAMILIES`.

Adding a family (lazily)
------------------------
1. Put a ``typer.Typer`` named ``app`` in ``lib/payops/<family>/cli.py``; decorate its commands with
   ``payops.cli_support.handles_errors`` (never import ``payops.cli`` from a family: that is a circle);
   keep heavy imports (pandas, papermill, the sandbox, stripe…) inside the command functions.
2. Add one line to :data:`FAMILIES` below: ``"name": Family("payops.<family>.cli", "app", "<help>")``
   where ``<help>`` is the Typer's ``help=`` text, verbatim (``tests/unit/test_cli_lazy.py`` checks it
   and that ``payops --help`` imports no family).
A family mounted the old way (``app.add_typer(...)`` in a ``_mount_…`` function called at import) still
works; it is just imported by every command, ``--help`` included. Converting it = deleting the
``_mount_…`` function and adding its registry line.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from payops import __version__
from payops.cli_lazy import Family, lazy_group_class
from payops.cli_support import console, err_console, handles_errors, parse_duration, parse_ts
from payops.errors import FieldProblem, ParamsInvalid

# `payops.cli.handles_errors` / `parse_duration` stay importable here for branches written before cli_support
__all__ = ["FAMILIES", "app", "handles_errors", "main", "manual_payout_main", "parse_duration"]

# name → (module, Typer attribute, the help line `payops --help` shows); registry order = listing order
FAMILIES: dict[str, Family] = {
    "sandbox": Family("payops.sandbox.cli", "app",
                      "The local Stripe test-mode sandbox (the official stripe SDK talks to it unchanged)."),
    "recon": Family("payops.reconcile.cli", "app",
                    "Finance reconciliation: Stripe payouts vs the ledger; breaks, explanations, sign-off."),
    "payout-cycle": Family("payops.cycle.cli", "app",
                           "The automated twice-monthly payout cycle: run it, see it, switch it off for a rehearsal."),
    "webhooks": Family("payops.webhooks.cli", "app", "Stripe webhook receiver and the cycle trigger."),
    "check": Family("payops.checks.cli", "app",
                    "Go-live, pre-run and post-run checks: a pass/fail table, exit 15 on a failure."),
    "scheduler": Family("payops.scheduler.cli", "scheduler_app",
                        "The single-host scheduler: payout cycles, their checks, quarterly rehearsals."),
    "schedule": Family("payops.scheduler.cli", "schedule_app", "The schedule: upcoming slots and what ran."),
    "monitor": Family("payops.monitor.cli", "app",
                      "Payments monitoring: alert rules (PagerDuty, Slack, Jira, email), dashboards, metrics."),
    "credentials": Family("payops.monitor.cli", "credentials_app",
                          "The credential inventory watched for expiry: metadata and dates, never secrets."),
    "incident": Family("payops.incident.cli", "app",
                       "Checkout incidents: triage, act (dry run first), verify, close — archived runbooks."),
    "approvers": Family("payops.approvals.cli", "app",
                        "The approver roster: who may approve (ops, finance) or operate, with their SSH keys."),
    "rehearse": Family("payops.rehearsal.cli", "app",
                       "The quarterly fallback rehearsal, end to end in its own world, judged against the playbook."),
}

app = typer.Typer(help="Payments Ops runbooks and Finance reconciliation, as archived notebooks.",
                  no_args_is_help=True, pretty_exceptions_enable=False, cls=lazy_group_class(FAMILIES))
db_app = typer.Typer(help="Database schema (Alembic migrations).", no_args_is_help=True)
runs_app = typer.Typer(help="Runbook runs: list, show, resume.", no_args_is_help=True)
archive_app = typer.Typer(help="The audit archive: verify the hash chain, anchor its head.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(runs_app, name="runs")
app.add_typer(archive_app, name="archive")


def _print_version(value: bool) -> None:
    if value:
        console.print(f"payops {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: Annotated[bool, typer.Option("--version", help="Print the version.", is_eager=True,
                                                callback=_print_version)] = False) -> None:
    pass


# --- db --------------------------------------------------------------------------------------------
@db_app.command("upgrade")
@handles_errors
def db_upgrade() -> None:
    """Apply the migrations to PAYOPS_DATABASE_URL."""
    from payops import db
    from payops.config import get_settings

    rev = db.upgrade()
    url = db.normalize_url(get_settings().database_url)
    from sqlalchemy.engine import make_url

    console.print(f"schema at revision [bold]{rev}[/] on {make_url(url).render_as_string(hide_password=True)}")


@db_app.command("current")
@handles_errors
def db_current() -> None:
    """Show the schema revision in force (and the one payops needs)."""
    from payops import db

    console.print(f"current {db.current_revision() or '— (no schema: run `payops db upgrade`)'} · head "
                  f"{db.head_revision()}")


# --- manual payout ------------------------------------------------------------------------------
@app.command("manual-payout")
@handles_errors
def manual_payout(
    studio_id: Annotated[str | None, typer.Option("--studio-id", help="Studio UUID.")] = None,
    studio_name: Annotated[str | None, typer.Option("--studio-name", help="Studio name as on record.")] = None,
    ledger_payout_id: Annotated[str | None, typer.Option("--ledger-payout-id", help="Ledger payout UUID.")] = None,
    incident_id: Annotated[str | None, typer.Option("--incident-id", help="Incident id, e.g. INC-1234.")] = None,
    amount: Annotated[str | None, typer.Option("--amount", help="Decimal amount, e.g. 875.50.")] = None,
    reserve_after: Annotated[str | None, typer.Option("--reserve-after", help="Reserve left after.")] = None,
    reason: Annotated[str | None, typer.Option("--reason", help="Why the manual payout is needed.")] = None,
    destination_account: Annotated[str | None, typer.Option("--destination-account", help="acct_… on record.")] = None,
    notes: Annotated[str | None, typer.Option("--notes", help="Free text for the audit row.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Preview only (the default).")] = False,
    live: Annotated[bool, typer.Option("--live", help="Move money (needs both approvals).")] = False,
    currency: Annotated[str | None, typer.Option("--currency", help="ISO code; default: the ledger's.")] = None,
    params_file: Annotated[Path | None, typer.Option("--params-file", help="params/manual_payout/NAME.yaml")] = None,
    operator: Annotated[str | None, typer.Option("--operator", envvar="PAYOPS_OPERATOR_ID",
                                                 help="Your UUID (default $PAYOPS_OPERATOR_ID).")] = None,
    rehearsal: Annotated[bool, typer.Option("--rehearsal", help="Quarterly rehearsal in test mode.")] = False,
    send: Annotated[bool, typer.Option("--send/--no-send", help="Send Slack + email in a live run.")] = True,
    approve_ops: Annotated[str | None, typer.Option(
        "--approve-ops", help="The ops approver's signature file (STATEMENT.sig; the statement beside it).")] = None,
    approve_finance: Annotated[str | None, typer.Option(
        "--approve-finance", help="The finance approver's signature file (STATEMENT.sig).")] = None,
    key: Annotated[Path | None, typer.Option(
        "--key", help="Live: the operator's roster key (or its .pub with ssh-agent) to sign the go-live.")] = None,
    detected_at: Annotated[str | None, typer.Option(
        "--detected-at", help="When the failure was detected (ISO, UTC); default now.")] = None,
    wait: Annotated[str, typer.Option("--wait", help="How long step 50 follows the payout.")] = "2m",
    as_json: Annotated[bool, typer.Option("--json", help="Print the outcome as JSON.")] = False,
) -> None:
    """Pay one studio by hand under the fallback SOP: verify, transfer, audit insert, notify, settle."""
    from payops import manual

    if dry_run and live:
        raise ParamsInvalid(FieldProblem("--live", "cannot be combined with --dry-run"))
    flags = {"studio_id": studio_id, "studio_name": studio_name, "ledger_payout_id": ledger_payout_id,
             "incident_id": incident_id, "amount": amount, "reserve_after": reserve_after, "reason": reason,
             "destination_account": destination_account, "notes": notes, "currency": currency,
             "operator": operator}
    outcome = manual.run_manual_payout(
        flags, params_file=params_file, live=live, rehearsal=rehearsal, send=send,
        approvals={k: v for k, v in (("ops", approve_ops), ("finance", approve_finance)) if v},
        detected_at=parse_ts(detected_at), wait_seconds=parse_duration(wait), console=None if as_json else console,
        operator_key=key,
    )
    if as_json:
        console.print_json(json.dumps(manual.outcome_dict(outcome), default=str))


@app.command()
@handles_errors
def approve(
    run_id: Annotated[str, typer.Argument(help="The run whose parameters you approve.")],
    role: Annotated[str, typer.Option("--role", help="ops | finance")],
    key: Annotated[Path | None, typer.Option("--key", help="Sign now with this key (private key file, or its .pub "
                                                            "with ssh-agent).")] = None,
    signature: Annotated[Path | None, typer.Option(
        "--signature", help="Submit a signature made with `ssh-keygen -Y sign` (STATEMENT.sig).")] = None,
    statement: Annotated[Path | None, typer.Option(
        "--statement", help="The statement file that was signed (default: the .sig path without .sig).")] = None,
    statement_only: Annotated[bool, typer.Option("--statement-only", help="Print exactly the statement to sign, "
                                                                           "nothing else.")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Sign without asking (with --key).")] = False,
    note: Annotated[str | None, typer.Option("--note")] = None,
    approver: Annotated[str | None, typer.Option("--approver", hidden=True)] = None,
) -> None:
    """Sign the run's statement (run, role, parameters sha256, payload) and record it if the roster says it counts."""
    if approver is not None:
        raise ParamsInvalid(FieldProblem("--approver", "a typed approver id proves nothing and is no longer "
                                                       "accepted: sign the statement with --key, or submit a "
                                                       "signature with --signature (see `payops approve --help`)"))
    from payops.approvals.submit import approve as approve_run

    approve_run(run_id, role=role, key=key, signature=signature, statement_file=statement,
                statement_only=statement_only, note=note, yes=yes, console=console)


@app.command()
@handles_errors
def settle(
    run_id: Annotated[str, typer.Argument()],
    wait: Annotated[str, typer.Option("--wait", help="How long to follow the payout, e.g. 30m.")] = "30m",
) -> None:
    """Follow a live run's transfer until the studio's bank payout is paid (or failed)."""
    from payops import manual

    manual.settle(run_id, wait_seconds=parse_duration(wait), console=console)


@app.command()
@handles_errors
def lab(
    port: Annotated[int, typer.Option("--port", help="TCP port on 127.0.0.1 (0: a free one).")] = 8888,
    open_browser: Annotated[bool, typer.Option("--open/--no-open", help="Open a browser tab.")] = False,
) -> None:
    """JupyterLab on runbooks/ and notebooks/: forms, approvals, go-live (127.0.0.1, token printed)."""
    from sqlalchemy.engine import make_url

    from payops.config import get_settings
    from payops.lab import server

    settings = get_settings()
    srv = server.build(port, settings=settings, open_browser=open_browser)
    console.print(f"JupyterLab on {srv.url}", soft_wrap=True, markup=False)
    console.print(f"  database {make_url(settings.database_url).render_as_string(hide_password=True)}\n"
                  f"  Stripe   {settings.stripe_api_base}\n  outputs  {srv.env['PAYOPS_OUTPUT_DIR']}\n"
                  "  open runbooks/manual_payout/10-verify.ipynb (or notebooks/reconciliation/…) and run the panel "
                  "cell; Ctrl-C stops the server", soft_wrap=True, markup=False)
    raise typer.Exit(server.serve(srv))


# --- runs ----------------------------------------------------------------------------------------
@runs_app.command("list")
@handles_errors
def runs_list(
    sop: Annotated[str | None, typer.Option("--sop")] = None,
    limit: Annotated[int, typer.Option("--limit")] = 20,
    fmt: Annotated[str, typer.Option("--format", help="table | json")] = "table",
) -> None:
    """Recent runs, newest first."""
    from payops import runrecords  # Core only: no ORM, runner or papermill — the command starts fast

    rows = runrecords.list_runs(sop=sop, limit=limit)
    if fmt == "json":
        console.print_json(json.dumps(rows, default=str))
        return
    from rich.table import Table

    table = Table("sop", "mode", "status", "created (UTC)", "last finished", "failed step", "money moved")
    table.add_column("run (copy this id)", no_wrap=True)
    for r in rows:
        table.add_row(r["sop"], r["mode"], r["status"], str(r["created_at"])[:19], r["last_finished"] or "",
                      r["failed_step"] or "", r["money_moved"], r["id"])
    console.print(table)


@runs_app.command("show")
@handles_errors
def runs_show(run_id: Annotated[str, typer.Argument()],
              fmt: Annotated[str, typer.Option("--format", help="table | json")] = "table") -> None:
    """One run: parameters, steps, approvals, archive."""
    from payops import runrecords  # Core only: no ORM, runner or papermill — the command starts fast

    info = runrecords.show_run(run_id)
    if fmt == "json":
        console.print_json(json.dumps(info, default=str))
        return
    runrecords.print_run(info, console)


@runs_app.command("resume")
@handles_errors
def runs_resume(
    run_id: Annotated[str, typer.Argument()],
    live: Annotated[bool, typer.Option("--live", help="Turn an approved dry run into the live run.")] = False,
    wait: Annotated[str, typer.Option("--wait")] = "2m",
    key: Annotated[Path | None, typer.Option(
        "--key", help="With --live: the operator's roster key (or .pub with ssh-agent) to sign the go-live.")] = None,
) -> None:
    """Finish a run from its first unfinished step (a dry run with --live starts its live run)."""
    from payops import manual

    manual.resume(run_id, live=live, wait_seconds=parse_duration(wait), console=console, operator_key=key)


# --- archive ---------------------------------------------------------------------------------------
@archive_app.command("verify")
@handles_errors
def archive_verify(
    path: Annotated[Path | None, typer.Argument(help="Output dir (default) or one run folder.")] = None,
    strict: Annotated[bool, typer.Option("--strict", help="Fail when anything could not be proven (no database, "
                                                          "no anchor readable).")] = False,
    recorded_root: Annotated[Path | None, typer.Option(
        "--recorded-root", help="Hold a copy of an archive against the records of the output root it was copied "
                                "from.")] = None,
) -> None:
    """Check every manifest, file, chain link and signed approval, and hold the archive against the run records
    and the anchors of its chain head; name the first that no longer matches, say what could not be proven."""
    from payops.approvals.evidence import verify_run_approvals
    from payops.archive.audit import verify_with_records
    from payops.config import get_settings
    from payops.errors import ArchiveError

    target = path or get_settings().output_dir
    report = verify_with_records(target, run_checks=(verify_run_approvals,),  # signatures re-verified with ssh-keygen
                                 recorded_root=recorded_root)
    for p in report.problems:
        err_console.print(Text.assemble(("✗ ", "red"), p), soft_wrap=True)
    for w in report.warnings:
        err_console.print(Text.assemble(("! ", "yellow"), w), soft_wrap=True)
    for u in report.unproven:
        console.print(Text.assemble(("? not proven: ", "yellow"), u), soft_wrap=True)
    if report.head is not None:
        h = report.head
        console.print(f"chain head: seq {h['seq']} · {h['manifest']} · sha256 {h['sha256']}", soft_wrap=True)
    if not report.ok:
        raise ArchiveError(f"archive {target} does not verify: {report.first_problem}")
    if strict and report.unproven:
        raise ArchiveError(f"archive {target}: {len(report.unproven)} thing(s) not proven (--strict): "
                           f"{report.unproven[0]}")
    held = "held against the run records and the anchors" if not report.unproven else (
        f"{len(report.unproven)} thing(s) not proven (above)")
    console.print(f"[green]✓[/] {target}: {report.runs_checked} run(s), {report.files_checked} file(s), chain intact"
                  f"; {held}", soft_wrap=True)


@archive_app.command("anchor")
@handles_errors
def archive_anchor(
    print_only: Annotated[bool, typer.Option("--print", help="Print the chain head, anchor nothing.")] = False,
) -> None:
    """Anchor the chain head now where PAYOPS_ARCHIVE_ANCHORS says (db, file:PATH, slack), and print it."""
    from payops.archive.anchor import anchor_head, chain_head
    from payops.config import get_settings
    from payops.errors import ArchiveError

    settings = get_settings()
    head = chain_head(settings.output_dir)
    if head is None:
        raise ArchiveError(f"{settings.output_dir}: no chain yet (nothing sealed), nothing to anchor")
    console.print(f"chain head: seq {head['seq']} · {head['manifest']} · sha256 {head['sha256']}", soft_wrap=True)
    if print_only:
        return
    results = anchor_head(settings)
    for r in results:
        mark = ("✓ ", "green") if r.ok else ("✗ ", "red")
        console.print(Text.assemble(mark, f"{r.kind}{' ' + r.target if r.target else ''}: {r.detail}"), soft_wrap=True)
    failed = [r for r in results if not r.ok]
    if not results:
        raise ArchiveError("PAYOPS_ARCHIVE_ANCHORS is empty: the head was anchored nowhere")
    if failed:
        raise ArchiveError(f"{len(failed)} anchor(s) failed: {failed[0].kind}: {failed[0].detail}")


def main() -> None:
    app()


def manual_payout_main(argv: list[str] | None = None) -> None:
    """The SOP's ``scripts/manual_payout.py`` command line, unchanged."""
    sys.argv = ["payops manual-payout", *(sys.argv[1:] if argv is None else argv)]
    typer.main.get_command(app).main(args=["manual-payout", *sys.argv[1:]], prog_name="manual_payout.py")


if __name__ == "__main__":
    main()
