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


def _success(fig: Figure, series: dict[str, Any], failures: list[dict[str, Any]]) -> Figure | None:
    rows = series["rate_buckets"]
    if not any(r["attempts"] for r in rows):
        return None
    threshold = float(series.get("threshold", 97))
    ax, bx = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    xs = list(range(len(rows)))
    ys = [float(r["percent"]) if r["attempts"] else 0.0 for r in rows]
    colours = [GREY if not r["attempts"] else GREEN if y >= threshold else RED for r, y in zip(rows, ys, strict=True)]
    ax.bar(xs, ys, color=colours)
    for x, r in zip(xs, rows, strict=True):
        ax.annotate(f"{r['succeeded']}/{r['attempts']}" if r["attempts"] else "–", (x, ys[x] + 1), ha="center",
                    fontsize=7)
    ax.axhline(threshold, color=GREY, linestyle="--", linewidth=1, label=f"{threshold:g}% threshold")
    ax.set_xticks(xs, [_hhmm(r["from"]) for r in rows], rotation=45, fontsize=7)
    ax.set_ylim(0, 108)
    ax.set_ylabel("PaymentIntent success %")
    ax.set_title("Success per 5 minutes (UTC; succeeded/attempts)", fontsize=10)
    ax.legend(loc="lower left", fontsize=8)
    if failures:
        labels = [f"{f['code']} / {f['decline_code']}" if f["decline_code"] else f["code"] for f in failures][::-1]
        bx.barh(labels, [f["count"] for f in failures][::-1], color=RED)
        bx.tick_params(axis="y", labelsize=8)
    else:
        bx.text(0.5, 0.5, "no payment failed", ha="center", va="center")
        bx.set_yticks([])
    bx.set_xlabel("payment_intent.payment_failed")
    bx.set_title("Failures by error code / decline code", fontsize=10)
    fig.tight_layout()
    return fig


def triage_chart(result: Any) -> Figure | None:
    series = result.series or {}
    fig = Figure(figsize=(11, 3.6))
    if "rate_buckets" in series:
        return _success(fig, series, (result.details or {}).get("failures_by_code", []))
    ax = fig.add_subplot(1, 1, 1)
    if "expired_per_hour" in series:
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
