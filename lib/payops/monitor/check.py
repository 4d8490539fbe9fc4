"""``payops monitor check``: evaluate every rule at one instant, remember what fired, send it, report.

1. Validate the input (``--at``) and the thresholds before touching anything (ParamsInvalid / ConfigError).
2. One snapshot of the database (:func:`payops.monitor.facts.load_snapshot`), the pure rules over it.
3. One transaction: open / update / resolve alerts and queue their deliveries (:func:`payops.monitor.store.sync`).
   ``--dry-run`` rolls it back: it shows what would open, resolve and be sent, and writes nothing.
4. Send every pending delivery (this check's and earlier checks' failed ones) — :mod:`payops.monitor.dispatch`.
5. The report; its exit code is non-zero while a SEV-2 condition is open (``AlertsOpen``, 20), else when a
   delivery failed (``NotificationError``, 7, retried by the next check), else 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from payops.config import Settings, get_settings
from payops.errors import FieldProblem, ParamsInvalid
from payops.monitor.dispatch import DeliveryOutcome, dispatch
from payops.monitor.facts import Snapshot, load_snapshot
from payops.monitor.rules import Condition, evaluate
from payops.monitor.thresholds import Thresholds

ALERTS_OPEN_EXIT = 20
DELIVERY_FAILED_EXIT = 7


def parse_at(text: str | None, field_name: str = "--at") -> datetime | None:
    """An ISO 8601 instant (``2026-12-07T06:00:00Z``, an offset, or UTC when none); None → now."""
    if text is None:
        return None
    try:
        ts = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ParamsInvalid(FieldProblem(field_name, f"{text!r} is not an ISO 8601 timestamp like "
                                                     "2026-12-07T06:00:00Z")) from None
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


@dataclass
class CheckReport:
    at: datetime
    dry_run: bool
    conditions: list[Condition]
    opened: list[dict[str, Any]] = field(default_factory=list)
    still_open: list[dict[str, Any]] = field(default_factory=list)
    resolved: list[dict[str, Any]] = field(default_factory=list)
    queued: list[tuple[int | None, str, str]] = field(default_factory=list)  # (alert id, channel, action)
    outcomes: list[DeliveryOutcome] = field(default_factory=list)
    open_sev2: list[dict[str, Any]] = field(default_factory=list)
    pending_after: int = 0

    @property
    def failed(self) -> list[DeliveryOutcome]:
        return [o for o in self.outcomes if not o.ok]

    @property
    def exit_code(self) -> int:
        if self.open_sev2:
            return ALERTS_OPEN_EXIT
        return DELIVERY_FAILED_EXIT if self.failed else 0

    def as_dict(self) -> dict[str, Any]:
        return {"at": self.at.isoformat(), "dry_run": self.dry_run, "exit_code": self.exit_code,
                "conditions": [{"rule": c.rule, "key": c.key, "severity": c.severity, "summary": c.summary}
                               for c in self.conditions],
                "opened": self.opened, "resolved": self.resolved, "still_open": self.still_open,
                "queued": [{"alert_id": a, "channel": ch, "action": ac} for a, ch, ac in self.queued],
                "deliveries": [o.__dict__ for o in self.outcomes], "pending_after": self.pending_after}


def _brief(alert: Any) -> dict[str, Any]:
    return {"id": alert.id, "rule": alert.rule, "key": alert.dedupe_key, "severity": alert.severity,
            "summary": alert.summary}


def evaluate_at(settings: Settings, at: datetime, th: Thresholds | None = None) -> tuple[Snapshot, list[Condition]]:
    """The snapshot and the conditions holding at ``at`` (read-only)."""
    from payops.db import session_scope

    th = th or Thresholds.from_settings(settings)
    with session_scope(settings) as s:
        snap = load_snapshot(s, at, th, settings)
    return snap, evaluate(snap, th)


SYNC_ATTEMPTS = 3  # two checks at once (the scheduler's and a person's): the loser reads again


def run_check(settings: Settings | None = None, *, at: datetime | None = None, dry_run: bool = False) -> CheckReport:
    """One check. ``at`` defaults to now; ``dry_run`` evaluates and shows, and writes and sends nothing."""
    from sqlalchemy import func, select
    from sqlalchemy.exc import IntegrityError

    from payops.db import session_scope
    from payops.db.models import Alert, AlertDelivery
    from payops.monitor import store

    settings = settings or get_settings()
    th = Thresholds.from_settings(settings)  # ConfigError before anything is read or written
    at = (at or datetime.now(UTC)).astimezone(UTC)
    _snap, conditions = evaluate_at(settings, at, th)
    report = CheckReport(at=at, dry_run=dry_run, conditions=conditions)
    for attempt in range(1, SYNC_ATTEMPTS + 1):
        try:
            with session_scope(settings) as s:
                result = store.sync(s, conditions, at)
                report.opened = [_brief(a) for a in result.opened]
                report.still_open = [_brief(a) for a in result.still_open]
                report.resolved = [_brief(a) for a in result.resolved]
                report.queued = [(d.alert_id, d.channel, d.action) for d in result.queued]
                if dry_run:
                    s.rollback()
            break
        except IntegrityError:
            # another check opened the same condition (or queued the same delivery) between our read and our
            # write: the database refused the second episode; read again — it is open now, and is updated
            if attempt == SYNC_ATTEMPTS:
                raise
    if not dry_run:
        report.outcomes = dispatch(settings)
    with session_scope(settings) as s:
        if dry_run:
            report.open_sev2 = [{"key": c.key, "summary": c.summary} for c in conditions if c.pages]
        else:
            report.open_sev2 = [_brief(a) for a in s.scalars(select(Alert).where(
                Alert.status == "open", Alert.severity == "SEV-2").order_by(Alert.id))]
        report.pending_after = int(s.scalar(select(func.count()).select_from(AlertDelivery)
                                            .where(AlertDelivery.status == "pending")) or 0)
    return report


def scheduled_check(settings: Settings, *, at: datetime) -> dict[str, Any]:
    """The scheduler's job (``PAYOPS_MONITOR_CRON``, every 5 minutes by default). An open SEV-2 is what the
    check exists to page about, so it does not fail the slot; a delivery that could not be sent does (the
    error names each channel; the delivery is retried by the next slot)."""
    from payops.errors import NotificationError

    report = run_check(settings, at=at)
    if report.failed:
        raise NotificationError(f"{len(report.failed)} alert delivery(ies) not sent, retried at the next check: "
                                + "; ".join(o.line() for o in report.failed))
    return {"run_id": None, "status": "alerts-open" if report.open_sev2 else "ok",
            "conditions": len(report.conditions)}
