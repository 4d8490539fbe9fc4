"""The payout cycle as a runbook: parameters (the notebooks' contract), context, and the one entry
point the CLI, the scheduler and the trigger endpoint share.

``runbooks/payout_cycle/`` holds three steps — ``10-plan``, ``20-transfer``, ``30-summary`` —
executed by :mod:`payops.runner` like every runbook (resume, leases, sealed archive).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from payops.config import Settings, get_settings
from payops.cycle import slots
from payops.errors import FieldProblem, ParamsInvalid
from payops.params import _problems_from, canonical_sha256
from payops.sop.context import RunContext

SOP = "payout_cycle"


def cycle_date_input(v: Any) -> Any:
    """The ``cycle_date`` parameter before pydantic parses it: "" means None; a datetime or a string
    that is not exactly YYYY-MM-DD is refused (shared by the cycle and the check notebooks)."""
    if v == "":
        return None
    if isinstance(v, datetime):
        raise ValueError("must be a date (YYYY-MM-DD), not a date and time")
    if isinstance(v, str) and len(v.strip()) != 10:
        raise ValueError(f"{v!r} is not a date like 2026-12-01")
    return v


def payout_day_problem(settings: Settings, day: date) -> FieldProblem | None:
    """Why ``day`` cannot be a ``cycle_date`` (no slot of PAYOUT_SCHEDULE_CRON falls on it), or None."""
    if slots.cycle_slot(settings, day) is not None:
        return None
    upcoming = ", ".join(d.isoformat() for d in slots.next_cycle_dates(
        settings, datetime.combine(day, datetime.min.time(), tzinfo=UTC), 2))
    return FieldProblem("cycle_date", f"{day} is not a payout day (schedule {settings.payout_schedule_cron!r} in "
                                      f"{settings.payout_timezone}; next ones after it: {upcoming})")
Trigger = Literal["cli", "scheduler", "http", "manual", "demo", "bench", "test"]


class CycleParams(BaseModel):
    """One payout cycle. ``cycle_date`` None means the latest scheduled cycle at or before now."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cycle_date: date | None = None
    dry_run: bool = True
    trigger: Trigger = "manual"

    @field_validator("cycle_date", mode="before")
    @classmethod
    def _date(cls, v: Any) -> Any:
        return cycle_date_input(v)

    @field_validator("dry_run", mode="before")
    @classmethod
    def _bool(cls, v: Any) -> Any:
        if not isinstance(v, bool):
            raise ValueError(f"must be true or false, got {v!r}")
        return v

    def params_hash(self) -> str:
        return canonical_sha256(self.model_dump(mode="json"))


def validate_cycle(data: Mapping[str, Any], settings: Settings | None = None, *,
                   now: datetime | None = None) -> CycleParams:
    """Validate, resolve the cycle date, and check it is a scheduled payout day not beyond the next
    cycle. Raises ParamsInvalid naming the field; changes nothing."""
    settings = settings or get_settings()
    try:
        params = CycleParams.model_validate(dict(data))
    except ValidationError as exc:
        raise ParamsInvalid(_problems_from(exc), "payout cycle parameters") from None
    now = now or datetime.now(UTC)
    if params.cycle_date is None:
        return params.model_copy(update={"cycle_date": slots.current_cycle_date(settings, now)})
    problem = payout_day_problem(settings, params.cycle_date)
    if problem is not None:
        raise ParamsInvalid(problem, "payout cycle parameters")
    (nxt,) = slots.next_cycle_dates(settings, now, 1)
    if params.cycle_date > nxt:
        raise ParamsInvalid(FieldProblem("cycle_date", (
            f"{params.cycle_date} is after the next scheduled cycle ({nxt}); a cycle can be run early "
            "only for the next one")), "payout cycle parameters")
    return params


def cycle_date_of(params: CycleParams) -> date:
    if params.cycle_date is None:
        raise ParamsInvalid(FieldProblem("cycle_date", "must be resolved before a run is created"))
    return params.cycle_date


def create_cycle_run(params: CycleParams, settings: Settings | None = None) -> str:
    """A runbook run (mode dry-run or live) for this cycle; returns its id."""
    from payops import runner

    cycle = cycle_date_of(params)
    run = runner.create_run(SOP, params=params.model_dump(mode="json"), params_hash=params.params_hash(),
                            mode="dry-run" if params.dry_run else "live", subject_key=f"cycle:{cycle.isoformat()}",
                            settings=settings)
    return run.id


def preflight(settings: Settings) -> None:
    """Before a live cycle run is created: the platform key and the policy. Changes nothing."""
    from payops.cycle.policy import PayoutPolicy
    from payops.stripe_api import key_problems

    problems = key_problems(settings.stripe_secret_key, env_var="STRIPE_SECRET_KEY", settings=settings,
                            rehearsal=False, want_restricted=False)
    if problems:
        raise ParamsInvalid(problems, "environment")
    PayoutPolicy.from_settings(settings)


def run_cycle_runbook(cycle_date: date | str | None, *, live: bool, settings: Settings | None = None,
                      trigger: Trigger = "cli",
                      on_step: Callable[[str, str, float], None] | None = None) -> Any:
    """Validate, create and execute one cycle run through the runner. Returns the runner's
    ``RunOutcome``; raises ``runner.StepFailed`` (carrying ``run_id``) or a PayopsError."""
    from payops import runner

    settings = settings or get_settings()
    params = validate_cycle({"cycle_date": cycle_date, "dry_run": not live, "trigger": trigger}, settings)
    if live:
        preflight(settings)
    run_id = create_cycle_run(params, settings)
    return runner.execute(run_id, settings=settings, on_step=on_step)


@dataclass
class CycleContext(RunContext):
    """A payout cycle step: the run plus its ``CycleParams`` (cycle date resolved)."""

    params: CycleParams = field(kw_only=True)

    @classmethod
    def from_notebook(cls, step: str, run_id: str | None, namespace: Mapping[str, Any]) -> CycleContext:
        """From the notebook's parameters; ``run_id=None`` (JupyterLab) creates a run for them first."""
        if run_id is None:
            data = {k: namespace[k] for k in CycleParams.model_fields if k in namespace}
            run_id = create_cycle_run(validate_cycle(data))
            print(f"created payout cycle run {run_id} for these parameters")
        return cls.load(step, run_id)

    @classmethod
    def load(cls, step: str, run_id: str, settings: Settings | None = None) -> CycleContext:
        return cls._open(step, run_id, settings,
                         lambda run: {"params": CycleParams.model_validate(json.loads(run.params_json))})

    @property
    def cycle_date(self) -> date:
        return cycle_date_of(self.params)

    @property
    def cutoff(self) -> datetime:
        """The cycle's slot: earnings earned before it are due in this cycle."""
        slot = slots.cycle_slot(self.settings, self.cycle_date)
        if slot is None:  # the schedule changed since the run was created
            tz = slots.zone(self.settings)
            return datetime.combine(self.cycle_date, datetime.min.time(), tzinfo=tz) + timedelta(hours=6)
        return slot.astimezone(UTC)
