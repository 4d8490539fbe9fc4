"""The scenario notebooks under nbval, outside the runner: for each of the four scenarios a dry-run run is created
in-process (as ``payops incident checkout`` would), its parameters injected with papermill's prepare-only, and a
child pytest runs nbval over the eight prepared notebooks (fresh kernel each, cells in order). The notebooks record
their own step status, so afterwards the database says each step succeeded and each incident holds its plan."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import papermill
import pytest
from incident_helpers import incident, wait_deliveries

from payops import runner, runstate
from payops.db import session_scope
from payops.incident.params import SCENARIOS, validate_incident
from payops.incident.runbook import SOP, create_incident_run

pytestmark = [pytest.mark.e2e, pytest.mark.db, pytest.mark.slow]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_nbval_over_the_four_scenarios(incident_env, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    w, sb = incident_env.world, incident_env.sandbox
    sb.set_faults(webhook_bad_signature_rate=1.0)
    w.checkouts(1, card="pm_card_chargeDeclined", tag="nb")
    wait_deliveries(sb)
    sb.set_faults(webhook_bad_signature_rate=0.0)
    paid = w.checkouts(1, tag="nbpaid")[0]["session"]["id"]
    w.receipts([paid], broken="403")
    stale = w.stale_sessions(1)
    w.payment_windows([stale[0]["id"]], None)
    w.backlog(201, minutes_ago=31)
    wait_deliveries(sb)

    nbdir = tmp_path / "nb"
    nbdir.mkdir()
    runs: dict[str, str] = {}
    for i, scenario in enumerate(SCENARIOS):
        params = validate_incident({"scenario": scenario, "incident_id": f"INC-NB{i}-{incident_env.tag}"})
        runs[scenario] = create_incident_run(params)
        for step in runner.SOPS[SOP]:
            papermill.execute_notebook(str(runner.notebook_path(SOP, step)), str(nbdir / f"{i}-{step}.ipynb"),
                                       parameters={**params.model_dump(mode="json"), "run_id": runs[scenario]},
                                       prepare_only=True, progress_bar=False)
    ini = tmp_path / "nbval.ini"
    ini.write_text("[pytest]\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    res = subprocess.run([sys.executable, "-m", "pytest", "--nbval-lax", "-p", "no:cacheprovider", "-q", "-c", str(ini),
                          "--rootdir", str(nbdir), str(nbdir)], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=600, check=False)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-6000:]
    cells = sum(1 for p in nbdir.glob("*.ipynb") for c in json.loads(p.read_text())["cells"]
                if c["cell_type"] == "code")
    m = re.search(r"(\d+) passed", res.stdout)
    assert m and int(m.group(1)) == cells and not re.search(r"\d+ (failed|error)", res.stdout), out[-3000:]
    for i, (scenario, run_id) in enumerate(runs.items()):
        with session_scope() as s:
            assert [(st.step, st.status) for st in runstate.steps_of(s, run_id)] == [
                ("10-triage", "succeeded"), ("20-act", "succeeded")]
        rec = incident(f"INC-NB{i}-{incident_env.tag}")
        assert rec["plan"]["items"], f"{scenario}: the dry run listed nothing"
        assert rec["triage"]["firing"] is True, scenario
