"""Run folders and what is in them: ``<output_root>/<sop>/<YYYY-MM-DD>/<run_id>/``, the HTML rendering of an
executed notebook, the files below a folder and the manifests directly in it."""

from __future__ import annotations

import json
import os
import re
import threading
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from payops.errors import ArchiveError
from payops.filemodes import archive_modes, create_file, make_dirs

SCHEMA = "payops.manifest/1"
_MANIFEST_RE = re.compile(r"^manifest(?:\.([2-9]|[1-9][0-9]+))?\.json$")
_SEGMENT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def _segment(value: str, what: str) -> str:
    if not isinstance(value, str) or not _SEGMENT_RE.fullmatch(value) or value in (".", ".."):
        raise ArchiveError(f"{what} {value!r} is not a safe folder name (letters, digits, '.', '_', '-')")
    return value


def run_dir(output_root: Path, sop: str, run_id: str, started_at: datetime) -> Path:
    """Create and return ``<output_root>/<sop>/<YYYY-MM-DD>/<run_id>/`` (``started_at``'s UTC date).

    A naive ``started_at`` is taken to be UTC. The output root and every folder down to the run's are
    owner-only (``0700``; ``2750`` with ``PAYOPS_ARCHIVE_GROUP``, see :mod:`payops.filemodes`).
    """
    when = started_at.replace(tzinfo=UTC) if started_at.tzinfo is None else started_at.astimezone(UTC)
    folder = Path(output_root) / _segment(sop, "sop") / when.date().isoformat() / _segment(run_id, "run_id")
    return make_dirs(folder, archive_modes(), below=Path(output_root))


_html_exporter: list[Any] = []  # one HTMLExporter per process: its compiled templates make the next render ~4x faster
_html_lock = threading.Lock()


def render_html(ipynb: Path) -> Path:
    """Render a notebook with nbconvert's HTMLExporter to ``<same name>.html`` beside it (owner-only, like the
    rest of the archive)."""
    ipynb = Path(ipynb)
    target = ipynb.with_suffix(".html")
    try:
        with _html_lock:
            if not _html_exporter:
                from nbconvert import HTMLExporter  # heavy import: only when rendering

                _html_exporter.append(HTMLExporter())
            body, _resources = _html_exporter[0].from_filename(str(ipynb))
        fd = create_file(target, archive_modes())
        with open(fd, "w", encoding="utf-8") as fh:
            fh.truncate()
            fh.write(body)
    except ArchiveError:
        raise
    except Exception as exc:  # nbconvert raises many unrelated types; all mean "no HTML"
        raise ArchiveError(f"cannot render {ipynb} to HTML: {type(exc).__name__}: {exc}") from exc
    return target


def _files_under(folder: Path) -> list[tuple[str, Path]]:
    """Every regular file below ``folder`` as (relative POSIX path, path), sorted by the relative path."""
    out: list[tuple[str, Path]] = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames.sort()
        for name in filenames:
            p = Path(dirpath) / name
            rel = p.relative_to(folder).as_posix()
            if p.is_symlink() or not p.is_file():
                raise ArchiveError(f"{rel}: symlinks and special files are not archived")
            out.append((rel, p))
    return sorted(out, key=lambda t: t[0])


def _manifests_in(folder: Path) -> list[tuple[int, Path]]:
    """The manifests directly in ``folder`` as (seal number, path), in seal order."""
    out = []
    for p in folder.iterdir() if folder.is_dir() else []:
        m = _MANIFEST_RE.fullmatch(p.name)
        if m and p.is_file():
            out.append((int(m.group(1) or 1), p))
    return sorted(out)


def _manifest_name(number: int) -> str:
    return "manifest.json" if number == 1 else f"manifest.{number}.json"


def _load_manifest(path: Path, label: str) -> tuple[dict[str, Any] | None, str | None]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return None, f"{label}: unreadable manifest ({exc})"
    if not isinstance(data, dict) or data.get("schema") != SCHEMA or not isinstance(data.get("files"), dict):
        return None, f"{label}: not a {SCHEMA} manifest"
    return data, None


def _safe_rel(rel: str) -> bool:
    p = PurePosixPath(rel)
    return bool(rel) and not p.is_absolute() and ".." not in p.parts and "\\" not in rel

