"""Signature files handed to payops (``payops approve --signature``, ``--approve-ops`` / ``--approve-finance``).

Reading only — whether a signature counts is ``payops.approvals.checks``' to say. Light (no database):
``payops approve`` imports it without the live run machinery of :mod:`payops.approvals.golive`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from payops.approvals import sshkeys
from payops.errors import FieldProblem

_UUIDISH = re.compile(r"\{?[0-9a-fA-F]{8}-?([0-9a-fA-F]{4}-?){3}[0-9a-fA-F]{12}\}?")


@dataclass(frozen=True)
class Submission:
    """A signature file handed to payops, with the statement file beside it when there is one."""

    role: str
    signature: str
    statement: str | None
    field: str
    source: str


def load_submission(role: str, value: str, field_name: str) -> Submission | FieldProblem:
    """Read ``value`` (a .sig path) for ``role``; a FieldProblem naming ``field_name`` if it cannot be used.
    The statement is read from the same path without ``.sig`` (what ``ssh-keygen -Y sign FILE`` leaves)."""
    path = Path(value).expanduser()
    if not path.is_file():
        if _UUIDISH.fullmatch(value.strip()):
            return FieldProblem(field_name, f"{value!r} is an approver id, not a signature: a typed id proves "
                                            f"nothing. The {role} approver signs the run's statement (`payops approve "
                                            f"RUN_ID --role {role} --key …`, or --statement-only and ssh-keygen -Y "
                                            "sign) and you pass the .sig file")
        return FieldProblem(field_name, f"{value}: no such signature file")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return FieldProblem(field_name, f"{value}: cannot read it ({exc.__class__.__name__})")
    try:
        sshkeys.parse_signature(text)
    except sshkeys.KeyProblem as exc:
        return FieldProblem(field_name, f"{value}: {exc}")
    statement = None
    if path.suffix == ".sig" and path.with_suffix("").is_file():
        try:
            statement = path.with_suffix("").read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            return FieldProblem(field_name, f"{path.with_suffix('')}: cannot read the statement "
                                            f"({exc.__class__.__name__})")
    return Submission(role, text, statement, field_name, value)
