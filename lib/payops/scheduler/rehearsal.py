"""The quarterly fallback rehearsal as the scheduler starts it.

The scheduler only starts it: the manual payout SOP's **dry run** from
``params/manual_payout/rehearsal-example.yaml`` through the runner (verify, transfer preview, audit SQL,
message drafts, archived and sealed), then a Slack message to #payments-alerts with the run id and
the commands to continue. The live part needs two human approvals, so the scheduler never goes live
on its own.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from payops import manual, runner
from payops.config import Settings
from payops.errors import PayopsError

SOP = "manual_payout"
REHEARSAL_PARAMS = runner.ROOT / "params" / "manual_payout" / "rehearsal-example.yaml"
log = logging.getLogger("payops.scheduler")


@dataclass(frozen=True)
class RehearsalStarted:
    """What the rehearsal job returns (the scheduler records ``run_id`` and ``status``)."""

    run_id: str
    status: str
    params_hash: str
    run_dir: Path
    message: str
    slack_sent: bool


def _params_arg(path: Path) -> str:
    try:
        return str(path.relative_to(runner.ROOT))
    except ValueError:
        return str(path)


def next_steps(run_id: str, *, operator: str | None, params_file: Path = REHEARSAL_PARAMS) -> list[str]:
    """The commands people run to take the rehearsal live (two approvals, then the operator)."""
    pf = _params_arg(params_file)
    if operator is None:
        # the operator is part of the approved parameters: without one the live run needs fresh approvals
        return [f"payops manual-payout --params-file {pf} --rehearsal --live --operator <OPERATOR_UUID> "
                "--approve-ops <OPS_UUID> --approve-finance <FINANCE_UUID>"]
    return [
        f"payops approve {run_id} --role ops --approver <OPS_UUID>",
        f"payops approve {run_id} --role finance --approver <FINANCE_UUID>",
        f"payops runs resume {run_id} --live   "
        f"(or: payops manual-payout --params-file {pf} --rehearsal --live --operator {operator})",
    ]


def rehearsal_message(run_id: str, *, status: str, slot: datetime | None, operator: str | None, params_hash: str,
                      run_dir: Path, sla_minutes: int, error: str | None = None,
                      params_file: Path = REHEARSAL_PARAMS) -> str:
    """The Slack text (plain, secret-free: ids, paths and commands only)."""
    when = f" (scheduled {slot.astimezone(UTC):%Y-%m-%d %H:%M} UTC)" if slot else ""
    head = f"Quarterly manual payout fallback rehearsal started by the payops scheduler{when}."
    if status != "succeeded":
        return "\n".join([
            head,
            f"Its dry run {run_id} FAILED: {error or status}.",
            f"Archive: {run_dir}",
            f"Look at the failed notebook, fix the cause, then re-run: payops manual-payout --params-file "
            f"{_params_arg(params_file)} --rehearsal",
        ])
    lines = [
        head,
        f"Dry run {run_id} succeeded (Stripe test mode, params sha256 {params_hash[:12]}…). "
        f"The {sla_minutes}-minute SLA clock is running.",
        f"Archive: {run_dir}",
        "To continue (the live part needs an ops and a finance approval; the scheduler never goes live):",
        *(f"  {cmd}" for cmd in next_steps(run_id, operator=operator, params_file=params_file)),
    ]
    return "\n".join(lines)


def _post(settings: Settings, text: str) -> bool:
    from payops.notify.slack import post_text

    if not post_text(settings, text):
        log.info("rehearsal: PAYOPS_SLACK_WEBHOOK_URL not set, no Slack message")
        return False
    return True


def start_rehearsal(settings: Settings, *, slot: datetime | None = None,
                    params_file: Path = REHEARSAL_PARAMS) -> RehearsalStarted:
    """Run the rehearsal's dry run and tell #payments-alerts how to continue.

    Parameters come from ``params_file`` with ``is_rehearsal`` forced on and the operator from
    PAYOPS_OPERATOR_ID (when set; it is part of what the approvers approve). A failed dry run is
    announced too, then raised (the error carries ``run_id``); a failed Slack post is raised.
    """
    flags = {"operator": settings.operator_id}
    params = manual.gather_params(flags, params_file=params_file, live=False, rehearsal=True, send=True)
    params = runner.resolve_manual_payout(params, settings)
    runner.preflight_key(params, settings)
    run = runner.prepare_run(SOP, params, live=False, settings=settings)
    log.info("rehearsal: dry run %s created", run.id)
    common = {"slot": slot, "operator": params.operator, "params_hash": run.params_hash,
              "run_dir": Path(run.output_dir or "."), "sla_minutes": settings.sla_minutes, "params_file": params_file}
    try:
        outcome = runner.execute(run.id, settings=settings)
    except PayopsError as exc:
        if getattr(exc, "run_id", None) is None:
            exc.run_id = run.id  # type: ignore[attr-defined]
        text = rehearsal_message(run.id, status="failed", error=str(exc), **common)  # type: ignore[arg-type]
        try:
            _post(settings, text)
        except PayopsError as slack_exc:
            exc.add_note(f"and the Slack message about it failed: {slack_exc}")
        raise
    text = rehearsal_message(run.id, status=outcome.status, **common)  # type: ignore[arg-type]
    try:
        sent = _post(settings, text)
    except PayopsError as exc:
        exc.add_note(f"the rehearsal dry run {run.id} itself {outcome.status}")
        exc.run_id = run.id  # type: ignore[attr-defined]
        raise
    return RehearsalStarted(run_id=run.id, status=outcome.status, params_hash=run.params_hash,
                            run_dir=outcome.run_dir, message=text, slack_sent=sent)
