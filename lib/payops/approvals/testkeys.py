"""Test-only roster entries with keys generated at run time — for ``make demo``, rehearsals and tests.

``enroll_test_roster`` generates a fresh Ed25519 key pair per person with ``ssh-keygen -t ed25519``
into a folder the caller owns (a temporary directory: the keys are never committed) and enrolls the
people as **test-only**, which the roster refuses in live mode and which never count there.
``sign_offline`` does what an approver at home does: write the statement to a file and sign it with
plain ``ssh-keygen -Y sign``, leaving ``FILE`` and ``FILE.sig`` side by side.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from payops.approvals import roster, sshkeys
from payops.approvals import statement as stmt
from payops.config import Settings, get_settings
from payops.db import session_scope


@dataclass(frozen=True)
class Member:
    label: str
    person_id: str
    name: str
    roles: tuple[str, ...]
    key_path: Path  # the private key (in the caller's temporary folder)
    public: sshkeys.PublicKey

    @property
    def pub_path(self) -> Path:
        return self.key_path.with_name(self.key_path.name + ".pub")

    @property
    def fingerprint(self) -> str:
        return self.public.fingerprint


@dataclass
class GeneratedRoster:
    folder: Path
    members: dict[str, Member] = field(default_factory=dict)

    def __getitem__(self, label: str) -> Member:
        return self.members[label]


def new_key(folder: Path, label: str, comment: str) -> tuple[Path, sshkeys.PublicKey]:
    """A fresh Ed25519 key pair ``folder/label_ed25519`` (+ ``.pub``), not enrolled."""
    path = Path(folder) / f"{label}_ed25519"
    return path, sshkeys.generate_key(path, comment)


def enroll_test_roster(folder: Path, people: Iterable[tuple[str, str, str, tuple[str, ...]]], *, by: str,
                       settings: Settings | None = None) -> GeneratedRoster:
    """Generate a key for each (label, person id, name, roles) and enroll them as test-only."""
    settings = settings or get_settings()
    out = GeneratedRoster(Path(folder))
    for label, person_id, name, roles in people:
        path, public = new_key(folder, label, f"{name} (payops test-only key)")
        with session_scope(settings) as s:
            roster.enroll(s, person_id=person_id, name=name, roles=list(roles), key=public, by=by,
                          settings=settings, test_only=True)
        out.members[label] = Member(label, person_id, name, tuple(roles), path, public)
    return out


def sign_offline(run_id: str, role: str, key_path: Path, folder: Path, *, settings: Settings | None = None,
                 name: str | None = None) -> Path:
    """``payops approve RUN --role R --statement-only > FILE`` then ``ssh-keygen -Y sign -f KEY -n
    payops-approval FILE``: returns ``FILE.sig`` (the statement ``FILE`` beside it)."""
    with session_scope(settings) as s:
        text = stmt.for_run(s, run_id, role)
    target = Path(folder) / (name or f"{role}-{run_id[:8]}.statement")
    target.write_text(text, encoding="utf-8")
    sig = Path(str(target) + ".sig")
    sig.unlink(missing_ok=True)
    sig.write_text(sshkeys.sign(text, key_path), encoding="utf-8")
    return sig
