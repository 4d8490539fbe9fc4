"""Report tables, charts and exports say what they claim; money is exact decimal strings."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import openpyxl
import pandas as pd
import pytest
from matplotlib.figure import Figure

from payops.reconcile import report
from payops.reconcile.match import reconcile
from payops.reconcile.schema import ReconConfig
from payops.reconcile.synth import planted_dataset


@pytest.fixture(scope="module")
def planted():  # type: ignore[no-untyped-def]
    p = planted_dataset(n_clean=40, per_category=2)
    return p, reconcile(p.ledger, p.transfers, p.links, p.config)


def test_fmt_amount_is_exact_per_currency() -> None:
    assert report.fmt_amount(87550, "CAD") == "875.50"
    assert report.fmt_amount(-5, "CAD") == "-0.05"
    assert report.fmt_amount(1234, "JPY") == "1234"
    assert report.fmt_amount(1234567, "KWD") == "1234.567"
    assert report.fmt_amount(7, "KWD") == "0.007"
    assert report.fmt_amount(10**13 + 1, "USD") == "100000000000.01"  # beyond one payout's bound: a total
    assert report.fmt_amount(pd.NA, "USD") == ""


def test_summary_matches_counts(planted) -> None:  # type: ignore[no-untyped-def]
    p, res = planted
    s = report.summary_by_category(res)
    assert len(s) == len(p.expected) and s["count"].sum() == p.expected["count"].sum()
    row = s[(s["category"] == "MATCHED") & (s["currency"] == "CAD")].iloc[0]
    exp = p.expected[(p.expected["category"] == "MATCHED") & (p.expected["currency"] == "CAD")].iloc[0]
    assert row["ledger_total"] == report.fmt_amount(exp["ledger_amount"], "CAD")
    assert s.iloc[0]["category"] == "MATCHED" and not s.iloc[0]["is_break"]
    cm = s[s["category"] == "CURRENCY_MISMATCH"].iloc[0]
    assert cm["stripe_total"].endswith(("USD", "EUR", "CAD"))  # the other currency is named


def test_summary_formats_jpy_and_kwd() -> None:
    p = planted_dataset(n_clean=6, per_category=1, currencies=("JPY", "KWD"))
    s = report.summary_by_category(reconcile(p.ledger, p.transfers, p.links, p.config))
    jpy = s[(s["currency"] == "JPY") & (s["category"] == "MATCHED")].iloc[0]
    kwd = s[(s["currency"] == "KWD") & (s["category"] == "MATCHED")].iloc[0]
    assert "." not in jpy["ledger_total"] and len(kwd["ledger_total"].split(".")[1]) == 3


def test_completeness_and_sources(planted) -> None:  # type: ignore[no-untyped-def]
    p, res = planted
    c = report.completeness_by_run(res, p.ledger)
    assert set(c["run_id"]) == {"run_2024-03-01", "run_2024-03-15"}
    assert [str(d) for d in c.drop_duplicates("run_id")["cycle"]] == ["2024-03-01", "2024-03-15"]  # by cycle date
    assert c["payouts"].sum() == len(p.ledger)
    assert c["expected_minor"].sum() == p.ledger["amount"].sum()
    assert ((c["paid_minor"] <= c["expected_minor"]) & (c["completeness_pct"] < 100)).all()
    m = report.manual_vs_automated(res)
    assert m["transfers"].sum() == len(p.transfers) - len(p.deferred)
    for _, g in m.groupby("currency"):
        assert abs(g["count_share_pct"].sum() - 100) < 0.05
    assert set(m["source"]) == {"automated", "manual"}


def test_break_list_ids_actions_and_aging(planted) -> None:  # type: ignore[no-untyped-def]
    _, res = planted
    b0 = report.break_list(res, as_of=date(2024, 4, 10))
    key = b0.iloc[0]["break_key"]
    b = report.break_list(res, first_seen={key: date(2024, 3, 1)}, as_of=date(2024, 4, 10))
    assert len(b) == len(res.breaks()) and b["break_key"].is_unique
    assert b.iloc[0]["first_seen"] == date(2024, 3, 1) and b.iloc[0]["age_days"] == 40
    assert (b.iloc[1:]["age_days"] == 0).all()
    assert b["suggested_action"].str.len().gt(0).all() and b["reason"].str.len().gt(0).all()
    dup = b[b["category"] == "DUPLICATE_PAYMENT"]
    assert dup["suggested_action"].str.startswith(("reverse tr_", "keep tr_")).all()
    failed = b[b["category"] == "PAYOUT_FAILED"].iloc[0]
    assert failed["payout_id"].startswith("po_") and "account_closed" in failed["suggested_action"]


def test_charts(planted) -> None:  # type: ignore[no-untyped-def]
    p, res = planted
    fig = report.chart_breaks_by_category(res)
    assert isinstance(fig, Figure) and len(fig.axes[0].patches) == res.breaks()["category"].nunique() == 10
    fig = report.chart_amounts_over_period(res)
    kept = p.transfers[~p.transfers["transfer_id"].isin(p.deferred)]  # the next period's are not charted here
    assert kept["created"].max() < p.transfers["created"].max()
    days = kept["created"].dt.date.nunique()
    assert len(fig.axes[0].patches) == days * kept["currency"].nunique()
    fig = report.chart_break_aging(report.break_list(res))
    assert len(fig.axes[0].patches) == len(report.AGE_BUCKETS)


def test_count_charts_have_whole_ticks_and_room_for_labels(planted) -> None:  # type: ignore[no-untyped-def]
    """Seen in the report's screenshot: ticks at 0.5 breaks, and the tallest aging bar's label on the title."""
    _, res = planted
    by_cat = report.chart_breaks_by_category(res).axes[0]
    by_cat.figure.canvas.draw()
    xticks = [t for t in by_cat.get_xticks() if by_cat.get_xlim()[0] <= t <= by_cat.get_xlim()[1]]
    assert xticks and all(float(t).is_integer() for t in xticks), xticks
    assert by_cat.get_xlim()[1] > max(p.get_width() for p in by_cat.patches)
    aging = report.chart_break_aging(report.break_list(res)).axes[0]
    tallest = max(p.get_height() for p in aging.patches)
    assert aging.get_ylim()[1] >= tallest * 1.1
    assert all(float(t).is_integer() for t in aging.get_yticks())


def test_export_writes_and_refuses_to_overwrite(planted, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _, res = planted
    paths = report.export(res, tmp_path / "out", as_of=date(2024, 4, 10))
    assert [x.name for x in paths] == ["breaks.csv", "matched.csv", "reconciliation.xlsx"]
    breaks = pd.read_csv(paths[0])
    assert len(breaks) == len(res.breaks())
    assert breaks["ledger_amount_minor"].dropna().map(float.is_integer).all()
    allrows = pd.read_csv(paths[1], dtype={"ledger_amount": "Int64", "stripe_amount": "Int64"})
    assert len(allrows) == len(res.results)
    assert int(allrows["ledger_amount"].sum()) == int(res.results["ledger_amount"].sum())
    wb = openpyxl.load_workbook(paths[2], read_only=True)
    assert wb.sheetnames == ["summary", "breaks", "all"]
    assert wb["summary"]["A1"].value == "category" and wb["summary"]["A2"].value == "MATCHED"
    assert wb["breaks"]["A2"].value == breaks.iloc[0]["break_key"]
    with pytest.raises(FileExistsError):
        report.export(res, tmp_path / "out")


def test_empty_result_reports() -> None:
    from payops.reconcile.synth import ledger_frame, transfer_frame

    cfg = ReconConfig(period_from=date(2024, 3, 1), period_to=date(2024, 3, 31))
    res = reconcile(ledger_frame([]), transfer_frame([]), None, cfg)
    assert report.summary_by_category(res).empty and report.break_list(res).empty
    assert report.manual_vs_automated(res).empty
    assert len(report.chart_breaks_by_category(res).axes[0].patches) == 0
