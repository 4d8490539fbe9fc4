"""The four monitoring dashboards' tables and charts, drawn from the same snapshot and rules as the alerts.

:func:`load` takes one :class:`~payops.monitor.facts.Snapshot` (``load_snapshot``), evaluates the rules on it
and adds the scheduler's recent executions; every panel below reads only that, so a number on a dashboard is
the number a rule compared with its threshold.

1. Payout health — next scheduled cycle, job durations, success / error counts, retries, CAD per cycle vs the
   prior cycle;
2. Fallback activity — manual payouts in the rolling window, CAD via fallback vs the automated share limit,
   detection-to-transfer time;
3. Reserves & balances — aggregate reserve, studios under the buffer and below the minimum, payouts held by
   reserve caps;
4. Credential expiry — each credential with days left, coloured by the 30 / 14 / 7 / 3 steps.

Charts are matplotlib ``Figure`` objects (no pyplot state); amounts in charts are major units (floats are
fine in a picture), in tables they are formatted exactly from minor units.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from payops.config import Settings
from payops.money import Money, exponent
from payops.monitor import rules
from payops.monitor.facts import Snapshot
from payops.monitor.thresholds import Thresholds, pct

STEP_COLOURS = {None: "#2e7d32", 30: "#f9a825", 14: "#ef6c00", 7: "#d84315", 3: "#b71c1c"}
SEV_COLOURS = {"SEV-2": "#ffcdd2", "SEV-3": "#ffe0b2", "SEV-4": "#e1f5fe"}


@dataclass
class Dashboard:
    at: datetime
    th: Thresholds
    snap: Snapshot
    conditions: list[rules.Condition]
    levels: list[rules.ReserveLevel]
    executions: list[dict[str, Any]] = field(default_factory=list)
    next_slots: dict[str, datetime] = field(default_factory=dict)


def load(settings: Settings, at: datetime | None = None) -> Dashboard:
    """Everything the four dashboards show, as of ``at`` (default now)."""
    from sqlalchemy import select

    from payops.db import session_scope
    from payops.db.models import ScheduledExecution
    from payops.monitor.check import evaluate_at
    from payops.scheduler.jobs import default_registry
    from payops.scheduler.status import next_slot_per_job

    at = (at or datetime.now(UTC)).astimezone(UTC)
    th = Thresholds.from_settings(settings)
    snap, conditions = evaluate_at(settings, at, th)
    with session_scope(settings) as s:
        rows = s.execute(select(ScheduledExecution).where(
            ScheduledExecution.slot_at > at - timedelta(days=30), ScheduledExecution.slot_at <= at)).scalars().all()
        executions = [{"job": r.job, "status": r.status, "slot_at": r.slot_at,
                       "seconds": (r.finished_at - r.started_at).total_seconds()
                       if r.finished_at and r.started_at else None} for r in rows]
    nxt = {name: slot.at for name, slot in next_slot_per_job(settings, at, default_registry()).items()}
    return Dashboard(at, th, snap, conditions, rules.reserve_levels(snap, th), executions, nxt)


def _major(amount: int, currency: str) -> float:
    return amount / 10 ** exponent(currency)


def _fmt(amount: int, currency: str) -> str:
    return Money(amount, currency).format()


def table(frame: pd.DataFrame) -> Any:
    """A frame as the notebook shows it: no index, text left-aligned, missing values as a dash."""
    return (frame.style.hide(axis="index").format(na_rep="—", precision=1)
            .set_properties(**{"text-align": "left"})
            .set_table_styles([{"selector": "th", "props": [("text-align", "left")]}]))


def open_conditions(d: Dashboard) -> pd.DataFrame:
    """What the rules see right now (what `payops monitor check` would page, post or mail)."""
    return pd.DataFrame([{"severity": c.severity, "rule": c.rule, "condition": c.summary} for c in d.conditions],
                        columns=["severity", "rule", "condition"])


def styled_conditions(d: Dashboard) -> Any:
    return table(open_conditions(d)).map(lambda v: f"background-color: {SEV_COLOURS.get(v, 'white')}",
                                         subset=["severity"])


# --- 1. payout health ----------------------------------------------------------------------------------
def cycles(d: Dashboard, currency: str | None = None) -> pd.DataFrame:
    """One row per payout run: status, duration, studios processed, retries, the currency's total and its change
    against the prior cycle."""
    cur = currency or d.th.fallback_currency
    rows, prior = [], None
    for r in sorted(d.snap.runs, key=lambda r: r.cycle_date):
        took = r.duration(d.at)
        total = r.paid_totals.get(cur, 0)
        change = None if not prior else round(100 * (total - prior) / prior, 1)
        rows.append({"cycle": r.cycle_date, "status": r.status,
                     "minutes": None if took is None else round(took.total_seconds() / 60, 1),
                     "scheduled": r.scheduled, "processed": r.processed,
                     "processed %": round(100 * r.processed / r.scheduled, 1) if r.scheduled else None,
                     "retries": r.retries, f"{cur} paid": _fmt(total, cur), "vs prior %": change})
        prior = total or prior
    return pd.DataFrame(rows)


def health_summary(d: Dashboard) -> pd.DataFrame:
    """Next scheduled run, success / error counts (payout runs and scheduler jobs, last 30 days), retries."""
    runs = d.snap.runs
    recent = [r for r in runs if r.started_at and r.started_at > d.at - timedelta(days=30)]
    by_job: dict[str, dict[str, int]] = {}
    for e in d.executions:
        by_job.setdefault(e["job"], {}).setdefault(e["status"], 0)
        by_job[e["job"]][e["status"]] += 1
    rows = [{"what": "next payout cycle", "value": f"{d.snap.next_cycle_at:%Y-%m-%d %H:%M}Z"
             if d.snap.next_cycle_at else "—"}]
    rows += [{"what": f"next {job}", "value": f"{at:%Y-%m-%d %H:%M}Z"} for job, at in sorted(d.next_slots.items())
             if job != "payout-cycle"]
    rows.append({"what": "payout runs, last 30 days", "value": ", ".join(
        f"{n} {st}" for st, n in sorted(_count(r.status for r in recent).items())) or "none"})
    rows += [{"what": f"scheduler {job}, last 30 days", "value": ", ".join(f"{n} {st}" for st, n in sorted(c.items()))}
             for job, c in sorted(by_job.items())]
    rows.append({"what": "transfer retries, last 30 days", "value": str(sum(r.retries for r in recent))})
    return pd.DataFrame(rows)


def _count(items: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for x in items:
        out[x] = out.get(x, 0) + 1
    return out


def chart_payout_health(d: Dashboard) -> Figure | None:
    """Left: each cycle's duration against the limit. Right: the currency paid per cycle, change vs prior."""
    runs = sorted(d.snap.runs, key=lambda r: r.cycle_date)[-24:]
    if not runs:
        return None
    cur = d.th.fallback_currency
    fig = Figure(figsize=(11, 3.8))
    ax1, ax2 = fig.subplots(1, 2)
    labels = [r.cycle_date.strftime("%m-%d") for r in runs]
    minutes = [(r.duration(d.at) or timedelta(0)).total_seconds() / 60 for r in runs]
    colours = ["#c62828" if m > d.th.max_run_minutes or r.status in ("failed", "partial") else "#2e7d32"
               for m, r in zip(minutes, runs, strict=True)]
    ax1.bar(labels, minutes, color=colours)
    ax1.axhline(d.th.max_run_minutes, color="#c62828", ls="--", lw=1, label=f"limit {d.th.max_run_minutes} min")
    ax1.set_ylabel("minutes")
    ax1.set_title("Cycle duration (red: over the limit or failed)")
    ax1.legend(loc="upper left", fontsize=8)
    totals = [_major(r.paid_totals.get(cur, 0), cur) for r in runs]
    ax2.bar(labels, totals, color="#1565c0")
    for i in range(1, len(totals)):
        if totals[i - 1]:
            ax2.annotate(f"{100 * (totals[i] - totals[i - 1]) / totals[i - 1]:+.0f}%", (i, totals[i]),
                         ha="center", va="bottom", fontsize=7)
    ax2.set_ylabel(cur)
    ax2.set_title(f"{cur} paid per cycle (vs the prior cycle)")
    for ax in (ax1, ax2):
        ax.tick_params(axis="x", labelrotation=60, labelsize=7)
    fig.tight_layout()
    return fig


# --- 2. fallback activity ------------------------------------------------------------------------------
def fallback_table(d: Dashboard) -> pd.DataFrame:
    uses = rules.fallback_in_window(d.snap, d.th)
    return pd.DataFrame([{
        "transferred": f"{u.transferred_at:%Y-%m-%d %H:%M}Z", "incident": u.incident_id, "studio": u.studio_name,
        "amount": _fmt(u.amount, u.currency),
        "detection → transfer (min)": round((u.transferred_at - u.detected_at).total_seconds() / 60, 1)
        if u.detected_at else None,
        "records missing": ", ".join(u.missing) or "—", "run": u.run_id} for u in uses],
        columns=["transferred", "incident", "studio", "amount", "detection → transfer (min)", "records missing", "run"])


def fallback_summary(d: Dashboard) -> pd.DataFrame:
    uses = rules.fallback_in_window(d.snap, d.th)
    cur = d.th.fallback_currency
    manual = sum(u.amount for u in uses if u.currency == cur)
    automated = d.snap.automated_volume.get(cur, 0)
    share = f"{manual / automated:.2%}" if automated else ("—" if not manual else "no automated volume")
    return pd.DataFrame([
        {"what": f"manual payouts, last {d.th.fallback_window_days} days", "value": str(len(uses)),
         "threshold": f"more than {d.th.fallback_max_count}"},
        {"what": f"{cur} via fallback", "value": _fmt(manual, cur), "threshold": ""},
        {"what": f"automated {cur}", "value": _fmt(automated, cur), "threshold": ""},
        {"what": "fallback share", "value": share, "threshold": f"above {pct(d.th.fallback_max_share_bps)}"},
    ])


def chart_fallback(d: Dashboard) -> Figure:
    """Left: manual payouts in the rolling window, day by day over 90 days. Right: detection → transfer time."""
    fig = Figure(figsize=(11, 3.6))
    ax1, ax2 = fig.subplots(1, 2)
    days = [d.at - timedelta(days=n) for n in range(89, -1, -1)]
    window = timedelta(days=d.th.fallback_window_days)
    counts = [sum(1 for u in d.snap.fallback if day - window < u.transferred_at <= day) for day in days]
    ax1.step([x.date() for x in days], counts, where="post", color="#6a1b9a")
    ax1.axhline(d.th.fallback_max_count, color="#c62828", ls="--", lw=1,
                label=f"alert above {d.th.fallback_max_count}")
    ax1.set_title(f"Manual payouts in the rolling {d.th.fallback_window_days} days")
    ax1.yaxis.get_major_locator().set_params(integer=True)
    ax1.legend(loc="upper left", fontsize=8)
    ax1.tick_params(axis="x", labelrotation=30, labelsize=7)
    uses = [u for u in rules.fallback_in_window(d.snap, d.th) if u.detected_at]
    if uses:
        mins = [(u.transferred_at - u.detected_at).total_seconds() / 60 for u in uses]
        ax2.barh([u.incident_id for u in uses], mins, color=["#c62828" if m > 45 else "#2e7d32" for m in mins])
        ax2.axvline(45, color="#555", ls=":", lw=1, label="45-min SLA")
        ax2.legend(loc="lower right", fontsize=8)
    else:
        ax2.text(0.5, 0.5, "no manual payout in the window", ha="center", va="center", transform=ax2.transAxes)
    ax2.set_xlabel("minutes")
    ax2.set_title("Detection → transfer")
    fig.tight_layout()
    return fig


# --- 3. reserves & balances ----------------------------------------------------------------------------
def reserves_summary(d: Dashboard) -> pd.DataFrame:
    per: dict[str, dict[str, Any]] = {}
    for lv in d.levels:
        c = per.setdefault(lv.studio.currency, {"studios": 0, "now": 0, "projected": 0, "buffer": 0, "below": 0})
        c["studios"] += 1
        c["now"] += lv.studio.reserve_now
        c["projected"] += lv.projected_reserve
        c["below"] += lv.below_minimum()
        c["buffer"] += (not lv.below_minimum()) and lv.under_buffer(d.th)
    rows = []
    for cur in sorted(set(per) | set(d.snap.held_by_reserve)):
        c = per.get(cur, {"studios": 0, "now": 0, "projected": 0, "buffer": 0, "below": 0})
        held_n, held_net = d.snap.held_by_reserve.get(cur, (0, 0))
        rows.append({"currency": cur, "studios with a minimum": c["studios"], "reserve held": _fmt(c["now"], cur),
                     "projected after next cycle": _fmt(c["projected"], cur),
                     f"under the {pct(d.th.reserve_buffer_bps)} buffer": c["buffer"], "below minimum": c["below"],
                     "payouts held by reserve caps": f"{held_n} ({_fmt(held_net, cur)})"})
    return pd.DataFrame(rows)


def reserve_watchlist(d: Dashboard, limit: int = 15) -> pd.DataFrame:
    worst = sorted((lv for lv in d.levels if lv.under_buffer(d.th)),
                   key=lambda lv: lv.level / max(lv.studio.minimum, 1))[:limit]
    return pd.DataFrame([{"studio": lv.studio.name, "held": _fmt(lv.studio.reserve_now, lv.studio.currency),
                          "projected": _fmt(lv.projected_reserve, lv.studio.currency),
                          "minimum": _fmt(lv.studio.minimum, lv.studio.currency),
                          "level % of minimum": round(100 * lv.level / lv.studio.minimum, 1)} for lv in worst],
                        columns=["studio", "held", "projected", "minimum", "level % of minimum"])


def chart_reserves(d: Dashboard) -> Figure | None:
    """Studios by reserve level as a share of their minimum (held or projected, whichever is lower)."""
    if not d.levels:
        return None
    ratios = [min(300.0, 100 * lv.level / lv.studio.minimum) for lv in d.levels]
    fig = Figure(figsize=(11, 3.4))
    ax = fig.add_subplot()
    ax.hist(ratios, bins=list(range(0, 305, 5)), color="#00838f")
    ax.axvline(100, color="#c62828", ls="--", lw=1, label="minimum")
    ax.axvline(100 + d.th.reserve_buffer_bps / 100, color="#ef6c00", ls="--", lw=1,
               label=f"minimum + {pct(d.th.reserve_buffer_bps)}")
    ax.set_xlabel("reserve level, % of the studio's minimum (300 = 300% or more)")
    ax.set_ylabel("studios")
    ax.yaxis.get_major_locator().set_params(integer=True)
    ax.set_title(f"Reserve levels, {len(d.levels)} studios with a minimum")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


# --- 4. credential expiry ------------------------------------------------------------------------------
def credential_rows(d: Dashboard) -> list[dict[str, Any]]:
    out = []
    for c in d.snap.credentials:
        found = rules.credential_deadline(c, d.th)
        left = rules.days_left(found[0], d.at) if found else None
        out.append({"name": c.name, "kind": rules.CREDENTIAL_KINDS.get(c.kind, c.kind),
                    "deadline": f"{found[0]:%Y-%m-%d}" if found else "—", "what": found[1] if found else "no date",
                    "days left": None if left is None else round(left, 1),
                    "step": None if left is None else rules.credential_step(left, d.th),
                    "why due": c.rotation_due_reason or ""})
    return sorted(out, key=lambda r: (r["days left"] is None, r["days left"] or 0))


def credentials_table(d: Dashboard) -> Any:
    rows = [r | {"step": f"{r['step']}-day" if r["step"] else "—"} for r in credential_rows(d)]
    frame = pd.DataFrame(rows, columns=["name", "kind", "deadline", "what", "days left", "step", "why due"])
    colour = {f"{k}-day" if k else "—": v for k, v in STEP_COLOURS.items()}
    return table(frame).map(lambda v: f"background-color: {colour.get(v, '#2e7d32')}; color: white",
                            subset=["step"])


def chart_credentials(d: Dashboard) -> Figure | None:
    rows = [r for r in credential_rows(d) if r["days left"] is not None]
    if not rows:
        return None
    fig = Figure(figsize=(11, max(2.4, 0.42 * len(rows) + 1.2)))
    ax = fig.add_subplot()
    left = [max(min(r["days left"], 120), -30) for r in rows]
    ax.barh([r["name"] for r in rows], left, color=[STEP_COLOURS.get(r["step"]) for r in rows])
    for y, r in enumerate(rows):
        ax.annotate(f"{r['days left']:g} d", (left[y], y), xytext=(3, 0), textcoords="offset points", va="center",
                    fontsize=8)
    for step in d.th.steps:
        ax.axvline(step, color=STEP_COLOURS.get(step, "#999"), ls="--", lw=1)
        ax.text(step, 1.01, f"{step}d", color=STEP_COLOURS.get(step, "#999"), fontsize=8, ha="center",
                va="bottom", transform=ax.get_xaxis_transform())
    ax.axvline(0, color="black", lw=1)
    ax.invert_yaxis()
    ax.margins(x=0.1)
    ax.set_xlabel("days left (clipped to −30 … 120)")
    ax.set_title("Credential expiry: green > 30 d · 30 · 14 · 7 · 3-day steps (page)", pad=16)
    fig.tight_layout()
    return fig
