"""The triage's chart, one per scenario (matplotlib ``Figure`` objects; notebooks show them with
:func:`payops.charts.show`): success rate per 5 minutes, expirations per hour, messages by age, receipts by
problem."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from matplotlib.figure import Figure

RED, GREEN, GREY = "#c0392b", "#27ae60", "#7f8c8d"


def _hhmm(t: int) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%H:%M")


def triage_chart(result: Any) -> Figure | None:
    series = result.series or {}
    fig = Figure(figsize=(9, 3.4))
    ax = fig.add_subplot(1, 1, 1)
    if "rate_buckets" in series:
        rows = [r for r in series["rate_buckets"] if r["attempts"]]
        if not rows:
            return None
        xs = [_hhmm(r["from"]) for r in rows]
        ys = [float(r["percent"]) for r in rows]
        ax.bar(xs, ys, color=[GREEN if y >= 97 else RED for y in ys])
        ax.axhline(97, color=GREY, linestyle="--", linewidth=1, label="97% threshold")
        ax.set_ylim(0, 100)
        ax.set_ylabel("PaymentIntent success %")
        ax.set_title("Checkout payment success per 5 minutes (UTC)")
        ax.legend(loc="lower left")
    elif "expired_per_hour" in series:
        rows = series["expired_per_hour"]
        ax.bar([_hhmm(r["from"]) for r in rows], [r["expired"] for r in rows], color=GREY)
        ax.set_ylabel("sessions expired")
        ax.set_title("checkout.session.expired per hour, last 24 h (UTC) — flat at 0 is the symptom")
        ax.tick_params(axis="x", labelrotation=60, labelsize=7)
    elif "age_buckets" in series:
        labels = ["<5", "5–15", "15–30", "30–60", "60–120", "120–240", "≥240"]
        counts = series["age_buckets"]
        ax.bar(labels, counts, color=[GREEN] * 3 + [RED] * 4)
        ax.set_xlabel("minutes waiting in the retry queue")
        ax.set_ylabel("messages")
        ax.set_title("Retry queue messages by age (red: past the 30-minute incident rule)")
    elif "by_problem" in series:
        items = sorted(series["by_problem"].items(), key=lambda kv: -kv[1])
        if not items:
            return None
        ax.barh([k for k, _ in items], [v for _, v in items], color=RED)
        ax.set_xlabel("paid sessions")
        ax.set_title("Receipt errors by problem")
    else:
        return None
    fig.tight_layout()
    return fig
