"""Go-live, pre-run and post-run checks: notebooks that print a pass/fail table and fail (exit 15,
``ChecksFailed``) when any check failed.

    from payops.checks import run_check
    run_check("pre-run", cycle_date=date(2026, 12, 1), settings=settings)   # the scheduler's call

- :mod:`payops.checks.report` — ``Check`` rows (PASS · FAIL · WARN · SKIP) and the ``CheckReport``;
- :mod:`payops.checks.params` — the notebooks' parameter models and ``CheckContext``;
- :mod:`payops.checks.golive`, :mod:`~payops.checks.probes`, :mod:`~payops.checks.smoke`,
  :mod:`~payops.checks.smoke_cycle` — the go-live rows; :mod:`payops.checks.cycle_checks` — pre/post-run;
- :mod:`payops.checks.run` — ``run_check`` through the runner; :mod:`payops.checks.cli` — ``payops check``.
"""

from __future__ import annotations

from payops.checks.params import SPECS, CheckContext, GoLiveParams, PostRunParams, PreRunParams
from payops.checks.report import FAIL, PASS, SKIP, WARN, Check, CheckReport
from payops.checks.run import CheckOutcome, load_report, run_check

__all__ = ["FAIL", "PASS", "SKIP", "SPECS", "WARN", "Check", "CheckContext", "CheckOutcome", "CheckReport",
           "GoLiveParams", "PostRunParams", "PreRunParams", "load_report", "run_check"]
