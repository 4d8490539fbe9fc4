"""The check notebooks under nbval, outside the runner (the style of tests/notebooks/test_nbval_runbooks.py):
the run is created in-process, its parameters injected with ``papermill --prepare-only``, then a child
pytest runs ``--nbval-lax`` over the prepared notebook. A passing pre-run check executes every cell;
the notebook records its own step result (``CheckContext.record``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from payops import runner, runstate
from payops.checks.params import create_check_run, spec, validate_check
from payops.db import session_scope

pytestmark = [pytest.mark.e2e, pytest.mark.db, pytest.mark.slow]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_pre_run_notebook_under_nbval(checks_env, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    sp = spec("pre-run")
    run_id = create_check_run(sp.name, validate_check(sp.name, {"cycle_date": "2026-12-01"}, checks_env.settings),
                              checks_env.settings)
    with session_scope() as s:
        params = json.loads(runstate.get_run(s, run_id).params_json) | {"run_id": run_id}
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    nbdir, cwd = tmp_path / "nb", tmp_path / "elsewhere"
    nbdir.mkdir()
    cwd.mkdir()
    prepared = nbdir / f"{sp.step}.ipynb"
    source = runner.notebook_path(sp.sop, sp.step)
    res = subprocess.run([sys.executable, "-m", "papermill", "--prepare-only", str(source), str(prepared),
                          "-y", yaml.safe_dump(params)],
                         cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    ini = tmp_path / "nbval-pytest.ini"
    ini.write_text("[pytest]\n")
    res = subprocess.run([sys.executable, "-m", "pytest", "--nbval-lax", "-p", "no:cacheprovider", "-q", "-c", str(ini),
                          "--rootdir", str(nbdir), str(nbdir)],
                         cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert res.returncode == 0, (res.stdout + res.stderr)[-4000:]
    with session_scope() as s:
        (step,) = runstate.steps_of(s, run_id)
        assert step.status == "succeeded" and step.result_json
        assert json.loads(step.result_json)["ok"] is True
    assert list(cwd.iterdir()) == []
