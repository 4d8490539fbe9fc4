"""One function per Stripe event type: what the receiver changes in the database, as outcome text.

Every handler is ``handler(session, event, facts) -> outcome``: ``event`` is the verified event as a
plain dict, ``facts`` what had to be read from Stripe *before* the transaction (a payout's balance
transaction sources), so the handlers themselves touch only the session and never the network.
The receiver inserts the ``webhook_events`` row and runs the handler in the same transaction.

Ledger payout transitions on the Connect payout events (the ledger payouts a bank payout settled are
the ones whose destination payment ``py_…`` or transfer ``tr_…`` is among the payout's balance
transaction sources, plus any already carrying the payout's id):

============  =====================================  =============================================
event         ledger payout before                   after
============  =====================================  =============================================
payout.paid   transferred; failed on another payout  paid, stripe_payout_id set, failure cleared
payout.paid   manual                                 manual, stripe_payout_id set
payout.failed transferred; paid on this payout;      failed, failure_code/failure_reason (Stripe's
              failed on another payout               failure_code/failure_message), stripe_payout_id
payout.failed manual                                 manual, failure noted, stripe_payout_id set
payout.cancel transferred/paid/failed on this payout transferred, stripe_payout_id cleared,
                                                     failure_code ``payout_canceled``
============  =====================================  =============================================

Anything else (already in the target state, attached to a different payout, not yet transferred) is
left alone and counted in the outcome, so an out-of-order or stale event never undoes a newer one.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from payops.db.models import LedgerPayout, Studio, WebhookEvent
from payops.money import Money, MoneyError

PAYOUT_EVENTS = ("payout.paid", "payout.failed", "payout.canceled")
CANCELED_CODE = "payout_canceled"
_IN_CHUNK = 500  # ids per IN (…) clause: well under SQLite's and PostgreSQL's parameter limits


@dataclass(frozen=True)
class Facts:
    """What the receiver read from Stripe for an event before opening the transaction."""

    payout_sources: list[str] = field(default_factory=list)  # source ids of the payout's balance transactions


Handler = Callable[[Session, dict[str, Any], Facts], str]


def event_object(event: dict[str, Any]) -> dict[str, Any]:
    """``event.data.object`` (an empty dict when absent)."""
    data = event.get("data") or {}
    obj = data.get("object") if isinstance(data, dict) else None
    return obj if isinstance(obj, dict) else {}


def _amount(amount: Any, currency: Any) -> str:
    try:
        return Money.from_stripe(int(amount), str(currency).upper()).format()
    except (MoneyError, TypeError, ValueError):
        return f"{amount} {currency}"


# --- account.updated -----------------------------------------------------------------------------
def account_updated(session: Session, event: dict[str, Any], facts: Facts) -> str:
    """Copy ``charges_enabled`` / ``payouts_enabled`` from the account object onto its studio.

    An event older than an account.updated already applied for the same account is not applied
    (Stripe does not guarantee delivery order)."""
    acct = event_object(event)
    acct_id = acct.get("id") or event.get("account")
    studio = session.scalars(select(Studio).where(Studio.stripe_account_id == acct_id).with_for_update()).first()
    if studio is None:
        return f"no studio for {acct_id}"
    created = event.get("created")
    if isinstance(created, int):
        newer = session.scalars(
            select(WebhookEvent.id).where(
                WebhookEvent.type == "account.updated", WebhookEvent.object_id == acct_id,
                WebhookEvent.created > created, WebhookEvent.id != event.get("id"),
                ~WebhookEvent.outcome.startswith("no studio"))
            .limit(1)).first()
        if newer is not None:
            return f"stale: {newer} (newer) already applied to studio {studio.name} ({acct_id}); unchanged"
    changes = []
    for name in ("charges_enabled", "payouts_enabled"):
        if name in acct and acct[name] is not None:
            new, old = bool(acct[name]), bool(getattr(studio, name))
            if new != old:
                setattr(studio, name, new)
                changes.append(f"{name} {str(old).lower()}→{str(new).lower()}")
    if not changes:
        return f"studio {studio.name} ({acct_id}) unchanged"
    return f"studio {studio.name} ({acct_id}): " + ", ".join(changes)


# --- payouts -------------------------------------------------------------------------------------
def _chunks(ids: list[str]) -> Iterable[list[str]]:
    for i in range(0, len(ids), _IN_CHUNK):
        yield ids[i:i + _IN_CHUNK]


def ledger_payouts_for(session: Session, payout_id: str, sources: Iterable[str]) -> list[LedgerPayout]:
    """The ledger payouts a bank payout settled: by destination payment / transfer id among the
    payout's balance transaction sources, or already carrying the payout id. Locked for update."""
    sources = sorted(set(sources) - {payout_id})
    payments = [s for s in sources if not s.startswith("tr_")]
    transfers = [s for s in sources if s.startswith("tr_")]
    conds = [LedgerPayout.stripe_payout_id == payout_id]
    conds += [LedgerPayout.stripe_destination_payment_id.in_(chunk) for chunk in _chunks(payments)]
    conds += [LedgerPayout.stripe_transfer_id.in_(chunk) for chunk in _chunks(transfers)]
    # one statement, rows locked in id order: two events about the same rows cannot deadlock
    query = select(LedgerPayout).where(or_(*conds)).order_by(LedgerPayout.id).with_for_update()
    return list(session.scalars(query))


def _describe(payout_id: str, sources: list[str], counts: Counter[str]) -> str:
    if not counts:
        return f"no ledger payouts for {payout_id} ({len(sources)} balance transaction source(s))"
    def rank(what: str) -> tuple[int, str]:  # changes first, then manual ones, then what was left alone
        return (0 if what.startswith("→") else 1 if what.startswith("manual:") else 2, what)

    parts = []
    for what, n in sorted(counts.items(), key=lambda item: rank(item[0])):
        noun = f"ledger payout{'s' if n != 1 else ''}"
        if what.startswith("manual:"):  # "manual: payout id noted" → "1 manual ledger payout: payout id noted"
            parts.append(f"{n} manual {noun}:{what.removeprefix('manual:')}")
        else:
            parts.append(f"{n} {noun} {what}")
    return ", ".join(parts) + f" ({payout_id})"


def _connect_payout(event: dict[str, Any]) -> tuple[str | None, str]:
    po = event_object(event)
    return event.get("account"), str(po.get("id") or "")


def payout_paid(session: Session, event: dict[str, Any], facts: Facts) -> str:
    """``transferred`` (or failed on an earlier payout) → ``paid``; ``manual`` only gets the payout id."""
    account, po_id = _connect_payout(event)
    if not account:
        return f"ignored: platform payout {po_id} (no connected account)"
    counts: Counter[str] = Counter()
    for lp in ledger_payouts_for(session, po_id, facts.payout_sources):
        if lp.status == "manual":
            if lp.stripe_payout_id != po_id:
                lp.stripe_payout_id = po_id
                counts["manual: payout id noted"] += 1
            else:
                counts["manual: unchanged"] += 1
        elif lp.status == "transferred" or (lp.status == "failed" and lp.stripe_payout_id != po_id):
            lp.status, lp.stripe_payout_id = "paid", po_id
            lp.failure_code = lp.failure_reason = None
            counts["→ paid"] += 1
        elif lp.status == "paid" and lp.stripe_payout_id in (None, po_id):
            if lp.stripe_payout_id is None:
                lp.stripe_payout_id = po_id
            counts["already paid"] += 1
        else:
            counts[f"left {lp.status} (payout {lp.stripe_payout_id or '—'})"] += 1
    return _describe(po_id, facts.payout_sources, counts)


def payout_failed(session: Session, event: dict[str, Any], facts: Facts) -> str:
    """→ ``failed`` with Stripe's failure code and message; ``manual`` keeps its status, failure noted."""
    account, po_id = _connect_payout(event)
    if not account:
        return f"ignored: platform payout {po_id} (no connected account)"
    po = event_object(event)
    code = po.get("failure_code") or "unknown"
    reason = po.get("failure_message") or f"payout {po_id} failed"
    counts: Counter[str] = Counter()
    for lp in ledger_payouts_for(session, po_id, facts.payout_sources):
        if lp.status == "manual":
            lp.stripe_payout_id, lp.failure_code, lp.failure_reason = po_id, code, reason
            counts["manual: failure noted"] += 1
        elif lp.status == "failed" and lp.stripe_payout_id == po_id and lp.failure_code == code:
            counts["already failed"] += 1
        elif lp.status in ("transferred", "failed") or (lp.status == "paid" and lp.stripe_payout_id in (None, po_id)):
            lp.status, lp.stripe_payout_id, lp.failure_code, lp.failure_reason = "failed", po_id, code, reason
            counts["→ failed"] += 1
        else:
            counts[f"left {lp.status} (payout {lp.stripe_payout_id or '—'})"] += 1
    return _describe(po_id, facts.payout_sources, counts) + (f": {code}" if counts else "")


def payout_canceled(session: Session, event: dict[str, Any], facts: Facts) -> str:
    """Back to ``transferred`` (the funds return to the account's balance), payout id cleared."""
    account, po_id = _connect_payout(event)
    if not account:
        return f"ignored: platform payout {po_id} (no connected account)"
    reason = f"payout {po_id} was canceled; the funds are back in the connected account's balance"
    counts: Counter[str] = Counter()
    for lp in ledger_payouts_for(session, po_id, facts.payout_sources):
        if lp.stripe_payout_id not in (None, po_id):
            counts[f"left {lp.status} (payout {lp.stripe_payout_id})"] += 1
            continue
        if lp.status == "manual":
            lp.stripe_payout_id, lp.failure_code, lp.failure_reason = None, CANCELED_CODE, reason
            counts["manual: cancel noted"] += 1
        elif lp.status in ("transferred", "paid", "failed"):
            if lp.status == "transferred" and lp.failure_code == CANCELED_CODE and lp.stripe_payout_id is None:
                counts["already back to transferred"] += 1
                continue
            lp.status, lp.stripe_payout_id, lp.failure_code, lp.failure_reason = (
                "transferred", None, CANCELED_CODE, reason)
            counts["→ transferred"] += 1
        else:
            counts[f"left {lp.status}"] += 1
    return _describe(po_id, facts.payout_sources, counts) + (": payout canceled" if counts else "")


# --- recorded only -------------------------------------------------------------------------------
def payment_intent_succeeded(session: Session, event: dict[str, Any], facts: Facts) -> str:
    """Recorded (the earnings it creates are the cycle's business)."""
    return "recorded"


def charge_dispute_created(session: Session, event: dict[str, Any], facts: Facts) -> str:
    """Recorded, naming the disputed charge, amount and reason."""
    dp = event_object(event)
    charge = dp.get("charge")
    if isinstance(charge, dict):
        charge = charge.get("id")
    reason = f" ({dp['reason']})" if dp.get("reason") else ""
    return f"recorded: dispute {dp.get('id')} on {charge} for {_amount(dp.get('amount'), dp.get('currency'))}{reason}"


def checkout_recorded(session: Session, event: dict[str, Any], facts: Facts) -> str:
    """Checkout events (sessions completed or expired, payments failed): recorded, so the checkout incident
    runbook can hold Stripe's event counts against what arrived here and measure the webhook lag."""
    return "recorded"


HANDLERS: dict[str, Handler] = {
    "account.updated": account_updated,
    "payout.paid": payout_paid,
    "payout.failed": payout_failed,
    "payout.canceled": payout_canceled,
    "payment_intent.succeeded": payment_intent_succeeded,
    "charge.dispute.created": charge_dispute_created,
    "payment_intent.payment_failed": checkout_recorded,
    "checkout.session.completed": checkout_recorded,
    "checkout.session.expired": checkout_recorded,
}
SUBSCRIBED_EVENTS: tuple[str, ...] = tuple(HANDLERS)  # what the Stripe webhook endpoint should send


def ignored(session: Session, event: dict[str, Any], facts: Facts) -> str:
    """Any other event type: recorded, nothing changed."""
    return "ignored"


def handler_for(event_type: str) -> Handler:
    """The handler of ``event_type`` (:func:`ignored` for types the receiver does not act on)."""
    return HANDLERS.get(event_type, ignored)
