"""Checkout incidents as runbooks: the runs, the notebooks' context, and the entry points the CLI uses.

Three SOPs, executed by :mod:`payops.runner` (archived and sealed like every run):

=====================  ==============================================  ==========================================
SOP                    notebooks                                       parameters
=====================  ==============================================  ==========================================
``checkout_incident``  ``runbooks/checkout_incident/10-triage``,       ``scenario``, ``incident_id``, ``since``,
                       ``20-act``                                      ``dry_run`` (True)
``incident_verify``    ``notebooks/incidents/verify/verify``           ``incident_id``, ``since``
``incident_close``     ``notebooks/incidents/close/summary``           ``incident_id``
=====================  ==============================================  ==========================================

A live run needs the incident's dry-run plan (what it will act on: the live run touches nothing else);
the payment-window expiry also needs that plan approved by someone other than the operator. Both are checked
before the run is created, and again by the ``20-act`` notebook.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from payops.config import Settings, get_settings
from payops.errors import ApprovalMissing, FieldProblem, ParamsInvalid
from payops.incident import approval, store
from payops.incident.params import (
    CloseParams,
    IncidentParams,
    VerifyParams,
    validate_close,
    validate_incident,
    validate_verify,
)
from payops.sop.context import RunContext

SOP, VERIFY_SOP, CLOSE_SOP = "checkout_incident", "incident_verify", "incident_close"
APPROVED_SCENARIOS = ("payment-window",)  # live needs a second person's approval of the plan


def preflight(params: IncidentParams, settings: Settings) -> dict[str, Any] | None:
    """Before any run is created: the scenario matches an existing incident; a live run has a dry-run plan
    (returned) and, where the runbook says so, its approval. Raises, changing nothing."""
    from payops.db import session_scope

    with session_scope(settings) as s:
        store.check_scenario(s, params.incident_id, params.scenario)
        if params.dry_run:
            return None
        row = store.get(s, params.incident_id)
        if row is None or row.plan_json is None:
            raise ParamsInvalid(FieldProblem("--live", f"incident {params.incident_id} has no dry-run plan yet: run "
                                                       "the same command without --live first and read what it lists"))
        if params.scenario in APPROVED_SCENARIOS:
            if not settings.operator_id:
                raise ParamsInvalid(FieldProblem("PAYOPS_OPERATOR_ID", "a live payment-window expiry needs the "
                                                 "operator's UUID, so the approval can be held to someone else"))
            problem = approval.problem(s, row, settings.operator_id, settings)
            if problem:
                raise ApprovalMissing(f"live run refused: {problem}")
        return store.plan_of(row)


def _create(sop: str, params: Any, *, mode: str, settings: Settings) -> str:
    from payops import runner

    run = runner.create_run(sop, params=params.model_dump(mode="json"), params_hash=params.params_hash(), mode=mode,
                            subject_key=f"incident:{params.incident_id}", operator=settings.operator_id,
                            settings=settings)
    return run.id


def create_incident_run(params: IncidentParams, settings: Settings | None = None) -> str:
    return _create(SOP, params, mode="dry-run" if params.dry_run else "live", settings=settings or get_settings())


def run_checkout(data: Mapping[str, Any], *, settings: Settings | None = None,
                 on_step: Callable[[str, str, float], None] | None = None) -> Any:
    """Validate, preflight, create and execute a checkout incident run; returns the runner's RunOutcome."""
    from payops import runner

    settings = settings or get_settings()
    params = validate_incident(data)
    preflight(params, settings)
    return runner.execute(create_incident_run(params, settings), settings=settings, on_step=on_step)


def run_verify(data: Mapping[str, Any], *, settings: Settings | None = None) -> Any:
    from payops import runner
    from payops.db import session_scope

    settings = settings or get_settings()
    params = validate_verify(data)
    with session_scope(settings) as s:
        store.require(s, params.incident_id)
    return runner.execute(_create(VERIFY_SOP, params, mode="check", settings=settings), settings=settings)


def run_close(data: Mapping[str, Any], *, settings: Settings | None = None) -> Any:
    from payops import runner
    from payops.db import session_scope

    settings = settings or get_settings()
    params = validate_close(data)
    with session_scope(settings) as s:
        store.closable(store.require(s, params.incident_id))
    return runner.execute(_create(CLOSE_SOP, params, mode="report", settings=settings), settings=settings)


@dataclass
class IncidentContext(RunContext):
    """An incident notebook: the run, its parameters, and the "now" every number is measured against
    (Stripe's clock: :func:`payops.incident.stripe_pull.stripe_now`)."""

    params: Any = field(kw_only=True)
    now: datetime = field(kw_only=True, default_factory=lambda: datetime.now(UTC))

    @classmethod
    def from_notebook(cls, step: str, run_id: str | None, namespace: Mapping[str, Any]) -> IncidentContext:
        """From the notebook's parameters; ``run_id=None`` (JupyterLab) creates a dry-run run for them first."""
        if run_id is None:
            model = {"10-triage": IncidentParams, "20-act": IncidentParams, "verify": VerifyParams,
                     "summary": CloseParams}[step]
            data = {k: namespace[k] for k in model.model_fields if k in namespace}
            if model is IncidentParams:
                params = validate_incident({**data, "dry_run": True})
                run_id = create_incident_run(params)
            else:
                sop = VERIFY_SOP if model is VerifyParams else CLOSE_SOP
                validate = validate_verify if model is VerifyParams else validate_close
                run_id = _create(sop, validate(data), mode="check" if sop == VERIFY_SOP else "report",
                                 settings=get_settings())
            print(f"created run {run_id} for these parameters")
        return cls.load(step, run_id)

    @classmethod
    def load(cls, step: str, run_id: str, settings: Settings | None = None) -> IncidentContext:
        from payops.incident.stripe_pull import stripe_now

        def extra(run: Any) -> dict[str, Any]:
            data = json.loads(run.params_json)
            model = {SOP: IncidentParams, VERIFY_SOP: VerifyParams, CLOSE_SOP: CloseParams}[run.sop]
            return {"params": model.model_validate(data), "now": stripe_now(settings or get_settings())}

        return cls._open(step, run_id, settings, extra)

    @property
    def incident_id(self) -> str:
        return str(self.params.incident_id)

    @property
    def window(self) -> tuple[int, int]:
        """``[now − since, now]`` as unix seconds (``hi`` exclusive, one second past now)."""
        hi = int(self.now.timestamp()) + 1
        return hi - int(getattr(self.params, "since_seconds", 1800)) - 1, hi

    def step_result(self, step: str) -> dict[str, Any] | None:
        from payops import runstate

        with self.session() as s:
            row = runstate.step_row(s, self.run_id, step)
            return json.loads(row.result_json) if row.result_json else None
