"""Only verified events of the right mode are accepted; everything else is a 400 that writes nothing."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from webhook_helpers import (
    WEBHOOK_SECRET,
    encode,
    make_event,
    post_event,
    recorded,
    sandbox_event_for,
    serving,
    studio,
)

from payops import demo_data
from payops.config import Settings
from payops.errors import ConfigError
from payops.sandbox.webhooks import sign
from payops.webhooks.app import create_app

pytestmark = pytest.mark.db


def _account_event(wh_env: Any) -> dict[str, Any]:
    """A real account.updated from the sandbox: Studio A's charges disabled."""
    sb = wh_env.sandbox
    sb.control("POST", "accounts", {"id": demo_data.STUDIO_A.account_id, "charges_enabled": False})
    return sandbox_event_for(sb, "account.updated", demo_data.STUDIO_A.account_id,
                             account=demo_data.STUDIO_A.account_id)


def _assert_untouched(wh_env: Any) -> None:
    assert recorded(wh_env.settings) == []
    assert studio(wh_env.settings, demo_data.STUDIO_A.studio_id).charges_enabled is True


def _one_line_error(resp: Any, status: int, needle: str) -> None:
    assert resp.status_code == status, resp.text
    assert "\n" not in resp.text
    assert needle in resp.json()["error"]


def test_forged_signature_is_refused(wh_env: Any, http: httpx.Client) -> None:
    event = _account_event(wh_env)
    payload = encode(event)
    good = sign(payload, WEBHOOK_SECRET)
    forged = good[:-8] + ("0" * 8 if not good.endswith("0" * 8) else "1" * 8)
    _one_line_error(post_event(http, payload, signature=forged), 400, "signature verification failed")
    # a valid signature over a different payload (amount changed after signing)
    tampered = encode({**event, "type": "account.updated", "livemode": False, "id": event["id"] + "x"})
    _one_line_error(post_event(http, tampered, signature=good), 400, "signature verification failed")
    _assert_untouched(wh_env)


def test_unsigned_request_is_refused(wh_env: Any, http: httpx.Client) -> None:
    _one_line_error(post_event(http, _account_event(wh_env), signed=False), 400, "unsigned request")
    _one_line_error(post_event(http, _account_event(wh_env), signature="garbage"), 400,
                    "signature verification failed")
    _assert_untouched(wh_env)


def test_wrong_secret_is_refused(wh_env: Any, http: httpx.Client) -> None:
    resp = post_event(http, _account_event(wh_env), secret="whsec_someone_elses_endpoint")
    _one_line_error(resp, 400, "signature verification failed")
    _assert_untouched(wh_env)


def test_stale_timestamp_is_refused(wh_env: Any, http: httpx.Client) -> None:
    resp = post_event(http, _account_event(wh_env), timestamp=int(time.time()) - 301)
    _one_line_error(resp, 400, "signature verification failed")
    assert "tolerance" in resp.json()["error"].lower()
    _assert_untouched(wh_env)
    # inside the tolerance it is accepted
    ok = post_event(http, _account_event(wh_env), timestamp=int(time.time()) - 200)
    assert ok.status_code == 200, ok.text
    assert studio(wh_env.settings, demo_data.STUDIO_A.studio_id).charges_enabled is False


def test_signed_but_unparsable_payload_is_refused(wh_env: Any, http: httpx.Client) -> None:
    _one_line_error(post_event(http, b"{not json"), 400, "not valid JSON")
    _one_line_error(post_event(http, json.dumps([1, 2]).encode()), 400, "not a Stripe event")
    _one_line_error(post_event(http, json.dumps({"object": "event", "type": "x"}).encode()), 400, "id is missing")
    _assert_untouched(wh_env)


def test_livemode_must_match_the_environment(wh_env: Any, http: httpx.Client) -> None:
    event = _account_event(wh_env)
    _one_line_error(post_event(http, {**event, "livemode": True}), 400, "live-mode")
    _assert_untouched(wh_env)
    live_settings = wh_env.settings.model_copy(update={"environment": "live"})
    with serving(create_app(live_settings, trigger=lambda d, live: "x")) as url, \
            httpx.Client(base_url=url) as live_http:
        _one_line_error(post_event(live_http, event), 400, "test-mode")
    _assert_untouched(wh_env)


def test_create_app_refuses_without_a_webhook_secret(tmp_path: Path) -> None:
    settings = Settings(PAYOPS_DATABASE_URL=f"sqlite:///{tmp_path / 'x.db'}").model_copy(
        update={"stripe_webhook_secret": None})
    with pytest.raises(ConfigError, match="STRIPE_WEBHOOK_SECRET is not set"):
        create_app(settings)


def test_healthz_says_ok_and_nothing_else(tmp_path: Path) -> None:
    settings = Settings(PAYOPS_DATABASE_URL=f"sqlite:///{tmp_path / 'x.db'}", STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET,
                        CRON_SECRET_KEY="cron-abc")
    with serving(create_app(settings, trigger=lambda d, live: "x")) as url:
        resp = httpx.get(url + "/healthz")
    assert resp.status_code == 200
    assert resp.json() == {"ok": True}
    assert WEBHOOK_SECRET not in resp.text and "cron-abc" not in resp.text


def test_unknown_event_type_is_recorded_as_ignored(wh_env: Any, http: httpx.Client) -> None:
    event = make_event("customer.created", {"id": "cus_123", "object": "customer"})
    resp = post_event(http, event)
    assert resp.status_code == 200
    assert resp.json()["status"] == "ignored"
    rows = recorded(wh_env.settings)
    assert [(r.id, r.type, r.outcome, r.object_id) for r in rows] == [
        (event["id"], "customer.created", "ignored", "cus_123")]
    assert post_event(http, event).json() == {"status": "duplicate", "event": event["id"]}
