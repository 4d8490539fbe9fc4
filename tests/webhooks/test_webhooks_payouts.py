"""Connect payout events against the real sandbox: transfers, automatic payouts, paid / failed / canceled."""

from __future__ import annotations

import threading
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from starlette.applications import Starlette
from webhook_helpers import (
    WEBHOOK_SECRET,
    add_ledger_payout,
    encode,
    latest_payout,
    ledger_payout,
    post_event,
    recorded,
    sandbox_event_for,
    serving,
    transfer,
    wait_until,
)

from payops import demo_data
from payops.sandbox.payouts import FAILURE_MESSAGES
from payops.sandbox.testing import free_port
from payops.webhooks.app import create_app
from payops.webhooks.receiver import StripePayoutLookup

pytestmark = [pytest.mark.db, pytest.mark.e2e]
A = demo_data.STUDIO_A
PAYOUT_EVENTS = ["payout.paid", "payout.failed", "payout.canceled"]


def _hold_payouts(sb: Any) -> None:
    """Payouts stay pending until the test advances the sandbox clock."""
    sb.set_faults(payout_delay_seconds=3600)


def test_payout_paid_delivered_by_the_sandbox_then_replayed(wh_env: Any, wh_app: Starlette) -> None:
    sb, settings = wh_env.sandbox, wh_env.settings
    client = sb.client()
    _hold_payouts(sb)
    # two automated transfers and one manual fallback transfer, swept by one automatic payout
    sb.control("POST", "accounts", {"id": A.account_id, "payout_interval": "manual"})
    tr1 = transfer(client, A.account_id, 5000)
    tr_manual = transfer(client, A.account_id, 2500)
    sb.control("POST", "accounts", {"id": A.account_id, "payout_interval": "daily"})
    tr2 = transfer(client, A.account_id, 7000)
    lp1 = add_ledger_payout(settings, A.studio_id, tr=tr1)
    lp2 = add_ledger_payout(settings, A.studio_id, tr=tr2, net=7000)
    lpm = add_ledger_payout(settings, A.studio_id, status="manual", tr=tr_manual, net=2500)
    other = add_ledger_payout(settings, A.studio_id, destination_payment="py_not_in_this_payout")
    po = latest_payout(client, A.account_id)
    assert po.amount == 14500 and po.status == "pending"

    with serving(wh_app) as url, httpx.Client(base_url=url) as http:
        sb.control("POST", "webhooks", {"url": url + "/stripe/webhook", "enabled_events": PAYOUT_EVENTS,
                                        "secret": WEBHOOK_SECRET})
        sb.advance_clock(3700)
        rows = wait_until(lambda: [r for r in recorded(settings) if r.type == "payout.paid"],
                          what="the sandbox's payout.paid delivery")
        assert len(rows) == 1
        row = rows[0]
        assert (row.account, row.object_id, row.livemode) == (A.account_id, po.id, False)
        assert row.outcome == (f"2 ledger payouts → paid, 1 manual ledger payout: payout id noted ({po.id})")
        for lp_id in (lp1, lp2):
            lp = ledger_payout(settings, lp_id)
            assert (lp.status, lp.stripe_payout_id) == ("paid", po.id)
        manual = ledger_payout(settings, lpm)
        assert (manual.status, manual.stripe_payout_id) == ("manual", po.id)
        untouched = ledger_payout(settings, other)
        assert (untouched.status, untouched.stripe_payout_id) == ("transferred", None)
        deliveries = sb.control("GET", "webhooks/deliveries")["data"]
        assert any(d["event"] == row.id and d.get("status") == 200 for d in deliveries)

        # Stripe delivers again (or someone replays the event): no second change
        before = ledger_payout(settings, lp1).updated_at
        event = sandbox_event_for(sb, "payout.paid", po.id, account=A.account_id)
        assert event["id"] == row.id
        resp = post_event(http, event)
        assert resp.status_code == 200
        assert resp.json() == {"status": "duplicate", "event": row.id}
    assert ledger_payout(settings, lp1).updated_at == before
    assert [r.id for r in recorded(settings) if r.type == "payout.paid"] == [row.id]


def test_payout_failed_records_stripes_reason(wh_env: Any, http: httpx.Client) -> None:
    sb, settings = wh_env.sandbox, wh_env.settings
    client = sb.client()
    _hold_payouts(sb)
    sb.set_faults(payout_failure=[{"account": A.account_id, "failure_code": "account_closed"}])
    tr = transfer(client, A.account_id, 4200)
    lp_id = add_ledger_payout(settings, A.studio_id, tr=tr, net=4200)
    po = latest_payout(client, A.account_id)
    sb.advance_clock(3700)
    event = sandbox_event_for(sb, "payout.failed", po.id, account=A.account_id)

    resp = post_event(http, event)
    assert resp.status_code == 200, resp.text
    assert resp.json()["outcome"] == f"1 ledger payout → failed ({po.id}): account_closed"
    lp = ledger_payout(settings, lp_id)
    assert (lp.status, lp.stripe_payout_id, lp.failure_code) == ("failed", po.id, "account_closed")
    assert lp.failure_reason == FAILURE_MESSAGES["account_closed"]
    assert post_event(http, event).json()["status"] == "duplicate"
    assert len(recorded(settings)) == 1


def test_payout_canceled_puts_the_ledger_payout_back_to_transferred(wh_env: Any, http: httpx.Client) -> None:
    sb, settings = wh_env.sandbox, wh_env.settings
    client = sb.client()
    _hold_payouts(sb)
    tr = transfer(client, A.account_id, 3100)
    po = latest_payout(client, A.account_id)
    lp_id = add_ledger_payout(settings, A.studio_id, tr=tr, net=3100, payout_id=po.id)
    client.v1.payouts.cancel(po.id, options={"stripe_account": A.account_id})
    event = sandbox_event_for(sb, "payout.canceled", po.id, account=A.account_id)

    resp = post_event(http, event)
    assert resp.status_code == 200, resp.text
    assert resp.json()["outcome"] == f"1 ledger payout → transferred ({po.id}): payout canceled"
    lp = ledger_payout(settings, lp_id)
    assert (lp.status, lp.stripe_payout_id, lp.failure_code) == ("transferred", None, "payout_canceled")
    assert po.id in (lp.failure_reason or "")


def test_a_handler_error_answers_500_and_records_nothing(wh_env: Any, recording_trigger: Any) -> None:
    sb, settings = wh_env.sandbox, wh_env.settings
    client = sb.client()
    _hold_payouts(sb)
    tr = transfer(client, A.account_id, 1900)
    lp_id = add_ledger_payout(settings, A.studio_id, tr=tr, net=1900)
    po = latest_payout(client, A.account_id)
    sb.advance_clock(3700)
    event = sandbox_event_for(sb, "payout.paid", po.id, account=A.account_id)

    # Stripe refuses the key (not transient): 500, nothing recorded, ledger untouched
    bad_key = settings.model_copy(update={"stripe_secret_key": SecretStr("sk_test_revoked_key")})
    with serving(create_app(bad_key, trigger=recording_trigger)) as url, httpx.Client(base_url=url) as http:
        resp = post_event(http, event)
    assert resp.status_code == 500
    assert "not recorded" in resp.json()["error"] and "sk_test_revoked_key" not in resp.text
    # the Stripe API unreachable
    unreachable = settings.model_copy(update={"stripe_api_base": f"http://127.0.0.1:{free_port()}",
                                              "stripe_max_network_retries": 0})
    app = create_app(unreachable, trigger=recording_trigger)
    app.state.receiver.lookup = StripePayoutLookup(unreachable, attempts=1)
    with serving(app) as url, httpx.Client(base_url=url) as http:
        resp = post_event(http, event)
    assert resp.status_code == 500
    assert "APIConnectionError" in resp.json()["error"]
    assert recorded(settings) == []
    assert ledger_payout(settings, lp_id).status == "transferred"

    # Stripe retries once the receiver is healthy again: applied then
    with serving(create_app(settings, trigger=recording_trigger)) as url, httpx.Client(base_url=url) as http:
        resp = post_event(http, event)
    assert resp.status_code == 200 and resp.json()["status"] == "processed"
    assert ledger_payout(settings, lp_id).status == "paid"


class _BarrierLookup:
    """Holds every delivery after its duplicate check until ``parties`` deliveries got there."""

    def __init__(self, inner: Any, parties: int) -> None:
        self.inner = inner
        self.barrier = threading.Barrier(parties, timeout=20)

    def payout_sources(self, account: str, payout_id: str) -> list[str]:
        sources = self.inner.payout_sources(account, payout_id)
        self.barrier.wait()
        return list(sources)


def test_concurrent_duplicate_deliveries_apply_once(wh_env: Any, wh_app: Starlette) -> None:
    sb, settings = wh_env.sandbox, wh_env.settings
    client = sb.client()
    _hold_payouts(sb)
    tr = transfer(client, A.account_id, 6400)
    lp_id = add_ledger_payout(settings, A.studio_id, tr=tr, net=6400)
    po = latest_payout(client, A.account_id)
    sb.advance_clock(3700)
    payload = encode(sandbox_event_for(sb, "payout.paid", po.id, account=A.account_id))
    receiver = wh_app.state.receiver
    receiver.lookup = _BarrierLookup(receiver.lookup, parties=2)

    answers: list[httpx.Response] = []
    with serving(wh_app) as url:
        def deliver() -> None:
            with httpx.Client(base_url=url, timeout=60) as http:
                answers.append(post_event(http, payload))

        threads = [threading.Thread(target=deliver) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    assert sorted(r.status_code for r in answers) == [200, 200], [r.text for r in answers]
    assert sorted(r.json()["status"] for r in answers) == ["duplicate", "processed"]
    rows = recorded(settings)
    assert len(rows) == 1 and rows[0].outcome == f"1 ledger payout → paid ({po.id})"
    lp = ledger_payout(settings, lp_id)
    assert (lp.status, lp.stripe_payout_id) == ("paid", po.id)
