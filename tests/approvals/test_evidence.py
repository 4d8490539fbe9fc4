"""Provable later: a live run's approvals re-verified from a copy of its archive folder alone — with plain
``ssh-keygen -Y verify`` and with ``payops archive verify`` — and a flipped byte in a signature fails it."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from approval_helpers import signed_live_args
from payops import archive, demo_data
from payops.approvals import NAMESPACE
from payops.approvals.evidence import verify_run_approvals
from payops.cli import app
from payops.errors import ArchiveError

pytestmark = [pytest.mark.e2e, pytest.mark.db, pytest.mark.slow]
SOP_ARGS = [
    "--studio-id", demo_data.STUDIO_A.studio_id, "--studio-name", "Test Studio A",
    "--ledger-payout-id", demo_data.REHEARSAL_LEDGER_PAYOUT_ID, "--incident-id", "INC-AUDIT-1", "--amount", "875.50",
    "--reserve-after", "120.00", "--reason", "automated payout failed", "--destination-account", "acct_test_studio_a",
]


def _clean_env() -> dict[str, str]:
    """An auditor's shell: no database, no Stripe, no payops settings."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("PAYOPS_", "STRIPE_", "PYTEST_"))}


def _archive_verify(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "payops.cli", "archive", "verify", str(path)], env=_clean_env(),
                          capture_output=True, text=True, timeout=300, check=False)


def _flip(sig: Path) -> None:
    """One byte of the signature itself flipped, the armour kept intact (so ssh-keygen reads it, then rejects it)."""
    lines = sig.read_text().splitlines()
    raw = bytearray(base64.b64decode("".join(lines[1:-1])))
    raw[-10] ^= 0x01
    b64 = base64.b64encode(bytes(raw)).decode()
    sig.write_text("\n".join([lines[0], *(b64[i:i + 70] for i in range(0, len(b64), 70)), lines[-1]]) + "\n")


@pytest.fixture()
def live_run(payops_env, roster, tmp_path: Path) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    res = CliRunner().invoke(app, signed_live_args(roster, SOP_ARGS, tmp_path / "sigs"), catch_exceptions=False)
    assert res.exit_code == 0, res.stdout + res.stderr
    runs = json.loads(CliRunner().invoke(app, ["runs", "list", "--format", "json"]).stdout)
    (live,) = [r for r in runs if r["mode"] == "live"]
    return live


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_an_auditor_verifies_every_approval_from_a_copy_of_the_run_folder(live_run, roster, payops_env,  # type: ignore[no-untyped-def]
                                                                         tmp_path: Path) -> None:
    copy = tmp_path / "auditor" / "run"
    shutil.copytree(live_run["output_dir"], copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    entries = {e["role"]: e for e in manifest["approvals"]}
    assert set(entries) == {"ops", "finance", "operator"}
    assert {r: e["approver_id"] for r, e in entries.items()} == {r: roster[r].person_id for r in entries}
    assert {r: e["key_fingerprint"] for r, e in entries.items()} == {
        r: roster[r].fingerprint for r in ("ops", "finance", "operator")}
    assert all(e["key_added_by"] == roster["operator"].person_id and e["key_added_at"] <= e["decided_at"]
               for e in entries.values())  # who enrolled each key, and when (the fixture's admin: the operator)
    # the allowed_signers file holds exactly the three roster keys, each with its active window
    signers = (copy / "approvals" / "allowed_signers").read_text().splitlines()
    assert len(signers) == 3 and all('valid-after="' in ln and f'namespaces="{NAMESPACE}"' in ln for ln in signers)
    assert sorted(ln.split()[0] for ln in signers) == sorted(e["approver_id"] for e in entries.values())
    # no private key entered the folder
    assert not [p for p in copy.rglob("*") if p.is_file() and b"PRIVATE KEY" in p.read_bytes()]

    for role, e in entries.items():
        # the brief's plain command, and the manifest's (which pins the time the approval was given)
        plain = (f"ssh-keygen -Y verify -f approvals/allowed_signers -I {e['principal']} -n {NAMESPACE} "
                 f"-s approvals/{role}.sig < approvals/{role}.statement")
        for cmd in (plain, e["verify_command"]):
            proc = subprocess.run(["bash", "-c", cmd], cwd=copy, env=_clean_env(), capture_output=True, text=True,
                                  check=False)
            assert proc.returncode == 0 and proc.stdout.startswith(f'Good "{NAMESPACE}" signature for '
                                                                  f"{e['principal']}"), (cmd, proc.stderr)
        statement = (copy / e["statement"]).read_text()
        assert f"parameters sha256: {manifest['params_hash']}" in statement and f"role: {role}" in statement
        parameters = statement.rstrip("\n").rsplit("\n", 1)[1].removeprefix("parameters: ")
        assert hashlib.sha256(parameters.encode()).hexdigest() == manifest["params_hash"]
    assert "amount: 875.50 CAD" in (copy / "approvals" / "finance.statement").read_text()
    assert f"run: {live_run['id']}" in (copy / "approvals" / "operator.statement").read_text()
    assert (copy / "approvals" / "VERIFY.txt").read_text().count("ssh-keygen -Y verify") == 3

    # payops archive verify, on the copy alone (no database, no chain above it), then with one byte flipped
    ok = _archive_verify(copy)
    assert ok.returncode == 0, ok.stderr
    assert verify_run_approvals(copy) == []
    assert archive.verify_archive(payops_env.output_dir, run_checks=(verify_run_approvals,)).ok
    _flip(copy / "approvals" / "ops.sig")
    bad = _archive_verify(copy)
    assert bad.returncode == 9
    assert "approvals/ops.sig: ops signature does not verify" in bad.stderr, bad.stderr
    ssh = subprocess.run(["bash", "-c", entries["ops"]["verify_command"]], cwd=copy, env=_clean_env(),
                         capture_output=True, text=True, check=False)
    assert ssh.returncode != 0


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_signature_check_holds_even_when_a_forger_rewrites_the_manifest(live_run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Hashes can be recomputed by whoever rewrites a copied folder's manifest; signatures cannot be forged."""
    copy = tmp_path / "forged"
    shutil.copytree(live_run["output_dir"], copy)
    _flip(copy / "approvals" / "finance.sig")
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["files"]["approvals/finance.sig"] = archive.sha256_file(copy / "approvals" / "finance.sig")
    (copy / "manifest.json").write_text(json.dumps(manifest, indent=2))
    problems = verify_run_approvals(copy)
    assert problems and problems[0].startswith("approvals/finance.sig: finance signature does not verify")
    assert archive.verify_archive(copy).ok  # the hashes alone agree: only the signature check sees it
    report = archive.verify_archive(copy, run_checks=(verify_run_approvals,))
    assert not report.ok and report.problems == [f"{copy.name}/{p}" for p in problems]
    # a statement swapped for another role's is caught too, and a missing go-live leaves the run unproven
    manifest["approvals"] = [e for e in manifest["approvals"] if e["role"] != "operator"]
    (copy / "manifest.json").write_text(json.dumps(manifest, indent=2))
    assert any("no verified operator signature for this live run" in p for p in verify_run_approvals(copy))


def test_a_private_key_in_a_run_folder_refuses_the_seal(tmp_path: Path) -> None:
    root = tmp_path / "outputs"
    folder = root / "manual_payout" / "2026-12-07" / "run-1"
    folder.mkdir(parents=True)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(folder / "id_ed25519")], check=True,
                   capture_output=True)
    with pytest.raises(ArchiveError, match="private_key"):
        archive.seal_run(folder, output_root=root, meta={})
    assert not (folder / "manifest.json").exists()
