"""The five manual payout notebooks run under nbval, outside the runner, against the sandbox and sinks.

The run is created in-process (as ``payops manual-payout`` would), the run's parameters are injected
with the real ``papermill --prepare-only`` CLI, then a child pytest runs nbval over the prepared folder
(fresh kernel per notebook, cells in file order 10 → 50). The notebooks record their own step status
(``StepContext.record``), so afterwards the database says whether each step succeeded, and the
sandbox and sinks say what was really sent.

The child pytest gets the fixture's environment (PAYOPS_*, STRIPE_*), its own rootdir and an empty
ini file, so the project's pytest config and conftest stay out of it; it runs from an empty working
directory, which must not matter (the run folder comes from the database).
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import nbformat
import pytest
import yaml
from rich.console import Console
from sqlalchemy import select

from approval_helpers import sign
from payops import runner, runstate
from payops.approvals import submit
from payops.config import get_settings
from payops.db import session_scope
from payops.db.models import LedgerPayout, ManualPayout, RunbookRun, TransferIntent
from payops.params import validate_manual_payout

pytestmark = [pytest.mark.e2e, pytest.mark.db, pytest.mark.slow]

# copied from tests/conftest.py / tests/e2e/e2e_helpers.py (the demo seed's rehearsal example)
OPERATOR = "aaaaaaaa-0000-4000-8000-000000000001"
OPS = "bbbbbbbb-0000-4000-8000-000000000002"
FIN = "cccccccc-0000-4000-8000-000000000003"
LP = "22222222-2222-2222-2222-222222222222"
REHEARSAL = {
    "studio_id": "11111111-1111-1111-1111-111111111111", "studio_name": "Test Studio A", "ledger_payout_id": LP,
    "incident_id": "INC-REHEARSAL-001", "amount": "875.50", "reserve_after": "120.00",
    "reason": "automated payout failed", "destination_account": "acct_test_studio_a", "operator": OPERATOR,
}
SOP = "manual_payout"
STEPS = runner.SOPS[SOP]
WAIT_SECONDS = 60.0  # the sandbox pays out within a few seconds; this only bounds a broken run
CHILD_TIMEOUT = 600


def _create_run(*, live: bool, roster: Any = None, tmp: Path | None = None) -> RunbookRun:
    params = runner.resolve_manual_payout(validate_manual_payout(dict(REHEARSAL)))
    if not live:
        return runner.prepare_run(SOP, params, live=False)
    # live, as in production: ops and finance sign the statement of a run of these parameters (offline, plain
    # ssh-keygen), then the live preflight has the operator sign the go-live of the new run
    assert roster is not None and tmp is not None
    shown = runner.prepare_run(SOP, params, live=False)
    for role in ("ops", "finance"):
        sig = sign(shown.id, role, roster[role].key_path, tmp / "sigs")
        submit.approve(shown.id, role=role, signature=sig, console=Console(file=io.StringIO()))
    plan = runner.preflight_live(params.model_copy(update={"dry_run": False}), get_settings(),
                                 operator_key=roster["operator"].key_path)
    return runner.prepare_run(SOP, params, live=True, run_id=plan.run_id, on_created=plan.record)


def _child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    assert env.get("PAYOPS_DATABASE_URL") and env.get("STRIPE_FALLBACK_SECRET_KEY"), "fixture env missing"
    return env


def _prepare(run: RunbookRun, nbdir: Path, cwd: Path) -> dict[str, dict[str, Any]]:
    """``papermill --prepare-only`` each step into ``nbdir``; returns the parameters given to each."""
    nbdir.mkdir(parents=True)
    given: dict[str, dict[str, Any]] = {}
    for step in STEPS:
        params = json.loads(run.params_json) | {"run_id": run.id}
        if step in runner.STEP_PARAMS:
            params |= runner.STEP_PARAMS[step] | ({"wait_seconds": WAIT_SECONDS} if step == "50-settle" else {})
        given[step] = params
        res = subprocess.run(
            [sys.executable, "-m", "papermill", "--prepare-only", str(runner.notebook_path(SOP, step)),
             str(nbdir / f"{step}.ipynb"), "-y", yaml.safe_dump(params)],
            cwd=cwd, env=_child_env(), capture_output=True, text=True, timeout=120, check=False)
        assert res.returncode == 0, f"papermill --prepare-only {step} failed:\n{res.stdout}\n{res.stderr}"
    return given


def _injected(nb: Any) -> dict[str, Any]:
    """The values papermill injected, read back by executing the injected cell's literal assignments."""
    (cell,) = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    ns: dict[str, Any] = {}
    exec(compile(cell.source, "injected-parameters", "exec"), {"__builtins__": {}}, ns)  # literals only
    return ns


def _check_prepared(nbdir: Path, given: dict[str, dict[str, Any]]) -> dict[str, int]:
    """Each prepared notebook = its source + one injected cell right after `parameters`, holding exactly
    the run's values (types included: amounts stay strings). Returns each step's number of code cells."""
    code_cells: dict[str, int] = {}
    for step in STEPS:
        src = nbformat.read(runner.notebook_path(SOP, step), as_version=4)
        nb = nbformat.read(nbdir / f"{step}.ipynb", as_version=4)
        tags = [c.metadata.get("tags", []) for c in nb.cells]
        p = next(i for i, t in enumerate(tags) if "parameters" in t)
        assert "injected-parameters" in tags[p + 1], f"{step}: injected cell not right after parameters"
        assert len(nb.cells) == len(src.cells) + 1
        injected = _injected(nb)
        assert injected == given[step], f"{step}: injected {injected} != {given[step]}"
        assert {k: type(v) for k, v in injected.items()} == {k: type(v) for k, v in given[step].items()}
        code_cells[step] = sum(c.cell_type == "code" for c in nb.cells)
        assert code_cells[step] == sum(c.cell_type == "code" for c in src.cells) + 1
    return code_cells


def _nbval(nbdir: Path, tmp_path: Path, cwd: Path) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    ini = tmp_path / "nbval-pytest.ini"
    ini.write_text("[pytest]\n")
    junit = tmp_path / "nbval-junit.xml"
    res = subprocess.run(
        [sys.executable, "-m", "pytest", "--nbval-lax", "-p", "no:cacheprovider", "-q", "-c", str(ini),
         "--rootdir", str(nbdir), f"--junitxml={junit}", str(nbdir)],
        cwd=cwd, env=_child_env(), capture_output=True, text=True, timeout=CHILD_TIMEOUT, check=False)
    order = []
    if junit.exists():
        order = [f"{tc.get('classname')}::{tc.get('name')}" for tc in ET.parse(junit).getroot().iter("testcase")]
    return res, order


def _run_notebooks(run: RunbookRun, tmp_path: Path) -> None:
    nbdir, cwd = tmp_path / "nb", tmp_path / "elsewhere"
    cwd.mkdir()
    given = _prepare(run, nbdir, cwd)
    cells = _check_prepared(nbdir, given)
    n_cells = sum(cells.values())
    res, order = _nbval(nbdir, tmp_path, cwd)
    out = res.stdout + res.stderr
    assert res.returncode == 0, f"nbval failed (exit {res.returncode}):\n{out[-6000:]}"
    m = re.search(r"(\d+) passed", res.stdout)
    assert m and int(m.group(1)) == n_cells, f"expected {n_cells} passed cells:\n{out[-3000:]}"
    assert not re.search(r"\d+ (failed|errors?|skipped|xfailed)", res.stdout), out[-3000:]
    # one item per code cell: notebooks in file order (10 → 50), cells in order within each
    assert order == [f"{step}.ipynb::Cell {i}" for step in STEPS for i in range(cells[step])], order
    # nothing landed in the working directory or next to the notebooks: the run folder comes from the DB
    assert list(cwd.iterdir()) == []
    assert sorted(p.name for p in nbdir.iterdir()) == [f"{s}.ipynb" for s in STEPS]
    # nbval does not write back: the prepared notebooks are still unexecuted
    for step in STEPS:
        assert all(not c.get("outputs") for c in nbformat.read(nbdir / f"{step}.ipynb", as_version=4).cells
                   if c.cell_type == "code")


def _steps_after(run_id: str) -> list[tuple[str, str, int]]:
    with session_scope() as s:
        steps = runstate.steps_of(s, run_id)
        rows = [(st.step, st.status, st.attempts, st.finished_at) for st in steps]
    assert [r[3] for r in rows] == sorted(r[3] for r in rows), f"steps finished out of order: {rows}"
    return [r[:3] for r in rows]


def _sealed_by_hand(run_id: str) -> None:
    """Run outside the runner, each step still sealed the folder (issue #21): the run says succeeded, its
    manifests are one per step, and `payops archive verify` accepts the archive."""
    from typer.testing import CliRunner

    from payops.cli import app

    with session_scope() as s:
        run = runstate.get_run(s, run_id)
        assert run.status == "succeeded" and run.manifest_sha256, (run.status, run.error)
        folder = Path(run.output_dir or "")
    assert len(list(folder.glob("manifest*.json"))) == len(STEPS)
    res = CliRunner().invoke(app, ["archive", "verify"], catch_exceptions=False)
    assert res.exit_code == 0, res.output


def _artifacts(run: RunbookRun) -> Path:
    folder = Path(run.output_dir or "")
    assert folder.is_absolute() and folder.is_dir(), folder
    for step in STEPS:
        assert (folder / "results" / f"{step}.json").is_file(), f"no result artifact for {step} in {folder}"
    assert (folder / "drafts" / "slack.json").is_file() and (folder / "drafts" / "email.eml").is_file()
    return folder


@pytest.mark.parametrize("db_url", ["sqlite", "postgresql"], indirect=True)
def test_nbval_live_run_pays_once(payops_env, roster, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    run = _create_run(live=True, roster=roster, tmp=tmp_path)
    assert run.mode == "rehearsal" or run.mode == "live"
    assert json.loads(run.params_json)["dry_run"] is False
    _run_notebooks(run, tmp_path)

    assert _steps_after(run.id) == [(s, "succeeded", 1) for s in STEPS]
    transfers = list(payops_env.sandbox.client().v1.transfers.list({"transfer_group": LP, "limit": 100}).data)
    assert len(transfers) == 1, transfers
    tr = transfers[0]
    assert (tr.amount, tr.currency, tr.destination) == (87550, "cad", "acct_test_studio_a")
    assert tr.metadata["approver_ops_id"] == OPS and tr.metadata["approver_finance_id"] == FIN
    with session_scope() as s:
        rows = s.scalars(select(ManualPayout)).all()
        assert [(r.stripe_transfer_id, r.run_id, r.amount, r.currency) for r in rows] == [(tr.id, run.id, 87550, "CAD")]
        assert rows[0].status == "settled" and rows[0].settled_at is not None
        assert rows[0].approver_ops_id == OPS and rows[0].approver_finance_id == FIN
        assert s.get(LedgerPayout, LP).status == "paid"
    slack, emails = payops_env.sinks.slack_messages(), payops_env.sinks.emails()
    assert len(slack) == 1 and len(emails) == 1, (slack, emails)
    assert tr.id in slack[0]["json"]["text"] and tr.id in emails[0]["text"]
    assert emails[0]["rcpt_tos"] == ["studio-a@example.com"]
    folder = _artifacts(run)
    assert folder.is_relative_to(payops_env.output_dir.resolve())
    _sealed_by_hand(run.id)


@pytest.mark.parametrize("db_url", ["sqlite", "postgresql"], indirect=True)
def test_nbval_dry_run_moves_nothing(payops_env, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    run = _create_run(live=False)
    assert run.mode == "dry-run" and json.loads(run.params_json)["dry_run"] is True
    _run_notebooks(run, tmp_path)

    assert _steps_after(run.id) == [(s, "succeeded", 1) for s in STEPS]
    assert list(payops_env.sandbox.client().v1.transfers.list({"transfer_group": LP, "limit": 100}).data) == []
    with session_scope() as s:
        assert s.scalars(select(ManualPayout)).all() == []
        assert s.scalars(select(TransferIntent)).all() == []
        assert s.get(LedgerPayout, LP).status == "pending"
    assert payops_env.sinks.slack_messages() == [] and payops_env.sinks.emails() == []
    _artifacts(run)
    _sealed_by_hand(run.id)
