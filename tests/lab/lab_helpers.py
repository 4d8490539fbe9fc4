"""Helpers of the JupyterLab tests (imported by basename, like e2e_helpers)."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select

from payops import demo_data
from payops.db import session_scope
from payops.db.models import ManualPayout, RunbookRun

OPERATOR = "aaaaaaaa-0000-4000-8000-000000000001"
LP = demo_data.REHEARSAL_LEDGER_PAYOUT_ID
#: the form as ops fills it for the demo seed's failed payout of Test Studio A
FORM = {
    "studio_id": demo_data.STUDIO_A.studio_id, "studio_name": "Test Studio A", "ledger_payout_id": LP,
    "incident_id": "INC-LAB-1", "amount": "875.50", "reserve_after": "120.00", "reason": "automated payout failed",
    "destination_account": "acct_test_studio_a", "operator": OPERATOR,
}


def runs() -> list[RunbookRun]:
    with session_scope() as s:
        rows = list(s.scalars(select(RunbookRun).order_by(RunbookRun.created_at)))
        s.expunge_all()
        return rows


def audit_rows() -> int:
    with session_scope() as s:
        return s.scalar(select(func.count()).select_from(ManualPayout)) or 0


def fill(form: Any, values: dict[str, str]) -> None:
    for k, v in values.items():
        form.inputs[k].value = v


# --- JupyterLab as `payops lab` starts it ---------------------------------------------------------
@contextmanager
def jupyterlab(tmp: Path, timeout: float = 90.0) -> Iterator[tuple[str, str]]:
    """``payops lab --port 0`` from the project's venv, with this process's environment (the test's database,
    sandbox, output folder) and JupyterLab's own state in ``tmp``; yields (base URL, token) once it answers."""
    state = tmp / "jupyter"
    env = os.environ.copy() | {
        "JUPYTER_CONFIG_DIR": str(state / "config"), "JUPYTER_RUNTIME_DIR": str(state / "runtime"),
        "JUPYTERLAB_SETTINGS_DIR": str(state / "settings"), "JUPYTERLAB_WORKSPACES_DIR": str(state / "workspaces"),
        "IPYTHONDIR": str(state / "ipython"),
    }
    env = {k: v for k, v in env.items() if not k.startswith("PYTEST_")}
    news = state / "settings" / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    news.parent.mkdir(parents=True, exist_ok=True)
    news.write_text('{"fetchNews": "false", "checkForUpdates": false}')  # no "get notified?" toast over the page
    log = (tmp / "jupyterlab.log").open("w")
    proc = subprocess.Popen([str(Path(sys.executable).with_name("payops")), "lab", "--port", "0"], env=env,
                            stdout=subprocess.PIPE, stderr=log, text=True, start_new_session=True)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        m = re.search(r"http://127\.0\.0\.1:(\d+)/\S*\?token=(\S+)", first)
        assert m, f"payops lab printed {first!r}; log: {(tmp / 'jupyterlab.log').read_text()[-2000:]}"
        base, token = f"http://127.0.0.1:{m.group(1)}", m.group(2)
        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx.get(f"{base}/api/status", params={"token": token}, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, (tmp / "jupyterlab.log").read_text()[-3000:]
            time.sleep(0.3)
        assert httpx.get(f"{base}/api/status", timeout=2).status_code == 403  # the token is required
        yield base, token
    finally:
        try:  # the kernels first (the server would, on SIGTERM; this does not rely on it)
            if proc.poll() is None:
                for k in httpx.get(f"{base}/api/kernels", params={"token": token}, timeout=5).json():
                    httpx.delete(f"{base}/api/kernels/{k['id']}", params={"token": token}, timeout=10)
        except Exception:  # noqa: BLE001 — best effort; the process group is stopped below anyway
            pass
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        log.close()


def open_notebook(page: Any, base: str, token: str, path: str) -> None:
    """Open ``path`` in JupyterLab and wait for its kernel to be idle."""
    page.goto(f"{base}/lab/tree/{path}?token={token}", wait_until="domcontentloaded")
    page.wait_for_selector(".jp-NotebookPanel .jp-Notebook .jp-Cell", timeout=60_000)
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=60_000)


def run_cell_with(page: Any, text: str) -> None:
    """Run the code cell containing ``text`` (click into it, Shift+Enter)."""
    cell = page.locator(".jp-CodeCell", has_text=text).first
    for attempt in range(3):  # a keystroke sent while JupyterLab still activates its plugins can be lost
        cell.locator(".jp-InputArea-editor").click()
        page.keyboard.press("Escape")  # command mode, this cell selected
        page.keyboard.press("Shift+Enter")
        try:
            cell.locator(".jp-OutputArea-output").first.wait_for(timeout=30_000)
            return
        except Exception:
            if attempt == 2:
                raise


def keep_screenshot(locator: Any, tmp: Path, name: str) -> Path:
    """Screenshot of one element, kept in tmp and copied to var/ (git-ignored) to look at."""
    path = tmp / name
    locator.screenshot(path=str(path))
    keep = Path(__file__).resolve().parents[2] / "var" / "lab-screenshots" / name
    keep.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(path, keep)
    return path


def saved_reconciliation() -> str:
    """A saved reconciliation with two breaks (CAD missing in Stripe, USD partly reversed) and one match."""
    import uuid
    from datetime import date

    import pandas as pd

    from payops.reconcile import store
    from payops.reconcile.match import ReconResult
    from payops.reconcile.schema import RESULT_COLUMNS, ReconConfig

    rows = [
        {"category": "MATCHED", "ledger_payout_id": "lp-ok", "transfer_id": "tr_ok", "currency": "CAD",
         "ledger_amount": 100, "stripe_amount": 100, "difference": 0},
        {"category": "MISSING_IN_STRIPE", "ledger_payout_id": "lp-1", "currency": "CAD", "ledger_amount": 5_000,
         "reason": "no transfer for this ledger payout", "suggested_action": "pay it (manual payout SOP)"},
        {"category": "REVERSED_PARTIAL", "ledger_payout_id": "lp-2", "transfer_id": "tr_2", "payout_id": "po_2",
         "currency": "USD", "ledger_amount": 60_000, "stripe_amount": 45_000, "difference": -15_000,
         "reason": "15,000 reversed", "suggested_action": "ask the studio"},
    ]
    base = {c: None for c in RESULT_COLUMNS}
    df = pd.DataFrame([{**base, **r} for r in rows], columns=list(RESULT_COLUMNS))
    for c, t in RESULT_COLUMNS.items():
        df[c] = df[c].astype(t)
    run_id = str(uuid.uuid4())
    store.save_result(ReconResult(results=df, config=ReconConfig(date(2026, 10, 1), date(2026, 10, 31))),
                      run_id=run_id, max_unexplained=0)
    return run_id


def stripe_transfers(sandbox: Any, group: str = LP) -> list[Any]:
    """The sandbox's transfers for this ledger payout (transfer_group), read with the official SDK."""
    return list(sandbox.client().v1.transfers.list({"transfer_group": group, "limit": 100}).data)
