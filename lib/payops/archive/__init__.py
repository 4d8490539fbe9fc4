"""The audit archive: run folders, secret scan, sealed manifests in one sha256 chain, verification.

Layout: ``<output_root>/<sop>/<YYYY-MM-DD>/<run_id>/`` holds a run's executed notebooks, their HTML
renderings, artifacts and manifests. Sealing a run writes ``manifest.json`` (later seals of the same
folder ``manifest.2.json``, ``manifest.3.json`` …) listing the sha256 of every file, and appends one
line to ``<output_root>/CHAIN.jsonl``. Each manifest records the previous manifest's sha256 — one
chain for the whole output root, serialized by an exclusive ``flock`` so it never forks.
Files are append-only: a file covered by an earlier seal must never change.

The parts (each importable on its own; every public name is also here, as ``payops.archive.<name>``):

- :mod:`payops.archive.folders` — run folders, HTML renderings, the files and manifests of a folder;
- :mod:`payops.archive.chain` — ``CHAIN.jsonl``, its lock, sha256 of a file;
- :mod:`payops.archive.scan` — the secret scanner;
- :mod:`payops.archive.seal` — sealing a run folder into the chain;
- :mod:`payops.archive.verify` — verifying an output root or one run folder;
- :mod:`payops.archive.tail` — holding the chain against the run records and the anchors (pure);
- :mod:`payops.archive.records` — those witnesses in the database (seals recorded, the database anchor);
- :mod:`payops.archive.anchor` — anchoring the chain head outside the archive (db, an append-only file, Slack);
- :mod:`payops.archive.audit` — ``payops archive verify`` in full: the chain held against the witnesses.

Owner-only modes for everything written here: :mod:`payops.filemodes`.

The core never imports a command family: checks a family adds per run (the signed approvals) are
passed to :func:`verify_archive` as ``run_checks``.
"""

from __future__ import annotations

from payops.archive.chain import CHAIN_FILE, LOCK_FILE, read_chain, sha256_file
from payops.archive.folders import SCHEMA, render_html, run_dir
from payops.archive.scan import SECRET_PATTERNS, SecretFinding, scan_for_secrets, scan_text
from payops.archive.seal import seal_run
from payops.archive.tail import AnchorEntry, AnchorSource, RunRecords, SealRecord
from payops.archive.verify import RunCheck, VerifyReport, verify_archive

__all__ = [
    "CHAIN_FILE",
    "LOCK_FILE",
    "SCHEMA",
    "SECRET_PATTERNS",
    "AnchorEntry",
    "AnchorSource",
    "RunCheck",
    "RunRecords",
    "SealRecord",
    "SecretFinding",
    "VerifyReport",
    "read_chain",
    "render_html",
    "run_dir",
    "scan_for_secrets",
    "scan_text",
    "seal_run",
    "sha256_file",
    "verify_archive",
]
