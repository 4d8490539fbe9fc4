"""``payops archive verify`` in full: the chain and its files (:func:`payops.archive.verify_archive`), held
against the witnesses outside the archive folder — the run records and the anchors (#19) — read from the
settings: the database (``PAYOPS_DATABASE_URL``) and the file anchors of ``PAYOPS_ARCHIVE_ANCHORS``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from payops.archive.anchor import read_file_anchor
from payops.archive.chain import CHAIN_FILE
from payops.archive.folders import _manifests_in
from payops.archive.tail import AnchorSource, RunRecords
from payops.archive.verify import RunCheck, VerifyReport, verify_archive
from payops.config import Settings, get_settings


def verify_with_records(path: Path, *, settings: Settings | None = None, run_checks: Sequence[RunCheck] = (),
                        recorded_root: Path | None = None) -> VerifyReport:
    """Verify ``path`` (an output root or one run folder) and hold it against the database's records and
    the readable anchors. ``recorded_root`` compares a copy with the records of the root it was copied from."""
    settings = settings or get_settings()
    path = Path(path).resolve()
    single = path.is_dir() and bool(_manifests_in(path)) and not (path / CHAIN_FILE).exists()
    key = Path(recorded_root).resolve() if recorded_root is not None else path
    records: RunRecords | None = None
    anchors: list[AnchorSource] = []
    notes: list[str] = []

    from payops.archive.records import database_problem, load_db_anchors, load_records

    problem = database_problem(settings)
    if problem is not None:
        notes.append(f"the database could not be read ({problem}): the run records and the database anchor were "
                     "not compared")
    else:
        from payops.db import session_scope

        with session_scope(settings) as s:
            if single:
                records = load_records(s, settings, run_id=path.name)
            else:
                records = load_records(s, settings, output_root=key)
                db_anchors = load_db_anchors(s, output_root=key)
                if db_anchors.entries or "db" in settings.archive_anchor_list:  # read whenever there are some
                    anchors.append(db_anchors)
    if not single:
        for entry in settings.archive_anchor_list:
            if entry.startswith("file:"):
                anchors.append(read_file_anchor(Path(entry[5:]), key))
            elif entry == "slack":
                notes.append("the Slack anchor cannot be read back: compare the newest head posted to the channel "
                             "with the head printed here, by eye")
    return verify_archive(path, run_checks=run_checks, records=records, anchors=anchors, notes=notes)
