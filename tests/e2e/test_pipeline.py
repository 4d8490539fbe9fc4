"""The runner's step pipeline (payops.pipeline): kernels started ahead and warmed with their notebook's
imports, HTML rendered behind — each step still its own notebook in its own fresh kernel."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import nbformat
import papermill
import psutil
import pytest

from payops import db, pipeline
from payops.config import get_settings
from payops.errors import ArchiveError

pytestmark = pytest.mark.e2e

PROBE = ("import os, sys\n"
         "print(json.dumps({'pid': os.getpid(), 'warm': 'payops.money' in sys.modules,\n"
         "                  'names': sorted(n for n in globals() if not n.startswith('_'))}))")


def _notebook(path: Path, *cells: str, params: str = "value = 0") -> Path:
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                           "language": "python"}})
    p = nbformat.v4.new_code_cell(params)
    p.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell("# probe"), p, *(nbformat.v4.new_code_cell(c) for c in cells)]
    nbformat.write(nb, path)
    return path


@pytest.fixture()
def sqlite_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A migrated SQLite database in the environment: the warm-up checks its schema."""
    url = f"sqlite:///{tmp_path / 'payops.db'}"
    monkeypatch.setenv("PAYOPS_DATABASE_URL", url)
    get_settings(fresh=True)
    db.upgrade(url)
    yield url
    db.dispose_engines()
    get_settings(fresh=True)


def test_notebook_imports_are_the_code_cells_imports_in_order(tmp_path: Path) -> None:
    nb = _notebook(tmp_path / "a.ipynb", "from payops.sop import verify\nimport json\nx = 1",
                   "%matplotlib inline", "import json\nfrom payops import charts as c",
                   params="import yaml\nrun_id = None")
    assert pipeline.notebook_imports(nb) == "from payops.sop import verify\nimport json\nfrom payops import charts as c"
    line = pipeline.warm_up_line(nb)
    assert line.startswith("exec(") and line.endswith(", {})")  # runs in a namespace of its own


def test_each_step_has_a_fresh_warmed_kernel_with_a_clean_namespace(sqlite_env: str, tmp_path: Path) -> None:
    steps = [(name, _notebook(tmp_path / f"{name}.ipynb", "import json", PROBE, "from payops import money"))
             for name in ("a", "b", "c")]
    engine = pipeline.ensure_engine()
    seen = []
    with pipeline.StepKernels(steps, lookahead=1) as kernels:
        for name, path in steps:
            km = kernels.take(name)
            try:
                done = papermill.execute_notebook(str(path), str(tmp_path / f"{name}.out.ipynb"), engine_name=engine,
                                                  km=km, kernel_name="python3", parameters={"value": 1},
                                                  progress_bar=False)
            finally:
                kernels.retire(km)
            probe = json.loads(done.cells[4].outputs[0]["text"])
            seen.append(probe)
            code = [c for c in done.cells if c.cell_type == "code"]
            assert [c.execution_count for c in code] == list(range(1, len(code) + 1))  # a fresh kernel
            assert "injected-parameters" in code[1].metadata.get("tags", [])  # papermill's own parameterizing
            assert not psutil.pid_exists(probe["pid"]) or psutil.Process(probe["pid"]).status() == "zombie"
    assert all(p["warm"] for p in seen)  # the warm-up imported the notebook's modules before its cells ran
    for p in seen:  # …and bound nothing in it (IPython's own names aside)
        assert {"json", "os", "sys", "value"} <= set(p["names"])
        assert not set(p["names"]) & {"money", "payops", "warm_up", "exec"}
    assert len({p["pid"] for p in seen}) == 3


def test_a_kernel_that_died_before_its_step_is_replaced(sqlite_env: str, tmp_path: Path) -> None:
    steps = [(name, _notebook(tmp_path / f"{name}.ipynb", "print('ok')")) for name in ("a", "b")]
    engine = pipeline.ensure_engine()
    with pipeline.StepKernels(steps, lookahead=1) as kernels:
        first = kernels.take("a")
        kernels.retire(first)
        doomed = kernels._started["b"]
        doomed.provisioner.process.kill()
        doomed.provisioner.process.wait()
        km = kernels.take("b")
        assert km is not doomed
        try:
            done = papermill.execute_notebook(str(steps[1][1]), str(tmp_path / "b.out.ipynb"), engine_name=engine,
                                              km=km, kernel_name="python3", progress_bar=False)
        finally:
            kernels.retire(km)
    assert done.cells[2].outputs[0]["text"] == "ok\n"


def test_close_stops_the_kernels_no_step_used(sqlite_env: str, tmp_path: Path) -> None:
    steps = [(name, _notebook(tmp_path / f"{name}.ipynb", "print('ok')")) for name in ("a", "b", "c")]
    with pipeline.StepKernels(steps, lookahead=2) as kernels:
        kms = list(kernels._started.values())
        pids = [km.provisioner.process.pid for km in kms]
        assert len(pids) == 3
        # unix sockets in a private folder (no loopback port another process could take first)
        folder = Path(kms[0].ip).parent
        assert {km.transport for km in kms} == {"ipc"} and {Path(km.ip).parent for km in kms} == {folder}
        assert folder.stat().st_mode & 0o777 == 0o700
        for km in kms:  # each kernel's five channels are sockets there
            info = km.get_connection_info()
            assert info["transport"] == "ipc"
            ports = [info[f"{c}_port"] for c in ("shell", "iopub", "stdin", "hb", "control")]
            deadline = time.monotonic() + 60  # started ahead: bound once the kernel is up
            while not all(Path(f"{km.ip}-{port}").is_socket() for port in ports) and time.monotonic() < deadline:
                time.sleep(0.1)
            assert all(Path(f"{km.ip}-{port}").is_socket() for port in ports), sorted(folder.iterdir())
    for pid in pids:
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie"
    assert not folder.exists()


def test_html_renderer_renders_behind_and_catches_up(tmp_path: Path) -> None:
    one = _notebook(tmp_path / "10-a.ipynb", "x = 1")
    two = _notebook(tmp_path / "20-b.ipynb", "y = 2")
    renderer = pipeline.HtmlRenderer()
    try:
        renderer.submit(one)
        renderer.finish([one, two, tmp_path / "missing.ipynb"])  # two had no rendering: caught up
    finally:
        renderer.close()
    assert one.with_suffix(".html").is_file() and two.with_suffix(".html").is_file()
    bad = tmp_path / "30-c.ipynb"
    bad.write_text("not a notebook")
    renderer = pipeline.HtmlRenderer()
    try:
        renderer.submit(bad)
        with pytest.raises(ArchiveError, match=r"30-c\.ipynb"):
            renderer.finish()
    finally:
        renderer.close()


def test_a_kernel_that_cannot_start_fails_its_step_not_the_run_set_up(tmp_path: Path) -> None:
    """A start failure (no such kernel) surfaces when the step takes its kernel — inside the runner's
    per-step handling, where it is recorded as that step's failure — not when the pipeline is set up."""
    steps = [(name, _notebook(tmp_path / f"{name}.ipynb", "print('ok')")) for name in ("a", "b")]
    kernels = pipeline.StepKernels(steps, lookahead=1)
    original = pipeline.KERNEL_NAME
    pipeline.KERNEL_NAME = "no-such-kernel"
    try:
        with kernels:  # nothing raised while starting ahead
            with pytest.raises(Exception, match="no-such-kernel"):
                kernels.take("a")
            with pytest.raises(Exception, match="no-such-kernel"):
                kernels.take("b")
    finally:
        pipeline.KERNEL_NAME = original


def test_socket_folders_of_killed_runners_are_removed_by_the_next_one(tmp_path: Path) -> None:
    dead = tmp_path / f"{pipeline.IPC_PREFIX}4194399-abc"  # above pid_max: no such process
    alive = tmp_path / f"{pipeline.IPC_PREFIX}{os.getpid()}-def"
    other = tmp_path / "payops-k-notapid"
    for folder in (dead, alive, other):
        folder.mkdir()
        (folder / "k1-1").write_text("")
    assert pipeline.remove_stale_socket_folders(tmp_path) == [dead]
    assert not dead.exists() and alive.exists() and other.exists()
