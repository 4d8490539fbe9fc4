"""Holding the chain against what was recorded outside it (issue #19: a hash chain cannot see its own end cut off).

Delete the newest run folder and the last line of ``CHAIN.jsonl`` and the chain is still internally
consistent. Two witnesses outside the archive folder notice:

- the **run records** — every seal, recorded in the database when it was made (run, manifest path and
  sha256, chain position, sealed_at). Each must still be in the chain with the same sha256 at the same
  position, and the chain's head must be (at least) the newest recorded seal; a missing one is named.
- the **anchors** — the chain head written after each seal to the database, an append-only file and/or
  Slack. Every anchored (seq, manifest, sha256) must still be the chain's line at that seq.

This module compares (pure: data in, problems out); :mod:`payops.archive.records` reads the witnesses.
What could not be compared is said (``unproven``), never passed over.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from payops.archive.chain import CHAIN_FILE, _short


@dataclass(frozen=True)
class SealRecord:
    """A seal as the database recorded it. ``manifest``/``seq`` are None for a run sealed before seals were
    recorded (#19): its run row only kept the latest manifest's sha256."""

    run_id: str | None
    folder: str  # the run folder, relative to the output root
    sha256: str
    manifest: str | None = None  # relative to the output root
    seq: int | None = None
    sealed_at: str | None = None
    sop: str | None = None

    @property
    def label(self) -> str:
        run = f"run {self.run_id}" if self.run_id else "a run"
        return f"{run} ({self.sop}, sealed {self.sealed_at})" if self.sealed_at else run


@dataclass
class RunRecords:
    """The seals a database recorded under one output root (``source`` names the database, password hidden)."""

    source: str
    seals: list[SealRecord] = field(default_factory=list)
    other_roots: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class AnchorEntry:
    """One anchored chain head. ``where`` says where it was read (a file's line, a database row)."""

    seq: int
    manifest: str
    sha256: str
    anchored_at: str | None = None
    where: str = ""


@dataclass
class AnchorSource:
    """The anchors read from one place (``db``, ``file:/path``); ``unreadable`` when it could not be read."""

    name: str
    entries: list[AnchorEntry] = field(default_factory=list)
    unreadable: str | None = None


@dataclass
class Findings:
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    unproven: list[str] = field(default_factory=list)


def head_of(chain: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The chain's newest line as {seq, manifest, sha256, sealed_at}, or None for an empty chain."""
    if not chain:
        return None
    line = chain[-1]
    return {"seq": int(line["seq"]), "manifest": str(line["manifest"]), "sha256": str(line["sha256"]),
            "sealed_at": line.get("sealed_at")}


def check_records(chain: list[dict[str, Any]], records: RunRecords, root: Path) -> Findings:
    """Every recorded seal still in the chain (same sha256, same position); the head at least the newest."""
    f = Findings()
    by_manifest = {str(line["manifest"]): line for line in chain}
    head_seq = int(chain[-1]["seq"]) if chain else 0
    missing: set[str] = set()
    for r in sorted(records.seals, key=lambda r: (r.seq is None, r.seq or 0, r.folder)):
        gone = "" if (root / r.folder).is_dir() else "; its run folder is gone too"
        if r.manifest is not None:
            line = by_manifest.get(r.manifest)
            if line is None:
                missing.add(r.manifest)
                f.problems.append(
                    f"{r.manifest}: {r.label} is recorded as sealed (chain seq {r.seq}, manifest sha256 "
                    f"{_short(r.sha256)}) but is not in {CHAIN_FILE}{gone} — the archive lost a sealed run")
            elif line["sha256"] != r.sha256:
                f.problems.append(
                    f"{r.manifest}: {r.label} was sealed with manifest sha256 {_short(r.sha256)}, "
                    f"{CHAIN_FILE} seq {line['seq']} now says {_short(line['sha256'])}")
            elif r.seq is not None and int(line["seq"]) != r.seq:
                f.problems.append(f"{r.manifest}: {r.label} was sealed at chain seq {r.seq}, {CHAIN_FILE} has it "
                                  f"at seq {line['seq']}")
        else:
            shas = {str(line["sha256"]) for m, line in by_manifest.items()
                    if PurePosixPath(m).parent.as_posix() == r.folder}
            if r.sha256 not in shas:
                f.problems.append(
                    f"{r.folder}: {r.label} is recorded as sealed with manifest sha256 {_short(r.sha256)}, "
                    f"no manifest of that run in {CHAIN_FILE} has it{gone}")
    sequenced = [r for r in records.seals if r.seq is not None and r.manifest is not None]
    if sequenced:
        newest = max(sequenced, key=lambda r: r.seq or 0)
        assert newest.seq is not None
        if head_seq < newest.seq:
            ends = f"seq {head_seq} ({chain[-1]['manifest']})" if chain else "nothing (it is empty)"
            f.problems.append(
                f"{CHAIN_FILE}: the chain ends at {ends} but the newest sealed run, {newest.label}, is seq "
                f"{newest.seq} ({newest.manifest}) — the tail of the archive was cut off")
        unrecorded = [int(line["seq"]) for line in chain
                      if str(line["manifest"]) not in {r.manifest for r in sequenced}]
        if unrecorded:
            f.warnings.append(
                f"{CHAIN_FILE}: {len(unrecorded)} seal(s) have no record in {records.source} (seq "
                f"{_ranges(unrecorded)}): sealed without the database, or before seals were recorded")
    elif chain and records.seals:
        f.unproven.append(f"the chain's tail: the runs {records.source} knows here were sealed before seals were "
                          "recorded (each was held to its run row's manifest sha256), so the chain's newest seal "
                          "cannot be compared with the records")
    elif chain:
        where = (f" (it has seals under {', '.join(records.other_roots)}: a copy is compared with its original's "
                 "records by --recorded-root)") if records.other_roots else ""
        f.unproven.append(f"the run records: {records.source} records no seal under this output root{where} — "
                          "nothing to hold the chain's tail against")
    return f


def check_anchor(chain: list[dict[str, Any]], source: AnchorSource) -> Findings:
    """Every anchored head still the chain's line at its seq; the newest anchor no newer than the head."""
    f = Findings()
    if source.unreadable is not None:
        (f.problems if chain else f.warnings).append(f"anchor {source.name}: {source.unreadable}")
        return f
    by_seq = {int(line["seq"]): line for line in chain}
    head_seq = int(chain[-1]["seq"]) if chain else 0
    bad = 0
    for e in sorted(source.entries, key=lambda e: -e.seq):
        line = by_seq.get(e.seq)
        if line is None:
            text = (f"anchor {source.name}: the head anchored {e.anchored_at} ({e.where}) is seq {e.seq} "
                    f"({e.manifest}, {_short(e.sha256)}) but {CHAIN_FILE} ends at seq {head_seq} — the tail of "
                    "the archive was cut off")
        elif str(line["sha256"]) != e.sha256 or str(line["manifest"]) != e.manifest:
            text = (f"anchor {source.name}: seq {e.seq} was anchored as {e.manifest} {_short(e.sha256)} "
                    f"({e.where}), {CHAIN_FILE} seq {e.seq} is {line['manifest']} {_short(line['sha256'])} — "
                    "the chain was rewritten")
        else:
            continue
        bad += 1
        if bad <= 3:
            f.problems.append(text)
    if bad > 3:
        f.problems.append(f"anchor {source.name}: {bad - 3} more anchored head(s) do not match")
    newest = max((e.seq for e in source.entries), default=0)
    if chain and newest < head_seq and not bad:
        what = f"the last anchored is seq {newest}" if newest else "nothing is anchored there yet"
        f.warnings.append(f"anchor {source.name}: {head_seq - newest} newest seal(s) not anchored ({what}, the head "
                          f"is seq {head_seq}) — `payops archive anchor` anchors the head now")
    return f


def _ranges(numbers: list[int]) -> str:
    out: list[str] = []
    for n in sorted(numbers):
        if out and out[-1].split("–")[-1] == str(n - 1):
            out[-1] = f"{out[-1].split('–')[0]}–{n}"
        else:
            out.append(str(n))
    return ", ".join(out[:5]) + (" …" if len(out) > 5 else "")
