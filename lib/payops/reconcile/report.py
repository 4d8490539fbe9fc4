"""Presentation of a :class:`~payops.reconcile.match.ReconResult`: tables, charts, exports.

Amounts in tables are exact decimal strings (``Money``), never floats; exports keep the integer
minor units beside them. Charts are :class:`matplotlib.figure.Figure` objects (no pyplot state).
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from payops.money import CURRENCY_EXPONENT, Money, MoneyError
from payops.reconcile.match import ReconResult, break_key
from payops.reconcile.schema import Category

__all__ = [
    "AGE_BUCKETS", "break_list", "chart_amounts_over_period", "chart_break_aging", "chart_breaks_by_category",
    "completeness_by_run", "deferred", "export", "fmt_amount", "manual_vs_automated", "other_periods",
    "summary_by_category",
]

_ORDER = {str(c): i for i, c in enumerate(Category)}
#: (label, lowest age in days, highest age in days) for the aging chart
AGE_BUCKETS: list[tuple[str, int, int]] = [
    ("0–7 d", 0, 7), ("8–30 d", 8, 30), ("31–60 d", 31, 60), ("61–90 d", 61, 90), ("> 90 d", 91, 10**9),
]


def fmt_amount(amount: Any, currency: str) -> str:
    """Minor units as an exact decimal string in ``currency`` ('' for a missing amount).

    ``Money`` formats; totals beyond ``Money``'s per-payout bound are formatted the same way here.
    """
    if amount is None or amount is pd.NA or (isinstance(amount, float) and amount != amount):
        return ""
    value = int(amount)
    try:
        return Money(value, currency).decimal_str()
    except MoneyError:
        exp = CURRENCY_EXPONENT.get(str(currency).upper(), 2)
        q, r = divmod(abs(value), 10**exp)
        return ("-" if value < 0 else "") + str(q) + (f".{r:0{exp}d}" if exp else "")


def _cat_sorted(df: pd.DataFrame, *more: str) -> pd.DataFrame:
    key = df["category"].map(_ORDER).fillna(99)
    return df.assign(_o=key).sort_values(["_o", *more]).drop(columns="_o").reset_index(drop=True)


def summary_by_category(result: ReconResult) -> pd.DataFrame:
    """Category × currency: count, ledger and Stripe totals (decimal strings; a Stripe total in another
    currency — CURRENCY_MISMATCH — is written with its code), and whether the category is a break."""
    r = result.results
    cols = ["category", "currency", "count", "ledger_total", "stripe_total", "is_break"]
    if r.empty:
        return pd.DataFrame(columns=cols)
    r = r.assign(ledger_amount=r["ledger_amount"].fillna(0), stripe_amount=r["stripe_amount"].fillna(0),
                 stripe_currency=r["stripe_currency"].fillna(r["currency"]))
    base = r.groupby(["category", "currency"]).agg(count=("category", "size"), ledger=("ledger_amount", "sum"))
    stripe = r.groupby(["category", "currency", "stripe_currency"])["stripe_amount"].sum()
    rows = []
    for (cat, cur), row in base.iterrows():
        parts = stripe.loc[(cat, cur)]
        if list(parts.index) == [cur]:
            stripe_total = fmt_amount(parts.iloc[0], cur)
        else:
            stripe_total = "; ".join(f"{fmt_amount(v, sc)} {sc}" for sc, v in parts.items())
        rows.append({"category": cat, "currency": cur, "count": int(row["count"]),
                     "ledger_total": fmt_amount(row["ledger"], cur), "stripe_total": stripe_total,
                     "is_break": cat not in ("MATCHED", "MATCHED_WITHIN_TOLERANCE")})
    return _cat_sorted(pd.DataFrame(rows, columns=cols), "currency")


def completeness_by_run(result: ReconResult, ledger: pd.DataFrame) -> pd.DataFrame:
    """Per payout run and currency: its cycle date, what the ledger expected, what reached the studios' banks
    (capped at what each ledger row was owed, so a duplicate does not inflate it), completeness %."""
    led = ledger[["ledger_payout_id", "run_id", "amount", "currency", "expected_at"]].copy()
    led["run_id"] = led["run_id"].fillna("(ad hoc)")
    led["cycle"] = led["expected_at"].dt.tz_convert(result.config.timezone).dt.date
    r = result.results
    pairs = r[r["ledger_amount"].notna() & r["transfer_id"].notna() & r["reached_bank"]
              & (r["stripe_currency"] == r["currency"])]
    paid = pairs[["ledger_payout_id", "ledger_amount", "stripe_amount"]].copy()
    paid["paid"] = paid[["ledger_amount", "stripe_amount"]].min(axis=1).clip(lower=0)
    led = led.merge(paid[["ledger_payout_id", "paid"]], on="ledger_payout_id", how="left")
    led["reached"] = led["paid"].notna()
    led["paid"] = led["paid"].fillna(0).astype("int64")
    g = led.groupby(["run_id", "currency"]).agg(
        cycle=("cycle", "min"), payouts=("ledger_payout_id", "size"), reached=("reached", "sum"),
        expected_minor=("amount", "sum"), paid_minor=("paid", "sum"),
    ).reset_index()
    g["expected"] = [fmt_amount(a, c) for a, c in zip(g["expected_minor"], g["currency"], strict=True)]
    g["paid"] = [fmt_amount(a, c) for a, c in zip(g["paid_minor"], g["currency"], strict=True)]
    g["completeness_pct"] = [round(100 * int(p) / int(e), 2) if int(e) else 100.0
                             for p, e in zip(g["paid_minor"], g["expected_minor"], strict=True)]
    for c in ("payouts", "reached", "expected_minor", "paid_minor"):
        g[c] = g[c].astype("int64")
    return g[["cycle", "run_id", "currency", "payouts", "reached", "expected", "paid", "completeness_pct",
              "expected_minor", "paid_minor"]].sort_values(["cycle", "run_id", "currency"]).reset_index(drop=True)


def manual_vs_automated(result: ReconResult) -> pd.DataFrame:
    """Per Stripe currency and source (automated · manual): transfers, amount, count and amount share (%)."""
    r = result.results
    t = r[r["transfer_id"].notna()]
    cols = ["currency", "source", "transfers", "amount", "count_share_pct", "amount_share_pct", "amount_minor"]
    if t.empty:
        return pd.DataFrame(columns=cols)
    g = t.groupby(["stripe_currency", "source"]).agg(
        transfers=("transfer_id", "size"), amount_minor=("stripe_amount", "sum")).reset_index()
    g = g.rename(columns={"stripe_currency": "currency"})
    tot_n = g.groupby("currency")["transfers"].transform("sum")
    tot_a = g.groupby("currency")["amount_minor"].transform("sum")
    g["count_share_pct"] = (100 * g["transfers"] / tot_n).round(2).astype(float)
    g["amount_share_pct"] = [round(100 * int(a) / int(t_), 2) if int(t_) else 0.0
                             for a, t_ in zip(g["amount_minor"], tot_a, strict=True)]
    g["amount"] = [fmt_amount(a, c) for a, c in zip(g["amount_minor"], g["currency"], strict=True)]
    g["transfers"] = g["transfers"].astype("int64")
    g["amount_minor"] = g["amount_minor"].astype("int64")
    return g[cols].sort_values(["currency", "source"]).reset_index(drop=True)


def other_periods(result: ReconResult) -> pd.DataFrame:
    """The ledger payouts of other periods that this period's transfers paid: ledger id, run, expected date,
    category, transfer, amounts — what closes the previous period's TIMING_IN_TRANSIT or MISSING_IN_STRIPE."""
    cols = ["ledger_payout_id", "run_id", "expected_at", "category", "transfer_id", "ledger_amount", "stripe_amount"]
    r = result.results
    rows = r[r["ledger_payout_id"].isin(result.other_period_ids).fillna(False).to_numpy(dtype=bool)]
    if rows.empty:
        return pd.DataFrame(columns=cols)
    out = rows[["ledger_payout_id", "run_id", "expected_at", "category", "transfer_id"]].copy()
    out["expected_at"] = out["expected_at"].dt.tz_convert(result.config.timezone).dt.date
    out["ledger_amount"] = [fmt_amount(a, c) for a, c in zip(rows["ledger_amount"], rows["currency"], strict=True)]
    scur = rows["stripe_currency"].fillna(rows["currency"])
    out["stripe_amount"] = [fmt_amount(a, c) for a, c in zip(rows["stripe_amount"], scur, strict=True)]
    return out[cols].sort_values(["expected_at", "ledger_payout_id", "transfer_id"]).reset_index(drop=True)


def deferred(result: ReconResult) -> pd.DataFrame:
    """The transfers left to the next period (created after the period end for another period's ledger payout):
    transfer, created, amount, destination, the ledger id it names, why."""
    cols = ["transfer_id", "created", "amount", "destination", "ledger_payout_id", "reason"]
    d = result.deferred
    if d.empty:
        return pd.DataFrame(columns=cols)
    out = d[["transfer_id", "created", "destination", "ledger_payout_id", "reason"]].copy()
    out["created"] = out["created"].dt.tz_convert(result.config.timezone).dt.strftime("%Y-%m-%d %H:%M")
    out["amount"] = [fmt_amount(a, c) + f" {c}" for a, c in zip(d["amount"], d["currency"], strict=True)]
    return out[cols].sort_values(["created", "transfer_id"]).reset_index(drop=True)


def break_list(result: ReconResult, first_seen: dict[str, date] | None = None,
               as_of: date | None = None) -> pd.DataFrame:
    """One row per break: key, category, reason, evidence ids, amounts (decimal strings and minor
    units), suggested action, first seen and age in days as of ``as_of`` (default today). A break not
    in ``first_seen`` is first seen ``as_of``."""
    as_of = as_of or date.today()
    b = result.breaks()
    seen = first_seen or {}
    keys = [break_key(row) for row in b[["category", "ledger_payout_id", "transfer_id"]].to_dict("records")]
    first = [seen.get(k, as_of) for k in keys]
    cur = b["currency"].tolist()
    scur = b["stripe_currency"].fillna(b["currency"]).tolist()
    out = pd.DataFrame({
        "break_key": keys,
        "category": b["category"].tolist(),
        "reason": b["reason"].tolist(),
        "ledger_payout_id": b["ledger_payout_id"].tolist(),
        "transfer_id": b["transfer_id"].tolist(),
        "payout_id": b["payout_id"].tolist(),
        "currency": cur,
        "ledger_amount": [fmt_amount(a, c) for a, c in zip(b["ledger_amount"], cur, strict=True)],
        "stripe_amount": [fmt_amount(a, c) for a, c in zip(b["stripe_amount"], scur, strict=True)],
        "stripe_currency": scur,
        "difference": [fmt_amount(a, c) for a, c in zip(b["difference"], cur, strict=True)],
        "suggested_action": b["suggested_action"].tolist(),
        "confidence": b["confidence"].tolist(),
        "first_seen": first,
        "age_days": [(as_of - f).days for f in first],
        "ledger_amount_minor": b["ledger_amount"].astype("Int64"),
        "stripe_amount_minor": b["stripe_amount"].astype("Int64"),
        "difference_minor": b["difference"].astype("Int64"),
    })
    for c in ("ledger_payout_id", "transfer_id", "payout_id", "currency", "stripe_currency"):
        out[c] = out[c].astype("string")
    out["age_days"] = out["age_days"].astype("int64")
    return out


# --- charts ----------------------------------------------------------------------------------------
def chart_breaks_by_category(result: ReconResult) -> Figure:
    """Horizontal bars: number of breaks per category (one bar per category present)."""
    b = result.breaks()
    counts = b["category"].value_counts()
    counts = counts.reindex(sorted(counts.index, key=lambda c: _ORDER.get(c, 99), reverse=True))
    fig = Figure(figsize=(8, max(2.5, 0.45 * len(counts) + 1)))
    ax = fig.add_subplot()
    ax.barh(list(counts.index), counts.to_numpy())
    for y, v in enumerate(counts.to_numpy()):
        ax.annotate(str(int(v)), (v, y), xytext=(3, 0), textcoords="offset points", va="center")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # counts: no 0.5 ticks
    ax.margins(x=0.08)  # room for the last bar's label
    ax.set_xlabel("breaks")
    ax.set_title(f"Breaks by category ({int(counts.sum())} in {result.config.period_from} – {result.config.period_to})")
    fig.tight_layout()
    return fig


def chart_amounts_over_period(result: ReconResult) -> Figure:
    """Amount paid per day (transfer created date, net of reversals) per currency, over the transfers this
    reconciliation counts (not the ones left to the next period) — one bar series per currency, in major
    units (a chart, so floats are fine here)."""
    r = result.results
    t = r.loc[r["transfer_id"].notna(), ["transfer_created", "stripe_currency", "stripe_amount"]]
    t = t.assign(day=t["transfer_created"].dt.tz_convert(result.config.timezone).dt.date,
                 net=t["stripe_amount"].astype("int64"), currency=t["stripe_currency"])
    g = t.groupby(["day", "currency"])["net"].sum().unstack(fill_value=0).sort_index()
    fig = Figure(figsize=(10, 4))
    ax = fig.add_subplot()
    if not g.empty:
        days = list(g.index)
        width = 0.8 / max(len(g.columns), 1)
        for i, cur in enumerate(g.columns):
            major = g[cur].to_numpy() / 10 ** CURRENCY_EXPONENT.get(cur, 2)
            ax.bar([j + i * width for j in range(len(days))], major, width=width, label=cur)
        step = max(1, len(days) // 12)
        ax.set_xticks([j + 0.4 - width / 2 for j in range(0, len(days), step)])
        ax.set_xticklabels([str(d) for d in days[::step]], rotation=45, ha="right")
        ax.legend(title="currency")
    ax.set_ylabel("paid (major units)")
    ax.set_title("Amount transferred per day and currency (net of reversals)")
    fig.tight_layout()
    return fig


def chart_break_aging(breaks: pd.DataFrame) -> Figure:
    """Bars: breaks per age bucket (``AGE_BUCKETS``), from :func:`break_list` output."""
    ages = breaks["age_days"].astype("int64") if len(breaks) else pd.Series([], dtype="int64")
    counts = [int(((ages >= lo) & (ages <= hi)).sum()) for _, lo, hi in AGE_BUCKETS]
    fig = Figure(figsize=(7, 3.5))
    ax = fig.add_subplot()
    ax.bar([label for label, _, _ in AGE_BUCKETS], counts, color="#c0504d")
    for x, v in enumerate(counts):
        ax.annotate(str(v), (x, v), xytext=(0, 3), textcoords="offset points", ha="center")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylim(0, max(max(counts), 1) * 1.15)  # the tallest bar's label below the title
    ax.set_ylabel("open breaks")
    ax.set_title("Break aging (days since first seen)")
    fig.tight_layout()
    return fig


# --- export ----------------------------------------------------------------------------------------
EXPORT_FILES = ("breaks.csv", "matched.csv", "reconciliation.xlsx")
_XLSX_MAX_ROWS = 1_048_575


def _for_files(df: pd.DataFrame) -> pd.DataFrame:
    """Timestamps as ISO strings (Excel has no time zones), dates as ISO dates."""
    out = df.copy()
    for c in out.columns:
        if isinstance(out[c].dtype, pd.DatetimeTZDtype):
            out[c] = out[c].dt.strftime("%Y-%m-%dT%H:%M:%SZ").astype("object")
        elif c == "first_seen":
            out[c] = [d.isoformat() for d in out[c]]
    return out


def export(result: ReconResult, folder: Path, first_seen: dict[str, date] | None = None,
           as_of: date | None = None) -> list[Path]:
    """Write breaks.csv, matched.csv (every result row) and reconciliation.xlsx (sheets summary,
    breaks, all) into ``folder``. Refuses (FileExistsError, nothing written) if any of them exists."""
    folder = Path(folder)
    paths = [folder / name for name in EXPORT_FILES]
    existing = [p for p in paths if p.exists()]
    if existing:
        raise FileExistsError(f"refusing to overwrite {', '.join(str(p) for p in existing)}")
    folder.mkdir(parents=True, exist_ok=True)
    breaks = _for_files(break_list(result, first_seen, as_of))
    everything = result.results.sort_values(["category", "ledger_payout_id", "transfer_id"], na_position="last")
    everything = _for_files(everything.reset_index(drop=True))
    breaks.to_csv(paths[0], index=False)
    everything.to_csv(paths[1], index=False)
    with pd.ExcelWriter(paths[2], engine="openpyxl") as xl:
        summary_by_category(result).to_excel(xl, sheet_name="summary", index=False)
        breaks.to_excel(xl, sheet_name="breaks", index=False)
        if len(everything) <= _XLSX_MAX_ROWS:
            everything.to_excel(xl, sheet_name="all", index=False)
        else:
            pd.DataFrame({"note": [f"{len(everything)} rows exceed Excel's sheet limit; see matched.csv"]}).to_excel(
                xl, sheet_name="all", index=False)
    return paths
