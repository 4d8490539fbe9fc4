"""Check results: one :class:`Check` row per thing checked, a :class:`CheckReport` holding them.

Statuses: ``PASS`` (as required), ``FAIL`` (blocks: the notebook raises ``ChecksFailed``, exit 15),
``WARN`` (worth a look, does not block) and ``SKIP`` (not applicable here, with the reason). Every
detail is scrubbed of secrets before it is stored: configured secret values and anything shaped like
a Stripe key, webhook secret or Slack webhook URL.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import pandas as pd

from payops.errors import ChecksFailed

Status = Literal["PASS", "FAIL", "WARN", "SKIP"]
PASS: Status = "PASS"  # noqa: S105 — a status, not a password
FAIL: Status = "FAIL"
WARN: Status = "WARN"
SKIP: Status = "SKIP"
STATUSES: tuple[Status, ...] = (PASS, FAIL, WARN, SKIP)
COLOURS = {PASS: "#c8f7c5", FAIL: "#f7c5c5", WARN: "#f7e7c5", SKIP: "#e5e5e5"}
REDACTED = "<redacted>"


def scrub(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` without any configured secret value or anything shaped like one."""
    from payops.archive import SECRET_PATTERNS

    out = str(text)
    for value in secrets:
        if value:
            out = out.replace(value, REDACTED)
    for _kind, pattern in SECRET_PATTERNS:
        out = pattern.sub(REDACTED, out)
    return out


@dataclass(frozen=True)
class Check:
    """One row of a check table."""

    name: str
    status: Status
    detail: str = ""

    def as_dict(self) -> dict[str, str]:
        return {"name": self.name, "status": self.status, "detail": self.detail}


def error_line(exc: BaseException) -> str:
    """``TypeName: first line of the message`` (for a check that crashed)."""
    msg = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {msg}"[:500]


@dataclass
class CheckReport:
    """The rows of one check notebook (``go-live``, ``pre-run``, ``post-run``), in the order run."""

    check: str
    subject: str = ""
    checks: list[Check] = field(default_factory=list)
    secrets: list[str] = field(default_factory=list, repr=False)
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    # -- building ------------------------------------------------------------------------------
    def add(self, name: str, status: Status, detail: str = "") -> Check:
        if status not in STATUSES:
            raise ValueError(f"unknown check status {status!r}")
        row = Check(name, status, scrub(detail, self.secrets))
        self.checks.append(row)
        return row

    def extend(self, rows: Iterable[Check]) -> CheckReport:
        """Append rows (scrubbed); returns self so a notebook cell can show the report."""
        for r in rows:
            self.add(r.name, r.status, r.detail)
        return self

    # -- reading -------------------------------------------------------------------------------
    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if c.status == FAIL]

    @property
    def warnings(self) -> list[Check]:
        return [c for c in self.checks if c.status == WARN]

    @property
    def ok(self) -> bool:
        return not self.failed

    def counts(self) -> dict[str, int]:
        return {s: sum(c.status == s for c in self.checks) for s in STATUSES}

    def get(self, name: str) -> Check:
        for c in self.checks:
            if c.name == name:
                return c
        raise KeyError(name)

    def summary(self) -> str:
        n = self.counts()
        head = f"{self.check} check{' ' + self.subject if self.subject else ''}: " + (
            "PASSED" if self.ok else "FAILED")
        line = f"{head} — {n[PASS]} pass, {n[FAIL]} fail, {n[WARN]} warn, {n[SKIP]} skip"
        if self.failed:
            line += "; failing: " + ", ".join(c.name for c in self.failed)
        return line

    def frame(self) -> pd.DataFrame:
        """The pass/fail table."""
        return pd.DataFrame([c.as_dict() for c in self.checks], columns=["name", "status", "detail"])

    def styled(self) -> Any:
        """The table with the status column coloured (a pandas Styler, for the notebook)."""
        return self.frame().style.map(lambda v: f"background-color: {COLOURS.get(v, 'white')}",
                                      subset=["status"]).hide(axis="index")

    def as_dict(self) -> dict[str, Any]:
        return {"check": self.check, "subject": self.subject, "ok": self.ok, "counts": self.counts(),
                "created_at": self.created_at, "checks": [c.as_dict() for c in self.checks],
                "summary": self.summary()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CheckReport:
        rep = cls(str(data.get("check", "")), str(data.get("subject", "")),
                  created_at=str(data.get("created_at", "")))
        rep.checks = [Check(str(c["name"]), c["status"], str(c.get("detail", ""))) for c in data.get("checks", [])]
        return rep

    def raise_if_failed(self) -> None:
        """``ChecksFailed`` (exit 15) naming every failing check; nothing when all passed."""
        if self.failed:
            raise ChecksFailed(self.summary() + " — " + "; ".join(f"{c.name}: {c.detail}" for c in self.failed))
