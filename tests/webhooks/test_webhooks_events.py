"""account.updated, payment_intent.succeeded and charge.dispute.created; the handlers' edge cases."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from webhook_helpers import (
    add_ledger_payout,
    latest_payout,
    ledger_payout,
    make_event,
    post_event,
    recorded,
    sandbox_event_for,
    sandbox_events,
    studio,
    transfer,
)

from payops import demo_data
from payops.db import session_scope
from payops.webhooks.handlers import Facts, payout_canceled, payout_failed, payout_paid

pytestmark = pytest.mark.db
A, C = demo_data.STUDIO_A, demo_data.STUDIO_C


def _newest(sb: Any, event_type: str, account: str) -> dict[str, Any]:
    events = sandbox_events(sb, event_type, account=account)
    assert events, f"no {event_type} on {account}"
    return events[0]


def test_account_updated_flips_the_studio_flags(wh_env: Any, http: httpx.Client) -> None:
    sb, settings = wh_env.sandbox, wh_env.settings
    assert (studio(settings, C.studio_id).charges_enabled, studio(settings, C.studio_id).payouts_enabled) == (
        False, False)
    sb.control("POST", "accounts", {"id": C.account_id, "charges_enabled": True, "payouts_enabled": True})
    event = _newest(sb, "account.updated", C.account_id)
    assert event["account"] == C.account_id

    resp = post_event(http, event)
    assert resp.status_code == 200, resp.text
    assert resp.json()["outcome"] == (f"studio {C.name} ({C.account_id}): charges_enabled false→true, "
                                      "payouts_enabled false→true")
    st = studio(settings, C.studio_id)
    assert (st.charges_enabled, st.payouts_enabled) == (True, True)
    (row,) = recorded(settings)
    assert (row.id, row.type, row.account, row.object_id, row.created) == (
        event["id"], "account.updated", C.account_id, C.account_id, event["created"])
    assert len(row.payload_sha256) == 64


def test_an_older_account_updated_does_not_undo_a_newer_one(wh_env: Any, http: httpx.Client) -> None:
    sb, settings = wh_env.sandbox, wh_env.settings
    sb.control("POST", "accounts", {"id": A.account_id, "payouts_enabled": False})
    older = _newest(sb, "account.updated", A.account_id)
    sb.advance_clock(60)
    sb.control("POST", "accounts", {"id": A.account_id, "payouts_enabled": True})
    newer = _newest(sb, "account.updated", A.account_id)
    assert newer["created"] > older["created"]

    assert post_event(http, newer).status_code == 200
    resp = post_event(http, older)  # delivered late
    assert resp.status_code == 200
    assert resp.json()["outcome"].startswith(f"stale: {newer['id']} (newer) already applied")
    assert studio(settings, A.studio_id).payouts_enabled is True


def test_account_updated_for_an_unknown_account_is_recorded(wh_env: Any, http: httpx.Client) -> None:
    sb = wh_env.sandbox
    sb.control("POST", "accounts", {"id": "acct_test_not_in_ledger", "name": "Nobody"})
    sb.control("POST", "accounts", {"id": "acct_test_not_in_ledger", "charges_enabled": False})
    event = _newest(sb, "account.updated", "acct_test_not_in_ledger")
    resp = post_event(http, event)
    assert resp.status_code == 200
    assert resp.json()["outcome"] == "no studio for acct_test_not_in_ledger"
    assert [r.outcome for r in recorded(wh_env.settings)] == ["no studio for acct_test_not_in_ledger"]


def test_payment_intent_succeeded_is_recorded(wh_env: Any, http: httpx.Client) -> None:
    pi = {"id": "pi_3PayopsTest0001", "object": "payment_intent", "amount": 2599, "currency": "cad",
          "status": "succeeded", "latest_charge": "ch_3PayopsTest0001", "metadata": {"studio_id": A.studio_id}}
    event = make_event("payment_intent.succeeded", pi)
    resp = post_event(http, event)
    assert resp.status_code == 200
    assert resp.json()["status"] == "processed" and resp.json()["outcome"] == "recorded"
    (row,) = recorded(wh_env.settings)
    assert (row.type, row.object_id, row.outcome, row.account) == (
        "payment_intent.succeeded", pi["id"], "recorded", None)


def test_charge_dispute_created_is_recorded_with_charge_and_amount(wh_env: Any, http: httpx.Client) -> None:
    dp = {"id": "dp_1PayopsTest0001", "object": "dispute", "amount": 4500, "currency": "usd",
          "charge": "ch_1PayopsTest0001", "payment_intent": "pi_1PayopsTest0001", "reason": "fraudulent",
          "status": "needs_response", "livemode": False}
    resp = post_event(http, make_event("charge.dispute.created", dp))
    assert resp.status_code == 200
    assert resp.json()["outcome"] == "recorded: dispute dp_1PayopsTest0001 on ch_1PayopsTest0001 for 45.00 USD " \
                                     "(fraudulent)"
    assert recorded(wh_env.settings)[0].outcome == resp.json()["outcome"]


def test_payout_event_without_matching_ledger_payouts(wh_env: Any, http: httpx.Client) -> None:
    """A payout no ledger payout names (e.g. a transfer payops did not make): recorded, nothing changed."""
    sb = wh_env.sandbox
    sb.set_faults(payout_delay_seconds=3600)
    client = sb.client()
    transfer(client, A.account_id, 1234)
    po = latest_payout(client, A.account_id)
    sb.advance_clock(3700)
    event = sandbox_event_for(sb, "payout.paid", po.id, account=A.account_id)
    resp = post_event(http, event)
    assert resp.status_code == 200
    assert resp.json()["outcome"] == f"no ledger payouts for {po.id} (2 balance transaction source(s))"


# --- the payout handlers' transitions, without the network ---------------------------------------
def _payout_event(kind: str, po_id: str, *, account: str | None = A.account_id, **extra: Any) -> dict[str, Any]:
    return make_event(f"payout.{kind}", {"id": po_id, "object": "payout", **extra}, account=account,
                      created=int(time.time()))


def test_payout_transitions_never_undo_a_newer_state(wh_env: Any) -> None:
    settings = wh_env.settings
    lp_failed_old = add_ledger_payout(settings, A.studio_id, status="failed", payout_id="po_old",
                                      destination_payment="py_a")
    lp_failed_same = add_ledger_payout(settings, A.studio_id, status="failed", payout_id="po_new",
                                       destination_payment="py_b")
    lp_paid_other = add_ledger_payout(settings, A.studio_id, status="paid", payout_id="po_other",
                                      destination_payment="py_c")
    lp_pending = add_ledger_payout(settings, A.studio_id, status="pending", destination_payment="py_d")
    with session_scope(settings) as s:
        outcome = payout_paid(s, _payout_event("paid", "po_new"), Facts(["py_a", "py_b", "py_c", "py_d", "po_new"]))
    assert outcome.startswith("1 ledger payout → paid, ")
    assert (ledger_payout(settings, lp_failed_old).status, ledger_payout(settings, lp_failed_old).failure_code) == (
        "paid", None)
    assert ledger_payout(settings, lp_failed_same).status == "failed"  # its own payout failed: stays failed
    assert ledger_payout(settings, lp_paid_other).stripe_payout_id == "po_other"
    assert ledger_payout(settings, lp_pending).status == "pending"

    # a late payout.failed of a payout that is not the one that paid it changes nothing
    with session_scope(settings) as s:
        outcome = payout_failed(s, _payout_event("failed", "po_stale", failure_code="declined"), Facts(["py_c"]))
    assert outcome == "1 ledger payout left paid (payout po_other) (po_stale): declined"
    assert ledger_payout(settings, lp_paid_other).status == "paid"

    # canceled only touches ledger payouts of that payout
    with session_scope(settings) as s:
        outcome = payout_canceled(s, _payout_event("canceled", "po_x"), Facts(["py_c"]))
    assert ledger_payout(settings, lp_paid_other).status == "paid" and "left paid" in outcome


def test_payout_failed_on_a_manual_ledger_payout_keeps_manual(wh_env: Any) -> None:
    settings = wh_env.settings
    lp_id = add_ledger_payout(settings, A.studio_id, status="manual", destination_payment="py_m")
    with session_scope(settings) as s:
        outcome = payout_failed(s, _payout_event("failed", "po_m", failure_code="no_account",
                                                 failure_message="No bank account."), Facts(["py_m"]))
    assert outcome == "1 manual ledger payout: failure noted (po_m): no_account"
    lp = ledger_payout(settings, lp_id)
    assert (lp.status, lp.stripe_payout_id, lp.failure_code, lp.failure_reason) == (
        "manual", "po_m", "no_account", "No bank account.")


def test_platform_payouts_are_not_a_studios(wh_env: Any) -> None:
    with session_scope(wh_env.settings) as s:
        assert payout_paid(s, _payout_event("paid", "po_platform", account=None), Facts()) == (
            "ignored: platform payout po_platform (no connected account)")
