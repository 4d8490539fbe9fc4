"""The checkout incident notebooks' parameters (their contract) and their validation.

Every problem is raised at once as ``ParamsInvalid`` naming the CLI flag (``--scenario``, ``--incident-id``,
``--since``) before anything is created: no run, no incident row, no archive folder.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from payops.errors import FieldProblem, ParamsInvalid
from payops.params import _problems_from, canonical_sha256

#: the runbook's four scenarios → the alert that opens each
SCENARIOS: dict[str, str] = {
    "checkout-failures": "Checkout success rate below threshold (Checkout Sessions / PaymentIntents, 30 min)",
    "payment-window": "Payment window not expiring (Checkout Sessions open past 24 h)",
    "retry-backlog": "Checkout retry queue backlog (depth over 200 for over 30 min)",
    "receipts": "Receipt generation errors (receipts missing or their download URL refused)",
}
INCIDENT_ID = re.compile(r"INC-[A-Za-z0-9][A-Za-z0-9-]{0,59}")
_DURATION = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")
MAX_SINCE = 7 * 86400
FLAGS = {"scenario": "--scenario", "incident_id": "--incident-id", "since": "--since", "dry_run": "--dry-run"}


def duration_seconds(text: str) -> int:
    """``30m``, ``2h``, ``1h30m``, ``90s``, ``1d`` → seconds (ValueError otherwise)."""
    m = _DURATION.fullmatch(text.strip()) if isinstance(text, str) else None
    if not text or m is None or not any(m.groups()):
        raise ValueError(f"{text!r} is not a duration like 30m, 2h, 1h30m or 1d")
    d, h, mins, s = (int(g or 0) for g in m.groups())
    seconds = d * 86400 + h * 3600 + mins * 60 + s
    if not 60 <= seconds <= MAX_SINCE:
        raise ValueError(f"{text!r} must be between 1 minute and 7 days")
    return seconds


def _incident_id(v: Any) -> Any:
    if not isinstance(v, str) or not INCIDENT_ID.fullmatch(v):
        raise ValueError(f"{v!r} is not an incident id like INC-2026-1207-01 (INC- then letters, digits, dashes)")
    return v


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def params_hash(self) -> str:
        return canonical_sha256(self.model_dump(mode="json"))


class IncidentParams(_Params):
    """``payops incident checkout``: one scenario of one incident, over a window ending now."""

    scenario: str
    incident_id: str
    since: str = "30m"
    dry_run: bool = True

    @field_validator("scenario")
    @classmethod
    def _scenario(cls, v: str) -> str:
        if v not in SCENARIOS:
            raise ValueError(f"{v!r} is not a scenario; one of {', '.join(SCENARIOS)}")
        return v

    _id = field_validator("incident_id")(_incident_id)

    @field_validator("since")
    @classmethod
    def _since(cls, v: str) -> str:
        duration_seconds(v)
        return v.strip()

    @field_validator("dry_run", mode="before")
    @classmethod
    def _bool(cls, v: Any) -> Any:
        if not isinstance(v, bool):
            raise ValueError(f"must be true or false, got {v!r}")
        return v

    @property
    def since_seconds(self) -> int:
        return duration_seconds(self.since)


class VerifyParams(_Params):
    """``payops incident verify``: the runbook's five verification steps over a window ending now."""

    incident_id: str
    since: str = "30m"

    _id = field_validator("incident_id")(_incident_id)
    _since = field_validator("since")(IncidentParams._since.__func__)  # type: ignore[attr-defined]

    @property
    def since_seconds(self) -> int:
        return duration_seconds(self.since)


class CloseParams(_Params):
    """``payops incident close``: the summary for the incidents page, sealed with the record."""

    incident_id: str

    _id = field_validator("incident_id")(_incident_id)


def _validate(model: type[_Params], data: Mapping[str, Any], context: str) -> Any:
    try:
        return model.model_validate(dict(data))
    except ValidationError as exc:
        problems = [FieldProblem(FLAGS.get(p.field, p.field), p.message) for p in _problems_from(exc)]
        raise ParamsInvalid(problems, context) from None


def validate_incident(data: Mapping[str, Any]) -> IncidentParams:
    return _validate(IncidentParams, data, "incident parameters")  # type: ignore[no-any-return]


def validate_verify(data: Mapping[str, Any]) -> VerifyParams:
    return _validate(VerifyParams, data, "verification parameters")  # type: ignore[no-any-return]


def validate_close(data: Mapping[str, Any]) -> CloseParams:
    return _validate(CloseParams, data, "close parameters")  # type: ignore[no-any-return]
