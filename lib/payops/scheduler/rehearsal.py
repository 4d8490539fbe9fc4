"""The quarterly fallback rehearsal as the scheduler starts it: its dry part, never live.

The job runs ``payops rehearse``'s steps 1–6 dry (:mod:`payops.rehearsal.flow` with ``dry_run=True``) in
the rehearsal world — the rehearsal database, #payments-rehearsal, the rehearsal archive — after the same
preflight (no live key anywhere, the rehearsal database is not production): kickoff, environment checks,
a fresh failed payout (the cycle switched off in the rehearsal database only), the fallback request and
the SOP's dry run. It then posts to #payments-rehearsal what each person runs next (the approvers' signed
``payops approve`` commands, the operator's ``payops rehearse --continue RUN_ID --key …``). Going live
needs both approvals and the operator's signed go-live, so the scheduler never goes live on its own.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from payops.config import Settings

log = logging.getLogger("payops.scheduler")


@dataclass(frozen=True)
class RehearsalStarted:
    """What the rehearsal job returns (the scheduler records ``run_id`` and ``status``)."""

    run_id: str
    status: str  # succeeded (waiting for people) · failed
    run_dir: Path
    dry_run_id: str | None
    message: str


def start_rehearsal(settings: Settings, *, slot: datetime | None = None,
                    params_file: Path | None = None) -> RehearsalStarted:
    """The dry part of this quarter's rehearsal; the ticket from the slot's date."""
    from payops.rehearsal import flow
    from payops.rehearsal.params import gather

    day = (slot or datetime.now(UTC)).date()
    params = gather(params_file=params_file, ticket=None, operator=settings.operator_id, actions=[],
                    unattended=False, live=False, wait_seconds=0, today=day)
    outcome = flow.rehearse(params, settings=settings)
    log.info("rehearsal: run %s %s", outcome.run_id, outcome.status)
    status = "succeeded" if outcome.status == "waiting" else "failed"
    return RehearsalStarted(outcome.run_id, status, outcome.run_dir, outcome.dry_run_id, outcome.message)
