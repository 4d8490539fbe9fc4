"""The six rehearsal notebooks under nbval, outside the runner, in the rehearsal world (SQLite).

The run is created in-process (as ``payops rehearse --dry-part`` would), its parameters injected with the real
``papermill --prepare-only`` CLI, then a child pytest runs nbval over the prepared folder (fresh kernel per
notebook, in file order 10 → 90). Without the SOP's runs in the middle, step 30 still runs the real cycle
(switched off in the rehearsal database: it fails on purpose), and the wrap-up still switches the automation
back on and judges the missing transfer — executing cleanly, as a notebook must."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from payops import runner, runstate
from payops.config import get_settings
from payops.db import session_scope
from payops.rehearsal import world
from payops.rehearsal.params import validate_rehearsal
from payops.rehearsal.steps import create_run

pytestmark = [pytest.mark.e2e, pytest.mark.db, pytest.mark.slow]
STEPS = runner.SOPS["rehearsal"]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_nbval_over_the_rehearsal_notebooks(rehearsal_env, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    base = world.preflight()
    with world.entered(base) as s:
        world.ensure_database(s)
        run_id = create_run(validate_rehearsal({"ticket": "REH-2027-Q1", "dry_run": True}), s)
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
        nbdir, cwd = tmp_path / "nb", tmp_path / "elsewhere"
        nbdir.mkdir()
        cwd.mkdir()
        with session_scope(s) as sess:
            params = json.loads(runstate.get_run(sess, run_id).params_json) | {"run_id": run_id}
        for step in STEPS:
            res = subprocess.run(
                [sys.executable, "-m", "papermill", "--prepare-only", str(runner.notebook_path("rehearsal", step)),
                 str(nbdir / f"{step}.ipynb"), "-y", yaml.safe_dump(params)],
                cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False)
            assert res.returncode == 0, res.stderr
        ini = tmp_path / "nbval-pytest.ini"
        ini.write_text("[pytest]\n")
        res = subprocess.run([sys.executable, "-m", "pytest", "--nbval-lax", "-p", "no:cacheprovider", "-q", "-c",
                              str(ini), "--rootdir", str(nbdir), str(nbdir)],
                             cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False)
        out = res.stdout + res.stderr
        assert res.returncode == 0, out[-6000:]
        assert re.search(r"\d+ passed", res.stdout) and not re.search(r"\d+ (failed|error)", res.stdout), out[-3000:]
        with session_scope(s) as sess:
            steps = {st.step: st.status for st in runstate.steps_of(sess, run_id)}
            wrap = json.loads(runstate.step_row(sess, run_id, "90-wrap-up").result_json or "{}")
            failed = json.loads(runstate.step_row(sess, run_id, "30-failed-payout").result_json or "{}")
    settings = get_settings()
    assert steps == dict.fromkeys(STEPS, "succeeded")
    assert failed["facts"]["ledger_payout"]["status"] == "pending" and "CycleDisabled" in failed["facts"]["cycle_error"]
    assert wrap["automation"] == "enabled" and wrap["passed"] is False  # no SOP ran: judged, not hidden
    assert {c["criterion"] for c in wrap["criteria"] if c["result"] == "FAIL"} >= {"transfer", "audit"}
    assert settings.database_url == rehearsal_env.db_url  # back in production's settings afterwards
