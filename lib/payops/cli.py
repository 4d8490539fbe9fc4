"""``payops`` — the command line (Typer + Rich).

Errors print one readable line (plus the failed notebook's path) and exit non-zero with the error
tree's exit code.
"""

from __future__ import annotations

import functools
import json
import re
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from payops import __version__
from payops.errors import FieldProblem, ParamsInvalid, PayopsError

F = TypeVar("F", bound=Callable[..., Any])
app = typer.Typer(help="Payments Ops runbooks and Finance reconciliation, as archived notebooks.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
db_app = typer.Typer(help="Database schema (Alembic migrations).", no_args_is_help=True)
runs_app = typer.Typer(help="Runbook runs: list, show, resume.", no_args_is_help=True)
archive_app = typer.Typer(help="The audit archive: verify the hash chain.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(runs_app, name="runs")
app.add_typer(archive_app, name="archive")
console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


def _mount_sandbox() -> None:
    from payops.sandbox.cli import app as sandbox_app

    app.add_typer(sandbox_app, name="sandbox")


_mount_sandbox()


def _mount_recon() -> None:
    from payops.reconcile.cli import app as recon_app

    app.add_typer(recon_app, name="recon")


_mount_recon()


def _mount_cycle() -> None:
    from payops.cycle.cli import app as cycle_app

    app.add_typer(cycle_app, name="payout-cycle")


_mount_cycle()


def _mount_webhooks() -> None:
    from payops.webhooks.cli import app as webhooks_app

    app.add_typer(webhooks_app, name="webhooks")


_mount_webhooks()


def _mount_checks() -> None:
    from payops.checks.cli import app as checks_app

    app.add_typer(checks_app, name="check")


_mount_checks()


def _mount_scheduler() -> None:
    from payops.scheduler.cli import schedule_app, scheduler_app

    app.add_typer(scheduler_app, name="scheduler")
    app.add_typer(schedule_app, name="schedule")


_mount_scheduler()


def _mount_approvers() -> None:
    from payops.approvals.cli import app as approvers_app

    app.add_typer(approvers_app, name="approvers")


_mount_approvers()


def handles_errors(fn: F) -> F:
    """PayopsError → one red line on stderr and the error's exit code; nothing is swallowed."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except PayopsError as exc:
            # the message may carry user input: never interpret it as Rich markup
            err_console.print(Text.assemble(("error:", "bold red"), " ", str(exc)), soft_wrap=True)
            raise typer.Exit(exc.exit_code) from exc

    return wrapper  # type: ignore[return-value]


def parse_duration(text: str) -> float:
    """'30m', '90s', '1h', '1h30m' or plain seconds → seconds."""
    m = re.fullmatch(r"\s*(?:(\d+)h)?\s*(?:(\d+)m)?\s*(?:(\d+(?:\.\d+)?)s?)?\s*", text)
    if not text.strip() or not m or not any(m.groups()):
        raise ParamsInvalid(FieldProblem("--wait", f"{text!r} is not a duration like 30m, 90s or 1h"))
    h, mnt, s = m.groups()
    return int(h or 0) * 3600 + int(mnt or 0) * 60 + float(s or 0)


@app.callback()
def _root(version: Annotated[bool, typer.Option("--version", help="Print the version.")] = False) -> None:
    if version:
        console.print(f"payops {__version__}")
        raise typer.Exit()


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
        detected_at=_parse_ts(detected_at), wait_seconds=parse_duration(wait), console=None if as_json else console,
        operator_key=key,
    )
    if as_json:
        console.print_json(json.dumps(manual.outcome_dict(outcome), default=str))


def _parse_ts(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        ts = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ParamsInvalid(FieldProblem("--detected-at", f"{text!r} is not an ISO timestamp")) from None
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


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


# --- runs ----------------------------------------------------------------------------------------
@runs_app.command("list")
@handles_errors
def runs_list(
    sop: Annotated[str | None, typer.Option("--sop")] = None,
    limit: Annotated[int, typer.Option("--limit")] = 20,
    fmt: Annotated[str, typer.Option("--format", help="table | json")] = "table",
) -> None:
    """Recent runs, newest first."""
    from payops import manual

    rows = manual.list_runs(sop=sop, limit=limit)
    if fmt == "json":
        console.print_json(json.dumps(rows, default=str))
        return
    table = Table("sop", "mode", "status", "created (UTC)", "failed step")
    table.add_column("run (copy this id)", no_wrap=True)
    for r in rows:
        table.add_row(r["sop"], r["mode"], r["status"], str(r["created_at"])[:19], r["failed_step"] or "", r["id"])
    console.print(table)


@runs_app.command("show")
@handles_errors
def runs_show(run_id: Annotated[str, typer.Argument()],
              fmt: Annotated[str, typer.Option("--format", help="table | json")] = "table") -> None:
    """One run: parameters, steps, approvals, archive."""
    from payops import manual

    info = manual.show_run(run_id)
    if fmt == "json":
        console.print_json(json.dumps(info, default=str))
        return
    manual.print_run(info, console)


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
def archive_verify(path: Annotated[Path | None, typer.Argument(help="Output dir (default) or one run folder.")]
                   = None) -> None:
    """Check every manifest, file, chain link and signed approval; name the first that no longer matches."""
    from payops.approvals.evidence import verify_run_approvals
    from payops.archive import verify_archive
    from payops.config import get_settings
    from payops.errors import ArchiveError

    target = path or get_settings().output_dir
    report = verify_archive(target, run_checks=(verify_run_approvals,))  # signatures re-verified with ssh-keygen
    if not report.ok:
        for p in report.problems:
            err_console.print(Text.assemble(("✗ ", "red"), p), soft_wrap=True)
        raise ArchiveError(f"archive {target} does not verify: {report.first_problem}")
    console.print(f"[green]✓[/] {target}: {report.runs_checked} run(s), {report.files_checked} file(s), chain intact")


def main() -> None:
    app()


def manual_payout_main(argv: list[str] | None = None) -> None:
    """The SOP's ``scripts/manual_payout.py`` command line, unchanged."""
    sys.argv = ["payops manual-payout", *(sys.argv[1:] if argv is None else argv)]
    typer.main.get_command(app).main(args=["manual-payout", *sys.argv[1:]], prog_name="manual_payout.py")


if __name__ == "__main__":
    main()
