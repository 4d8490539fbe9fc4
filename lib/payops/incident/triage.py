"""Step 10 of a checkout incident: which alert fired, the numbers behind it over the window, who is affected,
the scenario's detail, the escalation level and the messages drafted — recorded on the incident.

The incident row is opened (or found) *before* anything is measured, so a system that does not answer still
leaves an incident with its timeline; the finding is then recorded (escalation: Infrastructure/SRE, the
drafts name the system) and the step raises ``ServiceUnreachable`` — the run fails, is sealed, exits 16.
A dry run stores the plan: exactly what a live run may act on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import stripe

from payops.errors import ServiceUnreachable
from payops.incident import escalation as esc
from payops.incident import store
from payops.incident.params import SCENARIOS
from payops.incident.scenarios import SCENARIOS as MEASURE
from payops.incident.scenarios import Findings
from payops.incident.services import unreachable


@dataclass
class TriageResult:
    incident_id: str
    scenario: str
    alert: str
    dry_run: bool
    window: dict[str, Any]
    firing: bool = False
    numbers: list[dict[str, Any]] = field(default_factory=list)
    affected: dict[str, Any] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    series: dict[str, Any] = field(default_factory=dict)
    plan: dict[str, Any] | None = None
    escalation: dict[str, Any] = field(default_factory=dict)
    drafts: dict[str, str] = field(default_factory=dict)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def as_dict(self) -> dict[str, Any]:
        return {"incident_id": self.incident_id, "scenario": self.scenario, "alert": self.alert,
                "dry_run": self.dry_run, "window": self.window, "firing": self.firing, "numbers": self.numbers,
                "affected": self.affected, "details": self.details, "series": self.series, "plan": self.plan,
                "escalation": self.escalation, "drafts": self.drafts, "error": self.error, "ok": self.ok}

    def summary(self) -> str:
        if self.error:
            return f"{self.incident_id} {self.scenario}: triage stopped — {self.error}"
        state = "FIRING" if self.firing else "not firing"
        a = self.affected
        return (f"{self.incident_id} {self.scenario}: alert {state} — {a.get('sessions', 0)} session(s), "
                f"{a.get('customers', 0)} customer(s), {a.get('auctions', 0)} auction(s) affected; escalate to "
                f"L{self.escalation.get('level', 0)} {self.escalation.get('team', '')}")

    def frame(self) -> pd.DataFrame:
        """The numbers behind the alert, with their thresholds and verdicts."""
        return pd.DataFrame(self.numbers, columns=["number", "value", "threshold", "verdict"])

    def styled(self) -> Any:
        """The numbers table for the notebook: no index, text left-aligned, verdicts coloured."""
        colours = {"ALERT": "background-color: #f7c5c5; font-weight: bold", "ok": "background-color: #c8f7c5"}
        return (self.frame().style.hide(axis="index").map(lambda v: colours.get(v, ""), subset=["verdict"])
                .set_properties(**{"text-align": "left"})
                .set_table_styles([{"selector": "th", "props": [("text-align", "left")]}]))

    def affected_frame(self) -> pd.DataFrame:
        a = self.affected
        return pd.DataFrame([
            {"what": "sessions", "count": a.get("sessions", 0), "ids": ", ".join(a.get("session_ids", [])[:20])},
            {"what": "customers", "count": a.get("customers", 0), "ids": ", ".join(a.get("customer_ids", [])[:20])},
            {"what": "auctions", "count": a.get("auctions", 0), "ids": ", ".join(a.get("auction_ids", [])[:20])}])

    def plan_frame(self) -> Any:
        """What a live run would act on (the dry run's plan, captioned), or why there is nothing."""
        if self.plan is None:
            return "(a live run: it acts on the plan of the last dry run — see step 20)"
        if not self.plan["items"]:
            return f"plan: nothing to do ({self.plan['description']})"
        return (pd.DataFrame(self.plan["items"][:200]).style.hide(axis="index")
                .set_caption(f"plan: {self.plan['description']}"))

    def chart(self) -> Any:
        from payops.incident.charts import triage_chart

        return triage_chart(self)

    def raise_if_failed(self) -> None:
        if self.error:
            raise ServiceUnreachable(self.error)


def run(ctx: Any) -> TriageResult:
    """Measure the scenario over ``[now − since, now]``, record it on the incident, return the result."""
    params, st = ctx.params, ctx.settings
    lo, hi = ctx.window
    alert = SCENARIOS[params.scenario]
    result = TriageResult(params.incident_id, params.scenario, alert, ctx.dry_run,
                          {"from": _iso(lo), "to": _iso(hi - 1), "since": params.since})
    with ctx.session() as s:
        store.open_or_get(s, params.incident_id, params.scenario, alert, ctx.operator, ctx.run_id)
    try:
        found: Findings | None = MEASURE[params.scenario](ctx, lo, hi)
    except ServiceUnreachable as exc:
        found, result.error = None, str(exc)
    except stripe.APIConnectionError as exc:  # retried by the pager already: Stripe does not answer
        found, result.error = None, str(unreachable("Stripe", st.stripe_api_base, exc, "pulling the window"))
    if found is not None:
        result.firing, result.numbers, result.details = found.firing, found.numbers, found.details
        result.affected, result.series = found.affected.as_dict(), found.series
        signals = found.signals
        if ctx.dry_run:
            result.plan = {"scenario": params.scenario, "description": found.plan_description,
                           "items": found.plan_items, "run_id": ctx.run_id, "planned_at": _iso(hi - 1)}
    else:
        signals = esc.Signals(symptom=False, unreachable=[str(result.error).split(" is unreachable")[0]])
    level = esc.suggest(signals, severe_percent=st.incident_severe_success,
                        customers_threshold=st.incident_escalate_customers)
    result.escalation = level.as_dict()
    headline = [f"{n['number']}: {n['value']}" + (f" ({n['threshold']})" if n["threshold"] else "")
                for n in result.numbers if n["verdict"] == "ALERT"] or ([result.error] if result.error else [])
    result.drafts = esc.drafts(incident_id=params.incident_id, scenario=params.scenario, alert=alert,
                               summary=result.summary(), escalation=level, numbers=headline,
                               affected=result.affected, dry_run=ctx.dry_run,
                               incident_url=st.incident_url_template.format(incident_id=params.incident_id))
    for channel, text in result.drafts.items():
        ctx.write_artifact(f"drafts/{channel}.txt", text)
    with ctx.session() as s:
        row = store.require(s, params.incident_id, lock=True)
        numbers = {"window": result.window, "firing": result.firing, "numbers": result.numbers,
                   "affected": {k: v for k, v in result.affected.items() if not k.endswith("_ids")},
                   "error": result.error}
        store.record_triage(row, numbers, run_id=ctx.run_id, summary=result.summary(), level=level.level,
                            plan=result.plan)
    return result


def _iso(t: int) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds")
