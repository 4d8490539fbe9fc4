"""Sealing a run folder: scan it, hash every file, write the next manifest and append its chain line."""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import platform
import re
import subprocess
from collections.abc import Iterable
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path, PurePosixPath
from typing import Any
from uuid import UUID

from payops.archive.chain import CHAIN_FILE, _chain_lock, _short, read_chain, sha256_file
from payops.archive.folders import SCHEMA, _files_under, _load_manifest, _manifest_name, _manifests_in
from payops.archive.scan import scan_for_secrets, scan_text
from payops.errors import ArchiveError
from payops.filemodes import archive_modes, create_file, secure_tree

_RESERVED_KEYS = {
    "schema", "sop", "run_id", "files", "package_versions", "git_commit", "sealed_at", "seal_number",
    "chain_seq", "prev_manifest_sha256", "prev_manifest_path",
}
_VERSIONED_PACKAGES = ("payops", "papermill", "stripe", "sqlalchemy", "nbformat")


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal | UUID | Path | PurePosixPath):
        return str(value)
    if isinstance(value, set | frozenset | tuple):
        return sorted(value) if isinstance(value, set | frozenset) else list(value)
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _package_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in _VERSIONED_PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    out["python"] = platform.python_version()
    return out


def _git_commit() -> str | None:
    """``git rev-parse HEAD`` in the current directory, or None (never fails the seal)."""
    try:
        proc = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                              check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    sha = proc.stdout.strip()
    return sha if proc.returncode == 0 and re.fullmatch(r"[0-9a-f]{40,64}", sha) else None



def seal_run(folder: Path, *, output_root: Path, meta: dict[str, Any], extra_secrets: Iterable[str] = ()) -> Path:
    """Seal ``folder`` (a run folder under ``output_root``): scan, hash, write a manifest, extend the chain.

    ``meta`` is copied into the manifest (parameters (secret-free), params_hash, approvals, mode, step
    statuses, started_at, finished_at …). Raises ArchiveError — and writes nothing — when a secret is
    found, when a file covered by an earlier seal changed or vanished, or when an earlier manifest
    no longer matches the chain. Returns the new manifest's path.
    """
    folder = Path(folder).resolve()
    output_root = Path(output_root).resolve()
    try:
        rel_folder = folder.relative_to(output_root)
    except ValueError:
        raise ArchiveError(f"{folder} is not inside the output root {output_root}") from None
    if not folder.is_dir() or not rel_folder.parts:
        raise ArchiveError(f"{folder} is not a run folder under {output_root}")
    clash = sorted(_RESERVED_KEYS & set(meta) - {"sop", "run_id"})
    if clash:
        raise ArchiveError(f"meta may not set manifest fields {clash}")
    parts = rel_folder.parts
    sop = str(meta.get("sop", parts[0]))
    run_id = str(meta.get("run_id", parts[-1]))
    if run_id != parts[-1]:
        raise ArchiveError(f"meta run_id {run_id!r} does not match the run folder {rel_folder.as_posix()}")
    extra = [s for s in extra_secrets if s]
    try:
        meta_json = json.dumps(meta, default=_json_default, ensure_ascii=False, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise ArchiveError(f"meta is not JSON-serializable: {exc}") from exc

    modes = archive_modes()  # an unknown PAYOPS_ARCHIVE_GROUP fails here, before anything is written
    with _chain_lock(output_root, modes):
        findings = scan_for_secrets(folder, extra) + scan_text(meta_json, "<manifest meta>", extra)
        if findings:
            listed = "; ".join(str(f) for f in findings[:20])
            more = f" (+{len(findings) - 20} more)" if len(findings) > 20 else ""
            raise ArchiveError(
                f"refusing to seal {rel_folder.as_posix()}: {len(findings)} secret(s) found — {listed}{more}"
            )
        chain, chain_problems = read_chain(output_root)
        if chain_problems:
            raise ArchiveError(f"cannot extend the chain: {chain_problems[0]}")
        by_path = {c["manifest"]: c for c in chain}

        secure_tree(folder, modes)  # whatever wrote the files (a kernel, papermill, nbconvert): owner-only now
        files = {rel: sha256_file(p) for rel, p in _files_under(folder)}
        earlier = _manifests_in(folder)
        for _number, mpath in earlier:
            mrel = (rel_folder / mpath.name).as_posix()
            line = by_path.get(mrel)
            if line is None:
                raise ArchiveError(f"{mrel}: manifest is not in {CHAIN_FILE} (refusing to seal over it)")
            if files[mpath.name] != line["sha256"]:
                raise ArchiveError(f"{mrel}: sha256 mismatch with {CHAIN_FILE} "
                                   f"(sealed {_short(line['sha256'])}, now {_short(files[mpath.name])})")
            data, problem = _load_manifest(mpath, mrel)
            if data is None:
                raise ArchiveError(problem or f"{mrel}: unreadable")
            for rel, digest in data["files"].items():
                now = files.get(rel)
                if now is None:
                    raise ArchiveError(f"{(rel_folder / rel).as_posix()}: sealed by {mpath.name} but missing")
                if now != digest:
                    raise ArchiveError(f"{(rel_folder / rel).as_posix()}: sha256 mismatch "
                                       f"(sealed {_short(digest)}, now {_short(now)}) — sealed files never change")
        number = (earlier[-1][0] + 1) if earlier else 1
        name = _manifest_name(number)
        prev = chain[-1] if chain else None
        seq = (int(prev["seq"]) + 1) if prev else 1
        sealed_at = datetime.now(UTC).isoformat()
        manifest: dict[str, Any] = {
            "schema": SCHEMA,
            "sop": sop,
            "run_id": run_id,
            **json.loads(meta_json),
            "files": files,
            "package_versions": _package_versions(),
            "git_commit": _git_commit(),
            "sealed_at": sealed_at,
            "seal_number": number,
            "chain_seq": seq,
            "prev_manifest_sha256": prev["sha256"] if prev else None,
            "prev_manifest_path": prev["manifest"] if prev else None,
        }
        data = (json.dumps(manifest, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
        target = folder / name
        with open(create_file(target, modes, exclusive=True), "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        digest = hashlib.sha256(data).hexdigest()
        line = {
            "seq": seq, "manifest": (rel_folder / name).as_posix(), "sha256": digest, "sealed_at": sealed_at,
            "prev_sha256": prev["sha256"] if prev else None,
        }
        with open(create_file(output_root / CHAIN_FILE, modes, append=True), "a", encoding="utf-8") as fh:
            fh.write(json.dumps(line, sort_keys=True) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
    return target


