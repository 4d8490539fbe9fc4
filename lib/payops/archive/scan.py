"""The secret scanner: nothing that looks like a Stripe key, a webhook secret, a Slack webhook, a private key
or a configured secret is ever sealed into the archive."""

from __future__ import annotations

import html
import io
import json
import re
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from payops.archive.folders import _files_under

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

