"""The ``incidents`` table: one row per checkout incident, its numbers, plan, actions and timeline.

Lifecycle: ``open`` (created by the first triage) → ``verified`` (the five verification steps passed; a later
failing verification or triage puts it back to ``open``) → ``closed`` (``payops incident close``: only from
``verified``, sealed with its summary). A closed incident is never reopened: a new incident id is.

Every change appends to the timeline (``{"at", "what", "run_id"?}``) in the same transaction; JSON columns
hold the latest numbers (``triage_json``, ``verification_json``) while the timeline keeps each one's summary.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from payops.db.models import Incident, utcnow
from payops.errors import FieldProblem, ParamsInvalid, PayopsError, PreconditionFailed
from payops.params import canonical_sha256
from payops.sop.context import dumps


def _load(text: str | None, default: Any) -> Any:
    return json.loads(text) if text else default


def get(s: Session, incident_id: str, *, lock: bool = False) -> Incident | None:
    return s.get(Incident, incident_id, with_for_update=lock)


def require(s: Session, incident_id: str, *, lock: bool = False) -> Incident:
    row = get(s, incident_id, lock=lock)
    if row is None:
        raise ParamsInvalid(FieldProblem("incident_id", f"no incident {incident_id} (open one with `payops incident "
                                                        "checkout --scenario … --incident-id …`)"))
    return row


def note(row: Incident, what: str, *, run_id: str | None = None, at: datetime | None = None) -> None:
    timeline = _load(row.timeline_json, [])
    timeline.append({"at": (at or utcnow()).isoformat(timespec="seconds"), "what": what,
                     **({"run_id": run_id} if run_id else {})})
    row.timeline_json = dumps(timeline)
    row.updated_at = utcnow()


def check_scenario(s: Session, incident_id: str, scenario: str) -> None:
    """Before a run is created: an existing incident keeps its scenario and a closed one stays closed."""
    row = get(s, incident_id)
    if row is None:
        return
    if row.scenario != scenario:
        raise ParamsInvalid(FieldProblem("--scenario", f"incident {incident_id} is a {row.scenario} incident, not "
                                                       f"{scenario} (open a new incident id for another scenario)"))
    if row.status == "closed":
        raise ParamsInvalid(FieldProblem("--incident-id", f"incident {incident_id} was closed at "
                                                          f"{row.closed_at:%Y-%m-%d %H:%M}Z; open a new one"))


def open_or_get(s: Session, incident_id: str, scenario: str, alert: str, operator: str | None,
                run_id: str) -> Incident:
    row = get(s, incident_id, lock=True)
    if row is None:
        row = Incident(id=incident_id, scenario=scenario, status="open", alert=alert, operator=operator,
                       actions_json="[]", timeline_json="[]", opened_at=utcnow())
        s.add(row)
        note(row, f"alert fired: {alert}; incident opened", run_id=run_id)
        s.flush()
    check_scenario(s, incident_id, scenario)
    return row


def record_triage(row: Incident, numbers: dict[str, Any], *, run_id: str, summary: str, level: int,
                  plan: dict[str, Any] | None) -> None:
    """The triage's numbers (and, after a dry run, the plan a live run will act on)."""
    row.triage_json = dumps(numbers)
    row.escalation_level = level
    if row.status == "verified":
        row.status = "open"
        note(row, "a new triage found the symptom again: verification needed again", run_id=run_id)
    note(row, f"triage: {summary}", run_id=run_id)
    if plan is not None:
        row.plan_json = dumps(plan)
        row.plan_sha256 = canonical_sha256(plan)
        note(row, f"dry run planned: {plan['description']} (plan {row.plan_sha256[:12]}…)", run_id=run_id)


def plan_of(row: Incident) -> dict[str, Any] | None:
    return _load(row.plan_json, None)


def record_action(row: Incident, action: dict[str, Any], *, run_id: str) -> None:
    actions = _load(row.actions_json, [])
    actions.append({**action, "run_id": run_id, "at": utcnow().isoformat(timespec="seconds")})
    row.actions_json = dumps(actions)
    note(row, f"{'LIVE' if action.get('live') else 'dry run'}: {action['summary']}", run_id=run_id)


def record_verification(row: Incident, report: dict[str, Any], *, run_id: str) -> None:
    row.verification_json = dumps(report)
    if report["ok"]:
        row.status, row.verified_at = "verified", utcnow()
        note(row, "verification passed: all five steps", run_id=run_id)
    else:
        row.status = "open"
        failing = ", ".join(c["name"] for c in report["checks"] if c["status"] == "FAIL")
        note(row, f"verification failed: {failing}", run_id=run_id)


def closable(row: Incident) -> None:
    """Raises naming what still fails unless the last verification passed."""
    if row.status == "closed":
        raise PayopsError(f"incident {row.id} is already closed")
    report = _load(row.verification_json, None)
    if report is None:
        raise PreconditionFailed([("verification", f"incident {row.id} was never verified: run `payops incident "
                                                   f"verify {row.id}` once the fix is in")])
    if row.status != "verified" or not report.get("ok"):
        raise PreconditionFailed([(c["name"], c["detail"]) for c in report["checks"] if c["status"] == "FAIL"]
                                 or [("verification", "a triage after the last verification found the symptom "
                                                      "again: verify again")])


def mark_closed(row: Incident, *, run_id: str) -> None:
    row.status, row.closed_at, row.close_run_id = "closed", utcnow(), run_id
    note(row, "incident closed; record sealed with the summary", run_id=run_id)


def as_dict(row: Incident) -> dict[str, Any]:
    return {"id": row.id, "scenario": row.scenario, "status": row.status, "alert": row.alert,
            "operator": row.operator, "escalation_level": row.escalation_level,
            "opened_at": row.opened_at.isoformat(timespec="seconds"),
            "verified_at": row.verified_at.isoformat(timespec="seconds") if row.verified_at else None,
            "closed_at": row.closed_at.isoformat(timespec="seconds") if row.closed_at else None,
            "triage": _load(row.triage_json, None), "verification": _load(row.verification_json, None),
            "plan": plan_of(row), "plan_sha256": row.plan_sha256, "actions": _load(row.actions_json, []),
            "timeline": _load(row.timeline_json, []), "close_run_id": row.close_run_id}


