"""``POST /v1/accounts``, ``POST /v1/accounts/{id}``, ``DELETE /v1/accounts/{id}``: connected accounts.

A new account starts with onboarding incomplete, like Stripe: ``charges_enabled``,
``payouts_enabled`` and ``details_submitted`` are false, ``requirements.currently_due`` (and
``past_due``) list what the account holder must still provide, ``disabled_reason`` is
``requirements.past_due`` and every requested capability is ``inactive``. ``type`` is ``express``,
``custom`` or ``standard`` (or derived from ``controller[stripe_dashboard][type]``: express,
none → custom, full → standard); ``country`` defaults to the platform's, ``default_currency`` to the
country's currency.

The sandbox has no hosted onboarding (Account Links) and does not read KYC fields: complete
onboarding through the control plane — ``POST /_sandbox/accounts {"id": "acct_…", "onboarding":
"complete"}`` (or ``"charges_enabled": true, "payouts_enabled": true``) — which clears the
requirements, activates the transfers capability (and ``card_payments`` when requested), sets
``details_submitted`` and ``tos_acceptance`` and emits ``account.updated`` with
``data.previous_attributes`` (delivered to webhook endpoints like every event).

Update changes email, default currency, business type and profile, metadata (empty value unsets a
key), payout schedule and statement descriptor, requested capabilities and ``tos_acceptance``, and
emits ``account.updated`` (previous values of what changed) when anything changed. Delete removes
the account (test mode allows it at any time); its past transfers, payouts and events stay.
"""

from __future__ import annotations

from typing import Any

from payops.sandbox.accounts import add_account, build_account
from payops.sandbox.api_errors import invalid_param, missing, unknown_param
from payops.sandbox.context import Ctx, expand
from payops.sandbox.forms import Params
from payops.sandbox.state import PLATFORM, SandboxState, clone, random_id

TYPES = ("express", "custom", "standard")
DASHBOARD_TYPE = {"express": "express", "none": "custom", "full": "standard"}
CURRENCY_BY_COUNTRY = {"CA": "cad", "US": "usd", "GB": "gbp", "AU": "aud", "NZ": "nzd", "JP": "jpy",
                       "CH": "chf", "SE": "sek", "NO": "nok", "DK": "dkk", "SG": "sgd", "HK": "hkd",
                       "MX": "mxn", "BR": "brl", "IN": "inr", "PL": "pln"}
EURO = {"AT", "BE", "CY", "DE", "EE", "ES", "FI", "FR", "GR", "HR", "IE", "IT", "LT", "LU", "LV", "MT",
        "NL", "PT", "SI", "SK"}
BUSINESS_TYPES = ("individual", "company", "non_profit", "government_entity")
PROFILE_FIELDS = ("name", "url", "mcc", "product_description", "support_email", "support_phone", "support_url")
INTERVALS = ("manual", "daily", "weekly", "monthly")
UPDATABLE = ["email", "default_currency", "business_type", "business_profile", "metadata", "settings",
             "capabilities", "tos_acceptance"]


def _nested(p: Params, name: str, allowed: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """A hash parameter (``business_profile[url]=…``), refusing keys the sandbox does not know."""
    value = p.data.get(name)
    if value is None or value == "":
        return {}
    if not isinstance(value, dict):
        raise invalid_param(name, f"Invalid hash: {name}")
    for key in value:
        if key not in allowed:
            raise unknown_param(f"{name}[{key}]")
    return value


def _flag(value: Any, param: str) -> bool:
    if value in ("true", "false"):
        return value == "true"
    raise invalid_param(param, f"Invalid boolean: {value}")


def _requested_capabilities(p: Params) -> dict[str, bool]:
    value = p.data.get("capabilities")
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise invalid_param("capabilities", "Invalid hash: capabilities")
    out = {}
    for name, spec in value.items():
        if not isinstance(spec, dict) or set(spec) - {"requested"}:
            raise invalid_param(f"capabilities[{name}]", f"Invalid capabilities[{name}]: pass "
                                f"capabilities[{name}][requested]=true.")
        out[name] = _flag(spec.get("requested"), f"capabilities[{name}][requested]")
    return out


def _payout_settings(p: Params) -> dict[str, Any]:
    settings = _nested(p, "settings", ("payouts",))
    payouts = settings.get("payouts") or {}
    if not isinstance(payouts, dict) or set(payouts) - {"schedule", "statement_descriptor"}:
        raise invalid_param("settings[payouts]", "The payops sandbox models settings[payouts][schedule]"
                            "[interval|delay_days] and settings[payouts][statement_descriptor] only.")
    schedule = payouts.get("schedule") or {}
    if not isinstance(schedule, dict) or set(schedule) - {"interval", "delay_days"}:
        raise invalid_param("settings[payouts][schedule]", "Only interval and delay_days are supported.")
    out: dict[str, Any] = {}
    if "interval" in schedule:
        if schedule["interval"] not in INTERVALS:
            raise invalid_param("settings[payouts][schedule][interval]",
                                f"Invalid interval: must be one of {', '.join(INTERVALS)}")
        out["interval"] = schedule["interval"]
    if "delay_days" in schedule:
        raw, name = schedule["delay_days"], "settings[payouts][schedule][delay_days]"
        out["delay_days"] = 2 if raw == "minimum" else Params({name: raw}).int(name, minimum=0)
    if "statement_descriptor" in payouts:
        out["statement_descriptor"] = payouts["statement_descriptor"] or None
    return out


def _set(acct: dict[str, Any], previous: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    """Set a (nested) field, recording its old value in ``previous`` like Stripe's previous_attributes."""
    node = acct
    for key in path[:-1]:
        node = node[key]
    if node.get(path[-1]) == value:
        return
    prev = previous
    for key in path[:-1]:
        prev = prev.setdefault(key, {})
    prev.setdefault(path[-1], clone(node.get(path[-1])))
    node[path[-1]] = value


def _apply(state: SandboxState, acct: dict[str, Any], p: Params, previous: dict[str, Any]) -> None:
    """The fields shared by create and update."""
    if p.has("email"):
        _set(acct, previous, ("email",), p.str("email") or None)
    if p.has("default_currency"):
        _set(acct, previous, ("default_currency",), p.currency("default_currency"))
    if p.has("business_type"):
        kind = p.str("business_type") or None
        if kind is not None and kind not in BUSINESS_TYPES:
            raise invalid_param("business_type", f"Invalid business_type: must be one of {', '.join(BUSINESS_TYPES)}")
        _set(acct, previous, ("business_type",), kind)
    for key, value in _nested(p, "business_profile", PROFILE_FIELDS).items():
        _set(acct, previous, ("business_profile", key), value or None)
        if key == "name":
            _set(acct, previous, ("settings", "dashboard", "display_name"), value or None)
    meta = p.metadata()
    if meta is not None:
        new = {} if meta == {} else {**acct["metadata"], **meta}
        new = {k: v for k, v in new.items() if v != ""}
        if new != acct["metadata"]:
            old = acct["metadata"]
            previous["metadata"] = {k: old.get(k) for k in set(old) | set(new) if old.get(k) != new.get(k)}
            acct["metadata"] = new
    payouts = _payout_settings(p)
    for key in ("interval", "delay_days"):
        if key in payouts:
            _set(acct, previous, ("settings", "payouts", "schedule", key), payouts[key])
    if "statement_descriptor" in payouts:
        _set(acct, previous, ("settings", "payouts", "statement_descriptor"), payouts["statement_descriptor"])
    caps = dict(acct["capabilities"])
    for name, requested in _requested_capabilities(p).items():
        if not requested:
            caps.pop(name, None)
        elif name not in caps:
            usable = acct["details_submitted"] and (name != "card_payments" or acct["charges_enabled"])
            caps[name] = "active" if usable else "inactive"
    if caps != acct["capabilities"]:
        previous["capabilities"] = acct["capabilities"]
        acct["capabilities"] = caps
    for key, value in _nested(p, "tos_acceptance", ("date", "ip", "user_agent", "service_agreement")).items():
        if key == "date":
            value = Params({"date": value}).int("date")
        if key != "service_agreement":
            _set(acct, previous, ("tos_acceptance", key), value)


def create_account(state: SandboxState, ctx: Ctx, p: Params) -> dict[str, Any]:
    p.check_known(["type", "country", "controller", *UPDATABLE])
    ctx.require_platform("Connected accounts")
    controller = _nested(p, "controller", ("fees", "losses", "requirement_collection", "stripe_dashboard"))
    dashboard = (controller.get("stripe_dashboard") or {}).get("type") if controller else None
    kind = p.str("type") or DASHBOARD_TYPE.get(str(dashboard), "standard")
    if kind not in TYPES:
        raise invalid_param("type", "Invalid type: must be one of custom, express, or standard")
    platform = state.get(PLATFORM, "account") or {}
    country = (p.str("country") or platform.get("country") or "CA").upper()
    if len(country) != 2 or not country.isalpha():
        raise invalid_param("country", f"Country '{country}' is unknown. Try using a 2-character alphanumeric "
                            "country code instead, such as 'US', 'EG', or 'GB'.")
    currency = CURRENCY_BY_COUNTRY.get(country, "eur" if country in EURO else "usd")
    acct = build_account(random_id("acct", 16), name=None, email=None, country=country, currency=currency,
                         created=state.now_int(), charges_enabled=False, payouts_enabled=False,
                         transfers_active=False, account_type=kind)
    acct["capabilities"] = {}
    acct["business_type"] = None
    acct["business_profile"]["mcc"] = None
    acct["controller"] = _controller(kind, controller)
    _apply(state, acct, p, {})
    add_account(state, acct)
    return expand(state, acct, p)


def _controller(kind: str, given: dict[str, Any]) -> dict[str, Any]:
    """Stripe's ``controller`` hash for an account the platform created."""
    dashboard = {"express": "express", "custom": "none", "standard": "full"}[kind]
    platform_pays = kind != "standard"
    out = {"fees": {"payer": "application" if platform_pays else "account"}, "is_controller": True,
           "losses": {"payments": "application" if platform_pays else "stripe"},
           "requirement_collection": "application" if kind == "custom" else "stripe",
           "stripe_dashboard": {"type": dashboard}, "type": "application"}
    for key in ("fees", "losses", "stripe_dashboard"):
        if isinstance(given.get(key), dict):
            out[key] = {**out[key], **given[key]}
    if given.get("requirement_collection"):
        out["requirement_collection"] = given["requirement_collection"]
    return out


def _connected(state: SandboxState, ctx: Ctx, acct_id: str) -> dict[str, Any]:
    ctx.require_platform("Connected accounts")
    acct = state.get(acct_id, "account")
    if acct is None or acct_id == PLATFORM:
        raise missing("account", acct_id)
    return acct


def update_account(state: SandboxState, ctx: Ctx, p: Params, acct_id: str) -> dict[str, Any]:
    p.check_known(UPDATABLE)
    acct = _connected(state, ctx, acct_id)
    previous: dict[str, Any] = {}
    _apply(state, acct, p, previous)
    state.dirty = True
    if previous:
        state.emit("account.updated", acct, account=acct_id, previous=previous, request_id=ctx.request_id,
                   idempotency_key=ctx.idempotency_key)
    return expand(state, acct, p)


def delete_account(state: SandboxState, ctx: Ctx, p: Params, acct_id: str) -> dict[str, Any]:
    p.check_known([])
    _connected(state, ctx, acct_id)
    state.remove(acct_id)
    state.balances.pop(acct_id, None)
    return {"deleted": True, "id": acct_id, "object": "account"}
