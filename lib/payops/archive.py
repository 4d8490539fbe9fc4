"""The audit archive: run folders, secret scan, sealed manifests in one sha256 chain, verification.

Layout: ``<output_root>/<sop>/<YYYY-MM-DD>/<run_id>/`` holds a run's executed notebooks, their HTML
renderings, artifacts and manifests. Sealing a run writes ``manifest.json`` (later seals of the same
folder ``manifest.2.json``, ``manifest.3.json`` …) listing the sha256 of every file, and appends one
line to ``<output_root>/CHAIN.jsonl``. Each manifest records the previous manifest's sha256 — one
chain for the whole output root, serialized by an exclusive ``flock`` so it never forks.
Files are append-only: a file covered by an earlier seal must never change.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import html
import importlib.metadata
import io
import json
import os
import platform
import re
import subprocess
import threading
import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path, PurePosixPath
from typing import Any
from uuid import UUID

from payops.errors import ArchiveError

SCHEMA = "payops.manifest/1"
CHAIN_FILE = "CHAIN.jsonl"
LOCK_FILE = ".chain.lock"
_MANIFEST_RE = re.compile(r"^manifest(?:\.([2-9]|[1-9][0-9]+))?\.json$")
_SEGMENT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_RESERVED_KEYS = {
    "schema", "sop", "run_id", "files", "package_versions", "git_commit", "sealed_at", "seal_number",
    "chain_seq", "prev_manifest_sha256", "prev_manifest_path",
}
_VERSIONED_PACKAGES = ("payops", "papermill", "stripe", "sqlalchemy", "nbformat")

# (kind, pattern). A left boundary keeps "task_test_…" from reading as "sk_test_…".
SECRET_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("stripe_secret_key", re.compile(r"(?<![0-9A-Za-z])sk_(?:test|live)_[0-9A-Za-z_]{6,}")),
    ("stripe_restricted_key", re.compile(r"(?<![0-9A-Za-z])rk_(?:test|live)_[0-9A-Za-z_]{6,}")),
    ("stripe_webhook_secret", re.compile(r"(?<![0-9A-Za-z])whsec_[0-9A-Za-z_]{6,}")),
    ("slack_webhook_url", re.compile(r"https?://hooks\.slack\.com/services/[^\s\"'<>\\]+")),
    ("slack_webhook_path", re.compile(r"/services/T[0-9A-Za-z_]+/B[0-9A-Za-z_]+/[0-9A-Za-z_-]{4,}")),
    # issue #18: approvals put public keys and signatures in run folders; a private key never may
    ("private_key", re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----")),
    ("putty_private_key", re.compile(r"PuTTY-User-Key-File-\d+:")),
)


# -- run folders and HTML ------------------------------------------------------------------------
def _segment(value: str, what: str) -> str:
    if not isinstance(value, str) or not _SEGMENT_RE.fullmatch(value) or value in (".", ".."):
        raise ArchiveError(f"{what} {value!r} is not a safe folder name (letters, digits, '.', '_', '-')")
    return value


def run_dir(output_root: Path, sop: str, run_id: str, started_at: datetime) -> Path:
    """Create and return ``<output_root>/<sop>/<YYYY-MM-DD>/<run_id>/`` (``started_at``'s UTC date).

    A naive ``started_at`` is taken to be UTC.
    """
    when = started_at.replace(tzinfo=UTC) if started_at.tzinfo is None else started_at.astimezone(UTC)
    folder = Path(output_root) / _segment(sop, "sop") / when.date().isoformat() / _segment(run_id, "run_id")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


_html_exporter: list[Any] = []  # one HTMLExporter per process: its compiled templates make the next render ~4x faster
_html_lock = threading.Lock()


def render_html(ipynb: Path) -> Path:
    """Render a notebook with nbconvert's HTMLExporter to ``<same name>.html`` beside it."""
    ipynb = Path(ipynb)
    target = ipynb.with_suffix(".html")
    try:
        with _html_lock:
            if not _html_exporter:
                from nbconvert import HTMLExporter  # heavy import: only when rendering

                _html_exporter.append(HTMLExporter())
            body, _resources = _html_exporter[0].from_filename(str(ipynb))
        target.write_text(body, encoding="utf-8")
    except Exception as exc:  # nbconvert raises many unrelated types; all mean "no HTML"
        raise ArchiveError(f"cannot render {ipynb} to HTML: {type(exc).__name__}: {exc}") from exc
    return target


# -- secret scanner --------------------------------------------------------------------------------
@dataclass
class SecretFinding:
    """One secret found in one file. ``excerpt`` is redacted: the kind and the first 4 characters."""

    path: str
    line: int
    kind: str
    excerpt: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.excerpt}"


def _redacted(kind: str, value: str) -> str:
    return f"{kind} {value[:4]}…"


def _secret_variants(extra_secrets: Iterable[str]) -> list[str]:
    """Each configured secret as it could appear: raw, JSON-escaped (notebooks) and HTML-escaped."""
    out: list[str] = []
    for secret in extra_secrets:
        if not secret:
            continue
        for v in (secret, json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1],
                  html.escape(secret), html.escape(secret, quote=False)):
            if v not in out:
                out.append(v)
    return out


def scan_text(text: str, path: str, extra_secrets: Iterable[str] = ()) -> list[SecretFinding]:
    """Findings in one text; ``path`` is only used to label them."""
    found: list[tuple[int, SecretFinding]] = []
    for kind, pattern in SECRET_PATTERNS:
        for m in pattern.finditer(text):
            line = text.count("\n", 0, m.start()) + 1
            found.append((m.start(), SecretFinding(path, line, kind, _redacted(kind, m.group(0)))))
    for secret in _secret_variants(extra_secrets):
        start = text.find(secret)
        while start != -1:
            line = text.count("\n", 0, start) + 1
            found.append((start, SecretFinding(path, line, "configured_secret",
                                               _redacted("configured_secret", secret))))
            start = text.find(secret, start + 1)
    # one finding per (line, kind): a Slack URL matches both Slack patterns
    seen: set[tuple[int, str]] = set()
    out: list[SecretFinding] = []
    for _pos, f in sorted(found, key=lambda t: t[0]):
        key = (f.line, "slack" if f.kind.startswith("slack_") else f.kind)
        if key not in seen:
            seen.add(key)
            out.append(f)
    return out


def _texts_of(path: Path, rel: str) -> Iterator[tuple[str, str]]:
    """(label, text) for a file: itself if it is UTF-8, else each UTF-8 member of a zip (.xlsx …)."""
    data = path.read_bytes()
    try:
        yield rel, data.decode("utf-8")
        return
    except UnicodeDecodeError:
        pass  # binary: look inside if it is a zip, else nothing to scan
    if data[:4] == b"PK\x03\x04":
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as zf:
                for info in zf.infolist():
                    if info.is_dir() or info.file_size > 50_000_000:
                        continue
                    try:
                        yield f"{rel}!{info.filename}", zf.read(info).decode("utf-8")
                    except UnicodeDecodeError:
                        continue  # a binary member (an image inside a workbook)
        except zipfile.BadZipFile:
            return


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


def scan_for_secrets(folder: Path, extra_secrets: Iterable[str] = ()) -> list[SecretFinding]:
    """Scan every text file (and the text members of zip files) below ``folder`` for secrets.

    Finds Stripe secret/restricted keys (``sk_``/``rk_`` test or live), webhook secrets (``whsec_``),
    Slack webhook URLs or ``/services/T…/B…/…`` paths, and every exact value of ``extra_secrets``
    (pass ``Settings.secret_values()``). Publishable keys (``pk_``) are not secrets.
    """
    extra = [s for s in extra_secrets if s]
    findings: list[SecretFinding] = []
    for rel, path in _files_under(Path(folder)):
        for label, text in _texts_of(path, rel):
            findings.extend(scan_text(text, label, extra))
    return findings


# -- hashing, chain ------------------------------------------------------------------------------
def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _short(digest: str | None) -> str:
    return f"{digest[:8]}…" if digest else "none"


@contextlib.contextmanager
def _chain_lock(output_root: Path) -> Iterator[None]:
    output_root.mkdir(parents=True, exist_ok=True)
    with (output_root / LOCK_FILE).open("a") as fh:
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


# -- sealing -------------------------------------------------------------------------------------
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

    with _chain_lock(output_root):
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
        with target.open("xb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        digest = hashlib.sha256(data).hexdigest()
        line = {
            "seq": seq, "manifest": (rel_folder / name).as_posix(), "sha256": digest, "sealed_at": sealed_at,
            "prev_sha256": prev["sha256"] if prev else None,
        }
        with (output_root / CHAIN_FILE).open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(line, sort_keys=True) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
    return target


# -- verification --------------------------------------------------------------------------------
@dataclass
class VerifyReport:
    """The outcome of :func:`verify_archive`. ``problems`` are human-readable, first problem first."""

    ok: bool
    runs_checked: int
    files_checked: int
    problems: list[str] = field(default_factory=list)

    @property
    def first_problem(self) -> str | None:
        return self.problems[0] if self.problems else None


def _find_root(start: Path) -> Path | None:
    for candidate in [start, *start.parents]:
        if (candidate / CHAIN_FILE).is_file():
            return candidate
    return None


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


def verify_archive(path: Path, *, run_checks: Sequence[RunCheck] = ()) -> VerifyReport:
    """Verify an output root (the whole chain) or one run folder; problems name the first mismatch.

    For a root: every CHAIN.jsonl line's manifest exists and hashes as recorded, every manifest links
    to the previous line, every listed file hashes as sealed, no unlisted file sits in a sealed run
    folder, and no manifest is missing from the chain. For a run folder: its manifests and files,
    and their chain entries when a CHAIN.jsonl is found above it. Each of ``run_checks`` runs on every
    sealed run folder (its problems labelled with the folder), e.g. the signed approvals' check.
    """
    path = Path(path).resolve()
    if not path.is_dir():
        return VerifyReport(ok=False, runs_checked=0, files_checked=0, problems=[f"{path}: not a folder"])
    if _manifests_in(path) and not (path / CHAIN_FILE).exists():
        return _verify_run(path, run_checks)
    if not (path / CHAIN_FILE).exists():
        above = _find_root(path.parent)
        if above is not None:
            return VerifyReport(ok=False, runs_checked=0, files_checked=0, problems=[
                f"{path}: neither an output root nor a sealed run folder (the output root is {above})"
            ])
    return _verify_root(path, run_checks)
