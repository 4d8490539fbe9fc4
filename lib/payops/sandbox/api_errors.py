"""Stripe-shaped API errors raised by the sandbox's resource handlers.

Stripe answers every failure with ``{"error": {"type", "code", "message", "param", "doc_url",
"request_log_url"}}`` and a status code the SDK maps to an exception class (400/404 →
``InvalidRequestError`` or ``IdempotencyError``, 401 → ``AuthenticationError``, 402 → ``CardError``, 403 →
``PermissionError``, 429 → ``RateLimitError``, 5xx/409 → ``APIError``).
"""

from __future__ import annotations

from typing import Any

DOC_BASE = "https://stripe.com/docs/error-codes/"


class StripeAPIError(Exception):
    """An error answered to the client in Stripe's JSON shape.

    ``save_idempotent`` says whether an idempotent request that failed this way stores the result:
    Stripe stores (and replays, with ``Idempotent-Replayed: true``) any answer — a 4xx included — once
    the request began executing (the balance was short, the destination cannot receive transfers, a
    card was declined), but not a request that failed parameter validation before executing. ``extra``
    adds fields to the error object (a card error's ``decline_code``, ``charge``, ``payment_intent``…).
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
        save_idempotent: bool = False,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.code = code
        self.param = param
        self.headers = headers or {}
        self.save_idempotent = save_idempotent
        self.extra = extra or {}

    def body(self, request_log_url: str | None = None) -> dict[str, Any]:
        err: dict[str, Any] = {"type": self.type, "message": self.message}
        if self.code:
            err["code"] = self.code
            err["doc_url"] = DOC_BASE + self.code
        if self.param:
            err["param"] = self.param
        if request_log_url:
            err["request_log_url"] = request_log_url
        err.update(self.extra)
        return {"error": err}


def missing(kind: str, obj_id: str, param: str = "id", status: int = 404) -> StripeAPIError:
    """``No such transfer: 'tr_x'`` (404 ``resource_missing``)."""
    return StripeAPIError(status, f"No such {kind}: '{obj_id}'", code="resource_missing", param=param)


def missing_param(param: str) -> StripeAPIError:
    return StripeAPIError(400, f"Missing required param: {param}.", code="parameter_missing", param=param)


def invalid_param(param: str, message: str, code: str = "parameter_invalid") -> StripeAPIError:
    return StripeAPIError(400, message, code=code, param=param)


def unknown_param(param: str) -> StripeAPIError:
    return StripeAPIError(400, f"Received unknown parameter: {param}", code="parameter_unknown", param=param)
