"""`payops recon` end to end after the demo seed: archive, planted breaks, exit codes, then nbval."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from payops import demo_data as dd
from payops import runner
from payops.cli import app
from payops.reconcile import store
from payops.reconcile.params import create_recon_run, validate_recon

pytestmark = [pytest.mark.e2e, pytest.mark.db, pytest.mark.slow]
ARGS = ["recon", "--from", "2026-09-01", "--to", "2026-11-30"]
PLANTED = {
    ("DUPLICATE_PAYMENT", dd.RECON_DUP_TRANSFER),
    ("REVERSED_PARTIAL", dd.RECON_REVERSED_TRANSFER),
    ("PAYOUT_FAILED", dd.RECON_FAILED_TRANSFER),
    ("MISSING_IN_LEDGER", dd.RECON_ORPHAN_TRANSFER),
}


@pytest.fixture()
def recon_env(payops_env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("PAYOPS_RECON_CACHE_DIR", str(tmp_path / "recon-cache"))
    return payops_env


def _invoke(*extra: str) -> tuple[int, str]:
    res = CliRunner().invoke(app, [*ARGS, *extra])
    return res.exit_code, res.output


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_recon_cli_finds_planted_breaks(recon_env) -> None:  # type: ignore[no-untyped-def]
    code, out = _invoke()
    assert code == 10, out
    assert "exceed --max-unexplained 0" in out, out
    m = re.search(r"run (\S+)", out)
    assert m, out
    run_id = m.group(1)
    folder = Path(re.search(r"archive: (\S+)", out).group(1))  # type: ignore[union-attr]
    assert (folder / "payouts_vs_ledger.ipynb").is_file() and (folder / "payouts_vs_ledger.html").is_file()
    assert (folder / "manifest.json").is_file()
    assert list(folder.rglob("*.csv")) and list(folder.rglob("*.xlsx"))
    breaks = store.breaks_of(run_id)
    found = {(b["category"], b["transfer_id"]) for b in breaks}
    assert PLANTED <= found, found
    by_ledger = {b["ledger_payout_id"]: b["category"] for b in breaks if b["transfer_id"] is None}
    assert by_ledger[dd.RECON_MISSING_LEDGER_ID] == "MISSING_IN_STRIPE"
    failed = next(b for b in breaks if b["transfer_id"] == dd.RECON_FAILED_TRANSFER)
    assert failed["payout_id"] == dd.RECON_FAILED_PAYOUT

    code, out = _invoke("--max-unexplained", "100")
    assert code == 0, out
    last = store.latest_run_id()
    for b in store.breaks_of(last):
        if b["explanation"] is None:
            res = CliRunner().invoke(app, ["recon", "explain", b["id"], "--note", "reviewed in the demo"])
            assert res.exit_code == 0, res.output
    code, out = _invoke()
    assert code == 0, out  # explanations follow the breaks into the next run
    rid = store.latest_run_id()
    res = CliRunner().invoke(app, ["recon", "signoff", rid, "--preparer", "aaaaaaaa-0000-4000-8000-00000000000a",
                                   "--approver", "aaaaaaaa-0000-4000-8000-00000000000a"])
    assert res.exit_code == 2, res.output
    res = CliRunner().invoke(app, ["recon", "signoff", rid, "--preparer", "aaaaaaaa-0000-4000-8000-00000000000a",
                                   "--approver", "bbbbbbbb-0000-4000-8000-00000000000b"])
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(app, ["recon", "breaks", rid, "--format", "json"])
    assert res.exit_code == 0 and json.loads(res.output)["run_id"] == rid


@pytest.mark.parametrize("db_url", ["sqlite", "postgresql"], indirect=True)
def test_a_payout_made_after_the_cut_off_is_timing_not_missing(recon_env) -> None:  # type: ignore[no-untyped-def]
    """The 2026-11-15 cycle failed; Ops pay Studio A's payout by hand today, after the period's cut-off. The
    ledger records the transfer; the period's pull cannot see it, so it is fetched by id: the break is
    TIMING_IN_TRANSIT ("created today, after the period end"), not a MISSING_IN_STRIPE to chase."""
    from sqlalchemy import update

    from payops.db import session_scope
    from payops.db.models import LedgerPayout
    from payops.reconcile.load_ledger import load_ledger
    from payops.reconcile.schema import ReconConfig

    lp = dd.REHEARSAL_LEDGER_PAYOUT_ID
    ledger = load_ledger("db", ReconConfig(*map(date.fromisoformat, ARGS[2::2])), recon_env.settings)
    row = ledger.set_index("ledger_payout_id").loc[lp]
    tr = recon_env.sandbox.client().v1.transfers.create(params={
        "amount": int(row["amount"]), "currency": str(row["currency"]).lower(), "destination": str(row["destination"]),
        "transfer_group": lp, "metadata": {"ledger_payout_id": lp, "source": "payops-manual-fallback"}})
    with session_scope(recon_env.settings) as s:
        s.execute(update(LedgerPayout).where(LedgerPayout.id == lp)
                  .values(stripe_transfer_id=tr.id, status="transferred"))

    code, out = _invoke("--max-unexplained", "100")
    assert code == 0, out
    found = [b for b in store.breaks_of(store.latest_run_id()) if b["ledger_payout_id"] == lp]
    assert [(b["category"], b["transfer_id"]) for b in found] == [("TIMING_IN_TRANSIT", tr.id)], found
    assert "after the period end 2026-11-30" in found[0]["reason"], found[0]


@pytest.mark.parametrize("db_url", ["sqlite", "postgresql"], indirect=True)
def test_the_next_periods_run_matches_a_late_payout_to_its_own_periods_ledger_row(recon_env) -> None:  # type: ignore[no-untyped-def]
    """The same late manual payout, seen from the periods around it. The period that ended yesterday pulls it (it
    is inside its cut-off margin) but it pays none of that period's ledger payouts: it is left to the next period
    (listed, counted nowhere). The period it was paid in (2026-11-16 to today): the ledger row belongs to the
    2026-11-15 cycle, outside this period, so it is loaded by id and the transfer pairs with it ("belongs to an
    earlier period") instead of being MISSING_IN_LEDGER; the report lists it."""
    from datetime import timedelta

    import pandas as pd

    from payops.reconcile.load_ledger import load_ledger
    from payops.reconcile.schema import ReconConfig

    lp = dd.REHEARSAL_LEDGER_PAYOUT_ID
    row = load_ledger("db", ReconConfig(*map(date.fromisoformat, ARGS[2::2])),
                      recon_env.settings).set_index("ledger_payout_id").loc[lp]
    tr = recon_env.sandbox.client().v1.transfers.create(params={
        "amount": int(row["amount"]), "currency": str(row["currency"]).lower(), "destination": str(row["destination"]),
        "transfer_group": lp, "metadata": {"ledger_payout_id": lp, "source": "payops-manual-fallback"}})

    yesterday = date.today() - timedelta(days=1)
    before = CliRunner().invoke(app, ["recon", "--from", max(yesterday - timedelta(days=13), date(2026, 11, 16))
                                      .isoformat(), "--to", yesterday.isoformat(), "--max-unexplained", "100"])
    assert before.exit_code == 0, before.output
    assert all(b["transfer_id"] != tr.id for b in store.breaks_of(store.latest_run_id()))
    folder = Path(re.search(r"archive: (\S+)", before.output).group(1))  # type: ignore[union-attr]
    assert tr.id not in pd.read_csv(next(folder.rglob("matched.csv")), dtype=str)["transfer_id"].tolist()
    html = (folder / "payouts_vs_ledger.html").read_text()
    assert "1 transfer(s) left to the next period" in html and tr.id in html

    res = CliRunner().invoke(app, ["recon", "--from", "2026-11-16", "--to", date.today().isoformat(),
                                   "--max-unexplained", "100"])
    assert res.exit_code == 0, res.output
    # paired with its own ledger row: paid by now (the sandbox's automatic payout took seconds) or still in transit
    folder = Path(re.search(r"archive: (\S+)", res.output).group(1))  # type: ignore[union-attr]
    matched = pd.read_csv(next(folder.rglob("matched.csv")), dtype=str).set_index("transfer_id")
    row = matched.loc[tr.id]
    assert row["ledger_payout_id"] == lp and row["category"] in {"MATCHED", "TIMING_IN_TRANSIT"}, row
    assert row["reason"].endswith("the ledger payout belongs to an earlier period (expected 2026-11-15), "
                                  "paid in this one"), row["reason"]
    html = (folder / "payouts_vs_ledger.html").read_text()
    assert "Other periods" in html and lp in html and "0 transfer(s) left to the next period" in html


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_recon_notebook_under_nbval(recon_env, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    params = validate_recon({"period_from": "2026-09-01", "period_to": "2026-11-30", "max_unexplained": 1000})
    run_id = create_recon_run(params)
    nbdir, cwd = tmp_path / "nb", tmp_path / "elsewhere"
    nbdir.mkdir()
    cwd.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    given = params.model_dump(mode="json") | {"run_id": run_id}
    prepared = nbdir / "payouts_vs_ledger.ipynb"
    res = subprocess.run([sys.executable, "-m", "papermill", "--prepare-only",
                          str(runner.notebook_path("reconciliation", "payouts_vs_ledger")), str(prepared),
                          "-y", yaml.safe_dump(given)], cwd=cwd, env=env, capture_output=True, text=True,
                         timeout=120, check=False)
    assert res.returncode == 0, res.stderr
    ini = tmp_path / "nbval.ini"
    ini.write_text("[pytest]\n")
    res = subprocess.run([sys.executable, "-m", "pytest", "--nbval-lax", "-p", "no:cacheprovider", "-q", "-c",
                          str(ini), "--rootdir", str(nbdir), str(nbdir)], cwd=cwd, env=env, capture_output=True,
                         text=True, timeout=600, check=False)
    assert res.returncode == 0, (res.stdout + res.stderr)[-5000:]
    assert not re.search(r"\d+ (failed|errors?)", res.stdout), res.stdout[-3000:]
    assert store.breaks_of(run_id), "the notebook did not persist its breaks"
