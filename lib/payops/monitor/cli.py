"""``payops monitor`` and ``payops credentials`` (mounted by :mod:`payops.cli`).

    payops monitor check [--at TIMESTAMP] [--dry-run] [--json]   evaluate every rule, send, remember; exit 20
                                                                  while a SEV-2 condition is open
    payops monitor alerts [--open] [--limit 30] [--json]         alert history with what reached each channel
    payops monitor dashboard [--at TIMESTAMP]                     the four dashboards (notebook, archived)
    payops monitor serve [--host 127.0.0.1] [--port 9108]         Prometheus /metrics
    payops credentials add NAME --kind KIND [--expires D] [--rotation-due D] [--issued D] [--owner T] [--notes T]
    payops credentials rotate NAME [--expires D] [--rotation-due D] [--owner T] [--notes T]
    payops credentials list [--json]
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from payops.cli_support import handles_errors

app = typer.Typer(help="Payments monitoring: alert rules (PagerDuty, Slack, Jira, email), dashboards, metrics.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
credentials_app = typer.Typer(help="The credential inventory watched for expiry: metadata and dates, never secrets.",
                              no_args_is_help=True, pretty_exceptions_enable=False)
console = Console(highlight=False)
SEV_STYLE = {"SEV-2": "bold red", "SEV-3": "yellow", "SEV-4": "cyan"}
AtOpt = Annotated[str | None, typer.Option("--at", help="Evaluate at this instant (ISO 8601, UTC if no offset); "
                                                        "default now.")]


def _ts(value: datetime | None) -> str:
    return f"{value:%Y-%m-%d %H:%M}Z" if value else "—"


def print_check(report: Any, out: Console = console) -> None:
    """The checker's output (also what `make demo` shows)."""
    mode = " (DRY RUN: nothing written, nothing sent)" if report.dry_run else ""
    out.print(f"monitor check at {_ts(report.at)}{mode}: {len(report.conditions)} condition(s) — "
              f"{len(report.opened)} opened, {len(report.still_open)} still open, {len(report.resolved)} resolved")
    if report.conditions:
        table = Table("sev", "rule", "condition", show_lines=False)
        for c in report.conditions:
            table.add_row(Text(c.severity, style=SEV_STYLE.get(c.severity, "")), c.rule, Text(c.summary))
        out.print(table)
    for a in report.resolved:
        out.print(Text.assemble(("resolved ", "green"), f"#{a['id']} {a['key']}"), soft_wrap=True)
    if report.dry_run:
        for alert_id, channel, action in report.queued:
            out.print(Text(f"would send: alert #{alert_id} {channel} {action}"), soft_wrap=True)
    for o in report.outcomes:
        out.print(Text(o.line(), style="" if o.ok else "bold red"), soft_wrap=True)
    if report.pending_after and not report.dry_run:
        out.print(Text(f"{report.pending_after} delivery(ies) still pending: retried by the next check",
                       style="bold red"))
    code = report.exit_code
    if report.open_sev2:
        out.print(Text(f"exit {code}: {len(report.open_sev2)} SEV-2 condition(s) open", style="bold red"))
    elif code:
        out.print(Text(f"exit {code}: {len(report.failed)} delivery(ies) failed", style="bold red"))
    else:
        out.print(Text("exit 0: no SEV-2 condition open", style="green"))


@app.command("check")
@handles_errors
def check_cmd(at: AtOpt = None,
              dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would fire and be sent; write "
                                                    "and send nothing.")] = False,
              as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False) -> None:
    """Evaluate every rule, send what fired, remember it; exit 20 while a SEV-2 condition is open."""
    from payops.monitor.check import parse_at, run_check

    report = run_check(at=parse_at(at), dry_run=dry_run)
    if as_json:
        console.print_json(json.dumps(report.as_dict(), default=str))
    else:
        print_check(report)
    if report.exit_code:
        raise typer.Exit(report.exit_code)


@app.command("alerts")
@handles_errors
def alerts_cmd(open_only: Annotated[bool, typer.Option("--open", help="Open alerts only.")] = False,
               limit: Annotated[int, typer.Option("--limit")] = 30,
               as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Alerts, newest first, with each delivery (channel, action, status, attempts, answer or error)."""
    from payops.db import session_scope
    from payops.monitor.store import recent_alerts

    with session_scope() as s:
        rows = recent_alerts(s, limit, include_resolved=not open_only)
    if as_json:
        console.print_json(json.dumps(rows, default=str))
        return
    table = Table("#", "sev", "status", "opened", "condition", "deliveries")
    for r in rows:
        sent = ", ".join(f"{d['channel']}:{d['action']}={d['status']}" for d in r["deliveries"])
        table.add_row(str(r["id"]), Text(r["severity"], style=SEV_STYLE.get(r["severity"], "")), r["status"],
                      _ts(r["opened_at"]), Text(r["summary"][:160]), Text(sent))
    console.print(table)


@app.command("dashboard")
@handles_errors
def dashboard_cmd(at: AtOpt = None) -> None:
    """Execute notebooks/monitoring/dashboards.ipynb through the runner (archived and sealed)."""
    from payops.monitor.check import parse_at
    from payops.monitor.dashboard_run import run_dashboard

    outcome = run_dashboard(at=parse_at(at))
    console.print(f"dashboards run {outcome.run_id}: {outcome.status}", soft_wrap=True)
    console.print(f"archive: {outcome.run_dir}", soft_wrap=True, markup=False)
    console.print(f"open: {outcome.run_dir / 'dashboards.html'}", soft_wrap=True, markup=False)


@app.command("serve")
@handles_errors
def serve_cmd(host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
              port: Annotated[int, typer.Option(help="Port of /metrics.")] = 9108) -> None:
    """Serve the monitoring figures for Prometheus at /metrics (Grafana scrapes it)."""
    import uvicorn

    from payops.monitor.metrics import metrics_app

    console.print(f"Prometheus metrics on http://{host}:{port}/metrics (Ctrl-C to stop)")
    uvicorn.run(metrics_app(), host=host, port=port, log_level="warning", access_log=False)


# --- credentials ----------------------------------------------------------------------------------------------
def _configured() -> list[str]:
    from payops.config import get_settings

    return get_settings().secret_values()


@credentials_app.command("add")
@handles_errors
def credentials_add(
    name: Annotated[str, typer.Argument(help="Inventory name, e.g. apple-pay-processing-2026.")],
    kind: Annotated[str, typer.Option("--kind", help="apple_pay_processing_cert · apple_pay_merchant_identity_cert "
                                                     "· stripe_restricted_key · webhook_signing_secret")],
    expires: Annotated[str | None, typer.Option("--expires", help="Expiry (YYYY-MM-DD or ISO).")] = None,
    rotation_due: Annotated[str | None, typer.Option("--rotation-due", help="Rotation date.")] = None,
    issued: Annotated[str | None, typer.Option("--issued", help="When the current value was issued "
                                                                "(default now).")] = None,
    owner: Annotated[str | None, typer.Option("--owner", help="Who rotates it.")] = None,
    notes: Annotated[str | None, typer.Option("--notes", help="Where it lives (never the value).")] = None,
) -> None:
    """Add a credential's metadata to the inventory (a value that looks like a secret is refused)."""
    from payops.db import session_scope
    from payops.monitor.credentials import CredentialInput, add

    with session_scope() as s:
        row = add(s, CredentialInput(name, kind, expires, rotation_due, issued, owner, notes), configured=_configured())
        console.print(f"✔ {row.name} ({row.kind}) added · expires {_ts(row.expires_at)} · rotation due "
                      f"{_ts(row.rotation_due_at)} · issued {_ts(row.issued_at)}", soft_wrap=True)


@credentials_app.command("rotate")
@handles_errors
def credentials_rotate(
    name: Annotated[str, typer.Argument(help="The credential rotated.")],
    expires: Annotated[str | None, typer.Option("--expires", help="The new value's expiry.")] = None,
    rotation_due: Annotated[str | None, typer.Option("--rotation-due", help="The next rotation date.")] = None,
    owner: Annotated[str | None, typer.Option("--owner")] = None,
    notes: Annotated[str | None, typer.Option("--notes")] = None,
) -> None:
    """Record a rotation: the new value's dates; a pending rotation is cleared (its alert resolves)."""
    from payops.db import session_scope
    from payops.monitor.credentials import CredentialInput, rotate

    with session_scope() as s:
        row = rotate(s, CredentialInput(name, None, expires, rotation_due, None, owner, notes),
                     configured=_configured())
        console.print(f"✔ {row.name} rotated at {_ts(row.rotated_at)} · expires {_ts(row.expires_at)} · next "
                      f"rotation {_ts(row.rotation_due_at)} — the next `payops monitor check` resolves its alert",
                      soft_wrap=True)


@credentials_app.command("list")
@handles_errors
def credentials_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """The inventory with days left before each credential's deadline."""
    from datetime import UTC

    from payops.config import get_settings
    from payops.db import session_scope
    from payops.monitor.credentials import inventory
    from payops.monitor.facts import CredentialFact
    from payops.monitor.rules import credential_deadline, days_left
    from payops.monitor.thresholds import Thresholds

    th = Thresholds.from_settings(get_settings())
    now = datetime.now(UTC)
    with session_scope() as s:
        rows = inventory(s)
    for r in rows:
        fact = CredentialFact(r["name"], r["kind"], r["expires_at"], r["rotation_due_at"], r["rotation_due_reason"],
                              r["issued_at"], r["rotated_at"], r["owner"])
        found = credential_deadline(fact, th)
        r["deadline"] = found[0] if found else None
        r["days_left"] = round(days_left(found[0], now), 1) if found else None
    if as_json:
        console.print_json(json.dumps(rows, default=str))
        return
    table = Table("name", "kind", "deadline", "days left", "rotated", "owner", "why due")
    for r in rows:
        left = r["days_left"]
        style = "bold red" if left is not None and left <= th.page_days else "yellow" if left is not None and \
            left <= max(th.reminder_days) else ""
        table.add_row(r["name"], r["kind"], _ts(r["deadline"]), Text("—" if left is None else f"{left:g}",
                                                                     style=style),
                      _ts(r["rotated_at"]), r["owner"] or "", Text(r["rotation_due_reason"] or ""))
    console.print(table)
