"""SSH public keys, SSHSIG signatures and OpenSSH's ``ssh-keygen -Y`` — the one place payops signs or verifies.

- A **public key** is one line as in a ``.pub`` file: ``<type> <base64> [comment]``. Its type must be
  one OpenSSH signs with (Ed25519, ECDSA, FIDO ``sk-`` keys, RSA ≥ 2048 bits); the base64 must decode
  to a blob naming the same type; ``ssh-keygen -l`` must accept it. A private key is refused by name.
- A **signature** is the armored ``-----BEGIN SSH SIGNATURE-----`` block ``ssh-keygen -Y sign`` writes.
  Its public key and namespace are read here (to find the roster entry); whether it is *valid* is
  only ever decided by ``ssh-keygen -Y verify``.
- **Signing** runs ``ssh-keygen -Y sign -f KEY -n payops-approval``: ``KEY`` is a private key file, or a
  public key whose private half is in ssh-agent (``SSH_AUTH_SOCK``). payops never reads the private key.
- **Verifying** runs ``ssh-keygen -Y verify`` against an ``allowed_signers`` text (principal = the
  person's id, ``valid-after``/``valid-before`` = the key's active window) at a given time
  (``-Overify-time``), exactly the command an auditor runs on the archive.

``PAYOPS_SSH_KEYGEN`` names the binary (default: ``ssh-keygen`` on PATH; ``make install`` checks it).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
import shutil
import struct
import subprocess
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from payops.approvals import NAMESPACE
from payops.errors import ConfigError

KEY_TYPES = (
    "ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com", "ssh-rsa",
)
MIN_RSA_BITS = 2048
SIG_BEGIN, SIG_END = "-----BEGIN SSH SIGNATURE-----", "-----END SSH SIGNATURE-----"
_PRIVATE_RE = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----|PuTTY-User-Key-File")
_COMMENT_BAD = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u2069\ufeff]")


class KeyProblem(ValueError):
    """A key, signature or ssh-keygen call that cannot be used; the message says why, in plain words."""


@dataclass(frozen=True)
class PublicKey:
    key_type: str
    blob_b64: str
    comment: str = ""

    @property
    def blob(self) -> bytes:
        return base64.b64decode(self.blob_b64)

    @property
    def fingerprint(self) -> str:
        """``SHA256:…`` exactly as ``ssh-keygen -l`` prints it."""
        return fingerprint_of(self.blob)

    def openssh(self) -> str:
        return f"{self.key_type} {self.blob_b64}"


@dataclass(frozen=True)
class SignatureInfo:
    key: PublicKey
    namespace: str
    hash_alg: str
    armored: str


def fingerprint_of(blob: bytes) -> str:
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def _read_string(data: bytes, pos: int) -> tuple[bytes, int]:
    if pos + 4 > len(data):
        raise KeyProblem("truncated")
    (n,) = struct.unpack(">I", data[pos:pos + 4])
    end = pos + 4 + n
    if end > len(data):
        raise KeyProblem("truncated")
    return data[pos + 4:end], end


# --- public keys -----------------------------------------------------------------------------------
def parse_public_key(text: str) -> PublicKey:
    """One OpenSSH public key line (a ``.pub`` file). Raises KeyProblem saying what is wrong."""
    if _PRIVATE_RE.search(text):
        raise KeyProblem("this is a PRIVATE key: give its public half (the .pub file); a private key never "
                         "leaves its owner's machine")
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("#")]
    if not lines:
        raise KeyProblem("is empty: expected an SSH public key like 'ssh-ed25519 AAAA… name@host'")
    if len(lines) > 1:
        raise KeyProblem(f"holds {len(lines)} lines: give exactly one public key")
    parts = lines[0].split(None, 2)
    if len(parts) < 2:
        raise KeyProblem("is not an SSH public key (expected 'ssh-ed25519 AAAA… name@host')")
    key_type, b64 = parts[0], parts[1]
    comment = parts[2].strip() if len(parts) > 2 else ""
    if key_type == "ssh-dss":
        raise KeyProblem("DSA (ssh-dss) keys are not accepted: OpenSSH no longer signs with them; use ssh-ed25519")
    if key_type.endswith("-cert-v01@openssh.com"):
        raise KeyProblem(f"{key_type} is a certificate: enroll the plain public key")
    if key_type not in KEY_TYPES:
        raise KeyProblem(f"unknown key type {key_type[:60]!r} (accepted: {', '.join(KEY_TYPES)})")
    try:
        blob = base64.b64decode(b64, validate=True)
        inner, _ = _read_string(blob, 0)
    except (binascii.Error, ValueError, KeyProblem):
        raise KeyProblem(f"the {key_type} key data is not valid base64 of an SSH key") from None
    if inner.decode("ascii", "replace") != key_type:
        raise KeyProblem(f"the key data is a {inner.decode('ascii', 'replace')[:60]!r} key, the line says {key_type}")
    if _COMMENT_BAD.search(comment) or len(comment) > 200:
        raise KeyProblem("the key's comment has control characters or is over 200 characters")
    key = PublicKey(key_type, base64.b64encode(blob).decode(), comment)
    bits, fp = _ssh_keygen_list(key)
    if fp != key.fingerprint:
        raise KeyProblem(f"ssh-keygen reads fingerprint {fp}, payops computed {key.fingerprint}")
    if key_type == "ssh-rsa" and bits < MIN_RSA_BITS:
        raise KeyProblem(f"RSA key of {bits} bits: at least {MIN_RSA_BITS} are required (better: ssh-ed25519)")
    return key


def read_public_key_file(path: Path) -> PublicKey:
    try:
        text = Path(path).expanduser().read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyProblem(f"cannot read {path}: {exc.__class__.__name__}: {exc}") from None
    return parse_public_key(text)


def _ssh_keygen_list(key: PublicKey) -> tuple[int, str]:
    proc = _run([ssh_keygen(), "-l", "-E", "sha256", "-f", "-"], input_bytes=f"{key.openssh()}\n".encode())
    if proc.returncode != 0:
        raise KeyProblem(f"ssh-keygen does not accept it as a {key.key_type} public key")
    fields = proc.stdout.decode(errors="replace").split()
    try:
        return int(fields[0]), fields[1]
    except (IndexError, ValueError):
        raise KeyProblem(f"unexpected ssh-keygen -l output {proc.stdout[:80]!r}") from None


# --- signatures ------------------------------------------------------------------------------------
def parse_signature(text: str) -> SignatureInfo:
    """The armored SSHSIG block: its public key, namespace and hash. Validity is ssh-keygen's to decide."""
    if not isinstance(text, str) or SIG_BEGIN not in text or SIG_END not in text:
        raise KeyProblem("is not an SSH signature (expected the '-----BEGIN SSH SIGNATURE-----' block that "
                         "`ssh-keygen -Y sign` writes to FILE.sig)")
    body = text[text.index(SIG_BEGIN) + len(SIG_BEGIN):text.index(SIG_END)]
    try:
        raw = base64.b64decode("".join(body.split()), validate=True)
    except (binascii.Error, ValueError):
        raise KeyProblem("the SSH signature block is damaged (not base64)") from None
    try:
        if raw[:6] != b"SSHSIG":
            raise KeyProblem("bad magic")
        pos = 10  # magic + uint32 version
        pub, pos = _read_string(raw, pos)
        namespace, pos = _read_string(raw, pos)
        _reserved, pos = _read_string(raw, pos)
        hash_alg, pos = _read_string(raw, pos)
        _sig, pos = _read_string(raw, pos)
        key_type, _ = _read_string(pub, 0)
    except KeyProblem:
        raise KeyProblem("the SSH signature block is damaged (not an SSHSIG structure)") from None
    armored = f"{SIG_BEGIN}\n{body.strip()}\n{SIG_END}\n"
    return SignatureInfo(PublicKey(key_type.decode("ascii", "replace"), base64.b64encode(pub).decode()),
                         namespace.decode("utf-8", "replace"), hash_alg.decode("ascii", "replace"), armored)


def ssh_time(when: datetime) -> str:
    """An allowed_signers / -Overify-time timestamp, UTC, to the second."""
    return when.astimezone(UTC).strftime("%Y%m%d%H%M%SZ")


def allowed_signers_line(principal: str, key: PublicKey, *, valid_after: datetime,
                         valid_before: datetime | None, comment: str = "") -> str:
    """``principal namespaces=…,valid-after=…[,valid-before=…] type base64 comment``.

    The roster's windows are half-open [added, revoked) at whole seconds; ssh-keygen's are closed and
    must not be empty, so ``valid-before`` is the revocation second itself. payops never records an
    approval at that second (its own check is the strict one), so no archived approval relies on it.
    """
    opts = [f'namespaces="{NAMESPACE}"', f'valid-after="{ssh_time(valid_after)}"']
    if valid_before is not None:
        opts.append(f'valid-before="{ssh_time(valid_before)}"')
    tail = f" {_COMMENT_BAD.sub(' ', comment)}" if comment else ""
    return f"{principal} {','.join(opts)} {key.openssh()}{tail}"


def verify(statement: str, signature: str, *, principal: str, allowed_signers: str,
           at: datetime | None) -> str | None:
    """``ssh-keygen -Y verify``: None when the signature is good, else ssh-keygen's reason."""
    with tempfile.TemporaryDirectory(prefix="payops-verify-") as tmp:
        d = Path(tmp)
        (d / "allowed_signers").write_text(allowed_signers if allowed_signers.endswith("\n")
                                           else allowed_signers + "\n", encoding="utf-8")
        (d / "statement.sig").write_text(signature, encoding="utf-8")
        cmd = [ssh_keygen(), "-Y", "verify", "-f", str(d / "allowed_signers"), "-I", principal, "-n", NAMESPACE,
               "-s", str(d / "statement.sig")]
        if at is not None:
            cmd.append(f"-Overify-time={ssh_time(at)}")
        proc = _run(cmd, input_bytes=statement.encode("utf-8"))
    if proc.returncode == 0 and proc.stdout.startswith(b"Good "):
        return None
    lines = [ln.strip() for ln in proc.stderr.decode(errors="replace").splitlines() if ln.strip()]
    return "; ".join(ln.replace(str(d) + "/", "") for ln in lines[-2:]) or "signature verification failed"


def sign(statement: str, key_path: Path) -> str:
    """Sign ``statement`` with ``ssh-keygen -Y sign`` (private key file, or .pub + ssh-agent)."""
    key_path = Path(key_path).expanduser()
    if not key_path.is_file():
        raise KeyProblem(f"{key_path} does not exist (give your private key, or its .pub with ssh-agent running)")
    if key_path.suffix == ".pub" and not os.environ.get("SSH_AUTH_SOCK"):
        raise KeyProblem(f"{key_path} is a public key: its private half must be in ssh-agent, and SSH_AUTH_SOCK "
                         "is not set (start ssh-agent and ssh-add the key, or give the private key file)")
    with tempfile.TemporaryDirectory(prefix="payops-sign-") as tmp:
        stmt = Path(tmp) / "statement"
        stmt.write_bytes(statement.encode("utf-8"))
        proc = _run([ssh_keygen(), "-Y", "sign", "-f", str(key_path), "-n", NAMESPACE, str(stmt)], timeout=300)
        sig = stmt.with_name("statement.sig")
        if proc.returncode != 0 or not sig.exists():
            reason = " ".join(proc.stderr.decode(errors="replace").split()) or f"exit {proc.returncode}"
            raise KeyProblem(f"ssh-keygen could not sign with {key_path}: {reason}")
        return sig.read_text(encoding="utf-8")


def generate_key(path: Path, comment: str) -> PublicKey:
    """A fresh passphrase-less Ed25519 key pair at ``path`` / ``path.pub`` (test-only roster entries)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    proc = _run([ssh_keygen(), "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)])
    if proc.returncode != 0:
        raise KeyProblem(f"ssh-keygen -t ed25519 failed: {proc.stderr.decode(errors='replace').strip()}")
    return read_public_key_file(path.with_name(path.name + ".pub"))


def ssh_keygen() -> str:
    """The ssh-keygen binary: $PAYOPS_SSH_KEYGEN or the one on PATH."""
    from payops.config import get_settings

    configured = get_settings().ssh_keygen
    found = shutil.which(configured)
    if not found:
        raise ConfigError(f"{configured} not found: approvals are signed and verified with OpenSSH's ssh-keygen "
                          "(`make install` checks it; Debian: apt-get install openssh-client; or set "
                          "PAYOPS_SSH_KEYGEN)")
    return found


def _run(cmd: list[str], *, input_bytes: bytes | None = None,
         timeout: float = 30) -> subprocess.CompletedProcess[bytes]:
    try:
        return subprocess.run(cmd, input=input_bytes, stdin=None if input_bytes is not None else subprocess.DEVNULL,
                              capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise KeyProblem(f"{Path(cmd[0]).name} {' '.join(cmd[1:3])} did not finish within {timeout:.0f} s") from None
