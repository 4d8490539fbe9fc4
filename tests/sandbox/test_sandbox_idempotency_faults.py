"""Idempotency, keys and fault injection, seen through the official SDK."""

from __future__ import annotations

import threading
import time

import pytest
import stripe
from sandbox_helpers import STUDIO_A, transfer_params

from payops import demo_data
from payops.sandbox.testing import RunningSandbox

GROUP = demo_data.REHEARSAL_LEDGER_PAYOUT_ID


def _cad(client: stripe.StripeClient) -> int:
    return next(b.amount for b in client.v1.balance.retrieve().available if b.currency == "cad")


def test_replay_returns_the_same_response(client: stripe.StripeClient) -> None:
    opts = {"idempotency_key": "manual-payout:abc:1"}
    first = client.v1.transfers.create(params=transfer_params(500), options=opts)
    assert "Idempotent-Replayed" not in first.last_response.headers
    again = client.v1.transfers.create(params=transfer_params(500), options=opts)
    assert again.id == first.id
    assert again.last_response.headers["Idempotent-Replayed"] == "true"
    assert again.last_response.headers["Original-Request"] == first.last_response.request_id
    assert again.last_response.request_id != first.last_response.request_id


def test_conflicting_replay_is_an_idempotency_error(client: stripe.StripeClient) -> None:
    opts = {"idempotency_key": "k-conflict"}
    client.v1.transfers.create(params=transfer_params(500), options=opts)
    with pytest.raises(stripe.IdempotencyError) as err:
        client.v1.transfers.create(params=transfer_params(501), options=opts)
    assert err.value.http_status == 400 and "same parameters" in str(err.value)


def test_validation_errors_are_not_saved(client: stripe.StripeClient) -> None:
    opts = {"idempotency_key": "k-validation"}
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.transfers.create(params=transfer_params(10**15), options=opts)
    ok = client.v1.transfers.create(params=transfer_params(5), options=opts)
    assert ok.amount == 5


def test_concurrent_same_key_is_409(sb: RunningSandbox, client: stripe.StripeClient) -> None:
    sb.set_faults(latency_ms=600)
    results: dict[str, object] = {}

    def first() -> None:
        results["first"] = client.v1.transfers.create(params=transfer_params(50), options={"idempotency_key": "k-c"})

    thread = threading.Thread(target=first)
    thread.start()
    time.sleep(0.2)
    with pytest.raises(stripe.APIError) as err:
        client.v1.transfers.create(params=transfer_params(50), options={"idempotency_key": "k-c"})
    thread.join()
    assert err.value.http_status == 409
    assert err.value.error is not None and err.value.error.code == "idempotency_key_in_use"
    assert err.value.error.type == "idempotency_error"
    assert isinstance(results["first"], stripe.Transfer)


def test_keys_expire_after_24h_of_sandbox_clock(sb: RunningSandbox, client: stripe.StripeClient) -> None:
    opts = {"idempotency_key": "k-expiry"}
    first = client.v1.transfers.create(params=transfer_params(500), options=opts)
    sb.advance_clock(23 * 3600)
    assert client.v1.transfers.create(params=transfer_params(500), options=opts).id == first.id
    sb.advance_clock(3600 + 1)
    fresh = client.v1.transfers.create(params=transfer_params(500), options=opts)
    assert fresh.id != first.id and "Idempotent-Replayed" not in fresh.last_response.headers


def test_lost_response_then_retry_with_the_same_key(sb: RunningSandbox, client: stripe.StripeClient) -> None:
    before = _cad(client)
    sb.set_faults(lost_response={"POST /v1/transfers": 1})
    params = transfer_params(87_550, transfer_group=GROUP)
    opts = {"idempotency_key": f"manual-payout:{GROUP}:INC-1"}
    with pytest.raises(stripe.APIConnectionError):
        client.v1.transfers.create(params=params, options=opts)
    committed = client.v1.transfers.list(params={"transfer_group": GROUP})
    assert len(committed.data) == 1  # the write happened
    tr = client.v1.transfers.create(params=params, options=opts)
    assert tr.id == committed.data[0].id and tr.last_response.headers["Idempotent-Replayed"] == "true"
    assert len(client.v1.transfers.list(params={"transfer_group": GROUP}).data) == 1
    assert _cad(client) == before - 87_550


def test_sdk_retries_through_a_lost_response(sb: RunningSandbox) -> None:
    client = sb.client(max_network_retries=2)
    before = _cad(client)
    sb.set_faults(lost_response={"POST /v1/transfers": 1})
    tr = client.v1.transfers.create(params=transfer_params(1_000, transfer_group="g-retry"),
                                    options={"idempotency_key": "k-retry"})
    assert tr.last_response.headers["Idempotent-Replayed"] == "true"
    assert [t.id for t in client.v1.transfers.list(params={"transfer_group": "g-retry"}).data] == [tr.id]
    assert _cad(client) == before - 1_000


def test_restricted_key_permissions(sb: RunningSandbox) -> None:
    fallback = sb.client(sb.fallback_key)
    tr = fallback.v1.transfers.create(params=transfer_params(100))
    assert tr.id.startswith("tr_")
    assert fallback.v1.balance.retrieve().object == "balance"
    with pytest.raises(stripe.PermissionError) as err:
        fallback.v1.payouts.list(options={"stripe_account": STUDIO_A})
    assert err.value.http_status == 403
    assert "does not have the required permissions" in str(err.value) and "rak_payout_read" in str(err.value)
    readonly = sb.client(demo_data.READONLY_KEY)
    assert readonly.v1.transfers.retrieve(tr.id).id == tr.id
    with pytest.raises(stripe.PermissionError) as err:
        readonly.v1.transfers.create(params=transfer_params(100))
    assert "rak_transfer_write" in str(err.value)
    sb.control("POST", "keys", {"key": "rk_test_events_only", "permissions": {"events": "read"}})
    assert sb.client("rk_test_events_only").v1.events.list().object == "list"


def test_unknown_and_live_keys_are_401(sb: RunningSandbox) -> None:
    with pytest.raises(stripe.AuthenticationError) as err:
        sb.client("sk_test_unknown_key_123").v1.balance.retrieve()
    assert err.value.http_status == 401 and "Invalid API Key" in str(err.value)
    for live in ("sk_live_abcdef123456", "rk_live_abcdef123456"):
        with pytest.raises(stripe.AuthenticationError) as err:
            sb.client(live).v1.balance.retrieve()
        assert "test keys only" in str(err.value)


def test_rate_limit(sb: RunningSandbox) -> None:
    sb.set_faults(rate_limit=3)
    strict = sb.client(max_network_retries=0)
    with pytest.raises(stripe.RateLimitError) as err:
        for _ in range(10):
            strict.v1.balance.retrieve()
    assert err.value.http_status == 429 and err.value.error.code == "rate_limit"
    patient = sb.client(max_network_retries=5)
    for _ in range(6):
        assert patient.v1.balance.retrieve().object == "balance"


def test_injected_500s(sb: RunningSandbox) -> None:
    strict = sb.client(max_network_retries=0)
    sb.set_faults(fail_next={"GET /v1/balance": 2})
    for _ in range(2):
        with pytest.raises(stripe.APIError) as err:
            strict.v1.balance.retrieve()
        assert err.value.http_status == 500
    assert strict.v1.balance.retrieve().object == "balance"
    sb.set_faults(fail_next={"POST /v1/transfers": 1})
    tr = sb.client(max_network_retries=2).v1.transfers.create(params=transfer_params(10))
    assert tr.amount == 10

    def pattern() -> list[bool]:
        sb.clear_faults()
        sb.set_faults(error_rate=0.5, error_seed=7)
        out = []
        for _ in range(20):
            try:
                strict.v1.balance.retrieve()
                out.append(True)
            except stripe.APIError:
                out.append(False)
        return out

    first = pattern()
    assert 0 < first.count(False) < 20 and pattern() == first


def test_a_4xx_after_execution_began_is_replayed(sb: RunningSandbox, client: stripe.StripeClient) -> None:
    """Stripe saves the answer of a request that began executing, errors included: the same key gets the same
    400 back (replayed) even once the cause is gone; a fresh key executes again."""
    opts = {"idempotency_key": "k-short"}
    too_much = _cad(client) + 1
    with pytest.raises(stripe.InvalidRequestError) as first:
        client.v1.transfers.create(params=transfer_params(too_much), options=opts)
    assert first.value.code == "balance_insufficient"
    sb.control("POST", "fund", {"amount": 10_000_000, "currency": "cad"})  # the cause is gone…
    with pytest.raises(stripe.InvalidRequestError) as again:  # …but the key's stored answer stands
        client.v1.transfers.create(params=transfer_params(too_much), options=opts)
    assert again.value.code == "balance_insufficient" and again.value.http_status == 400
    assert again.value.headers["Idempotent-Replayed"] == "true"
    assert again.value.headers["Original-Request"] == first.value.request_id
    assert client.v1.transfers.create(params=transfer_params(too_much),
                                      options={"idempotency_key": "k-short-2"}).amount == too_much
