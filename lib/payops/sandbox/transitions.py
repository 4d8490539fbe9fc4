"""The timed steps of a sandbox payout's life, applied by :meth:`SandboxState.tick` when they are due.

``in_transit`` (half the payout delay) marks a pending payout in transit; ``settle`` (the full delay)
makes it ``paid`` (event ``payout.paid``) — or ``failed`` (event ``payout.failed``) when a
``payout_failure`` fault planned it so (``state.payout_plans``), posting a ``payout_failure`` balance
transaction that returns the funds and leaving them, with what the payout swept, for the next payout.
A payout already paid, failed or canceled is left alone.

A leaf of the sandbox: it works on the state it is given and imports none of the sandbox's modules,
so the state can call it without an import circle (``payouts`` books payouts, this module moves them on).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from payops.sandbox.state import SandboxState


def apply_transition(state: SandboxState, po_id: str, action: str, due: float) -> None:
    """A scheduled step of payout ``po_id``'s life (``action``: ``in_transit`` or ``settle``), due at ``due``."""
    po = state.objects.get(po_id)
    if po is None or po["status"] in ("paid", "failed", "canceled"):
        return
    account = state.owner[po_id]
    when = int(due)
    if action == "in_transit":
        if po["status"] == "pending":
            po["status"] = "in_transit"
            po["trace_id"] = {"status": "supported", "value": None}
        return
    plan = state.payout_plans.pop(po_id, None)
    if plan and plan.get("fail"):
        txn = state.post_txn(account, amount=po["amount"], currency=po["currency"], type="payout_failure",
                             reporting_category="payout_reversal", source=po_id,
                             description="Payout failure", created=when)
        po.update(status="failed", failure_code=plan["fail"], failure_message=plan["message"],
                  failure_balance_transaction=txn["id"], trace_id={"status": "unsupported", "value": None})
        if po["automatic"]:
            po["reconciliation_status"] = "completed"
        # the returned funds (and what the payout swept) wait for the next payout
        key = f"{account}|{po['currency']}"
        state.unswept.setdefault(key, []).extend([*state.payout_txns.get(po_id, []), txn["id"]])
        state.emit("payout.failed", po, account=account, created=when)
        return
    po["status"] = "paid"
    po["trace_id"] = {"status": "supported", "value": f"TRACE{po_id[-10:].upper()}"}
    if po["automatic"]:
        po["reconciliation_status"] = "completed"
    state.emit("payout.paid", po, account=account, created=when)
