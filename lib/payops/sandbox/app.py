"""The sandbox's ASGI app: Stripe's ``/v1`` API as stripe-python v16 uses it, plus a control plane.

Stripe API (form-encoded bodies, JSON answers, ``Authorization: Bearer sk_test_…|rk_test_…``,
``Stripe-Account``, ``Idempotency-Key``; every answer carries ``Request-Id``)::

    POST/GET      /v1/transfers                 GET/POST /v1/transfers/{id}
    POST/GET      /v1/transfers/{id}/reversals  GET      /v1/transfers/{id}/reversals/{rid}
    GET           /v1/balance                   GET      /v1/balance_transactions[/{id}]
    GET           /v1/accounts[/{id}]           GET      /v1/account
    POST          /v1/accounts                  POST/DELETE /v1/accounts/{id}        (connect.py)
    POST/GET      /v1/payment_intents           GET/POST /v1/payment_intents/{id}    (payments.py)
    POST          /v1/payment_intents/{id}/confirm          POST /v1/payment_intents/{id}/cancel
    GET           /v1/charges[/{id}]                                                 (charges.py)
    GET           /v1/disputes[/{id}]           POST     /v1/disputes/{id}/close     (disputes.py)
    POST/GET      /v1/payouts                   GET      /v1/payouts/{id}   POST /v1/payouts/{id}/cancel
    POST/GET      /v1/checkout/sessions         GET      /v1/checkout/sessions/{id}  (checkout.py)
    POST          /v1/checkout/sessions/{id}/expire
    GET           /v1/events[/{id}]
    POST/GET      /v1/webhook_endpoints         GET/POST/DELETE /v1/webhook_endpoints/{id}

Control plane (no auth, loopback clients only; JSON in, JSON out)::

    GET    /_sandbox/ping                 liveness ({"ok": true})
    POST   /_sandbox/reset                {"seed": "demo"|"rehearsal"|"none"} — wipe everything
                                          (objects, keys, clock offset, idempotency, faults → start-up)
    POST   /_sandbox/seed                 {"seed": …} — reload the Stripe objects from a seed, keeping
                                          faults, the clock, extra keys and webhook endpoints
    GET    /_sandbox/state                full dump (the same JSON as the --state file)
    GET    /_sandbox/clock                {"now", "offset", "real"}
    POST   /_sandbox/clock/advance        {"seconds": N} — move the sandbox clock forward
    GET    /_sandbox/faults               the live fault configuration (see faults.py)
    POST   /_sandbox/faults               merge knobs; DELETE /_sandbox/faults restores start-up
    GET    /_sandbox/keys                 keys and permissions
    POST   /_sandbox/keys                 {"key": "rk_test_x", "permissions": {"transfers": "write"}}
    DELETE /_sandbox/keys/{key}
    GET    /_sandbox/webhooks             endpoints with their secrets
    POST   /_sandbox/webhooks             {"url", "enabled_events": ["*"], "secret": "whsec_…"}
                                          (secret defaults to demo_data.WEBHOOK_SECRET)
    DELETE /_sandbox/webhooks             remove every endpoint
    GET    /_sandbox/webhooks/deliveries  recent delivery attempts; "outstanding": deliveries not yet done
                                          or given up (queued, delayed or awaiting a retry)
    GET    /_sandbox/accounts             connected accounts
    POST   /_sandbox/accounts             {"id": "acct_…", "name", "email", "country",
                                          "default_currency", "charges_enabled", "payouts_enabled",
                                          "transfers": "active"|"inactive", "metadata",
                                          "payout_interval"} — create, or modify (emits account.updated);
                                          {"id", "onboarding": "complete"|"incomplete"} (or charges_enabled
                                          and payouts_enabled true) completes onboarding: requirements
                                          cleared, transfers capability active, details_submitted
    POST   /_sandbox/disputes             {"charge": "ch_…", "reason": "fraudulent", "amount"?, "inquiry"?}
                                          opens a dispute du_… (charge.dispute.created, funds_withdrawn);
                                          {"dispute": "du_…", "status": "won"|"lost"|"warning_closed"}
                                          closes it (charge.dispute.closed) — see disputes.py
    POST   /_sandbox/fund                 {"amount": 100000, "currency": "cad", "account"?, "pending"?}
    GET    /_sandbox/requests[/{req_id}]  the last 1,000 API requests (request_log_url points here)
    POST   /_sandbox/checkout/pay         {"session": "cs_…", "payment_method": "pm_card_visa"} — the
                                          customer pays on the hosted page (see checkout.py)
    POST   /_sandbox/checkout/sessions    {"sessions": [{"created", "amount", "currency", "status", …}]}
                                          books sessions made in the past (history)

Every event (transfer.*, payout.*, account.updated, payment_intent.*, charge.*, charge.dispute.*)
is delivered to the webhook endpoints subscribed to it, signed like Stripe (see webhooks.py), so
``stripe.Webhook.construct_event`` accepts it. Money moves: transfers.py, payouts.py, charges.py.
Confirming a PaymentIntent needs ``payment_method_types[]=card``, ``automatic_payment_methods
[allow_redirects]=never`` or a ``return_url`` — real Stripe refuses it otherwise, and so does the sandbox.

A "lost response" fault commits the write, then aborts the TCP connection before any byte of the
answer is sent (the outer ASGI wrapper reaches uvicorn's transport), so the client sees a
connection error exactly like a reply lost on the network.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import re
from collections.abc import AsyncIterator, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from payops.sandbox import accounts, charges, checkout, connect, disputes, events, payments, payouts, transfers
from payops.sandbox.api_errors import StripeAPIError
from payops.sandbox.auth import authenticate, authorize, redact
from payops.sandbox.context import Ctx, new_request_id
from payops.sandbox.control import control_routes
from payops.sandbox.forms import Params, canonical, decode_form
from payops.sandbox.runtime import Sandbox
from payops.sandbox.state import API_VERSION, IDEMPOTENCY_TTL, PLATFORM

log = logging.getLogger(__name__)
DROP_KEY = "payops.sandbox.drop_connection"
Handler = Callable[..., dict[str, Any]]

# (method, path regex, handler, permission resource, access)
ROUTES: list[tuple[str, str, Handler, str, str]] = [
    ("POST", r"/v1/transfers", transfers.create_transfer, "transfers", "write"),
    ("GET", r"/v1/transfers", transfers.list_transfers, "transfers", "read"),
    ("GET", r"/v1/transfers/([^/]+)", transfers.retrieve_transfer, "transfers", "read"),
    ("POST", r"/v1/transfers/([^/]+)", transfers.update_transfer, "transfers", "write"),
    ("POST", r"/v1/transfers/([^/]+)/reversals", transfers.create_reversal, "transfers", "write"),
    ("GET", r"/v1/transfers/([^/]+)/reversals", transfers.list_reversals, "transfers", "read"),
    ("GET", r"/v1/transfers/([^/]+)/reversals/([^/]+)", transfers.retrieve_reversal, "transfers", "read"),
    ("GET", r"/v1/balance", accounts.retrieve_balance, "balance", "read"),
    ("GET", r"/v1/balance_transactions", accounts.list_balance_transactions, "balance_transactions", "read"),
    ("GET", r"/v1/balance_transactions/([^/]+)", accounts.retrieve_balance_transaction,
     "balance_transactions", "read"),
    ("GET", r"/v1/accounts", accounts.list_accounts, "accounts", "read"),
    ("GET", r"/v1/accounts/([^/]+)", accounts.retrieve_account, "accounts", "read"),
    ("GET", r"/v1/account", accounts.retrieve_account, "accounts", "read"),
    ("POST", r"/v1/accounts", connect.create_account, "accounts", "write"),
    ("POST", r"/v1/accounts/([^/]+)", connect.update_account, "accounts", "write"),
    ("DELETE", r"/v1/accounts/([^/]+)", connect.delete_account, "accounts", "write"),
    ("POST", r"/v1/payment_intents", payments.create_payment_intent, "payment_intents", "write"),
    ("GET", r"/v1/payment_intents", payments.list_payment_intents, "payment_intents", "read"),
    ("GET", r"/v1/payment_intents/([^/]+)", payments.retrieve_payment_intent, "payment_intents", "read"),
    ("POST", r"/v1/payment_intents/([^/]+)", payments.update_payment_intent, "payment_intents", "write"),
    ("POST", r"/v1/payment_intents/([^/]+)/confirm", payments.confirm_payment_intent, "payment_intents", "write"),
    ("POST", r"/v1/payment_intents/([^/]+)/cancel", payments.cancel_payment_intent, "payment_intents", "write"),
    ("GET", r"/v1/charges", charges.list_charges, "charges", "read"),
    ("GET", r"/v1/charges/([^/]+)", charges.retrieve_charge, "charges", "read"),
    ("GET", r"/v1/disputes", disputes.list_disputes, "disputes", "read"),
    ("GET", r"/v1/disputes/([^/]+)", disputes.retrieve_dispute, "disputes", "read"),
    ("POST", r"/v1/disputes/([^/]+)/close", disputes.close, "disputes", "write"),
    ("POST", r"/v1/payouts", payouts.create_payout, "payouts", "write"),
    ("GET", r"/v1/payouts", payouts.list_payouts, "payouts", "read"),
    ("GET", r"/v1/payouts/([^/]+)", payouts.retrieve_payout, "payouts", "read"),
    ("POST", r"/v1/payouts/([^/]+)/cancel", payouts.cancel_payout, "payouts", "write"),
    ("POST", r"/v1/checkout/sessions", checkout.create_session, "checkout_sessions", "write"),
    ("GET", r"/v1/checkout/sessions", checkout.list_sessions, "checkout_sessions", "read"),
    ("GET", r"/v1/checkout/sessions/([^/]+)", checkout.retrieve_session, "checkout_sessions", "read"),
    ("POST", r"/v1/checkout/sessions/([^/]+)/expire", checkout.expire_endpoint, "checkout_sessions", "write"),
    ("GET", r"/v1/events", events.list_events, "events", "read"),
    ("GET", r"/v1/events/([^/]+)", events.retrieve_event, "events", "read"),
    ("POST", r"/v1/webhook_endpoints", events.create_endpoint, "webhook_endpoints", "write"),
    ("GET", r"/v1/webhook_endpoints", events.list_endpoints, "webhook_endpoints", "read"),
    ("GET", r"/v1/webhook_endpoints/([^/]+)", events.retrieve_endpoint, "webhook_endpoints", "read"),
    ("POST", r"/v1/webhook_endpoints/([^/]+)", events.update_endpoint, "webhook_endpoints", "write"),
    ("DELETE", r"/v1/webhook_endpoints/([^/]+)", events.delete_endpoint, "webhook_endpoints", "write"),
]
_COMPILED: dict[str, list[tuple[re.Pattern[str], Handler, str, str]]] = {}
for _m, _p, _h, _r, _a in ROUTES:
    _COMPILED.setdefault(_m, []).append((re.compile(_p + r"/?"), _h, _r, _a))


def _match(method: str, path: str) -> tuple[Handler, str, str, tuple[str, ...]]:
    for regex, handler, resource, access in _COMPILED.get(method, []):
        found = regex.fullmatch(path)
        if found:
            return handler, resource, access, found.groups()
    raise StripeAPIError(404, f"Unrecognized request URL ({method}: {path}). Please see https://stripe.com/docs "
                         "or we can help at https://support.stripe.com/.")


class _Claim:
    """An idempotency key held by the request in flight."""

    def __init__(self, slot: str | None) -> None:
        self.slot = slot
        self.saved = False


class ApiHandler:
    """The /v1 pipeline: auth → rate limit → idempotency → latency → 500s → handler → lost reply."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sb = sandbox

    async def __call__(self, request: Request) -> Response:
        sb = self.sb
        rid = new_request_id()
        method, path = request.method, request.url.path
        headers = {"Request-Id": rid, "Stripe-Version": API_VERSION}
        claim = _Claim(None)
        key = ""
        status = 500
        idem = request.headers.get("idempotency-key")
        try:
            sb.state.tick()
            with sb.state.lock:
                key, info = authenticate(sb.state.keys, request.headers.get("authorization"))
                account = request.headers.get("stripe-account") or PLATFORM
                if sb.state.get(account, "account") is None:
                    raise StripeAPIError(403, f"The provided key '{redact(key)}' does not have access to "
                                         f"account '{account}' (or that account does not exist). "
                                         "Application access may have been revoked.", code="account_invalid")
                handler, resource, access, args = _match(method, path)
                authorize(key, info, resource, access, account)
            wait = sb.faults.rate_limited(key)
            if wait is not None:
                raise StripeAPIError(
                    429, "Too many requests hit the API too quickly. We recommend an exponential backoff of "
                    "your requests.", code="rate_limit",
                    headers={"Retry-After": str(max(1, round(wait))), "Stripe-Should-Retry": "true"})
            raw = await request.body() if method == "POST" else request.url.query.encode()
            params = Params(decode_form(raw))
            if method == "POST" and idem:
                headers["Idempotency-Key"] = idem
                replay = self._claim(claim, account, idem, method, path, raw, headers)
                if replay is not None:
                    status = replay.status_code
                    return replay
            delay = sb.faults.delay_seconds()
            if delay > 0:
                await asyncio.sleep(delay)
            if sb.faults.should_fail(method, path):
                raise StripeAPIError(500, "An unknown error occurred (injected by the payops sandbox).",
                                     type="api_error")
            ctx = Ctx(request_id=rid, account=account, api_key=key,
                      idempotency_key=idem if method == "POST" else None, faults=sb.faults)
            with sb.state.lock:
                payload = handler(sb.state, ctx, params, *args)
                body = json.dumps(payload).encode()
                if claim.slot is not None:
                    self._save(claim, 200, body, rid)
                lost = method != "GET" and sb.faults.take_lost_response(method, path)
            if lost:
                request.scope[DROP_KEY] = True
                log.warning("fault lost_response: %s %s committed (%s), dropping the connection", method, path,
                            rid)
            status = 200
            return Response(body, 200, headers=headers, media_type="application/json")
        except StripeAPIError as err:
            status = err.status
            headers.update(err.headers)
            log_url = f"{request.url.scheme}://{request.url.netloc}/_sandbox/requests/{rid}"
            body = json.dumps(err.body(log_url)).encode()
            if claim.slot is not None and err.save_idempotent:
                with sb.state.lock:
                    self._save(claim, err.status, body, rid)
            return Response(body, err.status, headers=headers, media_type="application/json")
        except Exception:
            log.exception("sandbox error on %s %s (%s)", method, path, rid)
            status = 500
            err = StripeAPIError(500, "An unexpected error occurred in the payops sandbox; see its log.",
                                 type="api_error")
            return Response(json.dumps(err.body()).encode(), 500, headers=headers, media_type="application/json")
        finally:
            if claim.slot is not None and not claim.saved:
                with sb.state.lock:
                    sb.state.idempotency.pop(claim.slot, None)
            sb.log_request(rid, method, path, status, key, idem)

    def _claim(self, claim: _Claim, account: str, idem: str, method: str, path: str, raw: bytes,
               headers: dict[str, str]) -> Response | None:
        state = self.sb.state
        digest = hashlib.sha256(repr(canonical(raw)).encode()).hexdigest()
        slot = f"{account}|{idem}"
        with state.lock:
            rec = state.idempotency.get(slot)
            if rec is not None and rec["expires"] <= state.now():
                state.idempotency.pop(slot)
                rec = None
            if rec is None:
                state.idempotency[slot] = {"state": "in_flight", "method": method, "path": path,
                                           "params": digest, "expires": state.now() + IDEMPOTENCY_TTL}
                claim.slot = slot
                return None
            if rec["state"] == "in_flight":
                raise StripeAPIError(
                    409, "There is currently another in-progress request using this Idempotent Key (that "
                    "probably means you submitted twice, and the other request is still going through): "
                    f"{idem}. Please try again later.", type="idempotency_error", code="idempotency_key_in_use")
            if rec["method"] != method or rec["path"] != path:
                raise StripeAPIError(
                    400, "Keys for idempotent requests can only be used for the same endpoint they were first "
                    f"used for ('{rec['path']}' vs '{path}'). Try using a key other than '{idem}' if you meant "
                    "to execute a different request.", type="idempotency_error")
            if rec["params"] != digest:
                raise StripeAPIError(
                    400, "Keys for idempotent requests can only be used with the same parameters they were "
                    f"first used with. Try using a key other than '{idem}' if you meant to execute a "
                    "different request.", type="idempotency_error")
            headers["Idempotent-Replayed"] = "true"
            headers["Original-Request"] = rec["request_id"]
            return Response(rec["body"].encode(), rec["status"], headers=headers, media_type="application/json")

    def _save(self, claim: _Claim, status: int, body: bytes, rid: str) -> None:
        rec = self.sb.state.idempotency.get(claim.slot or "")
        if rec is not None:
            rec.update(state="done", status=status, body=body.decode(), request_id=rid)
            claim.saved = True
            self.sb.state.dirty = True


class DropConnection:
    """Outer ASGI wrapper: when a handler marked the request, abort the TCP connection unanswered."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def guarded_send(message: Message) -> None:
            if scope.get(DROP_KEY):
                if message["type"] == "http.response.start":
                    await _abort(send, message)
                return
            await send(message)

        await self.app(scope, receive, guarded_send)


async def _abort(send: Send, start: Message) -> None:
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    if transport is not None:
        transport.abort()
        await asyncio.sleep(0)  # let the server notice the disconnect
        return
    # Not uvicorn's h11/httptools cycle: send the headers and stop mid-body; the server then closes.
    log.warning("lost_response: server transport not reachable; truncating the response instead")
    headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
    await send({**start, "headers": [*headers, (b"content-length", b"1048576")]})


def create_app(sandbox: Sandbox | None = None) -> ASGIApp:
    """The ASGI app; its lifespan starts the webhook sender and the ticker, and saves on exit."""
    sb = sandbox or Sandbox()
    api = ApiHandler(sb)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        sb.start_background()
        try:
            yield
        finally:
            sb.stop_background()

    routes = [Route("/v1/{rest:path}", api.__call__, methods=["GET", "POST", "DELETE"]),
              *control_routes(sb)]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.sandbox = sb
    wrapped = DropConnection(app)
    wrapped.sandbox = sb  # type: ignore[attr-defined]
    return wrapped


__all__ = ["ROUTES", "ApiHandler", "create_app", "new_request_id"]
