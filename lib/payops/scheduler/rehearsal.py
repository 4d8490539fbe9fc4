"""The quarterly fallback rehearsal as the scheduler starts it.

The scheduler only starts it: the manual payout SOP's **dry run** from
``params/manual_payout/rehearsal-example.yaml`` through the runner (verify, transfer preview, audit SQL,
message drafts, archived and sealed), then a Slack message to #payments-alerts with the run id and
the commands to continue. The live part needs two human approvals — each an SSH signature by an
enrolled approver — and the operator's signed go-live, so the scheduler never goes live on its own. The
message also says whether the approver roster is ready (ops and finance enrolled, the operator too).
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
    """The commands people run to take the rehearsal live: each approver signs with their own key, then the
    operator signs the go-live with theirs (``payops approvers list`` shows who is enrolled)."""
    from payops.approvals.statement import commands

    pf = _params_arg(params_file)
    if operator is None:
        # the operator is part of the approved parameters: approvals need a dry run that names them
        return [f"payops manual-payout --params-file {pf} --rehearsal --operator <OPERATOR_UUID>   (a dry run naming "
                "the operator; then on the run it prints: payops approve RUN_ID --role ops|finance --key "
                "~/.ssh/id_ed25519, and payops runs resume RUN_ID --live --key <the operator's key>)"]
    return [*commands(run_id, "ops")[:1], *commands(run_id, "finance")[:1], *commands(run_id, "operator")]


def roster_readiness(settings: Settings, operator: str | None) -> str:
    """Whether the roster can approve this rehearsal: active ops and finance people, the operator enrolled."""
    from payops.approvals.roster import live_mode, now_s, people, person_state
    from payops.db import session_scope

    with session_scope(settings) as s:
        live = live_mode(settings)
        everyone = [p for p in people(s, include_revoked=False)
                    if any(k["revoked_at"] is None for k in p.keys) and not (p.test_only and live)]
        count = {r: sum(r in p.active_roles for p in everyone) for r in ("ops", "finance")}
        op = person_state(s, operator, now_s()) if operator else (None, frozenset())
    missing = [r for r, n in count.items() if n == 0]
    if operator is None:
        op_text = "no operator set (PAYOPS_OPERATOR_ID)"
    elif op[0] is None or "operator" not in op[1]:
        op_text = f"operator {operator} NOT enrolled as operator"
        missing.append("operator")
    else:
        op_text = f"operator {op[0].name} enrolled"
    text = f"Approver roster: ops {count['ops']}, finance {count['finance']} with keys; {op_text}."
    return text + (f" Enroll before going live: {', '.join(missing)} (`payops approvers add`)." if missing else "")


def rehearsal_message(run_id: str, *, status: str, slot: datetime | None, operator: str | None, params_hash: str,
                      run_dir: Path, sla_minutes: int, error: str | None = None,
                      params_file: Path = REHEARSAL_PARAMS, readiness: str | None = None) -> str:
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
        "To continue (the live part needs an ops and a finance approval, each signed with the approver's own "
        "key, and the operator's signed go-live; the scheduler never goes live):",
        *(f"  {cmd}" for cmd in next_steps(run_id, operator=operator, params_file=params_file)),
        *([readiness] if readiness else []),
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
    text = rehearsal_message(run.id, status=outcome.status, readiness=roster_readiness(settings, params.operator),
                             **common)  # type: ignore[arg-type]
    try:
        sent = _post(settings, text)
    except PayopsError as exc:
        exc.add_note(f"the rehearsal dry run {run.id} itself {outcome.status}")
        exc.run_id = run.id  # type: ignore[attr-defined]
        raise
    return RehearsalStarted(run_id=run.id, status=outcome.status, params_hash=run.params_hash,
                            run_dir=outcome.run_dir, message=text, slack_sent=sent)
