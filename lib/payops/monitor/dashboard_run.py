"""``payops monitor dashboard``: ``notebooks/monitoring/dashboards.ipynb`` through the runner — executed with
papermill, rendered to HTML, sealed in the archive (``outputs/monitoring/<date>/<run_id>/``) like every run.

The notebook's parameters are :class:`DashboardParams` (``at``: the instant shown, ISO 8601, default now) plus
``run_id``; with ``run_id = None`` (JupyterLab, nbval) it creates its own run. Its last cell records a small
result (the conditions per rule and severity) on the run's step.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from payops.config import Settings, get_settings
from payops.errors import ParamsInvalid
from payops.params import _problems_from, canonical_sha256
from payops.sop.context import RunContext

SOP = "monitoring"
STEP = "dashboards"
MODE = "report"


class DashboardParams(BaseModel):
    """The dashboards notebook's contract: the instant it shows (``None``: when it runs)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    at: str | None = None

    @field_validator("at")
    @classmethod
    def _at(cls, v: str | None) -> str | None:
        if v is None:
            return None
        from payops.monitor.check import parse_at

        try:
            ts = parse_at(v, "at")
        except ParamsInvalid as exc:
            raise ValueError(exc.problems[0].message) from None
        assert ts is not None
        return ts.astimezone(UTC).isoformat()

    def params_hash(self) -> str:
        return canonical_sha256(self.model_dump(mode="json"))

    def instant(self) -> datetime:
        return datetime.fromisoformat(self.at) if self.at else datetime.now(UTC)


def validate_dashboard(data: Mapping[str, Any]) -> DashboardParams:
    try:
        return DashboardParams.model_validate(dict(data))
    except ValidationError as exc:
        raise ParamsInvalid(_problems_from(exc), "dashboard parameters") from None


def create_dashboard_run(params: DashboardParams, settings: Settings | None = None) -> str:
    from payops import runner

    data = params.model_dump(mode="json")
    run = runner.create_run(SOP, params=data, params_hash=params.params_hash(), mode=MODE,
                            subject_key=f"dashboards:{params.at or 'now'}", settings=settings)
    return run.id


@dataclass
class DashboardResult:
    at: str
    conditions: dict[str, int] = field(default_factory=dict)  # rule → count
    severities: dict[str, int] = field(default_factory=dict)
    ok: bool = True

    def as_dict(self) -> dict[str, Any]:
        return {"at": self.at, "conditions": self.conditions, "severities": self.severities, "ok": self.ok}


@dataclass
class DashboardContext(RunContext):
    params: DashboardParams = field(kw_only=True)

    @classmethod
    def from_notebook(cls, run_id: str | None, namespace: Mapping[str, Any]) -> DashboardContext:
        if run_id is None:
            data = {k: namespace[k] for k in DashboardParams.model_fields if k in namespace}
            run_id = create_dashboard_run(validate_dashboard(data))
            print(f"created dashboards run {run_id} for these parameters")
        return cls.load(run_id)

    @classmethod
    def load(cls, run_id: str, settings: Settings | None = None) -> DashboardContext:
        return cls._open(STEP, run_id, settings, lambda run: {
            "params": validate_dashboard(json.loads(run.params_json))})

    def dashboard(self) -> Any:
        from payops.monitor.dashboard import load

        return load(self.settings, self.params.instant())

    def result(self, dash: Any) -> DashboardResult:
        return DashboardResult(at=dash.at.isoformat(), conditions=dict(Counter(c.rule for c in dash.conditions)),
                               severities=dict(Counter(c.severity for c in dash.conditions)))


def run_dashboard(*, at: datetime | None = None, settings: Settings | None = None) -> Any:
    """Validate, create the run, execute the notebook through the runner (archived, sealed); its RunOutcome."""
    from payops import runner

    settings = settings or get_settings()
    params = validate_dashboard({"at": at.isoformat() if at else None})
    run_id = create_dashboard_run(params, settings)
    return runner.execute(run_id, settings=settings)
