"""Connect accounts (``/v1/accounts``, ``/v1/account``), balance and balance transactions.

Accounts are created by seeds, the control plane (``/_sandbox/accounts``) or ``POST /v1/accounts``
(:mod:`payops.sandbox.connect`); a change emits ``account.updated`` on the connected account
(``event.account`` set, ``data.previous_attributes`` holding the old values) like Stripe's Connect
events. :func:`modify_account` is also how the control plane completes onboarding.
"""

from __future__ import annotations

from typing import Any

from payops.sandbox.api_errors import StripeAPIError, invalid_param, missing
from payops.sandbox.context import Ctx, expand, list_objects
from payops.sandbox.forms import Params
from payops.sandbox.state import PLATFORM, SandboxState
from payops.sandbox.store import OrderedIndex

ONBOARDING_DUE = ["business_profile.url", "external_account", "tos_acceptance.date", "tos_acceptance.ip"]


def build_account(acct_id: str, *, name: str | None, email: str | None, country: str, currency: str,
                  created: int, charges_enabled: bool = True, payouts_enabled: bool = True,
                  transfers_active: bool | None = None, metadata: dict[str, str] | None = None,
                  account_type: str = "express") -> dict[str, Any]:
    """An account object with the fields of Stripe's ``account`` fixture."""
    transfers_active = payouts_enabled if transfers_active is None else transfers_active
    complete = charges_enabled and payouts_enabled and transfers_active
    due = [] if complete else list(ONBOARDING_DUE)
    return {
        "business_profile": {
            "annual_revenue": {"amount": None, "currency": None, "fiscal_year_end": None},
            "estimated_worker_count": None, "mcc": "5734", "name": name, "product_description": None,
            "support_address": {"city": None, "country": None, "line1": None, "line2": None,
                                "postal_code": None, "state": None},
            "support_email": email, "support_phone": None, "support_url": None, "url": None,
            "minority_owned_business_designation": None,
        },
        "business_type": "company",
        "capabilities": {"card_payments": "active" if charges_enabled else "inactive",
                         "transfers": "active" if transfers_active else "inactive"},
        "charges_enabled": charges_enabled,
        "controller": {"type": "application"},
        "country": country, "created": created, "default_currency": currency.lower(),
        "details_submitted": complete, "email": email,
        "external_accounts": {"data": [], "has_more": False, "object": "list",
                              "url": f"/v1/accounts/{acct_id}/external_accounts"},
        "future_requirements": {"alternatives": [], "current_deadline": None, "currently_due": [],
                                "disabled_reason": None, "errors": [], "eventually_due": [],
                                "past_due": [], "pending_verification": []},
        "id": acct_id, "metadata": metadata or {}, "object": "account", "payouts_enabled": payouts_enabled,
        "requirements": {"alternatives": [], "current_deadline": None, "currently_due": due,
                         "disabled_reason": None if complete else "requirements.past_due", "errors": [],
                         "eventually_due": list(due), "past_due": list(due), "pending_verification": []},
        "settings": {
            "bacs_debit_payments": {"display_name": None, "service_user_number": None},
            "branding": {"icon": None, "logo": None, "primary_color": None, "secondary_color": None},
            "card_issuing": {"tos_acceptance": {"date": None, "ip": None}},
            "card_payments": {"decline_on": {"avs_failure": False, "cvc_failure": False},
                              "statement_descriptor_prefix": None, "statement_descriptor_prefix_kana": None,
                              "statement_descriptor_prefix_kanji": None},
            "dashboard": {"display_name": name, "timezone": "Etc/UTC"},
            "invoices": {"default_account_tax_ids": None, "hosted_payment_method_save": None},
            "payments": {"statement_descriptor": None, "statement_descriptor_kana": None,
                         "statement_descriptor_kanji": None, "statement_descriptor_prefix_kana": None,
                         "statement_descriptor_prefix_kanji": None},
            "payouts": {"debit_negative_balances": True, "schedule": {"delay_days": 2, "interval": "daily"},
                        "statement_descriptor": None},
            "sepa_debit_payments": {},
        },
        "tos_acceptance": {"date": created if complete else None, "ip": "127.0.0.1" if complete else None,
                           "user_agent": None},
        "type": account_type,
    }


def add_account(state: SandboxState, acct: dict[str, Any]) -> dict[str, Any]:
    indexes = [] if acct["id"] == PLATFORM else [("accounts",)]
    return state.add(acct, acct["id"], indexes)


# Fields the control plane may change, and how each maps onto the account object.
MODIFIABLE = ("name", "email", "charges_enabled", "payouts_enabled", "transfers", "metadata",
              "payout_interval", "default_currency", "onboarding")


def modify_account(state: SandboxState, acct_id: str, changes: dict[str, Any],
                   request_id: str | None = None) -> dict[str, Any]:
    """Apply control-plane changes and emit ``account.updated`` with the previous attributes.

    Onboarding is complete when charges and payouts are enabled and the transfers capability is
    active: requirements are then cleared, ``details_submitted`` and ``tos_acceptance`` set.
    Enabling both charges and payouts (without naming ``transfers``) activates the transfers
    capability; ``"onboarding": "complete" | "incomplete"`` sets all three at once.
    """
    acct = state.get(acct_id, "account")
    if acct is None:
        raise missing("account", acct_id)
    unknown = set(changes) - set(MODIFIABLE)
    if unknown:
        raise invalid_param(sorted(unknown)[0], f"Cannot modify {sorted(unknown)}; allowed: {MODIFIABLE}")
    if "onboarding" in changes:
        if changes["onboarding"] not in ("complete", "incomplete"):
            raise invalid_param("onboarding", "onboarding must be 'complete' or 'incomplete'")
        done = changes["onboarding"] == "complete"
        changes = {"charges_enabled": done, "payouts_enabled": done, "transfers": done,
                   **{k: v for k, v in changes.items() if k != "onboarding"}}
    previous: dict[str, Any] = {}

    def setf(key: str, value: Any) -> None:
        if acct[key] != value:
            previous[key] = acct[key]
            acct[key] = value

    if "name" in changes:
        previous.setdefault("business_profile", {})["name"] = acct["business_profile"]["name"]
        acct["business_profile"]["name"] = changes["name"]
    if "email" in changes:
        setf("email", changes["email"])
    if "default_currency" in changes:
        setf("default_currency", str(changes["default_currency"]).lower())
    if "metadata" in changes:
        setf("metadata", {**acct["metadata"], **changes["metadata"]})
    if "charges_enabled" in changes:
        setf("charges_enabled", bool(changes["charges_enabled"]))
    if "payouts_enabled" in changes:
        setf("payouts_enabled", bool(changes["payouts_enabled"]))
    caps = dict(acct["capabilities"])
    if "transfers" in changes:
        caps["transfers"] = "active" if changes["transfers"] in (True, "active") else "inactive"
    elif acct["charges_enabled"] and acct["payouts_enabled"] and {"charges_enabled", "payouts_enabled"} & set(changes):
        caps["transfers"] = "active"  # onboarding finished: the transfers capability activates
    if "card_payments" in caps:
        caps["card_payments"] = "active" if acct["charges_enabled"] else "inactive"
    if caps != acct["capabilities"]:
        previous["capabilities"] = acct["capabilities"]
        acct["capabilities"] = caps
    if "payout_interval" in changes:
        schedule = acct["settings"]["payouts"]["schedule"]
        previous["settings"] = {"payouts": {"schedule": dict(schedule)}}
        schedule["interval"] = changes["payout_interval"]
    complete = acct["charges_enabled"] and acct["payouts_enabled"] and caps.get("transfers") == "active"
    req = acct["requirements"]
    due = [] if complete else list(ONBOARDING_DUE)
    if req["currently_due"] != due:
        previous["requirements"] = dict(req)
        req.update(currently_due=due, eventually_due=list(due), past_due=list(due),
                   disabled_reason=None if complete else "requirements.past_due")
        setf("details_submitted", complete)
    if complete and acct["tos_acceptance"]["date"] is None:
        previous["tos_acceptance"] = dict(acct["tos_acceptance"])
        acct["tos_acceptance"].update(date=state.now_int(), ip="127.0.0.1")
    state.dirty = True
    if previous:
        state.emit("account.updated", acct, account=acct_id, previous=previous, request_id=request_id)
    return acct


def retrieve_account(state: SandboxState, ctx: Ctx, p: Params, acct_id: str | None = None) -> dict[str, Any]:
    acct_id = acct_id or ctx.account
    if not ctx.is_platform and acct_id != ctx.account:
        raise missing("account", acct_id)
    acct = state.get(acct_id, "account")
    if acct is None:
        raise StripeAPIError(
            403 if acct_id.startswith("acct_") else 404,
            f"The provided key does not have access to account '{acct_id}' (or that account does not "
            "exist). Application access may have been revoked.", code="account_invalid")
    return expand(state, acct, p)


def list_accounts(state: SandboxState, ctx: Ctx, p: Params) -> dict[str, Any]:
    p.check_known(["limit", "starting_after", "ending_before", "created"])
    ctx.require_platform("Listing connected accounts")
    return list_objects(state, p, url="/v1/accounts", kind="account", index=state.indexes.get(("accounts",)))


# --- balance -----------------------------------------------------------------------------------
def retrieve_balance(state: SandboxState, ctx: Ctx, p: Params) -> dict[str, Any]:
    p.check_known([])
    per = state.balances.get(ctx.account) or {}
    if not per:
        acct = state.get(ctx.account, "account")
        per = {(acct or {}).get("default_currency") or "usd":
               {"available": 0, "pending": 0, "connect_reserved": 0}}
    currencies = sorted(per)
    return {
        "available": [{"amount": per[c]["available"], "currency": c,
                       "source_types": {"card": per[c]["available"]}} for c in currencies],
        "connect_reserved": [{"amount": per[c].get("connect_reserved", 0), "currency": c} for c in currencies],
        "livemode": False, "object": "balance",
        "pending": [{"amount": per[c]["pending"], "currency": c,
                     "source_types": {"card": per[c]["pending"]}} for c in currencies],
    }


def retrieve_balance_transaction(state: SandboxState, ctx: Ctx, p: Params, txn_id: str) -> dict[str, Any]:
    txn = state.get(txn_id, "balance_transaction", ctx.account)
    if txn is None:
        raise missing("balance transaction", txn_id)
    return expand(state, txn, p)


def list_balance_transactions(state: SandboxState, ctx: Ctx, p: Params) -> dict[str, Any]:
    p.check_known(["limit", "starting_after", "ending_before", "created", "type", "payout", "currency",
                   "source"])
    kind = p.str("type")
    payout = p.str("payout")
    currency = p.currency(required=False)
    source = p.str("source")
    index: OrderedIndex | None
    if payout:
        po = state.get(payout, "payout", ctx.account)
        if po is None:
            raise missing("payout", payout, param="payout", status=400)
        index = OrderedIndex()
        for txn_id in state.payout_txns.get(payout, []):
            index.add(state.sort_key[txn_id], txn_id)
    elif kind:
        index = state.indexes.get(("txn_type", ctx.account, kind))
    else:
        index = state.indexes.get(("txn", ctx.account))
    checks = []
    if payout and kind:
        checks.append(lambda t: t["type"] == kind)
    if currency:
        checks.append(lambda t: t["currency"] == currency)
    if source:
        checks.append(lambda t: t["source"] == source)
    pred = (lambda oid: all(c(state.objects[oid]) for c in checks)) if checks else None
    return list_objects(state, p, url="/v1/balance_transactions", kind="balance_transaction",
                        index=index, predicate=pred)
