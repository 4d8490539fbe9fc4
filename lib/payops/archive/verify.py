"""Verification: every chain line, manifest, link and file of an output root (or one run folder), and the
checks a family adds per sealed run (injected: the core never imports a family)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from payops.archive.chain import CHAIN_FILE, _find_root, _short, read_chain, sha256_file
from payops.archive.folders import _MANIFEST_RE, _files_under, _load_manifest, _manifests_in, _safe_rel
from payops.archive.tail import AnchorSource, Findings, RunRecords, check_anchor, check_records, head_of
from payops.errors import ArchiveError
from payops.filemodes import open_to_others

NO_RECORDS = ("the run records were not compared (no database): that no sealed run is missing — the newest "
              "included, deleted with its chain line — is not proven")
NO_ANCHORS = "no anchor of the chain head was read: that the chain's tail was not cut off is not proven by an anchor"
ONE_FOLDER = ("one run folder only: the rest of the archive, its tail and the anchors are checked by verifying the "
              "output root")


# -- verification --------------------------------------------------------------------------------
@dataclass
class VerifyReport:
    """The outcome of :func:`verify_archive`. ``problems`` are human-readable, first problem first."""

    ok: bool
    runs_checked: int
    files_checked: int
    problems: list[str] = field(default_factory=list)
    #: worth a look, not a failure: files others can read, seals without a record, a head not yet anchored
    warnings: list[str] = field(default_factory=list)
    #: what this verification could not prove (no database, no anchor readable, one run folder only)
    unproven: list[str] = field(default_factory=list)
    #: the chain's newest line {seq, manifest, sha256, sealed_at} (None: no chain, or one run folder)
    head: dict[str, Any] | None = None

    @property
    def first_problem(self) -> str | None:
        return self.problems[0] if self.problems else None



class _Verifier:
    def __init__(self, root: Path | None) -> None:
        self.root = root
        self.problems: list[str] = []
        self.checked: set[str] = set()
        self.reported: set[str] = set()

    def problem(self, text: str, key: str | None = None) -> None:
        if key is not None:
            if key in self.reported:
                return
            self.reported.add(key)
        self.problems.append(text)

    def check_files(self, folder: Path, label: str, manifest: dict[str, Any], mlabel: str) -> None:
        for rel, digest in sorted(manifest["files"].items()):
            flabel = f"{label}/{rel}"
            if not isinstance(rel, str) or not _safe_rel(rel):
                self.problem(f"{mlabel}: lists an unsafe path {rel!r}", key=flabel)
                continue
            path = folder / rel
            self.checked.add(flabel)
            if not path.is_file():
                self.problem(f"{flabel}: missing (sealed {_short(digest)})", key=flabel)
                continue
            now = sha256_file(path)
            if now != digest:
                self.problem(f"{flabel}: sha256 mismatch (sealed {_short(digest)}, now {_short(now)})", key=flabel)

    def check_extras(self, folder: Path, label: str, latest: dict[str, Any], latest_name: str) -> None:
        listed = set(latest["files"]) | {latest_name}
        try:
            present = _files_under(folder)
        except ArchiveError as exc:
            self.problem(f"{label}/{exc}")
            return
        for rel, _p in present:
            if rel not in listed:
                self.problem(f"{label}/{rel}: not in any manifest (added after the last seal)", key=f"{label}/{rel}")


def _label(path: Path, root: Path | None) -> str:
    if root is not None:
        with contextlib.suppress(ValueError):
            return path.relative_to(root).as_posix()
    return path.name


def _verify_root(root: Path, run_checks: Sequence[RunCheck] = ()) -> VerifyReport:
    v = _Verifier(root)
    chain, problems = read_chain(root)
    for p in problems:
        v.problem(p)
    if not (root / CHAIN_FILE).exists():
        stray = [p for p in root.rglob("manifest*.json") if _MANIFEST_RE.fullmatch(p.name)]
        if stray:
            v.problem(f"{CHAIN_FILE}: missing, but {len(stray)} manifest(s) exist "
                      f"(first: {_label(sorted(stray)[0], root)})")
        return VerifyReport(ok=not v.problems, runs_checked=0, files_checked=0, problems=v.problems)

    prev_sha: str | None = None
    prev_path: str | None = None
    latest_by_folder: dict[str, tuple[int, dict[str, Any], str]] = {}
    for expected_seq, line in enumerate(chain, start=1):
        mrel = str(line["manifest"])
        if line["seq"] != expected_seq:
            v.problem(f"{CHAIN_FILE}: seq {line['seq']} where {expected_seq} was expected ({mrel}) — "
                      "a chain line is missing or out of order")
        if line.get("prev_sha256", prev_sha) != prev_sha:
            v.problem(f"{CHAIN_FILE} seq {line['seq']} ({mrel}): prev link {_short(line.get('prev_sha256'))} "
                      f"does not match the previous line's manifest {_short(prev_sha)}")
        mpath = root / mrel
        if not _safe_rel(mrel) or not _MANIFEST_RE.fullmatch(PurePosixPath(mrel).name):
            v.problem(f"{CHAIN_FILE} seq {line['seq']}: bad manifest path {mrel!r}")
        elif not mpath.is_file():
            v.problem(f"{mrel}: manifest listed in {CHAIN_FILE} (seq {line['seq']}) is missing", key=mrel)
        else:
            now = sha256_file(mpath)
            if now != line["sha256"]:
                v.problem(f"{mrel}: sha256 mismatch with {CHAIN_FILE} seq {line['seq']} "
                          f"(sealed {_short(line['sha256'])}, now {_short(now)})", key=mrel)
            manifest, problem = _load_manifest(mpath, mrel)
            if manifest is None:
                v.problem(problem or f"{mrel}: unreadable")
            else:
                if manifest.get("prev_manifest_sha256") != prev_sha or manifest.get("prev_manifest_path") != prev_path:
                    v.problem(f"{mrel}: chain link broken — prev_manifest is "
                              f"{manifest.get('prev_manifest_path')} {_short(manifest.get('prev_manifest_sha256'))}, "
                              f"the chain's previous entry is {prev_path} {_short(prev_sha)}")
                folder_rel = PurePosixPath(mrel).parent.as_posix()
                v.check_files(mpath.parent, folder_rel, manifest, mrel)
                number = int(manifest.get("seal_number") or 1)
                if folder_rel not in latest_by_folder or latest_by_folder[folder_rel][0] < number:
                    latest_by_folder[folder_rel] = (number, manifest, mpath.name)
        prev_sha, prev_path = line["sha256"], mrel

    chained = {str(line["manifest"]) for line in chain}
    sealed_folders = set(latest_by_folder)
    for p in sorted(root.rglob("manifest*.json")):
        if not _MANIFEST_RE.fullmatch(p.name):
            continue
        rel = p.relative_to(root).as_posix()
        if rel in chained:
            continue
        inside_sealed = any(rel.startswith(f + "/") for f in sealed_folders)
        if not inside_sealed or p.parent.relative_to(root).as_posix() in sealed_folders:
            v.problem(f"{rel}: manifest not in {CHAIN_FILE}", key=rel)
    for folder_rel, (_n, manifest, name) in sorted(latest_by_folder.items()):
        v.check_extras(root / folder_rel, folder_rel, manifest, name)
        _run_checks(v, root / folder_rel, folder_rel, run_checks)  # issue #18
    return VerifyReport(ok=not v.problems, runs_checked=len(latest_by_folder),
                        files_checked=len(v.checked), problems=v.problems)


def _verify_run(folder: Path, run_checks: Sequence[RunCheck] = ()) -> VerifyReport:
    root = _find_root(folder.parent)
    v = _Verifier(root)
    label = _label(folder, root)
    manifests = _manifests_in(folder)
    if not manifests:
        return VerifyReport(ok=False, runs_checked=0, files_checked=0,
                            problems=[f"{label}: no manifest (the run was never sealed)"])
    chain_by_path: dict[str, tuple[int, dict[str, Any]]] = {}
    chain: list[dict[str, Any]] = []
    if root is not None:
        chain, problems = read_chain(root)
        for p in problems:
            v.problem(p)
        chain_by_path = {str(c["manifest"]): (i, c) for i, c in enumerate(chain)}
    latest: tuple[dict[str, Any], str] | None = None
    for _number, mpath in manifests:
        mrel = f"{label}/{mpath.name}"
        manifest, problem = _load_manifest(mpath, mrel)
        if root is not None:
            hit = chain_by_path.get(mrel)
            if hit is None:
                v.problem(f"{mrel}: manifest not in {CHAIN_FILE}", key=mrel)
            else:
                index, line = hit
                now = sha256_file(mpath)
                if now != line["sha256"]:
                    v.problem(f"{mrel}: sha256 mismatch with {CHAIN_FILE} seq {line['seq']} "
                              f"(sealed {_short(line['sha256'])}, now {_short(now)})", key=mrel)
                prev = chain[index - 1] if index > 0 else None
                expected = (prev["sha256"], prev["manifest"]) if prev else (None, None)
                if manifest is not None and (
                    manifest.get("prev_manifest_sha256"), manifest.get("prev_manifest_path")
                ) != expected:
                    v.problem(f"{mrel}: chain link broken — prev_manifest is "
                              f"{manifest.get('prev_manifest_path')} {_short(manifest.get('prev_manifest_sha256'))}, "
                              f"the chain's previous entry is {expected[1]} {_short(expected[0])}")
        if manifest is None:
            v.problem(problem or f"{mrel}: unreadable")
            continue
        v.check_files(folder, label, manifest, mrel)
        latest = (manifest, mpath.name)
    if latest is not None:
        v.check_extras(folder, label, *latest)
        _run_checks(v, folder, label, run_checks)  # issue #18
    return VerifyReport(ok=not v.problems, runs_checked=1, files_checked=len(v.checked), problems=v.problems)


# --- issue #18: checks a family adds per sealed run folder (payops archive verify passes the signed-approval
# check, payops.approvals.evidence.verify_run_approvals); injected so the core never imports a family ---
RunCheck = Callable[[Path], list[str]]


def _run_checks(v: _Verifier, folder: Path, label: str, run_checks: Sequence[RunCheck]) -> None:
    for check in run_checks:
        for problem in check(folder):
            v.problem(f"{label}/{problem}")


def _merge(report: VerifyReport, found: Findings) -> None:
    report.problems.extend(found.problems)
    report.warnings.extend(found.warnings)
    report.unproven.extend(found.unproven)


def _permission_warnings(report: VerifyReport, top: Path, label: str) -> None:
    """Files or folders others can read (#19: the archive is owner-only, or open to PAYOPS_ARCHIVE_GROUP)."""
    opened = open_to_others(top)
    if opened:
        def name(rel: str) -> str:
            return label if rel == "." else rel if label == "." else f"{label}/{rel}"

        shown = ", ".join(f"{name(rel)} ({mode:04o})" for rel, mode in opened[:3])
        more = f" and {len(opened) - 3} more" if len(opened) > 3 else ""
        report.warnings.append(f"{len(opened)} file(s) or folder(s) with permissions for others: {shown}{more} — "
                               f"the archive is owner-only (PAYOPS_ARCHIVE_GROUP for auditors): chmod -R o-rwx {top}")


def _hold_root(report: VerifyReport, root: Path, records: RunRecords | None, anchors: Sequence[AnchorSource],
               notes: Sequence[str]) -> None:
    chain, _problems = read_chain(root)  # unreadable lines were reported by the chain check
    report.head = head_of(chain)
    if records is None:
        report.unproven.append(NO_RECORDS)
    else:
        _merge(report, check_records(chain, records, root))
    if not anchors:
        report.unproven.append(NO_ANCHORS)
    for source in anchors:
        _merge(report, check_anchor(chain, source))
    report.unproven.extend(notes)
    _permission_warnings(report, root, ".")


def _hold_run(report: VerifyReport, folder: Path, records: RunRecords | None, notes: Sequence[str]) -> None:
    label = folder.name
    if records is None:
        report.unproven.append(NO_RECORDS)
    else:
        present = {p.name: sha256_file(p) for _n, p in _manifests_in(folder)}
        for r in records.seals:
            if r.manifest is not None:
                name = PurePosixPath(r.manifest).name
                if present.get(name) != r.sha256:
                    state = "missing" if name not in present else f"sha256 {_short(present[name])}"
                    report.problems.append(f"{label}/{name}: {r.label} was sealed with manifest sha256 "
                                           f"{_short(r.sha256)} (chain seq {r.seq}), here it is {state}")
            elif r.sha256 not in present.values():
                report.problems.append(f"{label}: {r.label} is recorded as sealed with manifest sha256 "
                                       f"{_short(r.sha256)}, no manifest here has it")
    report.unproven.extend([*notes, ONE_FOLDER])
    _permission_warnings(report, folder, label)


def verify_archive(path: Path, *, run_checks: Sequence[RunCheck] = (), records: RunRecords | None = None,
                   anchors: Sequence[AnchorSource] = (), notes: Sequence[str] = ()) -> VerifyReport:
    """Verify an output root (the whole chain) or one run folder; problems name the first mismatch.

    For a root: every CHAIN.jsonl line's manifest exists and hashes as recorded, every manifest links
    to the previous line, every listed file hashes as sealed, no unlisted file sits in a sealed run
    folder, and no manifest is missing from the chain. For a run folder: its manifests and files,
    and their chain entries when a CHAIN.jsonl is found above it. Each of ``run_checks`` runs on every
    sealed run folder (its problems labelled with the folder), e.g. the signed approvals' check.

    Held against what was recorded outside the archive (:mod:`payops.archive.tail`): ``records`` (the seals
    the database recorded — for a root those under it, for a run folder that run's) and ``anchors`` (the
    anchored chain heads). Without them the report says what it could not prove (``unproven``); ``notes`` are
    added there (why the database could not be read…). ``warnings`` never fail it: files others can read,
    seals without a record, a head not yet anchored.
    """
    path = Path(path).resolve()
    if not path.is_dir():
        return VerifyReport(ok=False, runs_checked=0, files_checked=0, problems=[f"{path}: not a folder"])
    if _manifests_in(path) and not (path / CHAIN_FILE).exists():
        report = _verify_run(path, run_checks)
        _hold_run(report, path, records, notes)
        report.ok = not report.problems
        return report
    if not (path / CHAIN_FILE).exists():
        above = _find_root(path.parent)
        if above is not None:
            return VerifyReport(ok=False, runs_checked=0, files_checked=0, problems=[
                f"{path}: neither an output root nor a sealed run folder (the output root is {above})"
            ])
    report = _verify_root(path, run_checks)
    _hold_root(report, path, records, anchors, notes)
    report.ok = not report.problems
    return report
