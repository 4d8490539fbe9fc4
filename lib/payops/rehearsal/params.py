"""The rehearsal's parameters (the notebooks' contract) and its ticket id.

One rehearsal = one ``rehearsal`` runbook run with these parameters. ``dry_run`` keeps its meaning
everywhere in payops: True (the default, and what the scheduler runs) stops after the SOP's dry run;
``payops rehearse`` sets it False to go live in Stripe test mode once two people approved.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from payops.errors import FieldProblem, ParamsInvalid
from payops.params import _problems_from, canonical_sha256, canonical_uuid, load_params_file

SOP = "rehearsal"
TICKET_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{1,63}")
ACTION_RE = re.compile(r"\s*(?P<text>[^=]*\S)\s*=\s*(?P<owner>\S.*?)\s*")
REASON = "stability_rehearsal"
DEFAULT_PARAMS_FILE = Path(__file__).resolve().parents[3] / "params" / "rehearsal" / "default.yaml"


def default_ticket(day: date) -> str:
    """``REH-<year>-Q<n>`` for the quarter ``day`` falls in."""
    return f"REH-{day.year}-Q{(day.month - 1) // 3 + 1}"


def parse_action(text: str) -> dict[str, str]:
    """``"text=owner"`` → ``{"text": …, "owner": …}``; anything else names ``--action``."""
    m = ACTION_RE.fullmatch(text or "")
    if not m:
        raise ParamsInvalid(FieldProblem("--action", f"{text!r} is not 'what to do=owner'"))
    return {"text": m["text"], "owner": m["owner"]}


class RehearsalParams(BaseModel):
    """One quarterly fallback rehearsal (Stripe test mode, the rehearsal database)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ticket: str
    operator: str | None = None
    dry_run: bool = True
    unattended: bool = False
    studio_id: str = "11111111-1111-1111-1111-111111111111"
    other_studio_id: str = "33333333-3333-3333-3333-333333333333"
    earnings: list[str] = ["640.00", "455.25", "380.00"]
    other_earnings: list[str] = ["210.00", "95.50"]
    actions: list[str] = []
    wait_seconds: float = 1800.0

    @field_validator("ticket")
    @classmethod
    def _ticket(cls, v: str) -> str:
        if not TICKET_RE.fullmatch(v):
            raise ValueError(f"{v!r} must be 2-64 letters, digits, '.', '_' or '-' (e.g. REH-2027-Q1)")
        return v

    @field_validator("operator")
    @classmethod
    def _operator(cls, v: Any) -> str | None:
        return None if v in (None, "") else canonical_uuid(v, "operator")

    @field_validator("studio_id", "other_studio_id")
    @classmethod
    def _uuid(cls, v: Any, info: Any) -> str:
        return canonical_uuid(v, info.field_name)

    @field_validator("earnings", "other_earnings")
    @classmethod
    def _amounts(cls, v: list[str]) -> list[str]:
        for a in v:
            if not re.fullmatch(r"\d{1,9}(\.\d{1,2})?", str(a)):
                raise ValueError(f"{a!r} is not a positive decimal amount like 640.00")
        if not v:
            raise ValueError("at least one earning is needed for a payout")
        return [str(a) for a in v]

    @field_validator("actions")
    @classmethod
    def _actions(cls, v: list[str]) -> list[str]:
        for a in v:
            parse_action(a)
        return v

    @field_validator("wait_seconds")
    @classmethod
    def _wait(cls, v: float) -> float:
        if not 0 <= v <= 24 * 3600:
            raise ValueError("must be between 0 and 86400 seconds")
        return v

    def params_hash(self) -> str:
        return canonical_sha256(self.model_dump(mode="json"))


def validate_rehearsal(data: Mapping[str, Any]) -> RehearsalParams:
    try:
        return RehearsalParams.model_validate(dict(data))
    except ValidationError as exc:
        raise ParamsInvalid(_problems_from(exc), "rehearsal parameters") from None


def gather(*, params_file: Path | None, ticket: str | None, operator: str | None, actions: list[str],
           unattended: bool, live: bool, wait_seconds: float, today: date) -> RehearsalParams:
    """The params file (default ``params/rehearsal/default.yaml``), then the flags over it."""
    path = params_file or DEFAULT_PARAMS_FILE
    data: dict[str, Any] = load_params_file(path) if path.exists() else {}
    data["ticket"] = ticket or data.get("ticket") or default_ticket(today)
    if operator:
        data["operator"] = operator
    data["actions"] = [*data.get("actions", []), *actions]
    data.update(unattended=unattended, dry_run=not live, wait_seconds=wait_seconds)
    return validate_rehearsal(data)
