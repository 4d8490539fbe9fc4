"""Keys, signatures and ssh-keygen, without a database: what the roster accepts as a public key, what a
signature is, that verification is ssh-keygen's and honours the key's window, and that private keys
never pass the archive's scanner."""

from __future__ import annotations

import base64
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from payops.approvals import NAMESPACE, sshkeys
from payops.archive import scan_text


def _keypair(tmp: Path, name: str = "k", *args: str) -> Path:
    path = tmp / name
    subprocess.run(["ssh-keygen", "-q", "-N", "", "-C", f"{name}@test", "-f", str(path), *(args or ("-t", "ed25519"))],
                   check=True, capture_output=True)
    return path


def test_public_key_parsed_with_the_fingerprint_ssh_keygen_prints(tmp_path: Path) -> None:
    path = _keypair(tmp_path)
    key = sshkeys.read_public_key_file(path.with_suffix(".pub"))
    listed = subprocess.run(["ssh-keygen", "-l", "-f", str(path.with_suffix(".pub"))], capture_output=True,
                            text=True, check=True).stdout.split()
    assert key.key_type == "ssh-ed25519" and key.comment == "k@test"
    assert key.fingerprint == listed[1]


@pytest.mark.parametrize("keytype", [("-t", "ecdsa", "-b", "256"), ("-t", "rsa", "-b", "3072")])
def test_other_signing_key_types_are_accepted(tmp_path: Path, keytype: tuple[str, ...]) -> None:
    key = sshkeys.read_public_key_file(_keypair(tmp_path, "k", *keytype).with_suffix(".pub"))
    assert key.key_type in ("ecdsa-sha2-nistp256", "ssh-rsa")


def _refusal(text: str) -> str:
    with pytest.raises(sshkeys.KeyProblem) as info:
        sshkeys.parse_public_key(text)
    return str(info.value)


def test_keys_that_are_obviously_not_public_keys_are_refused_by_name(tmp_path: Path) -> None:
    path = _keypair(tmp_path)
    pub = path.with_suffix(".pub").read_text()
    b64 = pub.split()[1]
    assert "PRIVATE key" in _refusal(path.read_text())
    assert "empty" in _refusal("")
    assert "not an SSH public key" in _refusal("hello")
    assert "unknown key type 'ssh-foo'" in _refusal(f"ssh-foo {b64}")
    assert "DSA" in _refusal(f"ssh-dss {b64}")
    assert "certificate" in _refusal(f"ssh-ed25519-cert-v01@openssh.com {b64}")
    assert "not valid base64" in _refusal("ssh-ed25519 AAAA!!!!")
    assert "the line says ecdsa-sha2-nistp256" in _refusal(f"ecdsa-sha2-nistp256 {b64}")
    assert "2 lines" in _refusal(pub + pub)
    # base64 of an ed25519 key blob with a truncated public key: ssh-keygen itself refuses it
    blob = base64.b64decode(b64)[:-5]
    assert "ssh-keygen does not accept" in _refusal(f"ssh-ed25519 {base64.b64encode(blob).decode()}")


def test_short_rsa_keys_are_refused(tmp_path: Path) -> None:
    path = _keypair(tmp_path, "short", "-t", "rsa", "-b", "1024")
    assert "1024 bits" in _refusal(path.with_suffix(".pub").read_text())


def test_sign_then_verify_with_ssh_keygen_and_its_window(tmp_path: Path) -> None:
    path = _keypair(tmp_path)
    key = sshkeys.read_public_key_file(path.with_suffix(".pub"))
    sig = sshkeys.sign("statement\n", path)
    info = sshkeys.parse_signature(sig)
    assert info.namespace == NAMESPACE and info.key.fingerprint == key.fingerprint and info.hash_alg == "sha512"
    added = datetime(2026, 1, 1, tzinfo=UTC)
    revoked = datetime(2026, 6, 1, tzinfo=UTC)
    line = sshkeys.allowed_signers_line("p-1", key, valid_after=added, valid_before=revoked, comment="Ada [ops]")
    assert 'valid-after="20260101000000Z"' in line and 'valid-before="20260601000000Z"' in line
    day2 = added + timedelta(days=1)
    assert sshkeys.verify("statement\n", sig, principal="p-1", allowed_signers=line, at=day2) is None
    # the same signature, another statement / principal / a time outside the window: refused by ssh-keygen
    assert sshkeys.verify("statement!\n", sig, principal="p-1", allowed_signers=line, at=added + timedelta(days=1))
    assert sshkeys.verify("statement\n", sig, principal="p-2", allowed_signers=line, at=added + timedelta(days=1))
    assert "expired" in (sshkeys.verify("statement\n", sig, principal="p-1", allowed_signers=line,
                                        at=revoked + timedelta(seconds=1)) or "")
    assert "not yet valid" in (sshkeys.verify("statement\n", sig, principal="p-1", allowed_signers=line,
                                              at=added - timedelta(seconds=1)) or "")


def test_signing_through_ssh_agent_with_only_the_public_key(tmp_path: Path) -> None:
    path = _keypair(tmp_path)
    agent = subprocess.run(["ssh-agent", "-s", "-a", str(tmp_path / "agent.sock")], capture_output=True, text=True,
                           check=True).stdout
    pid = next(part.split("=")[1] for part in agent.replace(";", "\n").split() if part.startswith("SSH_AGENT_PID="))
    env = {"SSH_AUTH_SOCK": str(tmp_path / "agent.sock")}
    try:
        subprocess.run(["ssh-add", "-q", str(path)], env=env, check=True, capture_output=True)
        public_only = tmp_path / "only.pub"
        public_only.write_text(path.with_suffix(".pub").read_text())
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("SSH_AUTH_SOCK", env["SSH_AUTH_SOCK"])
            sig = sshkeys.sign("via the agent\n", public_only)
        key = sshkeys.read_public_key_file(public_only)
        line = sshkeys.allowed_signers_line("p", key, valid_after=datetime(2026, 1, 1, tzinfo=UTC), valid_before=None)
        assert sshkeys.verify("via the agent\n", sig, principal="p", allowed_signers=line, at=None) is None
    finally:
        subprocess.run(["kill", pid], check=False)
    with pytest.MonkeyPatch.context() as mp, pytest.raises(sshkeys.KeyProblem, match="SSH_AUTH_SOCK"):
        mp.delenv("SSH_AUTH_SOCK", raising=False)
        sshkeys.sign("x\n", public_only)


@pytest.mark.parametrize("text", ["", "nope", "-----BEGIN SSH SIGNATURE-----\n@@@\n-----END SSH SIGNATURE-----",
                                  "-----BEGIN SSH SIGNATURE-----\nAAAA\n-----END SSH SIGNATURE-----"])
def test_what_is_not_a_signature(text: str) -> None:
    with pytest.raises(sshkeys.KeyProblem):
        sshkeys.parse_signature(text)


def test_private_keys_are_secrets_to_the_archive_scanner(tmp_path: Path) -> None:
    ed = _keypair(tmp_path, "ed").read_text()
    rsa_pem = _keypair(tmp_path, "pem", "-t", "rsa", "-b", "2048", "-m", "PEM").read_text()
    for text in (ed, rsa_pem, "-----BEGIN PRIVATE KEY-----\nMIIE…", "PuTTY-User-Key-File-3: ssh-ed25519"):
        assert [f.kind for f in scan_text(text, "x")][:1] in (["private_key"], ["putty_private_key"]), text[:40]
    # public material is not
    assert scan_text(_keypair(tmp_path, "pub").with_suffix(".pub").read_text(), "x") == []
    assert scan_text(sshkeys.sign("s\n", tmp_path / "pub"), "x") == []


def test_payops_approve_path_imports_no_pandas_or_papermill() -> None:
    code = ("import sys, payops.approvals.submit, payops.approvals.cli, payops.approvals.golive, "
            "payops.approvals.evidence; heavy = [m for m in ('pandas', 'papermill', 'nbconvert', 'payops.runner', "
            "'stripe') if m in sys.modules]; print(heavy); sys.exit(1 if heavy else 0)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
