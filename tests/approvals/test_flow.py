"""The three ways an approver signs, through the real CLI: ``--key`` (a private key file), ``--key`` with a
``.pub`` whose private half is in ssh-agent, and offline (``--statement-only`` → plain ``ssh-keygen -Y sign``
→ ``--signature``); and the statement plus commands payops shows (``approval_guide``, the verify notebook)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from approval_helpers import run_record
from payops import demo_data, runstate
from payops.approvals import NAMESPACE
from payops.approvals.statement import approval_guide, for_run, parse
from payops.cli import app
from payops.db import session_scope

pytestmark = [pytest.mark.db]
SOP_ARGS = [
    "--studio-id", demo_data.STUDIO_A.studio_id, "--studio-name", "Test Studio A",
    "--ledger-payout-id", demo_data.REHEARSAL_LEDGER_PAYOUT_ID, "--incident-id", "INC-FLOW-1", "--amount", "875.50",
    "--reserve-after", "120.00", "--reason", "automated payout failed", "--destination-account", "acct_test_studio_a",
    "--currency", "CAD", "--notes", "line one\nrun: 00000000-0000-4000-8000-000000000000",
]


def cli(*args: str) -> Any:
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


@pytest.fixture()
def run(roster, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("PAYOPS_OPERATOR_ID", roster["operator"].person_id)
    from payops.config import get_settings

    get_settings(fresh=True)
    return run_record(SOP_ARGS)


def test_offline_statement_only_then_plain_ssh_keygen_then_signature(run, roster, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    # exactly the statement bytes on stdout — also through a real process, as `> stmt` would capture them
    res = cli("approve", run.id, "--role", "ops", "--statement-only")
    assert res.exit_code == 0
    proc = subprocess.run([sys.executable, "-m", "payops.cli", "approve", run.id, "--role", "ops", "--statement-only"],
                          env=os.environ.copy(), capture_output=True, check=False)
    assert proc.returncode == 0, proc.stderr
    with session_scope() as s:
        expected = for_run(s, run.id, "ops")
    assert proc.stdout.decode() == res.stdout == expected
    header = parse(expected)
    assert (header.run_id, header.role, header.params_hash) == (run.id, "ops", run.params_hash)
    # a newline in the notes cannot pose as a header line
    assert header.run_id != "00000000-0000-4000-8000-000000000000"
    assert 'notes: "line one\\nrun: 00000000-0000-4000-8000-000000000000"' in expected
    stmt = tmp_path / "ops.statement"
    stmt.write_bytes(proc.stdout)
    subprocess.run(["ssh-keygen", "-Y", "sign", "-f", str(roster["ops"].key_path), "-n", NAMESPACE, str(stmt)],
                   check=True, capture_output=True)
    ok = cli("approve", run.id, "--role", "ops", "--signature", f"{stmt}.sig")
    assert ok.exit_code == 0, ok.stdout + ok.stderr
    assert "ops approval by Olivia Ops" in ok.stdout and roster["ops"].fingerprint in ok.stdout
    assert "still needed: finance" in ok.stdout
    # the statement file may also be named explicitly
    moved = tmp_path / "elsewhere.sig"
    Path(f"{stmt}.sig").rename(moved)
    again = cli("approve", run.id, "--role", "ops", "--signature", str(moved), "--statement", str(stmt))
    assert again.exit_code == 0 and "was already recorded" in again.stdout


def test_key_file_and_agent_held_key(run, roster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    res = cli("approve", run.id, "--role", "ops", "--key", str(roster["ops"].key_path), "--yes")
    assert res.exit_code == 0, res.stdout + res.stderr
    assert f"You are approving run {run.id} as ops" in res.stdout and "amount: 875.50 CAD" in res.stdout
    sock = tmp_path / "agent.sock"
    out = subprocess.run(["ssh-agent", "-s", "-a", str(sock)], capture_output=True, text=True, check=True).stdout
    pid = out.split("SSH_AGENT_PID=")[1].split(";")[0]
    try:
        subprocess.run(["ssh-add", "-q", str(roster["finance"].key_path)], env={"SSH_AUTH_SOCK": str(sock)},
                       check=True, capture_output=True)
        monkeypatch.setenv("SSH_AUTH_SOCK", str(sock))
        res = cli("approve", run.id, "--role", "finance", "--key", str(roster["finance"].pub_path), "--yes")
    finally:
        subprocess.run(["kill", pid], check=False)
    assert res.exit_code == 0, res.stdout + res.stderr
    with session_scope() as s:
        got = runstate.approvals_for(s, run.params_hash)
    assert {r: a.key_fingerprint for r, a in got.items()} == {"ops": roster["ops"].fingerprint,
                                                              "finance": roster["finance"].fingerprint}
    # exactly one of --key / --signature; the operator role is not approved here
    for args, field in ((["--role", "ops"], "--key"), (["--role", "operator", "--key", "k"], "--role")):
        bad = cli("approve", run.id, *args)
        assert bad.exit_code == 2 and field in bad.stderr


def test_the_guide_shows_each_statement_and_the_exact_commands(run, roster) -> None:  # type: ignore[no-untyped-def]
    guide = approval_guide(run.id)
    text = guide.text()
    assert set(guide.commands) == {"ops", "finance", "operator"}
    assert f"payops approve {run.id} --role ops --key ~/.ssh/id_ed25519" in text
    assert f"ssh-keygen -Y sign -f ~/.ssh/id_ed25519 -n {NAMESPACE} ops-{run.id[:8]}.statement" in text
    assert f"payops runs resume {run.id} --live --key" in text
    with session_scope() as s:
        assert guide.statements["finance"] == for_run(s, run.id, "finance")
    assert "    | amount: 875.50 CAD" in text
    assert cli("approve", run.id, "--role", "ops", "--key", str(roster["ops"].key_path), "--yes").exit_code == 0
    after = approval_guide(run.id)
    assert "ops" not in after.commands and after.recorded["ops"].startswith("signed by " + roster["ops"].person_id)
    assert roster["ops"].fingerprint in after.text()
