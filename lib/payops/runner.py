"""Runs a runbook's notebooks with papermill: order, resume, leases, archive.

One run = one folder ``outputs/<sop>/<YYYY-MM-DD>/<run_id>/``. Steps run in order; the first
failure stops the run with one clear line and the failed notebook's path; resuming starts at the
first unfinished step. Each execution ends by sealing the folder into the hash chain — success or
failure — so the archive holds every attempt.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from payops import archive, runstate
from payops.config import Settings, get_settings
from payops.db import session_scope
from payops.db.models import LedgerPayout, ManualPayout, RunbookRun, utcnow
from payops.errors import ArchiveError, FieldProblem, ParamsInvalid, PayopsError, exit_code_for
from payops.faultpoints import maybe_kill
from payops.params import ManualPayoutParams

ROOT = Path(__file__).resolve().parents[2]
RUNBOOKS_DIR = ROOT / "runbooks"
NOTEBOOKS_DIR = ROOT / "notebooks"
SOPS: dict[str, tuple[str, ...]] = {
    "manual_payout": ("10-verify", "20-transfer", "30-audit-insert", "40-notify", "50-settle"),
    "reconciliation": ("payouts_vs_ledger",),
    "payout_cycle": ("10-plan", "20-transfer", "30-summary"),
    "go_live_check": ("go_live",),
    "pre_run_check": ("pre_run",),
    "post_run_check": ("post_run",),
    "monitoring": ("dashboards",),
    "checkout_incident": ("10-triage", "20-act"),
    "incident_verify": ("verify",),
    "incident_close": ("summary",),
    "rehearsal": ("10-kickoff", "20-environment", "30-failed-payout", "40-request", "70-validate", "90-wrap-up"),
}
NOTEBOOK_DIRS: dict[str, Path] = {
    "manual_payout": RUNBOOKS_DIR / "manual_payout",
    "reconciliation": NOTEBOOKS_DIR / "reconciliation",
    "payout_cycle": RUNBOOKS_DIR / "payout_cycle",
    "go_live_check": NOTEBOOKS_DIR / "checks" / "go_live",
    "pre_run_check": NOTEBOOKS_DIR / "checks" / "pre_run",
    "post_run_check": NOTEBOOKS_DIR / "checks" / "post_run",
    "monitoring": NOTEBOOKS_DIR / "monitoring",
    "checkout_incident": RUNBOOKS_DIR / "checkout_incident",
    "incident_verify": NOTEBOOKS_DIR / "incidents" / "verify",
    "incident_close": NOTEBOOKS_DIR / "incidents" / "close",
    "rehearsal": RUNBOOKS_DIR / "rehearsal",
}
# parameters a notebook takes besides its model's fields
RUN_PARAMS: dict[str, Any] = {"run_id": None}
STEP_PARAMS: dict[str, dict[str, Any]] = {"50-settle": {"wait_seconds": 120.0}}


class StepFailed(PayopsError):
    """A step notebook raised. Carries the step, the original error and the executed notebook."""

    def __init__(self, run_id: str, step: str, error: str, notebook: Path, exit_code: int = 1) -> None:
        self.run_id, self.step, self.error, self.notebook = run_id, step, error, notebook
        self.exit_code = exit_code
        super().__init__(f"step {step} failed: {error} — see {notebook}")


@dataclass
class RunOutcome:
    run_id: str
    status: str
    run_dir: Path
    manifest: Path | None
    steps: list[dict[str, Any]] = field(default_factory=list)
    results: dict[str, Any] = field(default_factory=dict)


def notebook_path(sop: str, step: str) -> Path:
    return NOTEBOOK_DIRS[sop] / f"{step}.ipynb"


# --- preparing a run ---------------------------------------------------------------------------------
def resolve_manual_payout(params: ManualPayoutParams, settings: Settings | None = None) -> ManualPayoutParams:
    """Fill the currency from the ledger payout when not given (the SOP's default)."""
    if params.currency is not None:
        return params
    with session_scope(settings) as s:
        lp = s.get(LedgerPayout, params.ledger_payout_id)
    if lp is None:
        raise ParamsInvalid(FieldProblem(
            "currency", f"not given and ledger payout {params.ledger_payout_id} does not exist to take it from"))
    data = params.model_dump()
    data["currency"] = lp.currency
    from payops.params import validate_manual_payout

    return validate_manual_payout(data)


def mode_for(params: ManualPayoutParams) -> str:
    if params.dry_run:
        return "dry-run"
    return "rehearsal" if params.is_rehearsal else "live"


def _fallback_key_problems(params: ManualPayoutParams, settings: Settings) -> list[FieldProblem]:
    from payops.stripe_api import key_problems  # the Stripe SDK: only for commands that create runs

    return key_problems(settings.stripe_fallback_secret_key, env_var="STRIPE_FALLBACK_SECRET_KEY",
                        settings=settings, rehearsal=params.is_rehearsal, want_restricted=False)


def preflight_key(params: ManualPayoutParams, settings: Settings) -> None:
    """Before any run is created (dry runs too: verify searches Stripe with this key)."""
    problems = _fallback_key_problems(params, settings)
    if problems:
        raise ParamsInvalid(problems, "environment")


def preflight_live(params: ManualPayoutParams, settings: Settings, *, submissions: dict[str, Any] | None = None,
                   operator_key: Path | None = None, show: Callable[[str], None] | None = None,
                   run_id: str | None = None) -> Any:
    """Before a live run is created: the key, the operator, the signed approvals and the operator's
    go-live signature (``payops.approvals.golive``). Raises, changing nothing; returns the plan whose
    ``record`` writes them with the run (``prepare_run(..., run_id=plan.run_id, on_created=plan.record)``)."""
    from payops.approvals import golive

    problems = _fallback_key_problems(params, settings)
    if params.operator is None:
        problems.append(FieldProblem("operator", "a live run needs --operator UUID (or PAYOPS_OPERATOR_ID)"))
    if problems:
        raise ParamsInvalid(problems, "live run")
    return golive.plan(params, settings, submissions=submissions, operator_key=operator_key, show=show, run_id=run_id)


def create_run(sop: str, *, params: dict[str, Any], params_hash: str, mode: str, subject_key: str | None,
               operator: str | None = None, settings: Settings | None = None, parent_run_id: str | None = None,
               detected_at: datetime | None = None, run_id: str | None = None,
               on_created: Callable[[Session, RunbookRun], None] | None = None) -> RunbookRun:
    """Create any runbook's run, its steps and its archive folder (parameters already validated).
    ``on_created`` writes more rows in the same transaction (e.g. a live run's go-live signature)."""
    settings = settings or get_settings()
    from payops.pipeline import prepare_kernels  # the kernel template imports while the run is set up

    prepare_kernels(notebook_path(sop, step) for step in SOPS[sop])
    run_id = run_id or str(uuid.uuid4())
    folder = archive.run_dir(settings.output_dir.resolve(), sop, run_id, utcnow())
    with session_scope(settings) as s:
        run = runstate.create_run(
            s, sop=sop, mode=mode, params=params, params_hash=params_hash, steps=list(SOPS[sop]),
            subject_key=subject_key, operator=operator, output_dir=str(folder), parent_run_id=parent_run_id,
            detected_at=detected_at, run_id=run_id,
        )
        if on_created is not None:
            on_created(s, run)
        return run


def prepare_run(sop: str, params: ManualPayoutParams, *, live: bool, settings: Settings | None = None,
                parent_run_id: str | None = None, detected_at: datetime | None = None, run_id: str | None = None,
                on_created: Callable[[Session, RunbookRun], None] | None = None) -> RunbookRun:
    """Create a manual payout run. Parameters must already be validated and resolved."""
    settings = settings or get_settings()
    if params.currency is None:
        raise ParamsInvalid(FieldProblem("currency", "must be resolved before a run is created"))
    params = params.model_copy(update={"dry_run": not live})
    if live:
        with session_scope(settings) as s:
            if parent_run_id is None:
                parent_run_id = s.scalar(select(RunbookRun.id).where(
                    RunbookRun.params_hash == params.params_hash(), RunbookRun.mode == "dry-run")
                    .order_by(RunbookRun.created_at.desc()).limit(1))
            if detected_at is None and parent_run_id is not None:
                # the incident was detected when ops started on it (the dry run), not when it went live
                detected_at = s.scalar(select(RunbookRun.detected_at).where(RunbookRun.id == parent_run_id))
    return create_run(
        sop, params=params.model_dump(mode="json"), params_hash=params.params_hash(), mode=mode_for(params),
        subject_key=params.ledger_payout_id, operator=params.operator, settings=settings,
        parent_run_id=parent_run_id, detected_at=detected_at, run_id=run_id, on_created=on_created,
    )


# --- executing ------------------------------------------------------------------------------------
def _notebook_params(run: RunbookRun, step: str, overrides: dict[str, Any]) -> dict[str, Any]:
    data = json.loads(run.params_json)
    data["run_id"] = run.id
    for k, v in STEP_PARAMS.get(step, {}).items():
        data[k] = overrides.get(k, v)
    return data


def _attempt_path(folder: Path, step: str, attempt: int) -> Path:
    return folder / (f"{step}.ipynb" if attempt <= 1 else f"{step}.attempt{attempt}.ipynb")


def _error_line(exc: Any) -> tuple[str, int]:
    """A ``PapermillExecutionError`` as one line and the error tree's exit code."""
    return f"{exc.ename}: {exc.evalue}", exit_code_for(exc.ename)


def execute(run_id: str, *, settings: Settings | None = None, overrides: dict[str, Any] | None = None,
            on_step: Callable[[str, str, float], None] | None = None,
            only: Collection[str] | None = None, max_steps: int | None = None) -> RunOutcome:
    """Execute the run's unfinished steps in order; seal the folder at the end whatever happened.

    ``only``: just these of its unfinished steps (a runbook that runs in parts, e.g. the rehearsal).
    ``max_steps`` (JupyterLab's "run the next step") executes at most that many. A run with steps left
    and no failure ends ``paused`` — sealed like any execution, finished later by any path (JupyterLab,
    ``payops runs resume``, the rehearsal's ``--continue``) from its first unfinished step."""
    settings = settings or get_settings()
    overrides = overrides or {}
    with session_scope(settings) as s:
        run = runstate.claim(s, run_id)
        steps = runstate.steps_of(s, run_id)
    todo = [st for st in steps if st.status != "succeeded" and (only is None or st.step in only)]
    if max_steps is not None:
        todo = todo[:max(max_steps, 0)]
    failure = _execute_steps(run, todo, settings=settings, overrides=overrides, on_step=on_step)
    with session_scope(settings) as s:
        left = [st.step for st in runstate.steps_of(s, run_id) if st.status != "succeeded"]
    status = "failed" if failure else ("paused" if left else "succeeded")
    with session_scope(settings) as s:
        runstate.release(s, run_id, status=status, error=failure.error if failure else None,
                         failed_step=failure.step if failure else None)
    try:
        manifest = seal(run_id, settings=settings)
    except ArchiveError as exc:  # recorded on the run, then raised: an unsealed run is never silent
        with session_scope(settings) as s:
            s.execute(update(RunbookRun).where(RunbookRun.id == run_id)
                      .values(error=f"archive not sealed: {exc}" + (f"; {failure.error}" if failure else "")))
        raise
    outcome = outcome_of(run_id, settings=settings, manifest=manifest)
    if failure:
        raise failure
    return outcome


def _execute_steps(run: RunbookRun, steps: list[Any], *, settings: Settings, overrides: dict[str, Any],
                   on_step: Callable[[str, str, float], None] | None) -> StepFailed | None:
    """Run ``steps`` in order, each its own notebook in its own kernel (started ahead, see
    :mod:`payops.pipeline`), stopping at the first failure; every HTML rendered before returning."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    from payops.pipeline import HtmlRenderer, StepKernels, ensure_engine

    engine = ensure_engine()
    folder = Path(run.output_dir or ".")
    failure: StepFailed | None = None
    renderer = HtmlRenderer()
    try:
        with StepKernels([(st.step, notebook_path(run.sop, st.step)) for st in steps]) as kernels:
            for st in steps:
                maybe_kill(f"before:{st.step}")
                attempt = st.attempts + 1
                out = _attempt_path(folder, st.step, attempt)
                with session_scope(settings) as s:
                    runstate.renew(s, run.id)
                    runstate.set_step(s, run.id, st.step, status="running", attempts=attempt, started_at=utcnow(),
                                      notebook_path=str(out), error=None)
                if on_step:
                    on_step(st.step, "running", 0.0)
                t0 = time.monotonic()
                km = None
                try:
                    km = kernels.take(st.step)
                    papermill.execute_notebook(
                        str(notebook_path(run.sop, st.step)), str(out),
                        parameters=_notebook_params(run, st.step, overrides), engine_name=engine, km=km,
                        kernel_name="python3", progress_bar=False, log_output=False)
                except PapermillExecutionError as exc:
                    line, code = _error_line(exc)
                    failure = StepFailed(run.id, st.step, line, out, code)
                except Exception as exc:  # noqa: BLE001 — kernel died, notebook missing…: recorded, archived, re-raised
                    failure = StepFailed(run.id, st.step, f"{type(exc).__name__}: {exc}", out)
                finally:
                    if km is not None:
                        kernels.retire(km)
                maybe_kill(f"after:{st.step}")
                renderer.submit(out)
                elapsed = time.monotonic() - t0
                with session_scope(settings) as s:
                    if failure:
                        runstate.set_step(s, run.id, st.step, status="failed", error=failure.error,
                                          finished_at=utcnow())
                    else:
                        runstate.set_step(s, run.id, st.step, status="succeeded", finished_at=utcnow())
                if on_step:
                    on_step(st.step, "failed" if failure else "succeeded", elapsed)
                if failure:
                    break
        with session_scope(settings) as s:  # a killed earlier attempt may have left one without its HTML
            finished = [Path(x.notebook_path) for x in runstate.steps_of(s, run.id)
                        if x.notebook_path and x.status in ("succeeded", "failed")]
        renderer.finish(finished)
    finally:
        renderer.close()
    return failure


def seal(run_id: str, *, settings: Settings | None = None) -> Path:
    """Seal the run folder into the chain and remember the manifest's sha256 on the run and audit row."""
    settings = settings or get_settings()
    with session_scope(settings) as s:
        run = runstate.get_run(s, run_id)
        steps = [{"step": x.step, "status": x.status, "attempts": x.attempts, "error": x.error}
                 for x in runstate.steps_of(s, run_id)]
        folder = Path(run.output_dir or ".")
        # issue #18: the signed statements, signatures and allowed_signers go into the folder before sealing
        from payops.approvals.evidence import SCHEMA as APPROVAL_EVIDENCE
        from payops.approvals.evidence import write_run_evidence

        approvals = write_run_evidence(s, run, folder)
        meta = {
            "params": json.loads(run.params_json), "params_hash": run.params_hash, "mode": run.mode,
            "status": run.status, "approvals": approvals, "approval_evidence": APPROVAL_EVIDENCE, "steps": steps,
            "operator": run.operator,
            "parent_run_id": run.parent_run_id,
            "started_at": run.started_at.isoformat() if run.started_at else None,
            "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        }
    manifest = archive.seal_run(folder, output_root=settings.output_dir.resolve(), meta=meta,
                                extra_secrets=settings.secret_values())
    digest = archive.sha256_file(manifest)
    from payops.archive.anchor import anchor_head  # issue #19: the seal recorded, the chain head anchored outside
    from payops.archive.records import record_seal

    with session_scope(settings) as s:
        s.execute(update(RunbookRun).where(RunbookRun.id == run_id).values(manifest_sha256=digest))
        s.execute(update(ManualPayout).where(ManualPayout.run_id == run_id).values(archive_manifest_sha256=digest))
        record_seal(s, manifest, output_root=settings.output_dir.resolve(), run_id=run_id)
    anchor_head(settings)
    return manifest


def seal_hand_run(run_id: str, *, step_ok: bool, step: str, settings: Settings | None = None) -> Path | None:
    """A manual payout step executed outside the runner — cell by cell in JupyterLab, or by nbval — has just
    recorded its result: give the run the status its steps say (``succeeded`` when every step has, ``failed``
    at this step when its result is not ok, else ``paused``) and seal the folder like a runner execution.
    A run the runner holds (a lease) is the runner's to seal: nothing happens (returns None)."""
    settings = settings or get_settings()
    with session_scope(settings) as s:
        run = runstate.get_run(s, run_id)
        if run.lease_owner is not None:
            return None
        left = [st.step for st in runstate.steps_of(s, run_id) if st.status != "succeeded"]
        status = "failed" if not step_ok else ("paused" if left else "succeeded")
        s.execute(update(RunbookRun).where(RunbookRun.id == run_id, RunbookRun.lease_owner.is_(None)).values(
            status=status, started_at=run.started_at or utcnow(), finished_at=utcnow(),
            failed_step=None if step_ok else step, error=None if step_ok else f"step {step} failed (run by hand)"))
    return seal(run_id, settings=settings)


def outcome_of(run_id: str, *, settings: Settings | None = None, manifest: Path | None = None) -> RunOutcome:
    with session_scope(settings) as s:
        run = runstate.get_run(s, run_id)
        steps = runstate.steps_of(s, run_id)
        return RunOutcome(
            run_id=run.id, status=run.status, run_dir=Path(run.output_dir or "."), manifest=manifest,
            steps=[{"step": x.step, "status": x.status, "attempts": x.attempts, "notebook": x.notebook_path,
                    "error": x.error} for x in steps],
            results={x.step: json.loads(x.result_json) for x in steps if x.result_json},
        )
