"""The webhook receiver and cycle trigger as one Starlette app (served by ``payops webhooks serve``).

Routes:

- ``POST /stripe/webhook`` — a Stripe event (see :mod:`payops.webhooks.receiver`): 200 ``processed`` /
  ``ignored`` / ``duplicate``; 400 unsigned, forged, stale, unparsable or wrong-mode; 413 over 1 MiB;
  500 when handling failed (nothing recorded: Stripe delivers again).
- ``POST /cron/payout-cycle`` — start a payout cycle (see :mod:`payops.webhooks.trigger`): 202
  accepted; 400 bad body (the field is named); 401 missing/wrong bearer token; 409 a cycle triggered
  here is still running; 503 CRON_SECRET_KEY unset (the trigger is disabled, never open).
- ``GET /healthz`` — 200 ``{"ok": true}``.
- ``GET /metrics`` — the monitoring figures for Prometheus (:mod:`payops.monitor.metrics`).

Every error answer is one line of JSON: ``{"error": "..."}``.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from datetime import date

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from payops.config import Settings, get_settings
from payops.errors import ParamsInvalid
from payops.webhooks.receiver import WebhookReceiver
from payops.webhooks.trigger import TriggerRunner, bearer_matches, default_trigger, parse_body

log = logging.getLogger(__name__)
MAX_PAYLOAD_BYTES = 1024 * 1024
MAX_TRIGGER_BODY_BYTES = 16 * 1024


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def create_app(
    settings: Settings | None = None,
    *,
    trigger: Callable[[date | None, bool], str] | None = None,
) -> Starlette:
    """The receiver app. Raises ConfigError when STRIPE_WEBHOOK_SECRET is unset (never serve unverified).

    ``trigger(cycle_date, live)`` starts a payout cycle; by default
    ``payops.cycle.runbook.run_cycle_runbook(cycle_date, live=live, settings=settings, trigger="http")``,
    imported only when a cycle is triggered.
    """
    settings = settings or get_settings()
    receiver = WebhookReceiver(settings)
    if settings.stripe_secret_key is None:
        log.warning("STRIPE_SECRET_KEY is not set: payout.* events will fail (500) until it is")
    runner = TriggerRunner(trigger or default_trigger(settings))

    async def stripe_webhook(request: Request) -> Response:
        payload = await request.body()
        if len(payload) > MAX_PAYLOAD_BYTES:
            return _error(413, f"payload over {MAX_PAYLOAD_BYTES} bytes")
        reply = await run_in_threadpool(receiver.process, payload, request.headers.get("stripe-signature"))
        return JSONResponse(reply.body, status_code=reply.status)

    async def payout_cycle(request: Request) -> Response:
        secret = settings.cron_secret_key.get_secret_value() if settings.cron_secret_key else ""
        if not secret:
            return _error(503, "trigger disabled: CRON_SECRET_KEY is not set")
        if not bearer_matches(request.headers.get("authorization"), secret):
            log.warning("payout cycle trigger refused: missing or wrong bearer token (from %s)",
                        request.client.host if request.client else "?")
            return _error(401, "missing or wrong bearer token", {"WWW-Authenticate": 'Bearer realm="payops"'})
        raw = await request.body()
        if len(raw) > MAX_TRIGGER_BODY_BYTES:
            return _error(413, f"body over {MAX_TRIGGER_BODY_BYTES} bytes")
        try:
            req = parse_body(raw)
        except ParamsInvalid as exc:
            return _error(400, str(exc))
        record = runner.start(req)
        if record is None:
            return _error(409, "a payout cycle triggered over HTTP is still running in this process")
        return JSONResponse({"accepted": True, "cycle_date": record["cycle_date"], "dry_run": req.dry_run,
                             "live": req.live, "trigger": "http", "requested_at": record["requested_at"]},
                            status_code=202)

    async def healthz(_request: Request) -> Response:
        return JSONResponse({"ok": True})

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        yield
        if runner.busy:  # a graceful shutdown lets a cycle in progress finish (its steps are resumable anyway)
            log.warning("shutting down: waiting for the payout cycle triggered over HTTP to finish")
            await run_in_threadpool(runner.join)

    from payops.monitor.metrics import metrics_endpoint, registry

    app = Starlette(lifespan=lifespan, routes=[
        Route("/stripe/webhook", stripe_webhook, methods=["POST"]),
        Route("/cron/payout-cycle", payout_cycle, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/metrics", metrics_endpoint(registry(lambda: settings)), methods=["GET"]),
    ])
    app.state.settings = settings
    app.state.receiver = receiver
    app.state.trigger_runner = runner
    return app
