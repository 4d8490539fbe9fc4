"""Signed approvals in tests, done the way approvers do them (imported by basename, like e2e_helpers).

The roster itself is the ``roster`` fixture in tests/conftest.py (test-only people with generated keys:
``roster["operator"]``, ``roster["ops"]``, ``roster["finance"]``). These helpers:

- ``run_record(args)``: the dry-run *record* payops creates for a ``manual-payout`` command line
  (parameters resolved exactly as the CLI does; no notebook executed) — something to approve;
- ``sign(run_id, role, member, folder)``: the offline path — the statement written to a file and signed
  with plain ``ssh-keygen -Y sign``; returns ``FILE.sig`` (the statement beside it);
- ``signed_live_args(roster, args, folder)``: a ``manual-payout … --live`` command line carrying the ops and
  finance signatures (``--approve-ops/--approve-finance``) and the operator's ``--key``.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from payops import manual, runner
from payops.approvals import NAMESPACE
from payops.approvals.statement import for_run
from payops.config import get_settings
from payops.db import session_scope
from payops.db.models import RunbookRun

_VALUE_FLAGS = {"--studio-id", "--studio-name", "--ledger-payout-id", "--incident-id", "--amount", "--reserve-after",
                "--reason", "--destination-account", "--notes", "--currency", "--operator"}


def params_of(args: list[str]) -> Any:
    """The resolved ManualPayoutParams a ``manual-payout`` command line (flags, --params-file, --rehearsal) means."""
    flags: dict[str, Any] = {}
    params_file = None
    i = 0
    while i < len(args):
        a = args[i]
        if a in _VALUE_FLAGS:
            flags[a[2:].replace("-", "_")] = args[i + 1]
            i += 2
        elif a == "--params-file":
            params_file = Path(args[i + 1])
            i += 2
        else:
            i += 1
    settings = get_settings()
    flags.setdefault("operator", settings.operator_id)
    params = manual.gather_params(flags, params_file=params_file, live=False, rehearsal="--rehearsal" in args,
                                  send="--no-send" not in args)
    return runner.resolve_manual_payout(params, settings)


def run_record(args: list[str]) -> RunbookRun:
    """A dry-run record for these parameters (created, not executed): what approvers sign statements of."""
    return runner.prepare_run("manual_payout", params_of(args), live=False)


def sign(run_id: str, role: str, key_path: Path, folder: Path, name: str | None = None) -> Path:
    """Offline signing, as an approver at home: statement to a file, then plain ``ssh-keygen -Y sign``."""
    folder.mkdir(parents=True, exist_ok=True)
    with session_scope() as s:
        text = for_run(s, run_id, role)
    stmt = folder / (name or f"{role}-{run_id[:8]}.statement")
    stmt.write_text(text, encoding="utf-8")
    Path(str(stmt) + ".sig").unlink(missing_ok=True)
    proc = subprocess.run(["ssh-keygen", "-Y", "sign", "-f", str(key_path), "-n", NAMESPACE, str(stmt)],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    return Path(str(stmt) + ".sig")


def signed_live_args(roster: Any, args: list[str], folder: Path, *, ops: str = "ops", finance: str = "finance",
                     operator: str = "operator") -> list[str]:
    """``manual-payout ARGS --live --approve-ops OPS.sig --approve-finance FIN.sig --key OPERATOR_KEY``.
    ``ops``/``finance``/``operator`` name which roster member signs each part."""
    run = run_record(args)
    ops_sig = sign(run.id, "ops", roster[ops].key_path, folder)
    fin_sig = sign(run.id, "finance", roster[finance].key_path, folder)
    return ["manual-payout", *args, "--live", "--approve-ops", str(ops_sig), "--approve-finance", str(fin_sig),
            "--key", str(roster[operator].key_path)]
