"""The one error tree. Every failure payops raises on purpose is a PayopsError.

The CLI prints ``str(error)`` as one readable line; the fields carry the details.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class PayopsError(Exception):
    """Base of every error payops raises on purpose."""

    exit_code: int = 1


@dataclass(frozen=True)
class FieldProblem:
    """One problem with one input field."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


class ParamsInvalid(PayopsError):
    """Bad parameters: raised before any side effect, naming every offending field."""

    exit_code = 2

    def __init__(self, problems: list[FieldProblem] | FieldProblem, context: str = "parameters") -> None:
        if isinstance(problems, FieldProblem):
            problems = [problems]
        self.problems = list(problems)
        self.context = context
        joined = "; ".join(str(p) for p in self.problems)
        super().__init__(f"invalid {context}: {joined}")

    @property
    def fields(self) -> list[str]:
        return [p.field for p in self.problems]


class PreconditionFailed(PayopsError):
    """Verify found one or more failed checks; all of them are listed, not only the first."""

    exit_code = 3

    def __init__(self, failures: list[tuple[str, str]]) -> None:
        self.failures = list(failures)
        joined = "; ".join(f"{name}: {detail}" for name, detail in self.failures)
        super().__init__(f"{len(self.failures)} precondition(s) failed — {joined}")


class ApprovalMissing(PayopsError):
    exit_code = 4


class PaymentError(PayopsError):
    """Stripe said no. Keeps Stripe's error type, code, param and request id."""

    exit_code = 5

    def __init__(
        self,
        message: str,
        *,
        stripe_type: str | None = None,
        code: str | None = None,
        param: str | None = None,
        request_id: str | None = None,
        http_status: int | None = None,
    ) -> None:
        self.stripe_type = stripe_type
        self.code = code
        self.param = param
        self.request_id = request_id
        self.http_status = http_status
        bits = [b for b in (stripe_type, code, f"param={param}" if param else None) if b]
        where = f" (request {request_id})" if request_id else ""
        super().__init__(f"Stripe refused: {message}" + (f" [{', '.join(bits)}]" if bits else "") + where)

    def as_dict(self) -> dict[str, Any]:
        return {
            "message": str(self),
            "type": self.stripe_type,
            "code": self.code,
            "param": self.param,
            "request_id": self.request_id,
            "http_status": self.http_status,
        }


class AuditWriteError(PayopsError):
    exit_code = 6


class NotificationError(PayopsError):
    exit_code = 7


class SettlementTimeout(PayopsError):
    exit_code = 8


class ArchiveError(PayopsError):
    """A secret was found, a manifest does not match, or the chain is broken."""

    exit_code = 9


class ReconciliationBreaks(PayopsError):
    exit_code = 10


class ConfigError(PayopsError):
    """The environment is missing something payops needs (a key, the schema, a URL)."""

    exit_code = 11


class ConcurrentRun(PayopsError):
    """Another run already holds this ledger payout."""

    exit_code = 12


class StuckRun(PayopsError):
    """A payout cycle has been ``running`` for longer than PAYOPS_CYCLE_STUCK_MINUTES: reported, never
    silently restarted (a person decides: resume it, or investigate)."""

    exit_code = 13


class CycleDisabled(PayopsError):
    """The automated cycle is switched off (PAYOUT_CYCLE_DISABLED or ``payops payout-cycle disable``):
    the run fails on purpose and its ledger payouts stay pending for the manual fallback."""

    exit_code = 14


class ChecksFailed(PayopsError):
    """A go-live, pre-run or post-run check notebook found at least one failing check."""

    exit_code = 15


class AlertsOpen(PayopsError):
    """``payops monitor check``: a SEV-2 condition is open (the exit code stays non-zero until it clears)."""

    exit_code = 20


class ServiceUnreachable(PayopsError):
    """A system a runbook reads or acts on (Redis, the message broker, the S3 bucket…) did not answer: the
    message names it (URL without its password) and says what failed."""

    exit_code = 16


def exit_code_for(name: str) -> int:
    """The exit code of the error class called ``name`` (as papermill reports it), 1 if unknown."""
    cls = globals().get(name)
    if isinstance(cls, type) and issubclass(cls, PayopsError):
        return cls.exit_code
    return 1
