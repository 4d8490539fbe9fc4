"""`payops recon` with export files instead of the live systems, and bad input refused before any run exists.

Finance often reconciles from exports: the company ledger as CSV/Parquet (``--ledger FILE``) and a Stripe
transfers export (``--stripe FILE.csv``, optionally with the payout chain per transfer). The same period over
the same data must find the same breaks as the database + API run. Bad parameters and bad files exit 2 with the
field named — and leave no run, no reconciliation and no archive behind.
"""

from __future__ import annotations

import re
from datetime import date
from functools import partial
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from payops.cli import app
from payops.db import session_scope
from payops.db.models import ReconRun, RunbookRun
from payops.reconcile import store
from payops.reconcile.load_ledger import load_ledger
from payops.reconcile.load_stripe import load_stripe
from payops.reconcile.schema import TRANSFER_COLUMNS, ReconConfig

pytestmark = [pytest.mark.e2e, pytest.mark.db, pytest.mark.slow]
PERIOD = ["--from", "2026-09-01", "--to", "2026-11-30"]
CONFIG = ReconConfig(date(2026, 9, 1), date(2026, 11, 30))


@pytest.fixture()
def recon_env(payops_env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("PAYOPS_RECON_CACHE_DIR", str(tmp_path / "recon-cache"))
    return payops_env


def _recon(*args: str) -> tuple[int, str]:
    res = CliRunner().invoke(app, ["recon", *args])
    return res.exit_code, res.output + (repr(res.exception) if res.exit_code == 1 else "")


def _breaks(run_id: str) -> set[tuple[str, str | None, str | None]]:
    return {(b["category"], b["ledger_payout_id"], b["transfer_id"]) for b in store.breaks_of(run_id)}


def _run_id(out: str) -> str:
    return re.search(r"run (\S+)", out).group(1)  # type: ignore[union-attr]


def _exports(env, folder: Path, chain: bool = True) -> tuple[Path, Path]:  # type: ignore[no-untyped-def]
    """The demo period's ledger and Stripe side written as the export files Finance would hand over."""
    ledger = load_ledger("db", CONFIG, env.settings)
    ledger_csv = folder / "ledger.csv"
    ledger.assign(expected_at=ledger["expected_at"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")).to_csv(ledger_csv, index=False)
    from payops.stripe_api import make_client

    factory = partial(make_client, settings=env.settings, purpose="platform", max_network_retries=0)
    transfers, links = load_stripe(factory, CONFIG, None, progress=False,
                                   recorded=[*ledger["ledger_transfer_id"].dropna(), *ledger["manual_transfer_id"]
                                             .dropna()])
    out = transfers[list(TRANSFER_COLUMNS)].copy()
    out["created"] = out["created"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    if chain:  # one payout per transfer: the one that counts (paid over failed), as a dashboard export shows it
        best = links.assign(rank=links["payout_status"].map({"paid": 0, "in_transit": 1, "pending": 2}).fillna(3))
        best = best.sort_values(["destination_payment", "rank"]).drop_duplicates("destination_payment")
        best["arrival_date"] = best["arrival_date"].astype("int64") // 10**6  # unix seconds, as Stripe sends them
        out = out.merge(best[["destination_payment", "payout_id", "payout_status", "arrival_date", "failure_code"]],
                        on="destination_payment", how="left")
    stripe_csv = folder / "stripe_transfers.csv"
    out.to_csv(stripe_csv, index=False)
    return ledger_csv, stripe_csv


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_exports_find_the_same_breaks_as_the_live_systems(recon_env, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    code, out = _recon(*PERIOD, "--max-unexplained", "100")
    assert code == 0, out
    live = _breaks(_run_id(out))
    assert len(live) >= 7

    ledger_csv, stripe_csv = _exports(recon_env, tmp_path)
    code, out = _recon(*PERIOD, "--ledger", str(ledger_csv), "--stripe", str(stripe_csv), "--max-unexplained", "100")
    assert code == 0, out
    assert _breaks(_run_id(out)) == live
    parquet = tmp_path / "ledger.parquet"
    pd.read_csv(ledger_csv, dtype={"amount": "int64"}, keep_default_na=False).to_parquet(parquet)
    code, out = _recon(*PERIOD, "--ledger", str(parquet), "--stripe", str(stripe_csv), "--max-unexplained", "100")
    assert code == 0, out
    assert _breaks(_run_id(out)) == live

    # without the payout columns there is no chain: nothing is known to have reached a bank
    (tmp_path / "bare").mkdir()
    _, bare = _exports(recon_env, tmp_path / "bare", chain=False)
    code, out = _recon(*PERIOD, "--stripe", str(bare), "--max-unexplained", "100")
    assert code == 0, out
    rows = store.breaks_of(_run_id(out))
    timing = [b for b in rows if b["category"] == "TIMING_IN_TRANSIT"]
    assert len(timing) > len([b for b in store.breaks_of(_run_id(out)) if b["category"] == "PAYOUT_FAILED"])
    assert all("no payout has swept" in b["reason"] or "after the period end" in b["reason"] for b in timing)


def _csv(tmp_path: Path, name: str, frame: pd.DataFrame) -> str:
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return str(path)


TRANSFER = {"transfer_id": "tr_1", "created": "2026-10-15T06:05:00Z", "amount": "87550", "currency": "cad",
            "destination": "acct_1", "transfer_group": "lp-1", "ledger_payout_id": "lp-1", "source": "automated",
            "amount_reversed": "0", "reversed": "false", "destination_payment": "py_1"}
LEDGER = {"ledger_payout_id": "lp-1", "run_id": "", "studio_id": "s-1", "destination": "acct_1", "amount": "87550",
          "currency": "CAD", "status": "paid", "expected_at": "2026-10-15T06:00:00Z", "ledger_transfer_id": "tr_1",
          "manual_transfer_id": ""}

#: (arguments with FILE placeholders, the field the error must name)
BAD = [
    (["--to", "2026-11-30"], "--from"),
    (["--from", "2026-13-01", "--to", "2026-11-30"], "period_from"),
    (["--from", "2026-11-30", "--to", "2026-11-01"], "period_to"),
    (["--from", "2025-01-01", "--to", "2026-11-30"], "period_to"),
    ([*PERIOD, "--timezone", "Mars/Olympus_Mons"], "timezone"),
    ([*PERIOD, "--tolerance", "-1"], "tolerance"),
    ([*PERIOD, "--max-unexplained", "-5"], "max_unexplained"),
    ([*PERIOD, "--cutoff-margin-days", "61"], "cutoff_margin_days"),
    ([*PERIOD, "--ledger", "no-such-ledger.csv"], "ledger"),
    ([*PERIOD, "--ledger", "ledger.txt"], "ledger"),
    ([*PERIOD, "--stripe", "stripe.json"], "stripe"),
    ([*PERIOD, "--ledger", "LEDGER(amount=875.50)"], "ledger.amount"),
    ([*PERIOD, "--ledger", "LEDGER(currency=CADX)"], "ledger.currency"),
    ([*PERIOD, "--stripe", "STRIPE(-destination_payment)"], "stripe.destination_payment"),
    ([*PERIOD, "--stripe", "STRIPE(currency=xx)"], "stripe.currency"),
    ([*PERIOD, "--stripe", "STRIPE(amount=1.5)"], "stripe.amount"),
    ([*PERIOD, "--stripe", "STRIPE(created=last tuesday)"], "stripe.created"),
    ([*PERIOD, "--stripe", "STRIPE(payout_id=po_1,payout_status=done,arrival_date=1760000000,failure_code=)"],
     "stripe.payout_status"),
    ([*PERIOD, "--stripe", "STRIPE(payout_id=po_1,payout_status=paid)"], "stripe.arrival_date"),
]


def _materialise(args: list[str], tmp_path: Path) -> list[str]:
    """LEDGER(col=value) / STRIPE(col=value,…) / STRIPE(-col) → a one-row export file with that change."""
    out = []
    for a in args:
        m = re.fullmatch(r"(LEDGER|STRIPE)\((.*)\)", a)
        if not m:
            out.append(str(tmp_path / a) if a.endswith((".csv", ".txt", ".json")) else a)
            if a == "ledger.txt":
                (tmp_path / a).write_text("not a ledger")
            if a == "stripe.json":
                (tmp_path / a).write_text("{}")
            continue
        row = dict(LEDGER if m.group(1) == "LEDGER" else TRANSFER)
        for change in m.group(2).split(","):
            if change.startswith("-"):
                row.pop(change[1:])
            else:
                k, v = change.split("=", 1)
                row[k] = v
        out.append(_csv(tmp_path, f"{m.group(1).lower()}.csv", pd.DataFrame([row])))
    return out


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(("args", "field"), BAD, ids=[f"{i}-{f}" for i, (_, f) in enumerate(BAD)])
def test_bad_input_is_named_and_creates_nothing(recon_env, tmp_path: Path, args: list[str],  # type: ignore[no-untyped-def]
                                                field: str) -> None:
    code, out = _recon(*_materialise(args, tmp_path))
    assert code == 2, out
    assert field in out, out
    assert "Traceback" not in out
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(RunbookRun)) == 0
        assert s.scalar(select(func.count()).select_from(ReconRun)) == 0
    assert not (Path(recon_env.settings.output_dir) / "reconciliation").exists()


def test_good_exports_pass_the_check(tmp_path: Path) -> None:
    from payops.reconcile.load_stripe import load_stripe_csv

    swept = {"payout_id": "po_1", "payout_status": "failed", "arrival_date": "2026-10-17", "failure_code": "no_account"}
    unswept = {"transfer_id": "tr_2", "created": "1760508300", "destination_payment": "py_2", "payout_id": "",
               "payout_status": "", "arrival_date": "", "failure_code": ""}
    path = _csv(tmp_path, "s.csv", pd.DataFrame([TRANSFER | swept, TRANSFER | unswept]))
    transfers, links = load_stripe_csv(path)
    assert transfers["transfer_id"].tolist() == ["tr_1", "tr_2"] and transfers["currency"].tolist() == ["CAD"] * 2
    assert str(transfers["created"].iloc[1]) == "2025-10-15 06:05:00+00:00"
    assert links[["destination_payment", "payout_id", "payout_status", "failure_code"]].values.tolist() == [
        ["py_1", "po_1", "failed", "no_account"]]
    assert str(links["arrival_date"].iloc[0]) == "2026-10-17 00:00:00+00:00"
