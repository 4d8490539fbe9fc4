"""The pre-run and post-run checks of one payout cycle (read-only: nothing is written or sent,
except the post-run summary posted to Slack).

Pre-run (an hour before the slot): scheduler armed · cycle enabled · platform balance covers the
plan · studios to pay · no stuck cycle. Post-run: run status · transfers in Stripe · bank payouts in
Stripe · failures with reasons · KPIs (success rate > 98 %, processing < 5 min) · Slack summary.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from payops.checks.report import FAIL, PASS, SKIP, WARN, Check, CheckReport, error_line
from payops.config import Settings
from payops.money import Money, format_totals


def cycle_context(settings: Settings, cycle_date: date, run_id: str = "check") -> Any:
    """A read-only view of one cycle for the engine's and the report's functions (never executed)."""
    from payops.cycle.runbook import CycleContext, CycleParams

    return CycleContext(step="check", run_id=run_id, settings=settings, run_dir=Path("."), mode="check",
                        operator=None, params_hash="", params=CycleParams(cycle_date=cycle_date, dry_run=False))


# --- pre-run ---------------------------------------------------------------------------------------------
@dataclass
class PlannedCycle:
    """What the coming cycle will transfer: from the plan, or from its ledger payouts if already planned."""

    cycle_date: date
    state: str  # planned · exists:<status>
    payouts: int = 0
    totals: dict[str, int] = field(default_factory=dict)
    skips: dict[str, int] = field(default_factory=dict)  # skip code → count
    error: str | None = None


def planned_cycle(settings: Settings, cycle_date: date) -> PlannedCycle:
    """A dry-run plan of ``cycle_date`` (nothing written)."""
    from sqlalchemy import select

    from payops.cycle import engine
    from payops.db.models import LedgerPayout

    ctx = cycle_context(settings, cycle_date)
    try:
        with ctx.session() as s:
            row = engine.run_row(s, ctx)
            if row is None:
                plan = engine.compute_plan(s, ctx)
                return PlannedCycle(cycle_date, "planned", len(plan.payouts), plan.totals(),
                                    dict(Counter(k.code for k in plan.skips)))
            todo = s.execute(select(LedgerPayout.net, LedgerPayout.currency).where(
                LedgerPayout.run_id == row.id, LedgerPayout.status.in_(("scheduled", "pending")))).all()
            totals: dict[str, int] = {}
            for net, cur in todo:
                totals[cur] = totals.get(cur, 0) + int(net)
            return PlannedCycle(cycle_date, f"exists:{row.status}", len(todo), totals)
    except Exception as exc:  # noqa: BLE001 — reported by the rows that need the plan
        return PlannedCycle(cycle_date, "error", error=error_line(exc))


def cycle_enabled(settings: Settings) -> Check:
    from payops.cycle import engine
    from payops.db import session_scope

    with session_scope(settings) as s:
        reason = engine.disabled_reason(s, settings)
    return Check("automated cycle enabled", WARN if reason else PASS,
                 f"DISABLED — {reason}: the cycle will fail on purpose" if reason else "enabled")


def balance_sufficient(settings: Settings, planned: PlannedCycle) -> Check:
    """The platform's available balance covers the plan's net total in every currency."""
    from payops.stripe_api import make_client, with_backoff

    name = "platform balance sufficient"
    if planned.error:
        return Check(name, FAIL, f"cannot plan cycle {planned.cycle_date}: {planned.error}")
    if not planned.totals:
        return Check(name, PASS, f"cycle {planned.cycle_date} transfers nothing")
    try:
        client = make_client(settings=settings, purpose="platform")
        bal = with_backoff(lambda: client.v1.balance.retrieve())
    except Exception as exc:  # noqa: BLE001
        return Check(name, FAIL, f"cannot read the platform balance: {error_line(exc)}")
    have = {b.currency.upper(): int(b.amount) for b in bal.available}
    parts, short = [], []
    for cur, need in sorted(planned.totals.items()):
        got = have.get(cur.upper(), 0)
        parts.append(f"{cur}: need {Money(need, cur).format()}, available {Money(got, cur).format()}")
        if got < need:
            short.append(cur)
    detail = "; ".join(parts)
    return Check(name, FAIL if short else PASS, (f"short in {', '.join(short)} — " if short else "") + detail)


def eligible_studios(planned: PlannedCycle) -> Check:
    name = "eligible studios"
    if planned.error:
        return Check(name, FAIL, f"cannot plan cycle {planned.cycle_date}: {planned.error}")
    skipped = ", ".join(f"{n} {code}" for code, n in sorted(planned.skips.items()))
    detail = (f"{planned.payouts} studio payout(s) due, {format_totals(planned.totals)}"
              + (f"; skipped: {skipped}" if skipped else "")
              + (f" (cycle already {planned.state.split(':', 1)[1]})" if planned.state.startswith("exists") else ""))
    return Check(name, PASS if planned.payouts > 0 else WARN, detail if planned.payouts else "0 studios to pay: "
                 + detail)


def no_stuck_runs(settings: Settings, now: datetime | None = None) -> Check:
    from payops.cycle import engine
    from payops.db import session_scope

    with session_scope(settings) as s:
        stuck = engine.stuck_runs(s, settings, now)
    if not stuck:
        return Check("no stuck runs", PASS, f"no cycle running for more than {settings.payout_stuck_after_minutes} min")
    return Check("no stuck runs", FAIL, "; ".join(
        f"cycle {r['cycle_date']} running for {r['running_for_minutes']} min under runbook run {r['runbook_run_id']} "
        f"(investigate, then `payops runs resume {r['runbook_run_id']} --live`)" for r in stuck))


# --- post-run -----------------------------------------------------------------------------------------------
@dataclass
class CycleFacts:
    """The cycle's run row and ledger payouts, and the cycle report's summary (KPIs)."""

    cycle_date: date
    status: str | None  # None: no payout run
    failure_reason: str | None = None
    rows: list[dict[str, Any]] = field(default_factory=list)
    payout_ids: dict[str, str | None] = field(default_factory=dict)  # ledger payout → po_
    summary: Any = None


def cycle_facts(settings: Settings, cycle_date: date) -> CycleFacts:
    from sqlalchemy import select

    from payops.cycle import engine, report
    from payops.db.models import LedgerPayout

    ctx = cycle_context(settings, cycle_date)
    with ctx.session() as s:
        row = engine.run_row(s, ctx)
        if row is None:
            return CycleFacts(cycle_date, None)
        facts = CycleFacts(cycle_date, row.status, row.failure_reason, engine.ledger_rows(s, row.id))
        facts.payout_ids = dict(s.execute(select(LedgerPayout.id, LedgerPayout.stripe_payout_id)
                                          .where(LedgerPayout.run_id == row.id)).tuples().all())
    facts.summary = report.summarize(ctx)
    return facts


def run_status(facts: CycleFacts) -> Check:
    name = "run status"
    if facts.status is None:
        return Check(name, FAIL, f"no payout run for cycle {facts.cycle_date}: the cycle did not run")
    if facts.status == "completed":
        return Check(name, PASS, f"completed — {facts.summary.text() if facts.summary else ''}")
    why = f" ({facts.failure_reason})" if facts.failure_reason else ""
    return Check(name, FAIL, f"{facts.status}{why} — {facts.summary.text() if facts.summary else ''}")


def transfers_visible(settings: Settings, facts: CycleFacts) -> Check:
    """Every transferred ledger payout's tr_ is in Stripe with the ledger's amount, currency and destination."""
    from payops.stripe_api import make_client, with_backoff

    name = "transfers visible in Stripe"
    done = [r for r in facts.rows if r["status"] in ("transferred", "paid")]
    if facts.status is None or not done:
        return Check(name, SKIP, "no transferred ledger payout to look up")
    try:
        client = make_client(settings=settings, purpose="platform")
    except Exception as exc:  # noqa: BLE001
        return Check(name, FAIL, error_line(exc))
    bad = []
    for r in done:
        if not r["transfer"]:
            bad.append(f"{r['studio']}: {r['status']} without a transfer id")
            continue
        try:
            tr = with_backoff(lambda tid=r["transfer"]: client.v1.transfers.retrieve(tid))
        except Exception as exc:  # noqa: BLE001
            bad.append(f"{r['studio']}: {r['transfer']} not retrievable ({error_line(exc)})")
            continue
        if (tr.amount, tr.currency.upper(), tr.destination) != (r["net"], r["currency"].upper(), r["destination"]):
            bad.append(f"{r['studio']}: {tr.id} is {tr.amount} {tr.currency.upper()} → {tr.destination}, ledger says "
                       f"{r['net']} {r['currency']} → {r['destination']}")
    if bad:
        return Check(name, FAIL, "; ".join(bad))
    return Check(name, PASS, f"{len(done)}/{len(done)} transfers found with matching amount and destination")


def payouts_visible(settings: Settings, facts: CycleFacts) -> Check:
    """Bank payouts recorded on ledger payouts are in Stripe; ones not recorded yet are information only."""
    from payops.stripe_api import make_client, with_backoff

    name = "payouts visible in Stripe"
    done = [r for r in facts.rows if r["status"] in ("transferred", "paid")]
    if facts.status is None or not done:
        return Check(name, SKIP, "no transferred ledger payout")
    known = [r for r in done if facts.payout_ids.get(r["ledger_payout_id"])]
    waiting = len(done) - len(known)
    note = f"; {waiting} not paid out to the bank yet (info: bank payouts arrive later)" if waiting else ""
    if not known:
        return Check(name, PASS, f"0/{len(done)} bank payouts recorded yet{note}")
    try:
        client = make_client(settings=settings, purpose="platform")
    except Exception as exc:  # noqa: BLE001
        return Check(name, FAIL, error_line(exc))
    bad = []
    for r in known:
        po_id = facts.payout_ids[r["ledger_payout_id"]]
        try:
            with_backoff(lambda p=po_id, a=r["destination"]: client.v1.payouts.retrieve(
                p, options={"stripe_account": a}))
        except Exception as exc:  # noqa: BLE001
            bad.append(f"{r['studio']}: {po_id} not retrievable on {r['destination']} ({error_line(exc)})")
    if bad:
        return Check(name, FAIL, "; ".join(bad) + note)
    return Check(name, PASS, f"{len(known)}/{len(done)} bank payouts found{note}")


def failures(facts: CycleFacts) -> Check:
    failed = [r for r in facts.rows if r["status"] == "failed"]
    if facts.status is None:
        return Check("failures", SKIP, "no payout run")
    if not failed:
        return Check("failures", PASS, "no failed ledger payout")
    return Check("failures", FAIL, f"{len(failed)} failed (manual fallback needed): " + "; ".join(
        f"{r['studio']} {r['ledger_payout_id']}: {r['failure'] or 'no reason recorded'}" for r in failed))


def kpis(facts: CycleFacts) -> list[Check]:
    from payops.cycle.report import PROCESSING_TARGET_SECONDS, SUCCESS_RATE_TARGET

    s = facts.summary
    rate = s.success_rate if s else None
    secs = s.processing_seconds if s else None
    rate_row = (Check("KPI success rate", SKIP, "no transfer attempted") if rate is None else
                Check("KPI success rate", PASS if rate > SUCCESS_RATE_TARGET else FAIL,
                      f"{rate:.1%} ({s.transferred} of {s.transferred + len(s.failed)}), target > "
                      f"{SUCCESS_RATE_TARGET:.0%}"))
    time_row = (Check("KPI processing time", SKIP, "the run has not finished") if secs is None else
                Check("KPI processing time", PASS if secs < PROCESSING_TARGET_SECONDS else FAIL,
                      f"{secs:.1f} s, target < {PROCESSING_TARGET_SECONDS // 60} min"))
    return [rate_row, time_row]


def summary_text(report: CheckReport, facts: CycleFacts) -> str:
    icon = ":white_check_mark:" if report.ok else ":rotating_light:"
    lines = [f"{icon} Post-run check, payout cycle {facts.cycle_date}: {report.summary()}"]
    if facts.summary is not None and facts.status is not None:
        lines.append(facts.summary.text())
    lines += [f"• {c.status} {c.name}: {c.detail}" for c in report.checks if c.status in (FAIL, WARN)]
    return "\n".join(lines)[:3500]


def post_summary(settings: Settings, report: CheckReport, facts: CycleFacts) -> Check:
    """The last post-run row: the summary (with every row before it) posted to Slack."""
    from payops.checks.probes import slack_post

    return slack_post(settings, summary_text(report, facts), name="slack summary")



def ledger_table(facts: CycleFacts) -> Any:
    """The cycle's ledger payouts as a table (the cycle report's), or a note when it did not run."""
    if facts.summary is None:
        return f"(no payout run for cycle {facts.cycle_date})"
    return facts.summary.frame()
