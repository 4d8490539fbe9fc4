"""Approvals provable from the archive alone: write them into a run folder, verify them from a copy of it.

Before a run is sealed, ``write_run_evidence`` puts into ``<run>/approvals/``:

- ``<role>.statement`` and ``<role>.sig`` for ops, finance and the operator's go-live — the exact
  bytes signed and the signatures (public material: no private key ever enters a run folder, and the
  archive's scanner refuses to seal one that holds a private key);
- ``allowed_signers`` — exactly the roster keys they were checked against, principal = the person's
  id, ``valid-after``/``valid-before`` = the key's active window;
- ``VERIFY.txt`` — the ``ssh-keygen -Y verify`` command for each approval;

and returns the manifest's ``approvals`` entries (role, person, key fingerprint, when, file paths,
the command). Sealed files never change: a later seal whose evidence differs writes ``approvals.2/``.

``verify_run_approvals(folder)`` needs nothing but the folder: it reads the latest manifest, runs
``ssh-keygen -Y verify`` for every signed approval, checks each statement names this run's
parameters (and, for the go-live, this run), and — for a live or rehearsal manual payout — that ops,
finance and the operator signed, as three different people, the operator being the run's.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from payops import runstate
from payops.approvals import APPROVER_ROLES, NAMESPACE, roster, sshkeys
from payops.approvals import statement as stmt
from payops.db.models import ApproverKey, GoLiveSignature, RunbookRun

SCHEMA = "payops.approvals/1"
DIR = "approvals"
_MANIFEST_RE = re.compile(r"^manifest(?:\.([2-9]|[1-9][0-9]+))?\.json$")


def _command(entry: dict[str, Any]) -> str:
    return (f"ssh-keygen -Y verify -f {entry['allowed_signers']} -I {entry['principal']} -n {NAMESPACE} "
            f"-s {entry['signature']} -Overify-time={sshkeys.ssh_time(datetime.fromisoformat(entry['decided_at']))} "
            f"< {entry['statement']}")


def _collect(s: Session, run: RunbookRun) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """(manifest entries, {relative file name: content}) for the run's approvals, before choosing a folder."""
    entries: list[dict[str, Any]] = []
    files: dict[str, str] = {}
    signers: list[str] = []
    items: list[tuple[str, str, str, str, str, str, datetime]] = []  # role, person, run, fp, statement, sig, when
    for role, a in sorted(runstate.approvals_for(s, run.params_hash).items()):
        if a.statement and a.signature and a.key_fingerprint:
            items.append((role, a.approver_id, a.run_id, a.key_fingerprint, a.statement, a.signature, a.decided_at))
    go = s.get(GoLiveSignature, run.id)
    if go is not None:
        items.append(("operator", go.person_id, run.id, go.key_fingerprint, go.statement, go.signature, go.signed_at))
    for role, person, run_id, fp, text, sig, when in items:
        k = roster.key_at(s, fp, when)
        enrolled = s.scalar(select(ApproverKey).where(ApproverKey.fingerprint == fp))
        line = k.allowed_signers() if k is not None else None
        if line and line not in signers:
            signers.append(line)
        files[f"{role}.statement"] = text
        files[f"{role}.sig"] = sig
        entries.append({
            "role": role, "approver_id": person, "name": k.person_name if k else None, "run_id": run_id,
            "params_hash": run.params_hash, "decided_at": when.isoformat(), "signed": True, "status": "signed",
            "key_fingerprint": fp, "roles_then": sorted(k.roles) if k else [], "test_only": bool(k and k.test_only),
            "principal": person, "namespace": NAMESPACE,
            # who put this key in the roster, and when: an auditor sees a key enrolled just before it signed
            "key_added_at": enrolled.added_at.isoformat() if enrolled else None,
            "key_added_by": enrolled.added_by if enrolled else None,
        })
    for a in runstate.legacy_approvals(s, run.params_hash):
        entries.append(a.as_dict())
    if signers:
        files["allowed_signers"] = "\n".join(signers) + "\n"
    return entries, files


def write_run_evidence(s: Session, run: RunbookRun, folder: Path) -> list[dict[str, Any]]:
    """Write the run's approval evidence into ``folder`` (see the module doc); return the manifest entries."""
    entries, files = _collect(s, run)
    if not files:
        return entries
    n = 1
    while True:
        sub = DIR if n == 1 else f"{DIR}.{n}"
        target = Path(folder) / sub
        same = target.is_dir() and all((target / k).is_file() and (target / k).read_text(encoding="utf-8") == v
                                       for k, v in files.items())
        if same or not target.exists():
            break
        n += 1
    for e in entries:
        if e.get("signed"):
            e.update(statement=f"{sub}/{e['role']}.statement", signature=f"{sub}/{e['role']}.sig",
                     allowed_signers=f"{sub}/allowed_signers")
            e["verify_command"] = _command(e)
    if not same:
        target.mkdir(parents=True)
        guide = ["Each approval of this run, re-verified with OpenSSH alone (run from the run folder):", ""]
        guide += [f"# {e['role']}: {e['name']} ({e['approver_id']}), key {e['key_fingerprint']}, {e['decided_at']}\n"
                  f"{e['verify_command']}" for e in entries if e.get("signed")]
        for name, content in {**files, "VERIFY.txt": "\n".join(guide) + "\n"}.items():
            with (target / name).open("x", encoding="utf-8") as fh:
                fh.write(content)
    return entries


# --- from the archive alone --------------------------------------------------------------------------
def _latest_manifest(folder: Path) -> dict[str, Any] | None:
    found = sorted((int(m.group(1) or 1), p) for p in folder.iterdir()
                   if p.is_file() and (m := _MANIFEST_RE.fullmatch(p.name)))
    if not found:
        return None
    try:
        data = json.loads(found[-1][1].read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None  # the archive's own checks report an unreadable manifest
    return data if isinstance(data, dict) else None


def _read(folder: Path, rel: object) -> str | None:
    if not isinstance(rel, str) or ".." in Path(rel).parts or Path(rel).is_absolute():
        return None
    p = folder / rel
    try:
        return p.read_text(encoding="utf-8") if p.is_file() else None
    except (OSError, UnicodeDecodeError):
        return None


def _verify_entry(folder: Path, e: dict[str, Any], manifest: dict[str, Any]) -> list[str]:
    role = e.get("role")
    label = e.get("signature") or f"{DIR}/{role}.sig"
    texts = {k: _read(folder, e.get(k)) for k in ("statement", "signature", "allowed_signers")}
    missing = [str(e.get(k)) for k, v in texts.items() if v is None]
    if missing:
        return [f"{label}: {role} approval evidence missing ({', '.join(missing)})"]
    text, sig, signers = texts["statement"], texts["signature"], texts["allowed_signers"]
    assert text is not None and sig is not None and signers is not None
    out: list[str] = []
    try:
        h = stmt.parse(text)
        if h.role != role:
            out.append(f"{e['statement']}: a {h.role} statement listed as {role}")
        if h.params_hash != manifest.get("params_hash"):
            out.append(f"{e['statement']}: approves parameters {h.params_hash[:12]}…, the run's are "
                       f"{str(manifest.get('params_hash'))[:12]}…")
        if role == "operator" and h.run_id != manifest.get("run_id"):
            out.append(f"{e['statement']}: the go-live names run {h.run_id}, not this run")
    except stmt.StatementError as exc:
        out.append(f"{e['statement']}: {exc}")
    try:
        fp = sshkeys.parse_signature(sig).key.fingerprint
        if fp != e.get("key_fingerprint"):
            out.append(f"{label}: signed by key {fp}, the manifest says {e.get('key_fingerprint')}")
    except sshkeys.KeyProblem as exc:
        out.append(f"{label}: {exc}")
        return out
    try:
        when = datetime.fromisoformat(str(e.get("decided_at")))
    except ValueError:
        return [*out, f"{label}: decided_at {e.get('decided_at')!r} is not a timestamp"]
    bad = sshkeys.verify(text, sig, principal=str(e.get("principal")), allowed_signers=signers, at=when)
    if bad:
        out.append(f"{label}: {role} signature does not verify against {e.get('allowed_signers')} (ssh-keygen: {bad})")
    return out


def verify_run_approvals(folder: Path) -> list[str]:
    """Problems with the approvals recorded in a run folder's latest manifest (empty: all verify).

    Manifests written before signed approvals (no ``approval_evidence``) have nothing to verify."""
    folder = Path(folder)
    manifest = _latest_manifest(folder) if folder.is_dir() else None
    if manifest is None or manifest.get("approval_evidence") != SCHEMA:
        return []
    problems: list[str] = []
    people: dict[str, str] = {}
    for e in manifest.get("approvals") or []:
        if isinstance(e, dict) and e.get("signed"):
            found = _verify_entry(folder, e, manifest)
            problems += found
            if not found:
                people[str(e.get("role"))] = str(e.get("approver_id"))
    if manifest.get("sop") == stmt.SOP and manifest.get("mode") in ("live", "rehearsal"):
        for role in (*APPROVER_ROLES, "operator"):
            if role not in people:
                problems.append(f"{DIR}/: no verified {role} signature for this {manifest.get('mode')} run")
        if len(set(people.values())) < len(people):
            problems.append(f"{DIR}/: one person holds two roles ({people})")
        if "operator" in people and people["operator"] != manifest.get("operator"):
            problems.append(f"{DIR}/: the go-live is signed by {people['operator']}, the run's operator is "
                            f"{manifest.get('operator')}")
    return problems
