"""Helpers shared by the end-to-end tests (imported by basename: tests use rootdir imports)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

from sqlalchemy import func, select
from typer.testing import CliRunner

from payops import demo_data
from payops.cli import app
from payops.db import session_scope
from payops.db.models import Approval, GoLiveSignature, ManualPayout, RunbookRun, TransferIntent

OPERATOR = "aaaaaaaa-0000-4000-8000-000000000001"
OPS = "bbbbbbbb-0000-4000-8000-000000000002"
FIN = "cccccccc-0000-4000-8000-000000000003"
LP = demo_data.REHEARSAL_LEDGER_PAYOUT_ID

SOP_ARGS = [
    "--studio-id", demo_data.STUDIO_A.studio_id, "--studio-name", "Test Studio A", "--ledger-payout-id", LP,
    "--incident-id", "INC-TEST-1", "--amount", "875.50", "--reserve-after", "120.00",
    "--reason", "automated payout failed", "--destination-account", "acct_test_studio_a",
]


def cli(*args: str) -> Any:
    """Invoke the real CLI in-process (kernels still run as subprocesses)."""
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def cli_subprocess(
    *args: str, env_extra: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    env = os.environ.copy() | (env_extra or {})
    return subprocess.run([sys.executable, "-m", "payops.cli", *args], env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)


def stripe_transfers(sandbox: Any, group: str = LP) -> list[Any]:
    return list(sandbox.client().v1.transfers.list({"transfer_group": group, "limit": 100}).data)


def counts() -> dict[str, int]:
    with session_scope() as s:
        return {
            "runs": s.scalar(select(func.count()).select_from(RunbookRun)) or 0,
            "live_runs": s.scalar(select(func.count()).select_from(RunbookRun).where(RunbookRun.mode != "dry-run"))
            or 0,
            "approvals": s.scalar(select(func.count()).select_from(Approval)) or 0,
            "manual_payouts": s.scalar(select(func.count()).select_from(ManualPayout)) or 0,
            "intents": s.scalar(select(func.count()).select_from(TransferIntent)) or 0,
            "golive": s.scalar(select(func.count()).select_from(GoLiveSignature)) or 0,
        }


def latest_run(mode: str | None = None) -> dict[str, Any]:
    res = cli("runs", "list", "--format", "json", "--limit", "50")
    rows = json.loads(res.stdout)
    rows = [r for r in rows if mode is None or r["mode"] == mode]
    assert rows, f"no run with mode {mode}"
    return rows[0]


def approved_dry_run(roster: Any) -> str:
    """A finished dry run with ops + finance approvals, each signed with the approver's roster key
    (``roster`` fixture); returns its id. Going live also needs ``--key`` + the operator's key (``operator_key``)."""
    res = cli("manual-payout", *SOP_ARGS, "--dry-run")
    assert res.exit_code == 0, res.stdout + res.stderr
    run_id = latest_run("dry-run")["id"]
    for role in ("ops", "finance"):
        res = cli("approve", run_id, "--role", role, "--key", str(roster[role].key_path), "--yes")
        assert res.exit_code == 0, res.stdout + res.stderr
    return run_id


def operator_key(roster: Any) -> str:
    return str(roster["operator"].key_path)


def popen_cli(*args: str, env_extra: dict[str, str] | None = None) -> subprocess.Popen[str]:
    env = os.environ.copy() | (env_extra or {})
    return subprocess.Popen([sys.executable, "-m", "payops.cli", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def sandbox_requests(sandbox: Any, method: str, path: str) -> list[dict[str, Any]]:
    return [r for r in sandbox.control("GET", "requests")["data"] if r["method"] == method and r["path"] == path]
