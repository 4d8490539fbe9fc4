"""payops.stripe_api: key checks, redaction, the client factory, error mapping and backoff."""

from __future__ import annotations

import pytest
import stripe
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr

from payops import stripe_api
from payops.config import STRIPE_API_DEFAULT, Settings
from payops.errors import ConfigError, PaymentError
from payops.stripe_api import describe_key, key_problems, make_client, redact, to_payment_error, with_backoff

SANDBOX = "http://127.0.0.1:12111"
ENV_VARS = ("STRIPE_FALLBACK_SECRET_KEY", "STRIPE_SECRET_KEY", "PAYOPS_STRIPE_API_BASE", "PAYOPS_ENVIRONMENT",
            "PAYOPS_STRIPE_MAX_RETRIES", "PAYOPS_STRIPE_TIMEOUT")
PREFIXES = ("sk_test_", "sk_live_", "rk_test_", "rk_live_")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ENV_VARS:
        monkeypatch.delenv(var, raising=False)


def settings(environment: str = "test", base: str = STRIPE_API_DEFAULT, **kw: object) -> Settings:
    return Settings(PAYOPS_ENVIRONMENT=environment, PAYOPS_STRIPE_API_BASE=base, **kw)  # type: ignore[call-arg]


# --- describe_key / redact -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("sk_test_abc", ("secret", "test")),
        ("sk_live_abc", ("secret", "live")),
        ("rk_test_abc", ("restricted", "test")),
        ("rk_live_abc", ("restricted", "live")),
    ],
)
def test_describe_key(key: str, expected: tuple[str, str]) -> None:
    assert describe_key(key) == expected


@pytest.mark.parametrize("key", ["", "sk_test_", "rk_live_", "pk_test_abc", "pk_live_abc", "whsec_abc",
                                 "SK_TEST_abc", " sk_test_abc", "sk_abc", "rk_prod_abc", "abc"])
def test_describe_key_refuses_non_secret_keys(key: str) -> None:
    with pytest.raises(ValueError, match="not a Stripe secret or restricted key") as info:
        describe_key(key)
    if len(key) > 8:
        assert key not in str(info.value)


@pytest.mark.parametrize(
    ("key", "shown"),
    [
        ("rk_test_51Habcdef0123456789", "rk_test_…"),
        ("sk_live_51Habcdef0123456789", "sk_live_…"),
        ("sk_test_x", "sk_test_…"),
        ("rk_live_x", "rk_live_…"),
        ("whsec_abcdef0123", "…"),
        ("pk_test_abcdef", "…"),
        ("abcdef", "…"),
        ("", "…"),
    ],
)
def test_redact(key: str, shown: str) -> None:
    assert redact(key) == shown


@given(st.sampled_from((*PREFIXES, "", "pk_test_", "whsec_", "sk_")),
       st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=60))
def test_redact_never_shows_more_than_the_prefix(prefix: str, secret: str) -> None:
    key = prefix + secret
    shown = redact(key)
    allowed = {p + "…" for p in PREFIXES} | {"…"}
    assert shown in allowed
    visible = shown.removesuffix("…")
    assert key.startswith(visible)
    assert len(visible) <= 8  # never a character of the secret part beyond the 8-character prefix


# --- key_problems --------------------------------------------------------------------------------
def problems(key: str | None, *, env: str = "test", base: str = STRIPE_API_DEFAULT, rehearsal: bool = False,
             want_restricted: bool = False) -> list[str]:
    out = key_problems(SecretStr(key) if key is not None else None, env_var="STRIPE_FALLBACK_SECRET_KEY",
                       settings=settings(env, base), rehearsal=rehearsal, want_restricted=want_restricted)
    assert all(p.field == "STRIPE_FALLBACK_SECRET_KEY" for p in out)
    if key and len(key) > 8:
        assert all(key not in p.message for p in out), "a key problem must never echo the key"
    return [p.message for p in out]


def test_good_test_key_has_no_problems() -> None:
    assert problems("rk_test_abc", base=SANDBOX, want_restricted=True) == []
    assert problems("rk_test_abc", rehearsal=True, want_restricted=True) == []
    assert problems("sk_test_abc") == []


def test_good_live_key_in_live_environment_against_stripe() -> None:
    assert problems("rk_live_abc", env="live", want_restricted=True) == []


@pytest.mark.parametrize("key", [None, ""])
def test_missing_key(key: str | None) -> None:
    msgs = problems(key)
    assert len(msgs) == 1 and "is not set" in msgs[0]


@pytest.mark.parametrize("key", ["pk_test_abcdef", "whsec_abcdef", "sk_test_", "not-a-key"])
def test_malformed_key(key: str) -> None:
    msgs = problems(key)
    assert len(msgs) == 1 and "not a Stripe secret or restricted key" in msgs[0]


def test_live_key_in_test_environment() -> None:
    msgs = problems("sk_live_abc", env="test")
    assert len(msgs) == 1
    assert "live-mode key" in msgs[0] and "'test'" in msgs[0]


def test_test_key_in_live_environment() -> None:
    msgs = problems("rk_test_abc", env="live")
    assert len(msgs) == 1
    assert "test-mode key" in msgs[0] and "'live'" in msgs[0]


def test_live_key_in_rehearsal() -> None:
    msgs = problems("rk_live_abc", env="live", rehearsal=True)
    assert msgs == ["live keys are refused in rehearsal mode"]


def test_live_key_against_non_stripe_base() -> None:
    msgs = problems("rk_live_abc", env="live", base=SANDBOX)
    assert len(msgs) == 1 and "refused against the sandbox" in msgs[0]


def test_live_key_everything_wrong_lists_every_problem() -> None:
    msgs = problems("sk_live_abc", env="test", base=SANDBOX, rehearsal=True, want_restricted=True)
    assert len(msgs) == 4
    joined = " | ".join(msgs)
    for fragment in ("live-mode key", "rehearsal", "sandbox", "restricted key"):
        assert fragment in joined


def test_want_restricted() -> None:
    msgs = problems("sk_test_abc", want_restricted=True)
    assert len(msgs) == 1 and "must be a restricted key" in msgs[0]
    assert problems("sk_test_abc", want_restricted=False) == []


def test_stripe_base_with_trailing_slash_is_still_stripe() -> None:
    assert problems("rk_live_abc", env="live", base=STRIPE_API_DEFAULT + "/") == []


# --- make_client ---------------------------------------------------------------------------------
def _options(client: stripe.StripeClient) -> dict[str, object]:
    return vars(client._requestor._options)


def test_make_client_points_at_configured_base() -> None:
    s = settings(base=SANDBOX + "/", PAYOPS_STRIPE_MAX_RETRIES=2)
    opts = _options(make_client("rk_test_abc", settings=s))
    assert opts["api_key"] == "rk_test_abc"
    assert opts["base_addresses"]["api"] == SANDBOX  # type: ignore[index]
    assert opts["max_network_retries"] == 2
    assert _options(make_client("rk_test_abc", settings=s, max_network_retries=0))["max_network_retries"] == 0


def test_make_client_uses_fallback_key_from_settings() -> None:
    s = settings(base=SANDBOX, STRIPE_FALLBACK_SECRET_KEY="rk_test_fallback", STRIPE_SECRET_KEY="sk_test_platform")
    assert _options(make_client(settings=s))["api_key"] == "rk_test_fallback"
    assert _options(make_client(settings=s, purpose="platform"))["api_key"] == "sk_test_platform"
    assert _options(make_client(SecretStr("rk_test_given"), settings=s))["api_key"] == "rk_test_given"


@pytest.mark.parametrize(("purpose", "var"), [("fallback", "STRIPE_FALLBACK_SECRET_KEY"),
                                              ("platform", "STRIPE_SECRET_KEY")])
def test_make_client_without_key(purpose: str, var: str) -> None:
    with pytest.raises(ConfigError, match=var):
        make_client(settings=settings(base=SANDBOX), purpose=purpose)  # type: ignore[arg-type]


@pytest.mark.parametrize("key", ["sk_live_abc", "rk_live_abc", SecretStr("rk_live_abc")])
def test_make_client_refuses_live_key_against_sandbox(key: str | SecretStr) -> None:
    with pytest.raises(ConfigError, match="live key") as info:
        make_client(key, settings=settings(environment="live", base=SANDBOX))
    assert "rk_live_abc" not in str(info.value) and "sk_live_abc" not in str(info.value)


def test_make_client_refuses_live_key_from_settings_against_sandbox() -> None:
    s = settings(environment="live", base=SANDBOX, STRIPE_FALLBACK_SECRET_KEY="rk_live_abc")
    with pytest.raises(ConfigError, match="live key"):
        make_client(settings=s)


def test_make_client_allows_live_key_against_stripe() -> None:
    # no request is made: building a client is offline
    assert _options(make_client("rk_live_abc", settings=settings(environment="live")))["api_key"] == "rk_live_abc"


# --- to_payment_error ----------------------------------------------------------------------------
def test_to_payment_error_keeps_what_stripe_said() -> None:
    body = {"error": {"type": "invalid_request_error", "message": "No such destination: 'acct_nope'",
                      "param": "destination", "code": "resource_missing"}}
    exc = stripe.InvalidRequestError("No such destination: 'acct_nope'", "destination", code="resource_missing",
                                     http_status=400, json_body=body, headers={"request-id": "req_abc123"})
    pe = to_payment_error(exc)
    assert isinstance(pe, PaymentError)
    assert pe.stripe_type == "invalid_request_error"
    assert pe.code == "resource_missing"
    assert pe.param == "destination"
    assert pe.request_id == "req_abc123"
    assert pe.http_status == 400
    assert pe.exit_code == 5
    msg = str(pe)
    assert "No such destination: 'acct_nope'" in msg
    assert "req_abc123" in msg and "param=destination" in msg and "resource_missing" in msg
    d = pe.as_dict()
    assert (d["type"], d["code"], d["param"], d["request_id"], d["http_status"]) == (
        "invalid_request_error", "resource_missing", "destination", "req_abc123", 400)


def test_to_payment_error_without_error_body() -> None:
    pe = to_payment_error(stripe.APIConnectionError("connection reset by peer"))
    assert pe.stripe_type == "APIConnectionError"
    assert pe.code is None and pe.param is None and pe.request_id is None
    assert "connection reset by peer" in str(pe)


def test_to_payment_error_card_style_error() -> None:
    body = {"error": {"type": "invalid_request_error", "message": "Insufficient funds in Stripe account.",
                      "code": "balance_insufficient"}}
    exc = stripe.InvalidRequestError("Insufficient funds in Stripe account.", None, http_status=400,
                                     json_body=body, headers={"request-id": "req_zz"})
    pe = to_payment_error(exc)
    assert pe.code == "balance_insufficient"  # taken from the error body when the exception has none
    assert pe.param is None
    assert pe.request_id == "req_zz"


# --- with_backoff --------------------------------------------------------------------------------
class Flaky:
    """Raises the given exceptions in order, then returns 'ok'. Counts calls."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


@pytest.fixture()
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    slept: list[float] = []
    monkeypatch.setattr(stripe_api.time, "sleep", slept.append)
    return slept


def _transient() -> list[stripe.StripeError]:
    return [
        stripe.RateLimitError("Too many requests", http_status=429),
        stripe.APIConnectionError("connection reset"),
        stripe.APIError("internal error", http_status=500),
        stripe.APIError("bad gateway", http_status=502),
        stripe.IdempotencyError("request in flight", http_status=409),
    ]


@pytest.mark.parametrize("exc", _transient(), ids=lambda e: f"{type(e).__name__}-{e.http_status}")
def test_retries_transient_error(exc: stripe.StripeError, sleeps: list[float]) -> None:
    call = Flaky(exc, exc)
    assert with_backoff(call, attempts=4) == "ok"
    assert call.calls == 3
    assert len(sleeps) == 2


def test_retries_a_mix_and_reports_each_retry(sleeps: list[float]) -> None:
    seen: list[tuple[int, str, float]] = []
    call = Flaky(*_transient())
    assert with_backoff(call, attempts=6, on_retry=lambda n, e, d: seen.append((n, type(e).__name__, d))) == "ok"
    assert call.calls == 6
    assert [n for n, _, _ in seen] == [1, 2, 3, 4, 5]
    assert [d for _, _, d in seen] == sleeps


@pytest.mark.parametrize(
    "exc",
    [
        stripe.InvalidRequestError("No such destination", "destination", http_status=400),
        stripe.AuthenticationError("Invalid API key", http_status=401),
        stripe.PermissionError("key lacks transfers write", http_status=403),
        stripe.APIError("bad request", http_status=400),
        stripe.IdempotencyError("keys reused with other parameters", http_status=400),
    ],
    ids=lambda e: f"{type(e).__name__}-{e.http_status}",
)
def test_does_not_retry_permanent_errors(exc: stripe.StripeError, sleeps: list[float]) -> None:
    call = Flaky(exc)
    with pytest.raises(type(exc)) as info:
        with_backoff(call, attempts=6)
    assert info.value is exc
    assert call.calls == 1
    assert sleeps == []


def test_does_not_retry_non_stripe_errors(sleeps: list[float]) -> None:
    call = Flaky(ValueError("bug"))
    with pytest.raises(ValueError):
        with_backoff(call)
    assert call.calls == 1 and sleeps == []


def test_gives_up_after_attempts(sleeps: list[float]) -> None:
    errors = [stripe.RateLimitError(f"slow down {i}", http_status=429) for i in range(5)]
    call = Flaky(*errors)
    with pytest.raises(stripe.RateLimitError, match="slow down 2"):
        with_backoff(call, attempts=3)
    assert call.calls == 3
    assert len(sleeps) == 2


def test_backoff_grows_and_is_capped(sleeps: list[float]) -> None:
    call = Flaky(*[stripe.APIConnectionError("down") for _ in range(7)])
    assert with_backoff(call, attempts=8, base_delay=1.0, max_delay=4.0) == "ok"
    assert len(sleeps) == 7
    for i, d in enumerate(sleeps):
        nominal = min(4.0, 1.0 * 2**i)
        assert nominal / 2 <= d <= nominal, (i, d)


def test_honours_retry_after(sleeps: list[float]) -> None:
    call = Flaky(stripe.RateLimitError("slow down", http_status=429, headers={"Retry-After": "3"}))
    assert with_backoff(call, base_delay=0.01) == "ok"
    assert sleeps and sleeps[0] >= 3.0


def test_ignores_garbage_retry_after(sleeps: list[float]) -> None:
    call = Flaky(stripe.RateLimitError("slow down", http_status=429, headers={"Retry-After": "soon"}))
    assert with_backoff(call, base_delay=0.01, max_delay=0.01) == "ok"
    assert sleeps and sleeps[0] <= 0.01


def test_success_first_time_does_not_sleep(sleeps: list[float]) -> None:
    call = Flaky()
    assert with_backoff(call) == "ok"
    assert call.calls == 1 and sleeps == []
