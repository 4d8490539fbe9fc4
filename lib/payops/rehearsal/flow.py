"""``payops rehearse``: the whole rehearsal, in its own world, in the playbook's order.

1. Before anything: :func:`payops.rehearsal.world.preflight` (live keys, the rehearsal database is not
   production, the rehearsal channel and alias) — a refusal creates nothing.
2. In the rehearsal world (:func:`world.entered`): migrate the rehearsal database, create the
   ``rehearsal`` run, execute its steps 10–40 (kickoff, environment, failed payout, request).
3. The manual payout SOP's own notebooks: its dry run, then two signed approvals — attended: the
   approvers' commands are shown and the rehearsal waits up to ``--wait`` (``--continue RUN_ID`` picks it
   up later); unattended: rehearsal-only roster entries whose keys are generated now, in the rehearsal
   database only — then its live run in Stripe test mode (the operator signs the go-live), which follows
   the studio's payout until it is paid.
4. Always (even after a failure): steps 70 (validate) and 90 (wrap-up) — automation back on, SLA,
   criteria, actions, summary. The outcome says whether every criterion passed.

A dry rehearsal (``dry_run=True``: what the scheduler starts) stops after the SOP's dry run, waiting
for people; the automation stays off in the rehearsal database until the wrap-up.
"""

from __future__ import annotations

import json
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console

from payops import runner, runstate
from payops.config import Settings, get_settings
from payops.db import session_scope
from payops.errors import FieldProblem, ParamsInvalid, PayopsError
from payops.rehearsal import world
from payops.rehearsal.params import SOP, RehearsalParams, validate_rehearsal
from payops.rehearsal.steps import create_run

FIRST_PART = ("10-kickoff", "20-environment", "30-failed-payout", "40-request")
LAST_PART = ("70-validate", "90-wrap-up")
POLL_SECONDS = 2.0


class RehearsalFailed(PayopsError):
    """A criterion failed (the wrap-up's report says which)."""

    exit_code = 16


@dataclass
class RehearsalOutcome:
    run_id: str
    status: str  # passed · failed · waiting
    run_dir: Path
    dry_run_id: str | None = None
    live_run_id: str | None = None
    wrap_up: dict[str, Any] = field(default_factory=dict)
    message: str = ""

    @property
    def report_html(self) -> Path:
        return self.run_dir / "90-wrap-up.html"


def _say(console: Console | None, text: str) -> None:
    if console is not None:
        console.print(text, soft_wrap=True, highlight=False)


def _on_step(console: Console | None) -> Callable[[str, str, float], None] | None:
    if console is None:
        return None

    def show(step: str, state: str, elapsed: float) -> None:
        if state != "running":
            mark = "[green]✔[/]" if state == "succeeded" else "[red]✘[/]"
            console.print(f"  {mark} {step:<18} {elapsed:5.1f} s")
    return show


def _result(settings: Settings, run_id: str, step: str) -> dict[str, Any]:
    with session_scope(settings) as s:
        row = runstate.step_row(s, run_id, step)
        return json.loads(row.result_json) if row.result_json else {}


def _params(settings: Settings, run_id: str) -> RehearsalParams:
    with session_scope(settings) as s:
        run = runstate.get_run(s, run_id)
        if run.sop != SOP:
            raise ParamsInvalid(FieldProblem("--continue", f"run {run_id} is a {run.sop} run, not a rehearsal"))
        return validate_rehearsal(json.loads(run.params_json))


# --- approvals --------------------------------------------------------------------------------------
def _approved(settings: Settings, dry_run_id: str) -> set[str]:
    with session_scope(settings) as s:
        run = runstate.get_run(s, dry_run_id)
        return set(runstate.approvals_for(s, run.params_hash))


def _sign_unattended(settings: Settings, dry_run_id: str, operator: str, keydir: Path,
                     console: Console | None) -> Path:
    """Rehearsal-only roster entries (keys generated now) sign ops and finance; returns the operator's key."""
    from payops.approvals import submit
    from payops.approvals.roster import live_mode
    from payops.approvals.testkeys import enroll_test_roster

    if live_mode(settings) or not world.in_rehearsal_world(settings):
        raise ParamsInvalid(FieldProblem("--unattended", "generated rehearsal-only approvers are refused here: "
                                         "only in the rehearsal database, in Stripe test mode against the sandbox"))
    tag = uuid.uuid4().hex[:6]
    team = enroll_test_roster(keydir, [
        ("operator", operator, f"Rehearsal operator {tag} (rehearsal-only)", ("operator",)),
        ("ops", str(uuid.uuid4()), f"Rehearsal ops {tag} (rehearsal-only)", ("ops",)),
        ("finance", str(uuid.uuid4()), f"Rehearsal finance {tag} (rehearsal-only)", ("finance",)),
    ], by=operator, settings=settings)
    for role in ("ops", "finance"):
        submit.approve(dry_run_id, role=role, key=team[role].key_path, note="rehearsal (unattended)", yes=True,
                       console=Console(quiet=True))
    _say(console, f"unattended: rehearsal-only approvers {team['ops'].person_id} (ops) and "
                  f"{team['finance'].person_id} (finance) signed with keys generated for this rehearsal")
    return team["operator"].key_path


def _wait_for_approvals(settings: Settings, run_id: str, dry_run_id: str, wait_seconds: float,
                        console: Console | None, sleep: Callable[[float], None] = time.sleep) -> bool:
    from payops.approvals.statement import commands

    _say(console, "Approvals needed — each approver runs, with their own key:")
    for role in ("ops", "finance"):
        for cmd in commands(dry_run_id, role)[:1]:
            _say(console, f"  {cmd}")
    _say(console, f"waiting up to {wait_seconds / 60:.0f} min … (later: payops rehearse --continue {run_id})")
    deadline = time.monotonic() + wait_seconds
    while True:
        have = _approved(settings, dry_run_id)
        if {"ops", "finance"} <= have:
            return True
        if time.monotonic() >= deadline:
            return False
        sleep(min(POLL_SECONDS, max(deadline - time.monotonic(), 0)))


# --- the whole --------------------------------------------------------------------------------------
def rehearse(params: RehearsalParams, *, operator_key: Path | None = None, settle_wait: float = 300.0,
             console: Console | None = None, settings: Settings | None = None) -> RehearsalOutcome:
    """Preflight, then the rehearsal in its world (module docstring)."""
    _attended_needs(params, operator_key)
    base = world.preflight(settings)
    with world.entered(base) as s:
        world.ensure_database(s)
        run_id = create_run(params, s)
        _say(console, f"rehearsal {params.ticket} · run {run_id} · database "
                      f"{world.make_url(s.database_url).render_as_string(hide_password=True)}")
        return _drive(s, run_id, params, operator_key=operator_key, settle_wait=settle_wait, console=console)


def continue_rehearsal(run_id: str, *, wait_seconds: float | None = None, operator_key: Path | None = None,
                       settle_wait: float = 300.0, console: Console | None = None,
                       settings: Settings | None = None) -> RehearsalOutcome:
    """``payops rehearse --continue RUN_ID``: approvals, the live run and the wrap-up of a waiting rehearsal."""
    base = world.preflight(settings)
    with world.entered(base) as s:
        params = _params(s, run_id)
        if wait_seconds is not None:
            params = params.model_copy(update={"wait_seconds": wait_seconds})
        params = params.model_copy(update={"dry_run": False})  # a person continuing it takes it live
        _attended_needs(params, operator_key)
        return _drive(s, run_id, params, operator_key=operator_key, settle_wait=settle_wait, console=console)


def _attended_needs(params: RehearsalParams, operator_key: Path | None) -> None:
    """An attended rehearsal that goes live needs the operator and their key: said before anything happens."""
    if params.dry_run or params.unattended:
        return
    problems = []
    if not params.operator:
        problems.append(FieldProblem("--operator", "an attended rehearsal needs the operator's UUID (or "
                                     "PAYOPS_OPERATOR_ID); --unattended generates one"))
    if operator_key is None:
        problems.append(FieldProblem("--key", "the operator signs the go-live: give your roster key (or "
                                     "--unattended in CI and demos)"))
    if problems:
        raise ParamsInvalid(problems, "attended rehearsal")


def _drive(s: Settings, run_id: str, params: RehearsalParams, *, operator_key: Path | None, settle_wait: float,
           console: Console | None) -> RehearsalOutcome:
    from payops import manual
    from payops.rehearsal.evidence import sop_runs

    out = RehearsalOutcome(run_id, "failed", Path("."))
    try:
        try:
            runner.execute(run_id, settings=s, only=FIRST_PART, on_step=_on_step(console))
        except runner.StepFailed as exc:
            if exc.step in ("10-kickoff", "20-environment"):  # nothing happened yet: nothing to wrap up but this
                _say(console, f"[red]stopped at {exc.step}[/]: {exc.error}")
            raise
        sop = (_result(s, run_id, "40-request").get("facts") or {}).get("sop_params") or {}
        detected = (_result(s, run_id, "30-failed-payout").get("facts") or {}).get("failed_at")
        dry, live = sop_runs(s, sop.get("ledger_payout_id"))
        if dry is None or dry.status != "succeeded":
            _say(console, "[bold]SOP dry run[/] (runbooks/manual_payout)")
            flags = {k: v for k, v in sop.items() if k not in ("is_rehearsal",)}
            dry_outcome = manual.run_manual_payout(
                flags, rehearsal=True, live=False, settings=s,
                detected_at=datetime.fromisoformat(detected) if detected else None)
            dry_id = dry_outcome.run_id
        else:
            dry_id = dry.id
        out.dry_run_id = dry_id
        if params.dry_run:
            out.status, out.message = "waiting", f"dry part done; continue with: payops rehearse --continue {run_id}"
            _announce(s, run_id, dry_id, params, console)
            return _finish_outcome(s, out)
        if live is None or live.status != "succeeded":
            with tempfile.TemporaryDirectory(prefix="payops-rehearsal-keys-") as keydir:
                if params.unattended:
                    operator_key = _sign_unattended(s, dry_id, params.operator or "", Path(keydir), console)
                elif not _wait_for_approvals(s, run_id, dry_id, params.wait_seconds, console):
                    out.status = "waiting"
                    out.message = (f"approvals not in after {params.wait_seconds / 60:.0f} min: continue with "
                                   f"payops rehearse --continue {run_id} --key <operator key>")
                    return _finish_outcome(s, out)
                if operator_key is None:
                    raise ParamsInvalid(FieldProblem("--key", "the operator signs the go-live: give your roster key"))
                _say(console, "[bold]SOP live run[/] in Stripe test mode (runbooks/manual_payout)")
                try:
                    live_outcome = manual.resume(dry_id, live=True, wait_seconds=settle_wait, console=None, settings=s,
                                                 operator_key=operator_key)
                    out.live_run_id = live_outcome.run_id
                except PayopsError as exc:  # recorded on its run; the wrap-up judges what happened
                    _say(console, f"[red]SOP live run failed[/]: {exc}")
        else:
            out.live_run_id = live.id
    except PayopsError as exc:
        _say(console, f"[red]{type(exc).__name__}[/]: {exc}")
    except BaseException:  # a bug or Ctrl-C: still wrap up (the automation back on), then let it through
        _wrap_up(s, run_id, console)
        raise
    _wrap_up(s, run_id, console)
    wrap = _result(s, run_id, "90-wrap-up")
    out.wrap_up = wrap
    out.status = "passed" if wrap.get("passed") else "failed"
    return _finish_outcome(s, out)


def _wrap_up(s: Settings, run_id: str, console: Console | None) -> None:
    """9. Always: steps 70 and 90. Should they fail themselves, the automation is still switched back on."""
    try:
        runner.execute(run_id, settings=s, only=LAST_PART, on_step=_on_step(console))
    except BaseException:
        from payops.rehearsal.evidence import switch_automation_on

        switch_automation_on(s, None)
        raise


def _finish_outcome(s: Settings, out: RehearsalOutcome) -> RehearsalOutcome:
    with session_scope(s) as sess:
        out.run_dir = Path(runstate.get_run(sess, out.run_id).output_dir or ".")
    return out


def _announce(s: Settings, run_id: str, dry_run_id: str, params: RehearsalParams, console: Console | None) -> None:
    """The scheduled (dry) rehearsal tells #payments-rehearsal what each person runs next."""
    from payops.approvals.statement import commands
    from payops.notify.slack import post_text

    lines = [f"[REHEARSAL] Quarterly fallback rehearsal {params.ticket} started: the automation failed on purpose "
             f"in the rehearsal database and the SOP's dry run {dry_run_id} succeeded (Stripe test mode). "
             "The scheduler never goes live. Next:",
             *(f"  {role}: {commands(dry_run_id, role)[0]}" for role in ("ops", "finance")),
             f"  operator: payops rehearse --continue {run_id} --key <your roster key>"]
    text = "\n".join(lines)
    post_text(s, text)
    _say(console, text)


def default_operator(params: RehearsalParams) -> RehearsalParams:
    """Unattended without an operator: a rehearsal-only operator id generated now."""
    if params.operator or not params.unattended:
        return params
    return params.model_copy(update={"operator": str(uuid.uuid4())})


def now() -> datetime:
    return datetime.now(UTC)


__all__ = ["RehearsalFailed", "RehearsalOutcome", "continue_rehearsal", "create_run", "default_operator",
           "get_settings", "rehearse"]
