"""payops' single-host scheduler: payout cycles, their pre-/post-run checks, the quarterly
rehearsal and the monthly reconciliation, each slot run once (``scheduled_executions``), built on croniter.

    from payops.scheduler import Scheduler, scheduler_status
    Scheduler(settings).run_forever()          # `payops scheduler run`
    scheduler_status(settings)["armed"]        # what the pre-run and go-live checks ask

Scheduling at scale runs the same notebooks from Airflow; this one is for a single ops host.
"""

from __future__ import annotations

from payops.scheduler.engine import CATCH_UP_WINDOW, ON_TIME_GRACE, RUNNING_TIMEOUT, Execution, Scheduler, TickReport
from payops.scheduler.jobs import (
    MONITOR_CHECK,
    PAYOUT_CYCLE,
    POST_RUN_CHECK,
    PRE_RUN_CHECK,
    RECONCILIATION,
    REHEARSAL,
    Job,
    JobContext,
    JobRegistry,
    Schedule,
    Slot,
    default_registry,
)
from payops.scheduler.status import HEARTBEAT_FLAG, history, scheduler_status, upcoming

__all__ = [
    "CATCH_UP_WINDOW", "HEARTBEAT_FLAG", "MONITOR_CHECK", "ON_TIME_GRACE", "PAYOUT_CYCLE", "POST_RUN_CHECK",
    "PRE_RUN_CHECK",
    "RECONCILIATION", "REHEARSAL", "RUNNING_TIMEOUT", "Execution", "Job", "JobContext", "JobRegistry", "Schedule",
    "Scheduler", "Slot", "TickReport", "default_registry", "history", "scheduler_status", "upcoming",
]
