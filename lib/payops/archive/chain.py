"""The sha256 chain of one output root: ``CHAIN.jsonl`` (one line per sealed manifest, in seal order), the
exclusive lock that keeps it from forking, and file hashing."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from payops.filemodes import PRIVATE, Modes, create_file, make_dirs

CHAIN_FILE = "CHAIN.jsonl"
LOCK_FILE = ".chain.lock"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _short(digest: str | None) -> str:
    return f"{digest[:8]}…" if digest else "none"


@contextlib.contextmanager
def _chain_lock(output_root: Path, modes: Modes = PRIVATE) -> Iterator[None]:
    make_dirs(output_root, modes)
    with open(create_file(output_root / LOCK_FILE, modes, append=True), "a") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def read_chain(output_root: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """The chain lines of ``output_root`` in order, and problems with lines that do not parse."""
    path = Path(output_root) / CHAIN_FILE
    if not path.exists():
        return [], []
    lines: list[dict[str, Any]] = []
    problems: list[str] = []
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            entry = json.loads(raw)
            if not isinstance(entry, dict) or not {"seq", "manifest", "sha256"} <= entry.keys():
                raise ValueError("missing seq/manifest/sha256")
        except ValueError as exc:
            problems.append(f"{CHAIN_FILE} line {number}: unreadable ({exc})")
            continue
        lines.append(entry)
    return lines, problems



def _find_root(start: Path) -> Path | None:
    for candidate in [start, *start.parents]:
        if (candidate / CHAIN_FILE).is_file():
            return candidate
    return None

