"""The archive's witnesses in the database (#19): each seal recorded when it is made, the database anchor of the
chain head, and reading both back for ``payops archive verify``.

- :func:`record_seal` — one ``archive_seals`` row per sealed manifest (run, manifest path and sha256, chain
  seq, sealed_at), written by the runner right after :func:`payops.archive.seal_run`.
- :func:`write_anchor_row` — one ``archive_anchors`` row: the database anchor itself (``kind`` db), or the log
  of a file or Slack anchoring (``status``, ``error``).
- :func:`database_problem` — why the database cannot serve as a witness (no SQLite file — verify never
  creates one —, unreachable, no or an old schema), or None.
- :func:`load_records` / :func:`load_db_anchors` — the rows of one output root (or one run), as the pure
  types of :mod:`payops.archive.tail`.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from payops.archive.chain import sha256_file
from payops.archive.tail import AnchorEntry, AnchorSource, RunRecords, SealRecord
from payops.config import Settings
from payops.db.models import ArchiveAnchor, ArchiveSeal, RunbookRun
from payops.errors import ArchiveError, ConfigError


def root_key(output_root: Path) -> str:
    """How an output root is named in the records: its absolute, resolved path."""
    return str(Path(output_root).resolve())


def database_label(settings: Settings) -> str:
    from payops.db import normalize_url

    return f"the database {make_url(normalize_url(settings.database_url)).render_as_string(hide_password=True)}"


def database_problem(settings: Settings) -> str | None:
    """Why the database cannot be read as a witness, or None. A missing SQLite file is not created."""
    from payops import db

    url = make_url(db.normalize_url(settings.database_url))
    if url.get_backend_name() == "sqlite":
        name = url.database or ""
        if not name or name == ":memory:" or name.startswith("file:"):
            return f"{database_label(settings)} is not a database file"
        if not Path(name).is_file():
            return f"no database: {name} does not exist (PAYOPS_DATABASE_URL)"
    try:
        db.require_schema(settings.database_url)
    except ConfigError as exc:
        return str(exc)
    return None


def record_seal(session: Session, manifest: Path, *, output_root: Path, run_id: str | None = None) -> ArchiveSeal:
    """Record the seal that wrote ``manifest`` (read back from it: chain seq, sealed_at, previous sha256)."""
    manifest = Path(manifest).resolve()
    try:
        data: dict[str, Any] = json.loads(manifest.read_text(encoding="utf-8"))
        rel = manifest.relative_to(Path(output_root).resolve()).as_posix()
        seq = int(data["chain_seq"])
        sealed_at = datetime.fromisoformat(str(data["sealed_at"]))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ArchiveError(f"cannot record the seal of {manifest}: {exc}") from exc
    row = ArchiveSeal(
        output_root=root_key(output_root), manifest_path=rel, manifest_sha256=sha256_file(manifest), chain_seq=seq,
        prev_sha256=data.get("prev_manifest_sha256"), run_id=run_id or data.get("run_id"), sop=data.get("sop"),
        sealed_at=sealed_at if sealed_at.tzinfo else sealed_at.replace(tzinfo=UTC), recorded_at=datetime.now(UTC),
    )
    session.add(row)
    session.flush()
    return row


def write_anchor_row(session: Session, *, output_root: Path, kind: str, head: dict[str, Any], target: str | None,
                     status: str = "ok", error: str | None = None) -> ArchiveAnchor:
    row = ArchiveAnchor(output_root=root_key(output_root), kind=kind, target=target, chain_seq=int(head["seq"]),
                        manifest_path=str(head["manifest"]), manifest_sha256=str(head["sha256"]), status=status,
                        error=error, anchored_at=datetime.now(UTC))
    session.add(row)
    session.flush()
    return row


def _seal_record(row: ArchiveSeal) -> SealRecord:
    return SealRecord(run_id=row.run_id, folder=PurePosixPath(row.manifest_path).parent.as_posix(),
                      sha256=row.manifest_sha256, manifest=row.manifest_path, seq=row.chain_seq,
                      sealed_at=row.sealed_at.isoformat(timespec="seconds"), sop=row.sop)


def load_records(session: Session, settings: Settings, *, output_root: Path | None = None,
                 run_id: str | None = None) -> RunRecords:
    """The seals recorded under ``output_root`` (or of ``run_id``): ``archive_seals`` rows, and for a run sealed
    before those were kept, its run row's last manifest sha256 (``manifest_sha256`` and ``output_dir``)."""
    records = RunRecords(source=database_label(settings))
    query = select(ArchiveSeal)
    key = root_key(output_root) if output_root is not None else None
    if key is not None:
        query = query.where(ArchiveSeal.output_root == key)
    if run_id is not None:
        query = query.where(ArchiveSeal.run_id == run_id)
    rows = list(session.scalars(query.order_by(ArchiveSeal.chain_seq, ArchiveSeal.id)))
    records.seals = [_seal_record(r) for r in rows]
    recorded_runs = {r.run_id for r in rows}
    legacy = select(RunbookRun.id, RunbookRun.output_dir, RunbookRun.manifest_sha256, RunbookRun.sop).where(
        RunbookRun.manifest_sha256.is_not(None), RunbookRun.output_dir.is_not(None))
    if run_id is not None:
        legacy = legacy.where(RunbookRun.id == run_id)
    elif key is not None:
        legacy = legacy.where(RunbookRun.output_dir.like(key + "/%"))
    for rid, output_dir, sha, sop in session.execute(legacy):
        if rid in recorded_runs:
            continue
        folder = Path(output_dir)
        if key is not None:
            try:
                rel = folder.relative_to(key).as_posix()
            except ValueError:
                continue
        else:
            rel = folder.name
        records.seals.append(SealRecord(run_id=rid, folder=rel, sha256=sha, sop=sop))
    if key is not None:
        records.other_roots = sorted(set(session.scalars(
            select(ArchiveSeal.output_root).where(ArchiveSeal.output_root != key).distinct().limit(5))))
    return records


def load_db_anchors(session: Session, *, output_root: Path) -> AnchorSource:
    rows = session.scalars(select(ArchiveAnchor).where(ArchiveAnchor.output_root == root_key(output_root),
                                                       ArchiveAnchor.kind == "db", ArchiveAnchor.status == "ok"))
    return AnchorSource("db", [AnchorEntry(seq=r.chain_seq, manifest=r.manifest_path, sha256=r.manifest_sha256,
                                           anchored_at=r.anchored_at.isoformat(timespec="seconds"),
                                           where=f"archive_anchors row {r.id}") for r in rows])
