"""Anchoring the chain head outside the archive folder (#19), after each seal and on ``payops archive anchor``.

``PAYOPS_ARCHIVE_ANCHORS`` lists where (comma-separated; default ``db``):

- ``db`` — an ``archive_anchors`` row (kind db) in the database;
- ``file:PATH`` — one JSON line appended to ``PATH`` (opened ``O_APPEND``, fsync'd, owner-only; keep it outside
  the output root, ideally on storage the archive's writers can only append to — ``chattr +a``, a WORM
  mount): ``{"root": …, "seq": …, "manifest": …, "sha256": …, "anchored_at": …}``;
- ``slack`` — a post of the head to the ops channel (``PAYOPS_OPS_SLACK_WEBHOOK_URL``, else
  ``PAYOPS_SLACK_WEBHOOK_URL``) through slack_sdk. Verify cannot read Slack back: a person compares the
  channel's newest head post with the head ``payops archive verify`` prints.

Anchoring after a seal never fails the run that was sealed: a file or Slack anchor that could not be
written is logged (an ``archive_anchors`` row with ``status`` failed, a warning on the ``payops.archive``
logger) and verify then says the head is not anchored there; ``payops archive anchor`` anchors it again.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from payops.archive.chain import read_chain
from payops.archive.tail import AnchorEntry, AnchorSource, head_of
from payops.config import Settings, get_settings
from payops.errors import PayopsError
from payops.filemodes import PRIVATE, create_file

log = logging.getLogger("payops.archive")


@dataclass(frozen=True)
class AnchorResult:
    """Where the head went (``target``: a path or a channel, never a URL) and whether it got there."""

    kind: str
    target: str | None
    ok: bool
    detail: str


def chain_head(output_root: Path) -> dict[str, Any] | None:
    chain, _problems = read_chain(Path(output_root))
    return head_of(chain)


def anchor_head(settings: Settings | None = None, *, output_root: Path | None = None) -> list[AnchorResult]:
    """Anchor the current chain head of ``output_root`` (default ``PAYOPS_OUTPUT_DIR``) everywhere
    ``PAYOPS_ARCHIVE_ANCHORS`` says. Returns one result per anchor; raises nothing for an anchor that failed."""
    settings = settings or get_settings()
    root = Path(output_root or settings.output_dir).resolve()
    head = chain_head(root)
    if head is None:
        return []
    results: list[AnchorResult] = []
    for entry in settings.archive_anchor_list:
        if entry == "db":
            results.append(_anchor_db(settings, root, head))
        elif entry.startswith("file:"):
            results.append(_anchor_file(Path(entry[5:]), root, head))
        elif entry == "slack":
            results.append(_anchor_slack(settings, root, head))
    logged = [r for r in results if r.kind != "db"]
    if logged and any(r.kind == "db" and r.ok for r in results):  # the database also logs the other anchorings
        from payops.archive.records import write_anchor_row
        from payops.db import session_scope

        with session_scope(settings) as s:
            for r in logged:
                write_anchor_row(s, output_root=root, kind=r.kind, head=head, target=r.target,
                                 status="ok" if r.ok else "failed", error=None if r.ok else r.detail)
    for r in results:
        if not r.ok:
            log.warning("archive head seq %s not anchored in %s %s: %s", head["seq"], r.kind, r.target or "",
                        r.detail)
    return results


def _anchor_db(settings: Settings, root: Path, head: dict[str, Any]) -> AnchorResult:
    from payops.archive.records import database_problem, write_anchor_row
    from payops.db import session_scope

    problem = database_problem(settings)
    if problem is not None:
        return AnchorResult("db", None, False, problem)
    with session_scope(settings) as s:
        row = write_anchor_row(s, output_root=root, kind="db", head=head, target=None)
        return AnchorResult("db", None, True, f"archive_anchors row {row.id}")


def file_line(root: Path, head: dict[str, Any]) -> str:
    return json.dumps({"root": str(root), "seq": int(head["seq"]), "manifest": head["manifest"],
                       "sha256": head["sha256"], "anchored_at": datetime.now(UTC).isoformat(timespec="seconds")},
                      sort_keys=True) + "\n"


def _anchor_file(path: Path, root: Path, head: dict[str, Any]) -> AnchorResult:
    if path == root or root in path.parents:
        return AnchorResult("file", str(path), False, f"{path} is inside the output root: an anchor must be outside it")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(create_file(path, PRIVATE, append=True), "a", encoding="utf-8") as fh:
            fh.write(file_line(root, head))
            fh.flush()
            os.fsync(fh.fileno())
    except (OSError, PayopsError) as exc:
        return AnchorResult("file", str(path), False, f"{type(exc).__name__}: {exc}")
    return AnchorResult("file", str(path), True, f"seq {head['seq']} appended")


def _anchor_slack(settings: Settings, root: Path, head: dict[str, Any]) -> AnchorResult:
    from payops.notify.slack import send_slack

    if settings.ops_slack_webhook_url is not None:
        url, channel = settings.ops_slack_webhook_url.get_secret_value(), settings.ops_slack_channel
    elif settings.slack_webhook_url is not None:
        url, channel = settings.slack_webhook_url.get_secret_value(), settings.slack_channel
    else:
        return AnchorResult("slack", None, False,
                            "no Slack webhook configured (PAYOPS_OPS_SLACK_WEBHOOK_URL or PAYOPS_SLACK_WEBHOOK_URL)")
    text = (f"payops archive head · {root} · seq {head['seq']} · {head['manifest']} · "
            f"sha256 {head['sha256']}")
    try:
        send_slack(url, {"channel": channel, "text": text})
    except PayopsError as exc:
        return AnchorResult("slack", channel, False, str(exc))
    return AnchorResult("slack", channel, True, f"posted to {channel}")


def read_file_anchor(path: Path, output_root: Path) -> AnchorSource:
    """The heads anchored for ``output_root`` in the file at ``path`` (other roots' lines are skipped)."""
    name = f"file:{path}"
    root = str(Path(output_root).resolve())
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return AnchorSource(name, unreadable=f"{path} does not exist (configured in PAYOPS_ARCHIVE_ANCHORS) — "
                                             "`payops archive anchor` starts it with the current head")
    except (OSError, UnicodeDecodeError) as exc:
        return AnchorSource(name, unreadable=f"cannot read {path}: {exc}")
    entries: list[AnchorEntry] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            data = json.loads(raw)
            if data.get("root") != root:
                continue
            entries.append(AnchorEntry(seq=int(data["seq"]), manifest=str(data["manifest"]),
                                       sha256=str(data["sha256"]), anchored_at=data.get("anchored_at"),
                                       where=f"line {number}"))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            return AnchorSource(name, unreadable=f"{path} line {number} is not an anchor line ({exc})")
    return AnchorSource(name, entries)
