"""The ``/_sandbox/…`` control plane (documented in :mod:`payops.sandbox.app`)."""

from __future__ import annotations

import ipaddress
import json
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from payops import demo_data
from payops.sandbox import checkout as checkout_mod
from payops.sandbox import disputes as dispute_mod
from payops.sandbox.accounts import MODIFIABLE, add_account, build_account, modify_account
from payops.sandbox.api_errors import StripeAPIError
from payops.sandbox.auth import key_record
from payops.sandbox.events import _check_events, add_endpoint
from payops.sandbox.state import PLATFORM

if TYPE_CHECKING:
    from payops.sandbox.runtime import Sandbox

log = logging.getLogger(__name__)
Endpoint = Callable[[Request], Awaitable[Response]]


class ControlError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _loopback(request: Request) -> bool:
    host = request.client.host if request.client else ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host in ("localhost", "testclient")


def _wrap(fn: Callable[[Request, dict[str, Any]], Any]) -> Endpoint:
    async def endpoint(request: Request) -> Response:
        if not _loopback(request):
            return JSONResponse({"error": "the sandbox control plane answers loopback clients only"}, 403)
        body: dict[str, Any] = {}
        raw = await request.body()
        if raw:
            try:
                body = json.loads(raw)
            except json.JSONDecodeError as exc:
                return JSONResponse({"error": f"invalid JSON body: {exc}"}, 400)
            if not isinstance(body, dict):
                return JSONResponse({"error": "the JSON body must be an object"}, 400)
        try:
            result = fn(request, body)
        except (ControlError, StripeAPIError) as exc:
            return JSONResponse({"error": str(exc)}, getattr(exc, "status", 400))
        except (ValueError, TypeError, KeyError) as exc:
            return JSONResponse({"error": f"{type(exc).__name__}: {exc}"}, 400)
        return JSONResponse(result)

    return endpoint


def control_routes(sb: Sandbox) -> list[Route]:
    state = sb.state

    def ping(_r: Request, _b: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True}

    def reset(_r: Request, b: dict[str, Any]) -> dict[str, Any]:
        sb.reset(b.get("seed"))
        return {"ok": True, "seed": b.get("seed") or sb.seed}

    def seed(_r: Request, b: dict[str, Any]) -> dict[str, Any]:
        sb.reseed(b.get("seed"))
        return {"ok": True, "seed": b.get("seed") or sb.seed}

    def dump(_r: Request, _b: dict[str, Any]) -> dict[str, Any]:
        return state.to_json()

    def clock(_r: Request, _b: dict[str, Any]) -> dict[str, Any]:
        import time

        with state.lock:
            return {"now": state.now(), "offset": state.clock_offset, "real": time.time()}

    def advance(r: Request, b: dict[str, Any]) -> dict[str, Any]:
        state.advance_clock(float(b.get("seconds", 0)))
        return clock(r, b)

    def faults(r: Request, b: dict[str, Any]) -> dict[str, Any]:
        if r.method == "DELETE":
            return sb.faults.clear()
        if r.method == "POST":
            return sb.faults.merge(b)
        return sb.faults.to_json()

    def keys(r: Request, b: dict[str, Any]) -> dict[str, Any]:
        with state.lock:
            if r.method == "POST":
                key = str(b["key"])
                state.keys[key] = key_record(key, b.get("permissions"))
                state.dirty = True
            if r.method == "DELETE":
                if state.keys.pop(r.path_params["key"], None) is None:
                    raise ControlError(404, f"no such key {r.path_params['key']!r}")
                state.dirty = True
            return {"keys": state.keys}

    def webhooks(r: Request, b: dict[str, Any]) -> dict[str, Any]:
        with state.lock:
            if r.method == "POST":
                secret = b.get("secret") or demo_data.WEBHOOK_SECRET
                if secret is not None and not str(secret).startswith("whsec_"):
                    raise ControlError(400, "webhook secrets start with whsec_")
                endpoint = add_endpoint(state, url=str(b["url"]), secret=secret,
                                        enabled_events=_check_events(b.get("enabled_events") or ["*"]),
                                        description=b.get("description"))
                return {**endpoint, "secret": state.webhook_secrets[endpoint["id"]]}
            ids = list(getattr(state.indexes.get(("webhook_endpoints",)), "ids", []))
            if r.method == "DELETE":
                for we_id in ids:
                    state.remove(we_id)
                    state.webhook_secrets.pop(we_id, None)
                return {"deleted": ids}
            return {"data": [{**state.objects[i], "secret": state.webhook_secrets[i]} for i in ids]}

    def deliveries(_r: Request, _b: dict[str, Any]) -> dict[str, Any]:
        return {"data": list(sb.webhooks.deliveries), "outstanding": sb.webhooks.outstanding}

    def accounts(r: Request, b: dict[str, Any]) -> dict[str, Any]:
        with state.lock:
            if r.method == "GET":
                ids = getattr(state.indexes.get(("accounts",)), "ids", [])
                return {"data": [state.objects[i] for i in reversed(ids)]}
            acct_id = b.get("id")
            if acct_id and state.get(acct_id, "account") is not None:
                changes = {k: v for k, v in b.items() if k != "id"}
                return modify_account(state, acct_id, changes)
            if not acct_id or not str(acct_id).startswith("acct_"):
                raise ControlError(400, "a new account needs an id starting with acct_")
            unknown = set(b) - {"id", "country", *MODIFIABLE}
            if unknown:
                raise ControlError(400, f"unknown account field(s) {sorted(unknown)}")
            done = b.get("onboarding", "complete") == "complete"
            acct = build_account(
                acct_id, name=b.get("name"), email=b.get("email"), country=b.get("country", "CA"),
                currency=b.get("default_currency", "cad"), created=state.now_int(),
                charges_enabled=bool(b.get("charges_enabled", done)),
                payouts_enabled=bool(b.get("payouts_enabled", done)),
                transfers_active=(b["transfers"] in (True, "active")) if "transfers" in b else None,
                metadata=b.get("metadata"))
            if b.get("payout_interval"):
                acct["settings"]["payouts"]["schedule"]["interval"] = b["payout_interval"]
            return add_account(state, acct)

    def fund(_r: Request, b: dict[str, Any]) -> dict[str, Any]:
        amount = b.get("amount")
        if not isinstance(amount, int) or isinstance(amount, bool) or amount == 0:
            raise ControlError(400, "amount must be a non-zero integer in minor units")
        currency = str(b.get("currency", "")).lower()
        if len(currency) != 3:
            raise ControlError(400, "currency must be a 3-letter ISO code")
        account = b.get("account") or PLATFORM
        with state.lock:
            if state.get(account, "account") is None:
                raise ControlError(404, f"no such account {account!r}")
            pending = bool(b.get("pending", False))
            txn = state.post_txn(account, amount=amount, currency=currency, type="adjustment",
                                 reporting_category="other_adjustment", source=None,
                                 description="Sandbox top-up", status="pending" if pending else "available")
            return {"balance_transaction": txn, "balance": state.balances[account]}

    def disputes(_r: Request, b: dict[str, Any]) -> dict[str, Any]:
        with state.lock:
            return dispute_mod.control(state, b)

    def checkout_pay(_r: Request, b: dict[str, Any]) -> dict[str, Any]:
        from payops.sandbox.context import Ctx, new_request_id

        if not b.get("session") or not b.get("payment_method"):
            raise ControlError(400, "give the session (cs_…) and the payment_method (a Stripe test card)")
        with state.lock:
            ctx = Ctx(request_id=new_request_id(), faults=sb.faults)
            return checkout_mod.pay(state, ctx, str(b["session"]), str(b["payment_method"]))

    def checkout_history(_r: Request, b: dict[str, Any]) -> dict[str, Any]:
        rows = b.get("sessions")
        if not isinstance(rows, list):
            raise ControlError(400, "sessions must be a list of {created, amount, currency, status, …}")
        with state.lock:
            return {"data": checkout_mod.book_history(state, rows)}

    def requests_log(r: Request, _b: dict[str, Any]) -> dict[str, Any]:
        rid = r.path_params.get("rid")
        if rid:
            for entry in sb.requests:
                if entry["id"] == rid:
                    return entry
            raise ControlError(404, f"request {rid} is not in the log (last 1,000 only)")
        return {"data": list(sb.requests)}

    table: list[tuple[str, Callable[[Request, dict[str, Any]], Any], list[str]]] = [
        ("/_sandbox/ping", ping, ["GET"]),
        ("/_sandbox/reset", reset, ["POST"]),
        ("/_sandbox/seed", seed, ["POST"]),
        ("/_sandbox/state", dump, ["GET"]),
        ("/_sandbox/clock", clock, ["GET"]),
        ("/_sandbox/clock/advance", advance, ["POST"]),
        ("/_sandbox/faults", faults, ["GET", "POST", "DELETE"]),
        ("/_sandbox/keys", keys, ["GET", "POST"]),
        ("/_sandbox/keys/{key}", keys, ["DELETE"]),
        ("/_sandbox/webhooks", webhooks, ["GET", "POST", "DELETE"]),
        ("/_sandbox/webhooks/deliveries", deliveries, ["GET"]),
        ("/_sandbox/accounts", accounts, ["GET", "POST"]),
        ("/_sandbox/fund", fund, ["POST"]),
        ("/_sandbox/disputes", disputes, ["POST"]),
        ("/_sandbox/checkout/pay", checkout_pay, ["POST"]),
        ("/_sandbox/checkout/sessions", checkout_history, ["POST"]),
        ("/_sandbox/requests", requests_log, ["GET"]),
        ("/_sandbox/requests/{rid}", requests_log, ["GET"]),
    ]
    return [Route(path, _wrap(fn), methods=methods) for path, fn, methods in table]
