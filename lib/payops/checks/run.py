"""``run_check``: validate a check's parameters, create its run (mode ``check``) and execute its
notebook through the runner (archived and sealed), and read back the table the notebook recorded."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from payops.checks.params import create_check_run, spec, validate_check
from payops.checks.report import CheckReport
from payops.config import Settings, get_settings


@dataclass
class CheckOutcome:
    """A check that ran to the end: its report (``ok`` False never reaches here — see :func:`run_check`)."""

    check: str
    run_id: str
    run_dir: Path
    report: CheckReport

    @property
    def ok(self) -> bool:
        return self.report.ok


def run_check(name: str, *, cycle_date: date | str | None = None, target: str = "test",
              settings: Settings | None = None) -> CheckOutcome:
    """Run the ``go-live``, ``pre-run`` or ``post-run`` check notebook.

    Returns the outcome when every check passed (warnings allowed). A failing check raises
    ``runner.StepFailed`` with ``exit_code`` 15 (``ChecksFailed``) and ``run_id``: :func:`load_report`
    reads its table. Bad parameters raise ``ParamsInvalid`` before any run is created.
    """
    from payops import runner

    settings = settings or get_settings()
    sp = spec(name)
    data: dict[str, Any] = {"target": target} if sp.name == "go-live" else {"cycle_date": cycle_date}
    params = validate_check(sp.name, data, settings)
    run_id = create_check_run(sp.name, params, settings)
    outcome = runner.execute(run_id, settings=settings)
    report = CheckReport.from_dict(outcome.results.get(sp.step) or {"check": sp.name})
    return CheckOutcome(sp.name, run_id, outcome.run_dir, report)


def load_report(run_id: str, settings: Settings | None = None) -> CheckReport | None:
    """The table a check run recorded (None when its notebook stopped before recording it)."""
    from payops import runstate
    from payops.db import session_scope

    with session_scope(settings or get_settings()) as s:
        for st in runstate.steps_of(s, run_id):
            if st.result_json:
                return CheckReport.from_dict(json.loads(st.result_json))
    return None
