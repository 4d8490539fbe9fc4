"""Steps 10 (plan) and 30 (summary) of the payout cycle: what is decided, what happened, the KPIs.

Amounts stay integers in minor units; they are formatted (``Money.format``) only for display.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pandas as pd
from sqlalchemy import select

from payops.cycle import engine
from payops.cycle.plan import CyclePlan
from payops.cycle.policy import PayoutPolicy
from payops.cycle.runbook import CycleContext
from payops.db.models import PayoutSkip, Studio, utcnow
from payops.money import Money, exponent, totals_by_currency

SUCCESS_RATE_TARGET = 0.98
PROCESSING_TARGET_SECONDS = 300


def _fmt(amount: int | None, currency: str) -> str:
    return "" if amount is None else Money(int(amount), currency).format()


@dataclass
class PlanReport:
    cycle_date: str
    dry_run: bool
    state: str  # dry-run · new · resume · takeover · done
    policy: str
    payouts: list[dict[str, Any]] = field(default_factory=list)
    skips: list[dict[str, Any]] = field(default_factory=list)
    totals: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    ok: bool = True

    def as_dict(self) -> dict[str, Any]:
        return {"cycle_date": self.cycle_date, "dry_run": self.dry_run, "state": self.state, "policy": self.policy,
                "payouts": len(self.payouts), "skips": self.skips, "totals": self.totals, "notes": self.notes,
                "ok": self.ok}

    def summary(self) -> str:
        head = "DRY RUN — nothing written. " if self.dry_run else ""
        totals = ", ".join(_fmt(v, c) for c, v in self.totals.items()) or "nothing"
        return (f"{head}cycle {self.cycle_date} ({self.state}): {len(self.payouts)} studio payout(s) totalling "
                f"{totals}; {len(self.skips)} skipped and carried")

    def frame(self) -> pd.DataFrame:
        """Payouts then skips, amounts formatted (the notebook's table)."""
        rows = [{"studio": p["studio"], "decision": "pay", "gross": _fmt(p["gross"], p["currency"]),
                 "fee": _fmt(p["fee"], p["currency"]), "reserve": _fmt(p["reserve"], p["currency"]),
                 "net": _fmt(p["net"], p["currency"]), "status": p.get("status", "planned"), "reason": ""}
                for p in self.payouts]
        rows += [{"studio": k["studio"], "decision": f"skip ({k['code']})", "gross": _fmt(k["gross"], k["currency"]),
                  "fee": "", "reserve": "", "net": _fmt(k["net"], k["currency"]), "status": "carried",
                  "reason": k["reason"]} for k in self.skips]
        return pd.DataFrame(rows, columns=["studio", "decision", "gross", "fee", "reserve", "net", "status", "reason"])

    def chart(self) -> Any:
        """Net per studio (the 25 largest), one colour per currency; None when there is nothing to pay."""
        if not self.payouts:
            return None
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        top = sorted(self.payouts, key=lambda p: -p["net"])[:25]
        fig, ax = plt.subplots(figsize=(8, 0.3 * len(top) + 1.2))
        for cur in sorted({p["currency"] for p in top}):
            sel = [p for p in top if p["currency"] == cur]
            exp = exponent(cur)
            ax.barh([p["studio"] for p in sel], [p["net"] / 10 ** exp for p in sel], label=cur)
        ax.invert_yaxis()
        ax.set_xlabel("net payout (major units)")
        ax.set_title(f"Cycle {self.cycle_date}: net per studio" + (" (25 largest)" if len(self.payouts) > 25 else ""))
        ax.legend()
        fig.tight_layout()
        return fig


def _from_plan(plan: CyclePlan) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    payouts = [{"ledger_payout_id": p.ledger_payout_id, "studio": p.studio_name, "currency": p.currency,
                "gross": p.gross, "fee": p.fee, "reserve": p.reserve, "net": p.net, "status": "scheduled"}
               for p in plan.payouts]
    skips = [{"studio": k.studio_name, "studio_id": k.studio_id, "currency": k.currency, "gross": k.gross,
              "net": k.net, "code": k.code, "reason": k.reason} for k in plan.skips]
    return payouts, skips


def plan(ctx: CycleContext, now: datetime | None = None) -> PlanReport:
    """Dry run: the plan, nothing written. Live: claim the cycle and write the plan (or resume it)."""
    policy = PayoutPolicy.from_settings(ctx.settings)
    report = PlanReport(ctx.cycle_date.isoformat(), ctx.dry_run, "dry-run", policy.describe())
    now = now or utcnow()
    if ctx.dry_run:
        with ctx.session() as s:
            claim = engine.check_claim(s, ctx, now)
            report.notes += claim.notes
            if claim.run is None:
                report.payouts, report.skips = _from_plan(engine.compute_plan(s, ctx))
                report.totals = _totals(report.payouts)
                return report
    else:
        claim, new_plan = engine.claim_and_write_plan(ctx, now)
        report.state = claim.state
        report.notes += claim.notes
        if new_plan is not None:
            report.payouts, report.skips = _from_plan(new_plan)
            report.totals = _totals(report.payouts)
            return report
    with ctx.session() as s:  # the cycle exists: show what it holds
        row = engine.run_row(s, ctx)
        report.payouts = engine.ledger_rows(s, row.id) if row else []
        report.skips = _skips(s, row.id) if row else []
    report.totals = _totals(report.payouts)
    return report


def _totals(payouts: list[dict[str, Any]]) -> dict[str, int]:
    return totals_by_currency((p["currency"], int(p["net"])) for p in payouts)


def _skips(s: Any, run_id: str) -> list[dict[str, Any]]:
    q = (select(PayoutSkip, Studio.name).join(Studio, Studio.id == PayoutSkip.studio_id)
         .where(PayoutSkip.payout_run_id == run_id).order_by(Studio.name))
    return [{"studio": name, "studio_id": k.studio_id, "currency": k.currency, "gross": k.gross, "net": k.net,
             "code": k.code, "reason": k.reason} for k, name in s.execute(q)]


# --- step 30 -----------------------------------------------------------------------------------------------
@dataclass
class CycleSummary:
    cycle_date: str
    dry_run: bool
    status: str
    scheduled: int = 0
    transferred: int = 0
    failed: list[dict[str, Any]] = field(default_factory=list)
    skipped: int = 0
    totals: dict[str, int] = field(default_factory=dict)
    success_rate: float | None = None
    processing_seconds: float | None = None
    rows: list[dict[str, Any]] = field(default_factory=list)
    held: list[dict[str, Any]] = field(default_factory=list)  # held by the manual fallback: ledger payout, run
    alert: str | None = None
    ok: bool = True

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("cycle_date", "dry_run", "status", "scheduled", "transferred", "failed",
                                                "held", "skipped", "totals", "success_rate", "processing_seconds",
                                                "alert", "ok")}

    def kpis(self) -> pd.DataFrame:
        """The run's KPIs next to their targets, with pass/fail."""
        rate, secs = self.success_rate, self.processing_seconds
        return pd.DataFrame([
            {"kpi": "transfer success rate", "value": "—" if rate is None else f"{rate:.1%}",
             "target": f"> {SUCCESS_RATE_TARGET:.0%}", "result": "—" if rate is None else
             ("PASS" if rate > SUCCESS_RATE_TARGET else "FAIL")},
            {"kpi": "processing time", "value": "—" if secs is None else f"{secs:.1f} s",
             "target": f"< {PROCESSING_TARGET_SECONDS // 60} min", "result": "—" if secs is None else
             ("PASS" if secs < PROCESSING_TARGET_SECONDS else "FAIL")},
        ])

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame([{"studio": r["studio"], "net": _fmt(r["net"], r["currency"]), "status": r["status"],
                              "transfer": r["transfer"] or "", "failure": r["failure"] or ""} for r in self.rows],
                            columns=["studio", "net", "status", "transfer", "failure"])

    def text(self) -> str:
        totals = ", ".join(_fmt(v, c) for c, v in self.totals.items()) or "nothing"
        line = (f"Payout cycle {self.cycle_date}: {self.status} — {self.transferred}/{self.scheduled} transferred "
                f"({totals}), {len(self.failed)} failed, {self.skipped} skipped")
        if self.held:
            line += f"; {engine.held_note(self.held)}"
        if self.success_rate is not None:
            line += f"; success {self.success_rate:.1%}"
        if self.processing_seconds is not None:
            line += f", {self.processing_seconds:.0f} s"
        return line


def summarize(ctx: CycleContext) -> CycleSummary:
    with ctx.session() as s:
        row = engine.run_row(s, ctx)
        if row is None:
            return CycleSummary(ctx.cycle_date.isoformat(), ctx.dry_run, "dry-run: nothing written")
        rows = engine.ledger_rows(s, row.id)
        status = f"dry-run (the cycle itself is {row.status})" if ctx.dry_run else row.status
        summary = CycleSummary(ctx.cycle_date.isoformat(), ctx.dry_run, status, scheduled=len(rows),
                               skipped=row.studios_skipped, rows=rows)
        summary.transferred = sum(r["status"] in ("transferred", "paid") for r in rows)
        summary.failed = [{"studio": r["studio"], "ledger_payout_id": r["ledger_payout_id"], "reason": r["failure"]}
                          for r in rows if r["status"] == "failed"]
        summary.totals = _totals([r for r in rows if r["status"] in ("transferred", "paid")])
        summary.held = engine.held_by_manual(s, row.id)
        if summary.held and not ctx.dry_run:
            summary.status = f"{row.status}, {engine.held_note(summary.held)}"
        attempted = summary.transferred + len(summary.failed)
        summary.success_rate = summary.transferred / attempted if attempted else None
        if row.started_at and row.finished_at:
            summary.processing_seconds = (row.finished_at - row.started_at).total_seconds()
    return summary


def alert_failures(ctx: CycleContext, summary: CycleSummary) -> CycleSummary:
    """A partial cycle pages #payments-alerts with each failure and its reason (the fallback's work list)."""
    if summary.failed and not ctx.dry_run:
        from payops.cycle.transfers import alert

        lines = "\n".join(f"• {f['studio']} — ledger payout {f['ledger_payout_id']}: {f['reason']}"
                          for f in summary.failed[:20])
        more = f"\n…and {len(summary.failed) - 20} more" if len(summary.failed) > 20 else ""
        summary.alert = alert(ctx, f":warning: {summary.text()}\nManual fallback needed for:\n{lines}{more}")
    return summary
