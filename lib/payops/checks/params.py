"""The check notebooks' parameters (their contract), validation, runs and the notebooks' context.

Three checks, each a one-step SOP executed by :mod:`payops.runner` (archived and sealed like every
runbook, mode ``check``):

=========  ================  =====================================  ==========================
check      SOP               notebook                               parameters
=========  ================  =====================================  ==========================
go-live    go_live_check     notebooks/checks/go_live/go_live       ``target`` (test · live)
pre-run    pre_run_check     notebooks/checks/pre_run/pre_run       ``cycle_date`` (next cycle)
post-run   post_run_check    notebooks/checks/post_run/post_run     ``cycle_date`` (latest)
=========  ================  =====================================  ==========================

Every notebook also takes ``run_id = None`` (JupyterLab: a run is created for the parameters).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from payops.config import Settings, get_settings
from payops.cycle.runbook import cycle_date_input, payout_day_problem
from payops.errors import FieldProblem, ParamsInvalid
from payops.params import _problems_from, canonical_sha256
from payops.sop.context import RunContext

MODE = "check"


class _CheckParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def params_hash(self) -> str:
        return canonical_sha256(self.model_dump(mode="json"))


class GoLiveParams(_CheckParams):
    """Go-live: which Stripe mode the deployment is about to go live in. Smoke tests run only for ``test``."""

    target: Literal["test", "live"] = "test"


class _CycleCheckParams(_CheckParams):
    cycle_date: date | None = None

    @field_validator("cycle_date", mode="before")
    @classmethod
    def _date(cls, v: Any) -> Any:
        return cycle_date_input(v)


class PreRunParams(_CycleCheckParams):
    """Pre-run: the coming cycle (``None``: the next scheduled one)."""


class PostRunParams(_CycleCheckParams):
    """Post-run: the cycle that ran (``None``: the latest scheduled cycle at or before now)."""


@dataclass(frozen=True)
class CheckSpec:
    name: str  # the CLI's name: go-live
    sop: str  # runner.SOPS key
    step: str  # the notebook's stem
    model: type[_CheckParams]


SPECS: dict[str, CheckSpec] = {
    "go-live": CheckSpec("go-live", "go_live_check", "go_live", GoLiveParams),
    "pre-run": CheckSpec("pre-run", "pre_run_check", "pre_run", PreRunParams),
    "post-run": CheckSpec("post-run", "post_run_check", "post_run", PostRunParams),
}
BY_SOP = {s.sop: s for s in SPECS.values()}
BY_STEP = {s.step: s for s in SPECS.values()}


def spec(name: str) -> CheckSpec:
    """The check called ``name`` (``go-live``, ``go_live`` or its SOP name)."""
    key = name.replace("_", "-").removesuffix("-check")
    if key not in SPECS:
        raise ParamsInvalid(FieldProblem("check", f"unknown check {name!r} (expected {', '.join(SPECS)})"))
    return SPECS[key]


def validate_check(name: str, data: Mapping[str, Any], settings: Settings | None = None, *,
                   now: datetime | None = None) -> _CheckParams:
    """Validate and resolve (a missing ``cycle_date`` becomes a date; a given one must be a payout day).
    Raises ParamsInvalid naming the field; changes nothing."""
    from payops.cycle import slots

    sp = spec(name)
    try:
        params = sp.model.model_validate(dict(data))
    except ValidationError as exc:
        raise ParamsInvalid(_problems_from(exc), f"{sp.name} check parameters") from None
    if not isinstance(params, _CycleCheckParams):
        return params
    settings = settings or get_settings()
    now = now or datetime.now(UTC)
    if params.cycle_date is None:
        resolved = (slots.next_cycle_dates(settings, now, 1)[0] if sp.name == "pre-run"
                    else slots.current_cycle_date(settings, now))
        return params.model_copy(update={"cycle_date": resolved})
    problem = payout_day_problem(settings, params.cycle_date)
    if problem is not None:
        raise ParamsInvalid(problem, f"{sp.name} check parameters")
    return params


def create_check_run(name: str, params: _CheckParams, settings: Settings | None = None) -> str:
    """A runner run (mode ``check``) for this check; returns its id."""
    from payops import runner

    sp = spec(name)
    data = params.model_dump(mode="json")
    subject = data.get("cycle_date") or data.get("target")
    run = runner.create_run(sp.sop, params=data, params_hash=params.params_hash(), mode=MODE,
                            subject_key=f"{sp.name}:{subject}", settings=settings)
    return run.id


@dataclass
class CheckContext(RunContext):
    """What a check notebook works with: its run, validated parameters, settings and run folder."""

    check: str = field(kw_only=True)
    params: Any = field(kw_only=True)

    @classmethod
    def from_notebook(cls, step: str, run_id: str | None, namespace: Mapping[str, Any]) -> CheckContext:
        """From the notebook's parameters; ``run_id=None`` (JupyterLab) creates a run for them first."""
        sp = BY_STEP[step]
        if run_id is None:
            data = {k: namespace[k] for k in sp.model.model_fields if k in namespace}
            run_id = create_check_run(sp.name, validate_check(sp.name, data))
            print(f"created {sp.name} check run {run_id} for these parameters")
        return cls.load(step, run_id)

    @classmethod
    def load(cls, step: str, run_id: str, settings: Settings | None = None) -> CheckContext:
        sp = BY_STEP[step]
        return cls._open(step, run_id, settings, lambda run: {
            "check": sp.name, "params": sp.model.model_validate(json.loads(run.params_json))})

    @property
    def cycle_date(self) -> date:
        value = getattr(self.params, "cycle_date", None)
        if value is None:
            raise ParamsInvalid(FieldProblem("cycle_date", "must be resolved before the check runs"))
        return value

    def new_report(self) -> Any:
        """An empty report for this check, scrubbing this environment's secrets from every detail."""
        from payops.checks.report import CheckReport

        subject = str(getattr(self.params, "cycle_date", None) or f"target={getattr(self.params, 'target', '')}")
        return CheckReport(self.check, subject, secrets=self.settings.secret_values())
