"""Verify, de-duplicate and apply one Stripe event — exactly once, in one transaction.

1. **Verify** with ``stripe.Webhook.construct_event`` (``Stripe-Signature``, STRIPE_WEBHOOK_SECRET,
   300 s tolerance). Unsigned, forged, stale or unparsable → 400, nothing written. An event whose
   ``livemode`` disagrees with PAYOPS_ENVIRONMENT → 400.
2. **Already recorded?** (``webhook_events`` primary key = the event id) → 200 ``duplicate``.
3. **Read from Stripe** what the handler needs (a payout's balance transactions, on the connected
   account, platform key) — before the transaction, so no database lock is held over the network.
4. **One transaction**: insert the ``webhook_events`` row first, run the handler, store its outcome,
   commit. A concurrent delivery of the same event loses on the primary key (IntegrityError at
   flush or commit), its changes are rolled back and it answers ``duplicate``.

Any error in 3 or 4 (Stripe unreachable, database down) → 500 and nothing recorded, so Stripe
delivers the event again later.

The receiver's own records of what went wrong (read by the checkout incident runbook):

5. **A refused delivery** (step 1: bad signature, not an event, wrong mode) is written to
   ``webhook_failures`` in its own transaction — kind, reason, the payload's sha256 and the event id, type
   and account *the unverified payload claims* (a lead for a replay, never applied). The answer stays 400;
   a database error while noting it is logged and changes nothing else.
6. **Replay** (``replay(event_id)``): the event is fetched from Stripe by id with the platform key
   (``Stripe-Account`` for a Connect event) — an authenticated source, so no signature is needed — and
   applied through steps 2–4 like a delivery, its row marked ``delivery = "replay"``; the failures naming
   that id get ``replayed_at`` and the outcome. A replay of an event already recorded is ``duplicate``.

Webhook lag is ``received_at − created`` of the rows delivered as webhooks (a replay is not a delivery).
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from typing import Any, Protocol, cast

import stripe
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from payops.config import Settings
from payops.db import session_scope
from payops.db.models import WebhookEvent, WebhookFailure, utcnow
from payops.errors import ConfigError
from payops.stripe_api import make_client, with_backoff
from payops.webhooks.handlers import PAYOUT_EVENTS, Facts, event_object, handler_for

log = logging.getLogger(__name__)
APPLYING = "(applying)"  # outcome placeholder, replaced before the commit


class WebhookRejected(Exception):
    """The request is refused before anything is read or written (answered with ``status``); ``kind`` is
    ``signature`` (unsigned, forged, stale), ``payload`` (not a Stripe event) or ``mode`` (test vs live)."""

    def __init__(self, status: int, message: str, kind: str = "payload") -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind


@dataclass(frozen=True)
class Reply:
    """HTTP status and JSON body for the receiver's answer."""

    status: int
    body: dict[str, Any]


class PayoutSourceLookup(Protocol):
    """Source ids (``py_…``, ``tr_…``, …) of the balance transactions a connected account's payout settled."""

    def payout_sources(self, account: str, payout_id: str) -> list[str]: ...


class StripePayoutLookup:
    """:class:`PayoutSourceLookup` through the official SDK and the platform key (STRIPE_SECRET_KEY)."""

    def __init__(self, settings: Settings, *, attempts: int = 6) -> None:
        self.settings = settings
        self.attempts = attempts
        self._client: stripe.StripeClient | None = None

    def client(self) -> stripe.StripeClient:
        if self._client is None:
            self._client = make_client(settings=self.settings, purpose="platform")
        return self._client

    def payout_sources(self, account: str, payout_id: str) -> list[str]:
        client = self.client()

        def fetch() -> list[str]:
            page = client.v1.balance_transactions.list(
                {"payout": payout_id, "limit": 100}, {"stripe_account": account})
            out: list[str] = []
            for txn in page.auto_paging_iter():
                src = getattr(txn, "source", None)
                src_id = src if isinstance(src, str) else getattr(src, "id", None)
                if src_id:
                    out.append(str(src_id))
            return out

        return with_backoff(fetch, attempts=self.attempts)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())[:300]


class WebhookReceiver:
    """The receiver's logic, independent of the web framework."""

    def __init__(self, settings: Settings, *, lookup: PayoutSourceLookup | None = None) -> None:
        secret = settings.stripe_webhook_secret.get_secret_value() if settings.stripe_webhook_secret else ""
        if not secret:
            raise ConfigError("STRIPE_WEBHOOK_SECRET is not set: the webhook receiver never accepts unverified "
                              "events (copy the endpoint's signing secret, whsec_…, into the environment)")
        self.settings = settings
        self._secret = secret
        self.lookup: PayoutSourceLookup = lookup or StripePayoutLookup(settings)

    # -- 1. verify --------------------------------------------------------------------------------
    def verify(self, payload: bytes, signature: str | None) -> dict[str, Any]:
        """The event as a dict, or WebhookRejected(400) saying why not."""
        if not signature:
            raise WebhookRejected(400, "unsigned request: the Stripe-Signature header is missing", "signature")
        try:
            stripe.Webhook.construct_event(payload, signature, self._secret)
        except stripe.SignatureVerificationError as exc:
            raise WebhookRejected(400, f"signature verification failed: {_one_line(str(exc))}", "signature") from exc
        except ValueError as exc:  # JSON or UTF-8 decoding, after the signature matched
            raise WebhookRejected(400, f"payload is not valid JSON: {_one_line(str(exc))}") from exc
        except (AttributeError, TypeError, KeyError) as exc:  # signed JSON that is no object: the SDK trips
            raise WebhookRejected(400, "payload is not a Stripe event (not a JSON object)") from exc
        event = json.loads(payload)
        if not isinstance(event, dict) or event.get("object") != "event":
            raise WebhookRejected(400, "payload is not a Stripe event (object != 'event')")
        for key, longest in (("id", 255), ("type", 64)):
            if not isinstance(event.get(key), str) or not event[key]:
                raise WebhookRejected(400, f"payload is not a Stripe event: {key} is missing")
            if len(event[key]) > longest:
                raise WebhookRejected(400, f"payload is not a Stripe event: {key} is over {longest} characters")
        live = bool(event.get("livemode"))
        if live != (self.settings.environment == "live"):
            raise WebhookRejected(400, f"event {event['id']} is {'live' if live else 'test'}-mode but "
                                       f"PAYOPS_ENVIRONMENT is {self.settings.environment!r}", "mode")
        return event

    # -- 2. de-duplicate --------------------------------------------------------------------------
    def recorded(self, event_id: str) -> bool:
        """Whether ``event_id`` is already in ``webhook_events``."""
        with session_scope(self.settings) as s:
            return s.scalars(select(WebhookEvent.id).where(WebhookEvent.id == event_id)).first() is not None

    # -- 3. read from Stripe ----------------------------------------------------------------------
    def gather(self, event: dict[str, Any]) -> Facts:
        """What the handler needs from Stripe, read outside the transaction."""
        account = event.get("account")
        po_id = event_object(event).get("id")
        if event["type"] in PAYOUT_EVENTS and account and po_id:
            return Facts(payout_sources=self.lookup.payout_sources(str(account), str(po_id)))
        return Facts()

    # -- 4. apply ---------------------------------------------------------------------------------
    def apply(self, event: dict[str, Any], payload: bytes, facts: Facts, *, delivery: str = "webhook") -> str:
        """Insert the event row and run its handler in one transaction; returns the outcome.

        IntegrityError propagates when another delivery recorded the same event first."""
        obj_id = event_object(event).get("id")
        created = event.get("created")
        with session_scope(self.settings) as s:
            row = WebhookEvent(
                id=event["id"], type=event["type"], account=(event.get("account") or None),
                livemode=bool(event.get("livemode")), object_id=str(obj_id)[:255] if obj_id else None,
                created=created if isinstance(created, int) else None, outcome=APPLYING,
                payload_sha256=hashlib.sha256(payload).hexdigest(), delivery=delivery,
            )
            s.add(row)
            s.flush()  # claim the event id first: a concurrent delivery blocks or fails here
            outcome = handler_for(event["type"])(s, event, facts)
            row.outcome = outcome
        return outcome

    def process(self, payload: bytes, signature: str | None) -> Reply:
        """The whole pipeline for one delivery → the HTTP answer."""
        try:
            event = self.verify(payload, signature)
        except WebhookRejected as exc:
            log.warning("webhook rejected (%d): %s", exc.status, exc)
            self.record_failure(payload, exc)
            return Reply(exc.status, {"error": str(exc)})
        eid, etype = event["id"], event["type"]
        try:
            if self.recorded(eid):
                log.info("webhook %s %s: duplicate", eid, etype)
                return Reply(200, {"status": "duplicate", "event": eid})
            facts = self.gather(event)
            try:
                outcome = self.apply(event, payload, facts)
            except IntegrityError:
                if not self.recorded(eid):
                    raise
                log.info("webhook %s %s: duplicate (concurrent delivery)", eid, etype)
                return Reply(200, {"status": "duplicate", "event": eid})
        except Exception as exc:
            log.exception("webhook %s %s failed; not recorded, Stripe will retry", eid, etype)
            # the details go to the log only: the answer goes to whoever called, never a secret
            return Reply(500, {"error": f"{type(exc).__name__} while handling {etype} {eid}; "
                                        "not recorded, deliver again"})
        log.info("webhook %s %s: %s", eid, etype, outcome)
        status = "ignored" if outcome == "ignored" else "processed"
        return Reply(200, {"status": status, "event": eid, "type": etype, "outcome": outcome})


    # -- 5. refused deliveries --------------------------------------------------------------------
    def record_failure(self, payload: bytes, exc: WebhookRejected) -> None:
        """Note a refused delivery in ``webhook_failures`` (step 5); a database error is logged, not raised."""
        claimed: dict[str, Any] = {}
        try:
            doc = json.loads(payload[:1024 * 1024])
            claimed = doc if isinstance(doc, dict) else {}
        except ValueError:
            pass  # not JSON: nothing is claimed
        def text(key: str, longest: int) -> str | None:
            value = claimed.get(key)
            return value[:longest] if isinstance(value, str) and value else None

        try:
            with session_scope(self.settings) as s:
                s.add(WebhookFailure(kind=exc.kind, reason=str(exc)[:2000], event_id=text("id", 255),
                                     event_type=text("type", 64), account=text("account", 64),
                                     payload_sha256=hashlib.sha256(payload).hexdigest()))
        except Exception:
            log.exception("could not record the refused webhook delivery in webhook_failures")

    # -- 6. replay --------------------------------------------------------------------------------
    def replay(self, event_id: str, account: str | None = None) -> str:
        """Fetch ``event_id`` from Stripe (authenticated, so no signature) and apply it like a delivery
        (step 6). Returns the outcome (``duplicate`` if it was recorded already). Stripe errors raise."""
        client = make_client(settings=self.settings, purpose="platform")
        options = {"stripe_account": account} if account else {}
        obj = with_backoff(lambda: client.v1.events.retrieve(event_id, options=options))  # type: ignore[arg-type]
        event = cast(dict[str, Any], obj.to_dict())
        if bool(event.get("livemode")) != (self.settings.environment == "live"):
            raise ConfigError(f"event {event_id} is of the other Stripe mode than PAYOPS_ENVIRONMENT")
        payload = json.dumps(event, sort_keys=True).encode()
        if self.recorded(event_id):
            outcome = "duplicate"
        else:
            try:
                outcome = self.apply(event, payload, self.gather(event), delivery="replay")
            except IntegrityError:
                if not self.recorded(event_id):
                    raise
                outcome = "duplicate"
        with session_scope(self.settings) as s:
            s.execute(update(WebhookFailure).where(WebhookFailure.event_id == event_id,
                                                   WebhookFailure.replayed_at.is_(None))
                      .values(replayed_at=utcnow(), replay_outcome=outcome[:2000]))
        log.info("webhook %s replayed from Stripe: %s", event_id, outcome)
        return outcome
