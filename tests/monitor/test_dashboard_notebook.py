"""The dashboards notebook on seeded history: under nbval (outside the runner, the style of
tests/checks/test_check_nbval.py), and through `payops monitor dashboard` — archived, sealed, its HTML opened in
Debian's Chromium through Playwright (each chart decodes, the four sections and the planted conditions show, no
traceback), with a screenshot kept next to the test's files to look at."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from browser_helpers import open_report
from payops import runner, runstate
from payops.cli import app
from payops.db import session_scope

pytestmark = [pytest.mark.e2e, pytest.mark.db, pytest.mark.slow]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
SECTIONS = ["What the rules see now", "1. Payout health", "2. Fallback activity", "3. Reserves & balances",
            "4. Credential expiry"]
AT = "2026-12-07T12:00:00Z"


@pytest.fixture()
def seeded(payops_env):  # type: ignore[no-untyped-def]
    """The demo ledger plus the monitoring demo's history, as of AT."""
    from payops.monitor.demo_seed import seed_monitoring_history

    seed_monitoring_history(payops_env.settings, datetime(2026, 12, 7, 12, tzinfo=UTC))
    return payops_env


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_dashboards_notebook_under_nbval(seeded, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from payops.monitor.dashboard_run import SOP, STEP, create_dashboard_run, validate_dashboard

    run_id = create_dashboard_run(validate_dashboard({"at": AT}))
    with session_scope() as s:
        params = json.loads(runstate.get_run(s, run_id).params_json) | {"run_id": run_id}
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    nbdir, cwd = tmp_path / "nb", tmp_path / "elsewhere"
    nbdir.mkdir()
    cwd.mkdir()
    prepared = nbdir / f"{STEP}.ipynb"
    res = subprocess.run([sys.executable, "-m", "papermill", "--prepare-only", str(runner.notebook_path(SOP, STEP)),
                          str(prepared), "-y", yaml.safe_dump(params)],
                         cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    ini = tmp_path / "nbval-pytest.ini"
    ini.write_text("[pytest]\n")
    res = subprocess.run([sys.executable, "-m", "pytest", "--nbval-lax", "-p", "no:cacheprovider", "-q", "-c", str(ini),
                          "--rootdir", str(nbdir), str(nbdir)],
                         cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert res.returncode == 0, (res.stdout + res.stderr)[-4000:]
    code_cells = sum(c["cell_type"] == "code" for c in json.loads(prepared.read_text())["cells"])
    assert f"{code_cells} passed" in res.stdout, res.stdout[-2000:]
    with session_scope() as s:
        (step,) = runstate.steps_of(s, run_id)
        result = json.loads(step.result_json or "{}")
    assert step.status == "succeeded"
    assert result["at"] == "2026-12-07T12:00:00+00:00"
    assert set(result["conditions"]) == {"automation_failure", "money_moved", "fallback_volume", "credential_expiry",
                                         "reserve_breach"}
    assert list(cwd.iterdir()) == []


@pytest.fixture()
def chromium(in_ci: bool) -> Path:
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing: `make browser` installs Debian's chromium"
        if in_ci:
            pytest.fail(message + " (CI=true: a missing browser is a failure)")
        pytest.skip(message)
    pytest.importorskip("playwright.sync_api")
    return CHROMIUM


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_dashboards_html_in_chromium(seeded, chromium: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from PIL import Image

    from payops.archive import verify_archive

    res = CliRunner().invoke(app, ["monitor", "dashboard", "--at", AT])
    assert res.exit_code == 0, res.output
    folder = Path(re.search(r"archive: (\S+)", res.output).group(1))  # type: ignore[union-attr]
    html = folder / "dashboards.html"
    assert html.is_file() and (folder / "manifest.json").is_file()
    assert verify_archive(seeded.output_dir).ok

    images, text, shot = open_report(chromium, CHROMIUM_ARGS, html)

    # four charts: payout health, fallback, reserves, credentials — each decoded to real pixels
    assert len(images) == 4 and all(i["done"] and i["w"] > 400 and i["h"] > 150 for i in images), images
    for heading in SECTIONS:
        assert heading in text, f"section {heading!r} is not on the page"
    for fact in ("Payout cycle 2026-11-15", "INC-DEMO-002", "apple-pay-payment-processing", "stripe-webhook-payops",
                 "Test Studio A", "next payout cycle"):
        assert fact in text, f"{fact!r} is not on the page"
    assert "Traceback" not in text and "Error" not in text.replace("error", "")

    Path(tmp_path / "dashboards.png").write_bytes(shot)  # kept with the test's tmp dir, to look at
    if os.environ.get("PAYOPS_KEEP_SCREENSHOT"):
        Path(os.environ["PAYOPS_KEEP_SCREENSHOT"]).write_bytes(shot)
    image = Image.open(io.BytesIO(shot)).convert("RGB")
    assert image.width == 1280 and image.height > 2500
    colours = image.resize((160, max(1, image.height // 8))).getcolors(maxcolors=1 << 16)
    assert colours is None or len(colours) > 50, "the screenshot is (nearly) one colour: nothing rendered"
