"""Running a reconciliation: from the CLI (``payops recon``) or from the scheduler, monthly.

``execute_reconciliation(params)`` creates the ``reconciliation`` run, executes the report notebook through the
runner (archived and sealed like every run) and returns what it found; it does not decide what "too many
breaks" means for its caller. The CLI prints the breaks and exits 10 over ``--max-unexplained``.

The scheduled job (:func:`run_monthly`, ``PAYOPS_RECON_CRON``, default the 4th at 09:00 PAYOUT_TIMEZONE —
after the previous month's 3-day cut-off margin) reconciles the previous calendar month in PAYOUT_TIMEZONE,
posts the outcome to Slack (``PAYOPS_SLACK_CHANNEL``), and fails — so the scheduler records it as failed —
when the unexplained breaks exceed ``PAYOPS_RECON_MAX_UNEXPLAINED``.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from payops.config import Settings, get_settings
from payops.errors import PayopsError, ReconciliationBreaks
from payops.reconcile.params import ReconParams, create_recon_run, validate_recon

log = logging.getLogger("payops.reconcile")


@dataclass(frozen=True)
class ReconOutcome:
    """What one reconciliation found: its run, archive folder and persisted breaks."""

    run_id: str
    subject_key: str
    folder: Path
    breaks: list[dict[str, Any]]
    max_unexplained: int

    @property
    def unexplained(self) -> int:
        return sum(b["explanation"] is None for b in self.breaks)

    @property
    def over_threshold(self) -> bool:
        return self.unexplained > self.max_unexplained

    @property
    def status(self) -> str:
        """``succeeded``, or ``breaks`` when the unexplained breaks exceed the threshold."""
        return "breaks" if self.over_threshold else "succeeded"

    def error(self, threshold: str = "the threshold") -> ReconciliationBreaks:
        """The error a caller raises over the threshold (carries ``run_id``); ``threshold`` names where the
        caller's limit came from (a flag, a variable)."""
        exc = ReconciliationBreaks(f"{self.unexplained} unexplained break(s) exceed {threshold} "
                                   f"{self.max_unexplained} (run {self.run_id}; see {self.folder})")
        exc.run_id = self.run_id  # type: ignore[attr-defined]
        return exc


def execute_reconciliation(params: ReconParams, settings: Settings | None = None,
                           on_created: Callable[[str], object] | None = None) -> ReconOutcome:
    """Create and execute the run (``on_created(run_id)`` is called in between); any failure other than the
    report's own over-threshold stop is raised."""
    from payops import runner
    from payops.reconcile import store

    settings = settings or get_settings()
    run_id = create_recon_run(params, settings)
    if on_created is not None:
        on_created(run_id)
    try:
        folder = runner.execute(run_id, settings=settings).run_dir
    except runner.StepFailed as exc:
        if not exc.error.startswith("ReconciliationBreaks"):
            raise
        folder = exc.notebook.parent
    return ReconOutcome(run_id=run_id, subject_key=params.subject_key, folder=folder,
                        breaks=store.breaks_of(run_id, settings=settings), max_unexplained=params.max_unexplained)


def previous_month(day: date) -> tuple[date, date]:
    """The calendar month before ``day``'s: (first day, last day)."""
    last = day.replace(day=1) - timedelta(days=1)
    return last.replace(day=1), last


def monthly_params(day: date, settings: Settings) -> ReconParams:
    """The scheduled reconciliation of the month before ``day``: its days in PAYOUT_TIMEZONE, the database
    ledger and the Stripe API, threshold ``PAYOPS_RECON_MAX_UNEXPLAINED``."""
    first, last = previous_month(day)
    return validate_recon({"period_from": first, "period_to": last, "timezone": settings.payout_timezone,
                           "max_unexplained": settings.recon_max_unexplained})


def summary_text(outcome: ReconOutcome) -> str:
    """The Slack message: the verdict, the breaks per category, where the report is, what to do."""
    by_category = Counter(b["category"] for b in outcome.breaks)
    lines = [
        (f":rotating_light: Reconciliation {outcome.subject_key}: {outcome.unexplained} unexplained break(s), over "
         f"the threshold {outcome.max_unexplained}" if outcome.over_threshold else
         f":white_check_mark: Reconciliation {outcome.subject_key}: {len(outcome.breaks)} break(s), "
         f"{outcome.unexplained} unexplained (threshold {outcome.max_unexplained})"),
        *(f"• {cat}: {n}" for cat, n in sorted(by_category.items())),
        f"Run {outcome.run_id} · report {outcome.folder / 'payouts_vs_ledger.html'}",
    ]
    if outcome.unexplained:
        lines.append(f"Explain each with `payops recon explain BREAK_ID --note …` (list: `payops recon breaks "
                     f"{outcome.run_id}`), then sign off with `payops recon signoff {outcome.run_id} --preparer UUID "
                     "--approver UUID`.")
    return "\n".join(lines)


def post_summary(settings: Settings, text: str) -> bool:
    """Post to Slack if PAYOPS_SLACK_WEBHOOK_URL is set (False when not); a failed delivery is raised."""
    from payops.notify.slack import post_text

    if not post_text(settings, text):
        log.info("reconciliation: PAYOPS_SLACK_WEBHOOK_URL not set, no Slack message")
        return False
    return True


def run_monthly(day: date, settings: Settings) -> ReconOutcome:
    """The scheduled job: reconcile the month before ``day``, tell Slack, raise ReconciliationBreaks (with
    ``run_id``) over the threshold. A failed Slack post is raised after the reconciliation was recorded."""
    outcome = execute_reconciliation(monthly_params(day, settings), settings)
    try:
        post_summary(settings, summary_text(outcome))
    except PayopsError as exc:
        exc.add_note(f"the reconciliation {outcome.run_id} itself {outcome.status}")
        exc.run_id = outcome.run_id  # type: ignore[attr-defined]
        raise
    if outcome.over_threshold:
        raise outcome.error("PAYOPS_RECON_MAX_UNEXPLAINED")
    return outcome
