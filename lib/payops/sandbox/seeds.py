"""Seeds: the fixed demo world of :mod:`payops.demo_data`, loaded into sandbox state.

- ``demo``: keys (``sk_test_payops_platform`` full access, ``rk_test_payops_fallback`` and
  ``rk_test_payops_readonly`` restricted as in ``RESTRICTED_KEYS``); the platform account and one
  connected account per studio (Studio C cannot receive transfers); the platform balance
  (``PLATFORM_BALANCE`` available, ``PLATFORM_PENDING`` pending); and the history: for each
  paid ledger payout its transfer (exact ``transfer_id``), destination payment, and the studio's
  automatic payout (exact ``payout_id``, ``paid``, arriving 2 days later) with their balance
  transactions and events. The two pending ledger payouts of the failed 2026-11-15 cycle have no
  Stripe objects: they wait for the manual fallback. Then the planted reconciliation breaks of
  ``demo_data.recon_demo_transfers()`` (a duplicate manual transfer, a partial reversal, a failed
  bank payout, a transfer without a ledger row), with their reversals and payouts.
- ``rehearsal``: the same world as ``demo`` (kept as a separate name so rehearsals can diverge).
- ``none``: the keys and the platform account only.

Everything is deterministic: ids come from ``demo_data.stable_id``, times from the history.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from payops import demo_data as dd
from payops.cycle.plan import transfer_request
from payops.sandbox.accounts import add_account, build_account
from payops.sandbox.auth import key_record
from payops.sandbox.payouts import FAILURE_MESSAGES, record_payout
from payops.sandbox.state import PLATFORM, SandboxState
from payops.sandbox.transfers import record_transfer

SEEDS = ("demo", "rehearsal", "none")
PLATFORM_CREATED = int(datetime(2026, 1, 5, 12, 0, tzinfo=UTC).timestamp())
ACCOUNTS_CREATED = int(datetime(2026, 8, 3, 9, 30, tzinfo=UTC).timestamp())
PAYOUT_AFTER = timedelta(minutes=30)
ARRIVAL_AFTER = timedelta(days=2)


def seed_keys(state: SandboxState) -> None:
    state.keys[dd.PLATFORM_KEY] = key_record(dd.PLATFORM_KEY)
    for key, perms in dd.RESTRICTED_KEYS.items():
        state.keys[key] = key_record(key, perms)


def apply_seed(state: SandboxState, seed: str) -> None:
    """Load ``seed`` into an empty state (the caller holds the lock and cleared the state)."""
    if seed not in SEEDS:
        raise ValueError(f"unknown seed {seed!r}; choose one of {', '.join(SEEDS)}")
    seed_keys(state)
    add_account(state, build_account(PLATFORM, name="payops platform (sandbox)", email="platform@example.com",
                                     country="CA", currency="cad", created=PLATFORM_CREATED,
                                     account_type="standard"))
    if seed == "none":
        return
    for i, studio in enumerate(dd.STUDIOS):
        add_account(state, build_account(
            studio.account_id, name=studio.name, email=studio.email, country=studio.country,
            currency=studio.currency, created=ACCOUNTS_CREATED + 60 * i,
            charges_enabled=studio.charges_enabled, payouts_enabled=studio.payouts_enabled,
            metadata={"studio_id": studio.studio_id}))
    for hp in dd.demo_history():
        if hp.transfer_id is None:
            continue  # unpaid: waits for the manual fallback
        when = hp.transferred_at
        created = int(when.timestamp())
        currency = hp.currency.lower()
        account = hp.studio.account_id
        lp = hp.ledger_payout_id
        # the request the payout cycle sends for this ledger payout (payops.cycle.plan.transfer_request)
        req = transfer_request(ledger_payout_id=lp, run_id=hp.run_id, studio_id=hp.studio.studio_id,
                               cycle_date=hp.cycle_date, net=hp.net, currency=hp.currency, destination=account)
        tr = record_transfer(
            state, amount=req["amount"], currency=req["currency"], destination=req["destination"], created=created,
            metadata=req["metadata"], transfer_group=req["transfer_group"], tr_id=hp.transfer_id,
            ids={"py": dd.stable_id("py", lp, length=14), "txn_platform": dd.stable_id("txn", "tr", lp),
                 "txn_destination": dd.stable_id("txn", "py", lp)})
        state.emit("transfer.created", tr, created=created, event_id=dd.stable_id("evt", "tr", lp),
                   deliver=False)
        if hp.payout_id is None:
            continue
        po_created = int((when + PAYOUT_AFTER).timestamp())
        sweep = state.unswept.pop(f"{account}|{currency}", [])
        po = record_payout(state, None, account=account, amount=hp.net, currency=currency, automatic=True,
                           created=po_created, delay=0, po_id=hp.payout_id, txn_id=dd.stable_id("txn", "po", lp),
                           arrival_date=int((when + ARRIVAL_AFTER).timestamp()), sweep=sweep, schedule=False,
                           event_id=dd.stable_id("evt", "po.created", lp))
        po.update(status="paid", reconciliation_status="completed",
                  trace_id={"status": "supported", "value": f"TRACE{hp.payout_id[-10:].upper()}"})
        state.emit("payout.paid", po, account=account, created=po["arrival_date"],
                   event_id=dd.stable_id("evt", "po.paid", lp), deliver=False)
    _plant_recon_breaks(state)
    # the platform's balance today, after the history above
    for currency, amount in dd.PLATFORM_BALANCE.items():
        bal = state.balance(PLATFORM, currency)
        bal["available"] = amount
        bal["pending"] = dd.PLATFORM_PENDING.get(currency, 0)


def _plant_recon_breaks(state: SandboxState) -> None:
    """The Stripe side of ``demo_data.recon_demo_transfers()`` (deterministic ids and times)."""
    for pt in sorted(dd.recon_demo_transfers(), key=lambda p: p.created):
        created = int(pt.created.timestamp())
        currency = pt.studio.currency.lower()
        account = pt.studio.account_id
        tr = record_transfer(
            state, amount=pt.amount, currency=currency, destination=account, created=created,
            metadata=dict(pt.metadata), transfer_group=pt.transfer_group, tr_id=pt.transfer_id,
            ids={"py": dd.stable_id("py", pt.transfer_id, length=14),
                 "txn_platform": dd.stable_id("txn", "tr", pt.transfer_id),
                 "txn_destination": dd.stable_id("txn", "py", pt.transfer_id)})
        state.emit("transfer.created", tr, created=created, event_id=dd.stable_id("evt", "tr", pt.transfer_id),
                   deliver=False)
        if pt.reversed_amount:
            _reverse(state, tr, pt.reversed_amount, created + 600)
        if pt.payout_id is None:
            continue
        po_created = int((pt.created + PAYOUT_AFTER).timestamp())
        sweep = state.unswept.pop(f"{account}|{currency}", [])
        amount = sum(int(state.objects[t]["amount"]) for t in sweep)
        po = record_payout(state, None, account=account, amount=amount, currency=currency, automatic=True,
                           created=po_created, delay=0, po_id=pt.payout_id,
                           txn_id=dd.stable_id("txn", "po", pt.transfer_id),
                           arrival_date=int((pt.created + ARRIVAL_AFTER).timestamp()), sweep=sweep, schedule=False,
                           event_id=dd.stable_id("evt", "po.created", pt.transfer_id))
        if pt.payout_failure is None:
            po.update(status="paid", reconciliation_status="completed",
                      trace_id={"status": "supported", "value": f"TRACE{pt.payout_id[-10:].upper()}"})
            state.emit("payout.paid", po, account=account, created=po["arrival_date"],
                       event_id=dd.stable_id("evt", "po.paid", pt.transfer_id), deliver=False)
            continue
        txn = state.post_txn(account, amount=amount, currency=currency, type="payout_failure",
                             reporting_category="payout_reversal", source=pt.payout_id, description="Payout failure",
                             created=po["arrival_date"], txn_id=dd.stable_id("txn", "po.failed", pt.transfer_id))
        po.update(status="failed", failure_code=pt.payout_failure, failure_message=FAILURE_MESSAGES[pt.payout_failure],
                  failure_balance_transaction=txn["id"], reconciliation_status="completed",
                  trace_id={"status": "unsupported", "value": None})
        state.unswept.setdefault(f"{account}|{currency}", []).extend([*state.payout_txns[pt.payout_id], txn["id"]])
        state.emit("payout.failed", po, account=account, created=po["arrival_date"],
                   event_id=dd.stable_id("evt", "po.failed", pt.transfer_id), deliver=False)


def _reverse(state: SandboxState, tr: dict[str, Any], amount: int, when: int) -> None:
    """A partial reversal booked like ``POST /v1/transfers/{id}/reversals`` (deterministic ids)."""
    trr_id = dd.stable_id("trr", tr["id"])
    pyr_id = dd.stable_id("pyr", tr["id"], length=14)
    txn = state.post_txn(PLATFORM, amount=amount, currency=tr["currency"], type="transfer_refund",
                         reporting_category="transfer_reversal", source=trr_id, description=None, created=when,
                         txn_id=dd.stable_id("txn", "trr", tr["id"]))
    pay = state.post_txn(tr["destination"], amount=-amount, currency=tr["currency"], type="payment_refund",
                         reporting_category="refund", source=pyr_id, description=None, created=when,
                         txn_id=dd.stable_id("txn", "pyr", tr["id"]))
    state.unswept.setdefault(f"{tr['destination']}|{tr['currency']}", []).append(pay["id"])
    rev = {"amount": amount, "balance_transaction": txn["id"], "created": when, "currency": tr["currency"],
           "destination_payment_refund": pyr_id, "id": trr_id, "metadata": {}, "object": "transfer_reversal",
           "source_refund": None, "transfer": tr["id"]}
    state.add(rev, PLATFORM, [("reversals", tr["id"])])
    tr["amount_reversed"] += amount
    tr["reversed"] = tr["amount_reversed"] >= tr["amount"]
    tr["reversals"]["data"] = [rev]
    # no seeded transfer.reversed event: tests count the reversal events their own calls emit
