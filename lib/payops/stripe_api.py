"""The one Stripe client factory: base address, timeouts, retries, key checks, error mapping.

Pointing payops at real Stripe test mode instead of the sandbox is a configuration change only:
``PAYOPS_STRIPE_API_BASE`` unset (Stripe's API) and a real ``rk_test_…`` key in the environment.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Literal, TypeVar

import stripe
from pydantic import SecretStr

from payops.config import Settings, get_settings
from payops.errors import ConfigError, FieldProblem, PaymentError

T = TypeVar("T")
KeyMode = Literal["test", "live"]
KeyKind = Literal["secret", "restricted"]

_PREFIXES: dict[str, tuple[KeyKind, KeyMode]] = {
    "sk_test_": ("secret", "test"),
    "sk_live_": ("secret", "live"),
    "rk_test_": ("restricted", "test"),
    "rk_live_": ("restricted", "live"),
}


def describe_key(key: str) -> tuple[KeyKind, KeyMode]:
    """``('restricted', 'test')`` for ``rk_test_…``; ValueError for anything that is not a secret key."""
    for prefix, kind_mode in _PREFIXES.items():
        if key.startswith(prefix) and len(key) > len(prefix):
            return kind_mode
    raise ValueError("not a Stripe secret or restricted key (expected sk_test_, rk_test_, sk_live_ or rk_live_)")


def redact(key: str) -> str:
    """What may be shown of a key: its prefix only (``rk_test_…``)."""
    for prefix in _PREFIXES:
        if key.startswith(prefix):
            return prefix + "…"
    return "…"


def key_problems(
    key: SecretStr | None, *, env_var: str, settings: Settings, rehearsal: bool, want_restricted: bool
) -> list[FieldProblem]:
    """Every reason this key may not be used here: missing, malformed, wrong mode, live in a rehearsal."""
    if key is None or not key.get_secret_value():
        return [FieldProblem(env_var, "is not set (keys come from the environment only)")]
    raw = key.get_secret_value()
    try:
        kind, mode = describe_key(raw)
    except ValueError as exc:
        return [FieldProblem(env_var, str(exc))]
    problems: list[FieldProblem] = []
    if mode != settings.environment:
        problems.append(FieldProblem(
            env_var, f"is a {mode}-mode key but PAYOPS_ENVIRONMENT is {settings.environment!r}"))
    if mode == "live" and rehearsal:
        problems.append(FieldProblem(env_var, "live keys are refused in rehearsal mode"))
    if mode == "live" and not settings.uses_stripe_api:
        problems.append(FieldProblem(env_var, "live keys are refused against the sandbox / a non-Stripe API base"))
    if want_restricted and kind != "restricted":
        problems.append(FieldProblem(
            env_var, "must be a restricted key (rk_…) with transfers write + balance read, per the SOP"))
    return problems


def make_client(
    key: SecretStr | str | None = None,
    *,
    settings: Settings | None = None,
    purpose: Literal["fallback", "platform"] = "fallback",
    max_network_retries: int | None = None,
    stripe_account: str | None = None,
) -> stripe.StripeClient:
    """A StripeClient pointed at ``PAYOPS_STRIPE_API_BASE`` with payops' timeouts and retries."""
    settings = settings or get_settings()
    if key is None:
        key = settings.stripe_fallback_secret_key if purpose == "fallback" else settings.stripe_secret_key
        if key is None:
            var = "STRIPE_FALLBACK_SECRET_KEY" if purpose == "fallback" else "STRIPE_SECRET_KEY"
            raise ConfigError(f"{var} is not set (keys come from the environment only)")
    raw = key.get_secret_value() if isinstance(key, SecretStr) else key
    if raw.startswith(("sk_live_", "rk_live_")) and not settings.uses_stripe_api:
        raise ConfigError("refusing a live key against the sandbox / a non-Stripe API base")
    base = settings.stripe_api_base.rstrip("/")
    http = stripe.RequestsClient(timeout=settings.stripe_timeout_seconds)
    return stripe.StripeClient(
        raw,
        base_addresses={"api": base},
        max_network_retries=settings.stripe_max_network_retries if max_network_retries is None
        else max_network_retries,
        http_client=http,
        stripe_account=stripe_account,
    )


def to_payment_error(exc: stripe.StripeError) -> PaymentError:
    """Keep what Stripe said: type, code, param, request id, status."""
    err = exc.error
    return PaymentError(
        (err.message if err is not None and err.message else exc.user_message or str(exc)) or "unknown error",
        stripe_type=err.type if err is not None else type(exc).__name__,
        code=exc.code or (err.code if err is not None else None),
        param=err.param if err is not None else None,
        request_id=exc.request_id,
        http_status=exc.http_status,
    )


def is_transient(exc: stripe.StripeError) -> bool:
    """Errors after which the same request (same idempotency key) may be sent again."""
    if isinstance(exc, stripe.RateLimitError | stripe.APIConnectionError):
        return True
    if exc.http_status == 409:
        return True  # the same idempotency key is still in flight (idempotency_key_in_use)
    return isinstance(exc, stripe.APIError) and (exc.http_status or 0) >= 500


def with_backoff(
    call: Callable[[], T],
    *,
    attempts: int = 6,
    base_delay: float = 0.25,
    max_delay: float = 8.0,
    on_retry: Callable[[int, BaseException, float], None] | None = None,
) -> T:
    """Run ``call`` again after transient Stripe errors (429, 5xx, connection), with jittered backoff.

    Only safe for reads or for writes that carry an idempotency key: the caller guarantees that.
    """
    for attempt in range(1, attempts + 1):
        try:
            return call()
        except stripe.StripeError as exc:
            if attempt == attempts or not is_transient(exc):
                raise
            delay = min(max_delay, base_delay * 2 ** (attempt - 1)) * (0.5 + random.random() / 2)
            retry_after = (exc.headers or {}).get("Retry-After") if exc.headers else None
            if retry_after:
                try:
                    delay = max(delay, float(retry_after))
                except ValueError:
                    pass
            if on_retry is not None:
                on_retry(attempt, exc, delay)
            time.sleep(delay)
    raise AssertionError("unreachable")
