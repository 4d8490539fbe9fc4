"""``payops scheduler …`` and ``payops schedule …`` (mounted by :mod:`payops.cli`).

    payops scheduler run [--once] [--poll-seconds 30]   the single-host scheduler (SIGTERM/Ctrl-C: graceful)
    payops scheduler status [--json]                    armed or not (exit 1 when not armed)
    payops schedule next [--count 5] [--job NAME] [--after ISO]
    payops schedule history [--limit 20] [--job NAME]
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from payops.cli_support import handles_errors, parse_ts
from payops.errors import FieldProblem, ParamsInvalid, PayopsError

scheduler_app = typer.Typer(help="The single-host scheduler: payout cycles, their checks, quarterly rehearsals.",
                            no_args_is_help=True, pretty_exceptions_enable=False)
schedule_app = typer.Typer(help="The schedule: upcoming slots and what ran.", no_args_is_help=True,
                           pretty_exceptions_enable=False)
console = Console(highlight=False)
STATUS_STYLE = {"succeeded": "green", "failed": "bold red", "interrupted": "bold red", "missed": "yellow",
                "running": "cyan"}


class JobsFailed(PayopsError):
    """``payops scheduler run --once``: at least one job failed (each is recorded and was logged)."""


class SchedulerNotArmed(PayopsError):
    """``payops scheduler status``: no live scheduler heartbeat (exit 1)."""


def _parse_after(text: str | None) -> datetime:
    return parse_ts(text, "--after") or datetime.now(UTC)


# --- payops scheduler ---------------------------------------------------------------------------------
@scheduler_app.command("run")
@handles_errors
def scheduler_run(
    once: Annotated[bool, typer.Option("--once", help="One tick (run what is due now), then exit.")] = False,
    poll_seconds: Annotated[float, typer.Option("--poll-seconds", help="Seconds between ticks.")] = 30.0,
) -> None:
    """Run due jobs through the runner, each slot once (recorded in scheduled_executions)."""
    from payops.config import get_settings
    from payops.scheduler.engine import Scheduler

    if not 1 <= poll_seconds <= 3600:
        raise ParamsInvalid(FieldProblem("--poll-seconds", f"{poll_seconds:g} must be between 1 and 3600"))
    scheduler = Scheduler(get_settings(), poll_seconds=poll_seconds, console=console)
    if not once:
        scheduler.run_forever()
        return
    report = scheduler.tick()
    ran = report.ran()
    console.print(f"{len(ran)} job(s) run, {len(report.failed)} failed, "
                  f"{sum(e.status == 'missed' for e in report.executions)} missed, "
                  f"{len(report.skipped)} already claimed, {len(report.interrupted)} interrupted")
    if report.failed:
        first = report.failed[0]
        err = JobsFailed("; ".join(f"{e.job} @ {e.slot_at:%Y-%m-%d %H:%M}Z: {e.error}" for e in report.failed))
        err.exit_code = first.exit_code or 1
        raise err


@scheduler_app.command("status")
@handles_errors
def scheduler_status_cmd(
    as_json: Annotated[bool, typer.Option("--json", help="Print the status as JSON.")] = False,
) -> None:
    """Whether a scheduler is armed (fresh heartbeat), who runs it and the next slot of each job."""
    from payops.config import get_settings
    from payops.scheduler.status import scheduler_status

    info = scheduler_status(get_settings())
    if as_json:
        console.print_json(json.dumps(info))
    else:
        mark = "[green]✓" if info["armed"] else "[bold red]✗"
        console.print(f"{mark} {escape(info['detail'])}[/]", soft_wrap=True)
        if info["job_running"]:
            console.print(f"running now: {escape(info['job_running'])}")
        table = Table("job", "next slot (UTC)")
        for job, at in info["next"].items():
            table.add_row(job, at[:16].replace("T", " "))
        console.print(table)
    if not info["armed"]:
        raise SchedulerNotArmed(info["detail"])


# --- payops schedule --------------------------------------------------------------------------------
@schedule_app.command("next")
@handles_errors
def schedule_next(
    count: Annotated[int, typer.Option("--count", help="Slots per job.")] = 5,
    job: Annotated[str | None, typer.Option("--job", help="Only this job.")] = None,
    after: Annotated[str | None, typer.Option("--after", help="Slots after this instant (ISO; default now).")]
    = None,
) -> None:
    """The upcoming slots of each job, in PAYOUT_TIMEZONE and in UTC."""
    from payops.config import get_settings
    from payops.scheduler.jobs import payout_zone
    from payops.scheduler.status import upcoming

    if not 1 <= count <= 100:
        raise ParamsInvalid(FieldProblem("--count", f"{count} must be between 1 and 100"))
    settings = get_settings()
    tz = payout_zone(settings)
    rows = upcoming(settings, _parse_after(after), count=count, job=job)
    local = tz.key not in ("UTC", "Etc/UTC")  # in UTC a local column would repeat the UTC one
    table = Table("job", title=f"upcoming slots (PAYOUT_TIMEZONE {tz.key})")
    for header in ((f"slot ({tz.key})",) if local else ()) + ("slot (UTC)", "cycle date"):
        table.add_column(header, no_wrap=True)
    for name, slot in rows:
        when = (f"{slot.at.astimezone(tz):%Y-%m-%d %H:%M %Z}",) if local else ()
        table.add_row(name, *when, f"{slot.at:%Y-%m-%d %H:%M} UTC", slot.cycle_date.isoformat())
    console.print(table)


@schedule_app.command("history")
@handles_errors
def schedule_history(
    limit: Annotated[int, typer.Option("--limit", help="How many executions, latest slot first.")] = 20,
    job: Annotated[str | None, typer.Option("--job", help="Only this job.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the rows as JSON (owner, timestamps too).")]
    = False,
) -> None:
    """What the scheduler recorded: each slot's status, runbook run and error."""
    from payops.config import get_settings
    from payops.scheduler.status import history

    if limit < 1:
        raise ParamsInvalid(FieldProblem("--limit", f"{limit} must be at least 1"))
    rows = history(get_settings(), limit=limit, job=job)
    if as_json:
        console.print_json(json.dumps(rows, default=str))
        return
    if not rows:
        console.print("no scheduled executions recorded yet")
        return
    table = Table(title="scheduled executions")
    for header in ("job", "slot (UTC)", "status"):
        table.add_column(header, no_wrap=True)
    table.add_column("runbook run (copy this id)", no_wrap=True)
    table.add_column("error", ratio=1)
    for r in rows:
        style = STATUS_STYLE.get(r["status"], "")
        status = f"[{style}]{r['status']}[/]" if style else escape(r["status"])
        table.add_row(r["job"], f"{r['slot_at']:%Y-%m-%d %H:%M}", status, r["runbook_run_id"] or "",
                      escape((r["error"] or "")[:300]))
    console.print(table)


@schedule_app.command("export")
@handles_errors
def schedule_export(
    ics: Annotated[str | None, typer.Option("--ics", help="Write the rehearsal events to this .ics file.")] = None,
    cron: Annotated[bool, typer.Option("--cron", help="Print equivalent crontab lines.")] = False,
    count: Annotated[int, typer.Option("--count", help="How many rehearsals (quarters) in the file.")] = 4,
    after: Annotated[str | None, typer.Option("--after", help="Slots after this instant (ISO; default now).")]
    = None,
) -> None:
    """The "Payments Fallback Rehearsal" events for the shared Ops calendar (ICS), or crontab lines."""
    from pathlib import Path

    from payops.config import get_settings
    from payops.rehearsal import schedule

    if not ics and not cron:
        raise ParamsInvalid(FieldProblem("--ics", "give --ics FILE and/or --cron"))
    if not 1 <= count <= 40:
        raise ParamsInvalid(FieldProblem("--count", f"{count} must be between 1 and 40"))
    settings = get_settings()
    start = _parse_after(after)
    schedule.check_rule(settings, start)
    if ics:
        Path(ics).write_bytes(schedule.ics(settings, start, count=count))
        console.print(f"wrote {count} rehearsal event(s) (45 min each) to {escape(ics)}")
    if cron:
        for line in schedule.cron_lines(settings):
            console.print(line, markup=False, soft_wrap=True)
