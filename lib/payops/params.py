"""Parameter models: the notebooks' contract.

Every runbook's parameters are validated here before any side effect; errors name the field.
A notebook's ``parameters`` cell must declare exactly the fields of its model plus ``run_id`` and
its step's extra parameters (``runner.STEP_PARAMS``)
(a test enforces it). Parameters describe the business action and are archived; they never
carry secrets.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

from payops.errors import FieldProblem, ParamsInvalid
from payops.money import Money, MoneyError, normalize_currency

# control characters (C0, DEL, C1 incl. NEL), line/paragraph separators, zero-width and bidi overrides:
# invisible or line-breaking text has no place in names that end up in SQL, emails and Slack
_INVISIBLE = r"\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u2069\ufeff"
_CONTROL = re.compile(rf"[\x00-\x1f{_INVISIBLE}]")
_CONTROL_KEEP_NEWLINES = re.compile(rf"[\x00-\x08\x0b-\x1f{_INVISIBLE}]")
ACCOUNT_RE = re.compile(r"acct_[A-Za-z0-9_]{1,64}")  # always used with fullmatch: `$` accepts a final newline
INCIDENT_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{1,63}")
AMOUNT_TEXT_RE = re.compile(r"(0|[1-9][0-9]*)(\.[0-9]+)?")


def canonical_uuid(value: Any, field: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"must be a UUID string, got {type(value).__name__}")
    try:
        parsed = uuid.UUID(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a UUID (expected 8-4-4-4-12 hex digits)") from None
    if str(parsed) != value.lower() or len(value) != 36:
        raise ValueError(f"{value!r} is not a canonical UUID (expected 8-4-4-4-12 hex digits)")
    return str(parsed)


def _amount_text(value: Any) -> str:
    """Amounts arrive as decimal strings; floats are refused (their value may already be wrong)."""
    if isinstance(value, bool) or isinstance(value, float):
        raise ValueError(f"must be a decimal string like '875.50', not a float ({value!r})")
    if isinstance(value, int):
        value = str(value)
    if not isinstance(value, str):
        raise ValueError(f"must be a decimal string like '875.50', got {type(value).__name__}")
    if value.strip().startswith("-"):
        raise ValueError(f"{value!r} is negative")
    if not AMOUNT_TEXT_RE.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a plain decimal like '875.50' (no signs, exponents, separators, spaces or symbols)"
        )
    return value


def _single_line(v: str, *, max_len: int) -> None:
    """Names and reasons end up in SQL, emails and Slack: one visible line, bounded."""
    if _CONTROL.search(v):
        raise ValueError("contains a newline or control character (invisible and bidi characters included)")
    if len(v) > max_len:
        raise ValueError(f"is longer than {max_len} characters")


def _raise_field_problems(problems: list[FieldProblem]) -> None:
    """Model-level checks report several named fields at once (unpacked by ``_problems_from``)."""
    if problems:
        raise PydanticCustomError(
            "field_problems", "{summary}",
            {"summary": "; ".join(str(p) for p in problems), "problems": [(p.field, p.message) for p in problems]},
        )


class ManualPayoutParams(BaseModel):
    """The SOP's flags (``scripts/manual_payout.py``), plus currency, rehearsal and operator."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=False)

    studio_id: str
    studio_name: str
    ledger_payout_id: str
    incident_id: str
    amount: str
    reserve_after: str
    reason: str
    destination_account: str
    notes: str = ""
    currency: str | None = None
    dry_run: bool = True
    is_rehearsal: bool = False
    send_notifications: bool = True
    operator: str | None = None

    @field_validator("studio_id", "ledger_payout_id")
    @classmethod
    def _uuid(cls, v: Any, info: Any) -> str:
        return canonical_uuid(v, info.field_name)

    @field_validator("operator")
    @classmethod
    def _operator(cls, v: Any) -> str | None:
        if v is None or v == "":
            return None
        return canonical_uuid(v, "operator")

    @field_validator("studio_name")
    @classmethod
    def _name(cls, v: str) -> str:
        _single_line(v, max_len=200)
        if v != v.strip() or not v:
            raise ValueError("must be non-empty without leading or trailing spaces")
        return v

    @field_validator("incident_id")
    @classmethod
    def _incident(cls, v: str) -> str:
        if not INCIDENT_RE.fullmatch(v):
            raise ValueError(f"{v!r} must be 2-64 characters of letters, digits, '.', '_' or '-' (e.g. INC-1234)")
        return v

    @field_validator("reason")
    @classmethod
    def _reason(cls, v: str) -> str:
        _single_line(v, max_len=500)
        if not v.strip():
            raise ValueError("must say why the manual payout is needed")
        return v

    @field_validator("notes")
    @classmethod
    def _notes(cls, v: str) -> str:
        if _CONTROL_KEEP_NEWLINES.search(v):
            raise ValueError("contains a control character (invisible and bidi characters included)")
        if len(v) > 2000:
            raise ValueError("is longer than 2000 characters")
        return v

    @field_validator("destination_account")
    @classmethod
    def _account(cls, v: str) -> str:
        if not ACCOUNT_RE.fullmatch(v):
            raise ValueError(f"{v!r} is not a Stripe connected account id (acct_…)")
        return v

    @field_validator("amount", "reserve_after", mode="before")
    @classmethod
    def _amounts(cls, v: Any) -> str:
        return _amount_text(v)

    @field_validator("currency")
    @classmethod
    def _currency(cls, v: str | None) -> str | None:
        if v is None:
            return None
        try:
            return normalize_currency(v)
        except MoneyError as exc:
            raise ValueError(str(exc)) from None

    @model_validator(mode="after")
    def _no_secrets(self) -> ManualPayoutParams:
        """Parameters are archived: a key pasted into a text field is refused before anything happens."""
        from payops.archive import scan_text

        problems = [
            FieldProblem(name, f"looks like a secret ({hit.kind}); secrets come from the environment, never parameters")
            for name in ("studio_name", "incident_id", "reason", "notes")
            for hit in scan_text(getattr(self, name) or "", name)[:1]
        ]
        _raise_field_problems(problems)
        return self

    @model_validator(mode="after")
    def _exact_amounts(self) -> ManualPayoutParams:
        if self.currency is None:
            return self
        problems: list[FieldProblem] = []
        values: dict[str, str] = {}
        for name in ("amount", "reserve_after"):
            try:
                values[name] = Money.parse(getattr(self, name), self.currency).decimal_str()
            except MoneyError as exc:
                problems.append(FieldProblem(name, str(exc)))
        if not problems and Money.parse(self.amount, self.currency).is_zero():
            problems.append(FieldProblem("amount", "must be greater than zero"))
        _raise_field_problems(problems)
        for name, text in values.items():
            object.__setattr__(self, name, text)  # canonical form so the params hash is stable
        return self

    # -- derived ------------------------------------------------------------------------------
    @property
    def money(self) -> Money:
        assert self.currency is not None, "currency not resolved yet"
        return Money.parse(self.amount, self.currency)

    @property
    def reserve_money(self) -> Money:
        assert self.currency is not None, "currency not resolved yet"
        return Money.parse(self.reserve_after, self.currency)

    def business_dict(self) -> dict[str, Any]:
        """What the approvers approve: everything but the dry-run switch."""
        return self.model_dump(mode="json", exclude={"dry_run", "send_notifications"})

    def params_hash(self) -> str:
        """sha256 of the canonical business parameters: a changed amount voids every approval."""
        if self.currency is None:
            raise ParamsInvalid(FieldProblem("currency", "must be resolved before hashing"))
        return canonical_sha256(self.business_dict(), ensure_ascii=False)


def canonical_sha256(data: Any, *, ensure_ascii: bool = True) -> str:
    """sha256 of ``data`` as canonical JSON (sorted keys, no spaces): every runbook's parameters hash."""
    blob = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=ensure_ascii)
    return hashlib.sha256(blob.encode()).hexdigest()


def _problems_from(exc: ValidationError) -> list[FieldProblem]:
    out: list[FieldProblem] = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "parameters"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "missing":
            msg = "is required"
        elif err["type"] == "extra_forbidden":
            msg = "is not a parameter of this runbook"
        if err["type"] == "field_problems":  # model-level checks carry their own field names
            out.extend(FieldProblem(f, m) for f, m in err["ctx"]["problems"])
            continue
        out.append(FieldProblem(loc, msg))
    return out


def validate_manual_payout(data: dict[str, Any]) -> ManualPayoutParams:
    """Validate or raise ParamsInvalid listing every bad field."""
    try:
        return ManualPayoutParams.model_validate(data)
    except ValidationError as exc:
        raise ParamsInvalid(_problems_from(exc), "manual payout parameters") from None


def load_params_file(path: Path) -> dict[str, Any]:
    """A named parameter set (``params/manual_payout/NAME.yaml``). Keys use the model's field names."""
    import yaml  # only commands given --params-file pay for the YAML parser

    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        detail = " ".join(str(exc).split())  # one line, whatever YAML's message looks like
        raise ParamsInvalid(FieldProblem("--params-file", f"{path}: {detail}")) from None
    if not isinstance(data, dict):
        raise ParamsInvalid(FieldProblem("--params-file", f"{path}: expected a mapping of parameter names"))
    for k in ("amount", "reserve_after", "reserve-after"):
        v = data.get(k)
        if v is not None and not isinstance(v, str):
            # YAML reads 875.50 as a float and 010 / 0x10 / 1:30 / 1_000 as *different* integers
            kind = f"YAML {type(v).__name__}"
            raise ParamsInvalid(FieldProblem(
                k.replace("-", "_"), f"{v!r} in {path} was read as a {kind}: quote amounts, e.g. {k}: '875.50'"))
    for k, v in data.items():
        if isinstance(v, float):
            raise ParamsInvalid(FieldProblem(str(k), f"{v!r} in {path} is a float: quote amounts, e.g. '875.50'"))
    return {str(k).replace("-", "_"): v for k, v in data.items()}
