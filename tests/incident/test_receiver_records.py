"""The webhook receiver's own records (its written contract, steps 5 and 6): a refused delivery is noted with what
the unverified payload claims and never applied; a replay fetches the event from Stripe by id and applies it
once; the lag is measured only on signed deliveries."""

from __future__ import annotations

import json

import pytest
import stripe
from sqlalchemy import select

from payops import demo_data as dd
from payops.config import get_settings
from payops.db import session_scope
from payops.db.models import WebhookEvent, WebhookFailure
from payops.incident.world import CheckoutWorld
from payops.sandbox.webhooks import WRONG_SECRET, sign
from payops.webhooks.receiver import WebhookReceiver

pytestmark = pytest.mark.db


@pytest.mark.parametrize("db_url", ["sqlite", "postgresql"], indirect=True)
def test_refused_deliveries_are_noted_then_replayed_once(payops_env, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("STRIPE_WEBHOOK_SECRET", dd.WEBHOOK_SECRET)
    settings = get_settings(fresh=True)
    receiver = WebhookReceiver(settings)
    world = CheckoutWorld(settings, payops_env.sandbox)
    cs = world.session("AUC-R-1", "r@example.com")
    world.pay(cs["id"], "pm_card_chargeDeclinedExpiredCard")
    (evt,) = world.client.v1.events.list(params={"type": "payment_intent.payment_failed"}).data
    payload = json.dumps(evt.to_dict()).encode()

    assert receiver.process(payload, sign(payload, WRONG_SECRET)).status == 400
    assert receiver.process(payload, None).status == 400
    junk = b"not json at all"
    assert receiver.process(junk, sign(junk, dd.WEBHOOK_SECRET)).status == 400
    with session_scope() as s:
        rows = s.scalars(select(WebhookFailure).order_by(WebhookFailure.id)).all()
        got = [(r.kind, r.event_id, r.event_type, r.replayed_at) for r in rows]
        assert s.get(WebhookEvent, evt.id) is None  # refused: never applied
    assert got == [("signature", evt.id, "payment_intent.payment_failed", None),
                   ("signature", evt.id, "payment_intent.payment_failed", None), ("payload", None, None, None)]

    assert receiver.replay(evt.id) == "recorded"
    assert receiver.replay(evt.id) == "duplicate"
    with session_scope() as s:
        row = s.get(WebhookEvent, evt.id)
        assert row is not None and row.delivery == "replay" and row.type == "payment_intent.payment_failed"
        replayed = s.scalars(select(WebhookFailure).where(WebhookFailure.event_id == evt.id)).all()
        assert [r.replay_outcome for r in replayed] == ["recorded", "recorded"]
    signed = receiver.process(payload, sign(payload, dd.WEBHOOK_SECRET))  # the real delivery arrives late
    assert signed.status == 200 and signed.body["status"] == "duplicate"

    with pytest.raises(stripe.InvalidRequestError):  # a payload may claim any id: Stripe decides
        receiver.replay("evt_forged_0000000000000000")
