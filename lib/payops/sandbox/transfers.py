"""``/v1/transfers`` and ``/v1/transfers/{id}/reversals``: money from the platform to studios.

A transfer debits the platform's available balance (a ``transfer`` balance transaction), credits
the destination account (a ``payment`` balance transaction whose source is the destination payment
``py_…``), emits ``transfer.created`` and, if the destination has payouts enabled, starts an
automatic payout of its available funds. A reversal does the opposite for part or all of what
remains and emits ``transfer.reversed``.
"""

from __future__ import annotations

from typing import Any

from payops.sandbox.api_errors import StripeAPIError, invalid_param, missing
from payops.sandbox.context import Ctx, expand, list_objects
from payops.sandbox.forms import Params
from payops.sandbox.payouts import automatic_payout
from payops.sandbox.state import PLATFORM, SandboxState, random_id

MAX_AMOUNT = 99_999_999_999
INSUFFICIENT = ("You have insufficient available funds in your Stripe account. Try adding funds directly "
                "to your available balance by creating Charges using the 4000000000000077 test card. "
                "See: https://stripe.com/docs/testing#available-balance")
REVERSALS_IN_TRANSFER = 10


def _get_transfer(state: SandboxState, tr_id: str) -> dict[str, Any]:
    tr = state.get(tr_id, "transfer", PLATFORM)
    if tr is None:
        raise missing("transfer", tr_id)
    return tr


def check_destination(state: SandboxState, dest: str, param: str = "destination") -> dict[str, Any]:
    acct = state.get(dest, "account")
    if acct is None or dest == PLATFORM:
        raise StripeAPIError(400, f"No such destination: '{dest}'", code="resource_missing", param=param,
                             save_idempotent=True)
    if acct["capabilities"].get("transfers") != "active":
        raise StripeAPIError(
            400, "Your destination account needs to have at least one of the following capabilities "
            "enabled: transfers, crypto_transfers, legacy_payments",
            code="insufficient_capabilities_for_transfer", param=param, save_idempotent=True)
    return acct


def record_transfer(state: SandboxState, *, amount: int, currency: str, destination: str,
                    created: int, metadata: dict[str, str], description: str | None = None,
                    transfer_group: str | None = None, source_transaction: str | None = None,
                    tr_id: str | None = None, ids: dict[str, str] | None = None) -> dict[str, Any]:
    """Book a transfer (no checks): platform debit, destination payment and credit."""
    ids = ids or {}
    tr_id = tr_id or random_id("tr")
    py_id = ids.get("py") or random_id("py", 14)
    txn = state.post_txn(PLATFORM, amount=-amount, currency=currency, type="transfer",
                         reporting_category="transfer", source=tr_id, description=description,
                         created=created, txn_id=ids.get("txn_platform"))
    tr: dict[str, Any] = {
        "amount": amount, "amount_reversed": 0, "balance_transaction": txn["id"], "created": created,
        "currency": currency, "description": description, "destination": destination,
        "destination_payment": py_id, "id": tr_id, "livemode": False, "metadata": metadata,
        "object": "transfer",
        "reversals": {"data": [], "has_more": False, "object": "list",
                      "url": f"/v1/transfers/{tr_id}/reversals"},
        "reversed": False, "source_transaction": source_transaction, "source_type": "card",
        "transfer_group": transfer_group,
    }
    indexes: list[tuple[str, ...]] = [("transfers",), ("transfers_dest", destination)]
    if transfer_group:
        indexes.append(("transfers_group", transfer_group))
    state.add(tr, PLATFORM, indexes)
    pay_txn = state.post_txn(destination, amount=amount, currency=currency, type="payment",
                             reporting_category="charge", source=py_id, description=None,
                             created=created, txn_id=ids.get("txn_destination"))
    state.unswept.setdefault(f"{destination}|{currency}", []).append(pay_txn["id"])
    return tr


def create_transfer(state: SandboxState, ctx: Ctx, p: Params) -> dict[str, Any]:
    p.check_known(["amount", "currency", "destination", "description", "metadata", "transfer_group",
                   "source_transaction", "source_type"])
    ctx.require_platform("Transfers")
    amount = p.int("amount", required=True, minimum=1, maximum=MAX_AMOUNT)
    currency = p.currency()
    destination = p.str("destination", required=True)
    metadata = p.metadata() or {}
    description = p.str("description")
    group = p.str("transfer_group")
    source_transaction = p.str("source_transaction")
    assert amount is not None and currency is not None and destination is not None
    check_destination(state, destination)
    if state.balance(PLATFORM, currency)["available"] < amount:
        raise StripeAPIError(400, INSUFFICIENT, code="balance_insufficient", param=None, save_idempotent=True)
    tr = record_transfer(state, amount=amount, currency=currency, destination=destination,
                         created=state.now_int(), metadata=metadata, description=description,
                         transfer_group=group or None, source_transaction=source_transaction)
    state.emit("transfer.created", tr, request_id=ctx.request_id, idempotency_key=ctx.idempotency_key)
    automatic_payout(state, ctx, destination, currency)
    return expand(state, tr, p)


def retrieve_transfer(state: SandboxState, ctx: Ctx, p: Params, tr_id: str) -> dict[str, Any]:
    return expand(state, _get_transfer(state, tr_id), p)


def update_transfer(state: SandboxState, ctx: Ctx, p: Params, tr_id: str) -> dict[str, Any]:
    p.check_known(["metadata", "description"])
    tr = _get_transfer(state, tr_id)
    meta = p.metadata()
    if meta is not None:
        if meta == {}:
            tr["metadata"] = {}
        for key, value in meta.items():
            if value == "":
                tr["metadata"].pop(key, None)
            else:
                tr["metadata"][key] = value
    if p.has("description"):
        tr["description"] = p.str("description") or None
    state.dirty = True
    return expand(state, tr, p)


def list_transfers(state: SandboxState, ctx: Ctx, p: Params) -> dict[str, Any]:
    p.check_known(["limit", "starting_after", "ending_before", "created", "destination", "transfer_group"])
    dest = p.str("destination")
    group = p.str("transfer_group")
    if group:
        index = state.indexes.get(("transfers_group", group))
        pred = (lambda oid: state.objects[oid]["destination"] == dest) if dest else None
    elif dest:
        index, pred = state.indexes.get(("transfers_dest", dest)), None
    else:
        index, pred = state.indexes.get(("transfers",)), None
    return list_objects(state, p, url="/v1/transfers", kind="transfer", index=index, predicate=pred)


# --- reversals ---------------------------------------------------------------------------------
def create_reversal(state: SandboxState, ctx: Ctx, p: Params, tr_id: str) -> dict[str, Any]:
    p.check_known(["amount", "description", "metadata", "refund_application_fee"])
    tr = _get_transfer(state, tr_id)
    remaining = tr["amount"] - tr["amount_reversed"]
    amount = p.int("amount", minimum=1, maximum=MAX_AMOUNT)
    metadata = p.metadata() or {}
    if remaining <= 0:
        raise invalid_param("amount", f"Transfer {tr_id} has already been fully reversed.")
    if amount is None:
        amount = remaining
    if amount > remaining:
        raise StripeAPIError(400, f"You cannot reverse {amount}: transfer {tr_id} has only {remaining} "
                             "left to reverse.", code="amount_too_large", param="amount")
    now = state.now_int()
    trr_id, pyr_id = random_id("trr"), random_id("pyr", 14)
    txn = state.post_txn(PLATFORM, amount=amount, currency=tr["currency"], type="transfer_refund",
                         reporting_category="transfer_reversal", source=trr_id, description=None,
                         created=now)
    state.post_txn(tr["destination"], amount=-amount, currency=tr["currency"], type="payment_refund",
                   reporting_category="refund", source=pyr_id, description=None, created=now)
    rev = {
        "amount": amount, "balance_transaction": txn["id"], "created": now, "currency": tr["currency"],
        "destination_payment_refund": pyr_id, "id": trr_id, "metadata": metadata,
        "object": "transfer_reversal", "source_refund": None, "transfer": tr_id,
    }
    state.add(rev, PLATFORM, [("reversals", tr_id)])
    tr["amount_reversed"] += amount
    tr["reversed"] = tr["amount_reversed"] >= tr["amount"]
    idx = state.indexes[("reversals", tr_id)]
    newest = list(reversed(idx.ids[-REVERSALS_IN_TRANSFER:]))
    tr["reversals"]["data"] = [state.objects[i] for i in newest]
    tr["reversals"]["has_more"] = len(idx) > REVERSALS_IN_TRANSFER
    state.emit("transfer.reversed", tr, request_id=ctx.request_id, idempotency_key=ctx.idempotency_key,
               previous={"amount_reversed": tr["amount_reversed"] - amount})
    return expand(state, rev, p)


def list_reversals(state: SandboxState, ctx: Ctx, p: Params, tr_id: str) -> dict[str, Any]:
    p.check_known(["limit", "starting_after", "ending_before"])
    _get_transfer(state, tr_id)
    return list_objects(state, p, url=f"/v1/transfers/{tr_id}/reversals", kind="transfer_reversal",
                        index=state.indexes.get(("reversals", tr_id)))


def retrieve_reversal(state: SandboxState, ctx: Ctx, p: Params, tr_id: str, rev_id: str) -> dict[str, Any]:
    _get_transfer(state, tr_id)
    rev = state.get(rev_id, "transfer_reversal", PLATFORM)
    if rev is None or rev["transfer"] != tr_id:
        raise missing("transfer_reversal", rev_id)
    return expand(state, rev, p)
