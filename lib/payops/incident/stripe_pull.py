"""What the triage reads from Stripe over a window, pulled in parallel like the reconciliation.

Checkout Sessions and events are listed by ``created`` time slices through :func:`payops.stripe_pager.pull_window`
(threads, one shared pacer under the rate limit, backoff on 429/5xx; one slice per thread to start with, a running
one split when a thread runs out — so a dense minute or a sparse week plan the same), with the platform key
(``STRIPE_SECRET_KEY``, read access is enough; the live actions need Checkout Sessions write). Sessions the
window does not hold (a Redis key naming an older session) are retrieved by id, a 404 kept as ``None``.

Lists go through the SDK's ``raw_request`` (the same key, base address, error classes and retries): a page of
100 sessions is then parsed JSON, not 100 ``StripeObject`` trees — measured 7× less CPU per page, which is what
lets the parallel pull reach the rate limit (``bench/bench_incident_pull.py``).

The triage's "now" is Stripe's: this host's clock against Stripe itself; against the sandbox, the sandbox's
clock (``GET /_sandbox/clock``) — a rehearsal may move it forward, and the windows must follow the objects.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import stripe

from payops.config import Settings
from payops.stripe_api import make_client
from payops.stripe_pager import DEFAULT_MAX_RPS, ClientFactory, PullStats, _Puller, pull_window

EVENT_TYPES = ("payment_intent.succeeded", "payment_intent.payment_failed", "payment_intent.created",
               "checkout.session.completed", "checkout.session.expired")
THREADS = 16  # enough requests in flight to fill the rate limit over Stripe's latency; the pacer caps the rate


def stripe_now(settings: Settings) -> datetime:
    """Now on the clock Stripe's objects are stamped with (see the module docstring)."""
    if settings.uses_stripe_api:
        return datetime.now(UTC)
    import httpx

    try:
        resp = httpx.get(settings.stripe_api_base.rstrip("/") + "/_sandbox/clock", timeout=2)
        return datetime.fromtimestamp(float(resp.json()["now"]), UTC)
    except (httpx.HTTPError, ValueError, KeyError, TypeError):
        return datetime.now(UTC)  # a Stripe-compatible base without the sandbox's clock: this host's


def client_factory(settings: Settings) -> ClientFactory:
    """One SDK client per pulling thread; the pager retries, so the client itself does not."""
    return lambda: make_client(settings=settings, purpose="platform", max_network_retries=0)


def _bar(desc: str, progress: bool) -> Any:
    from tqdm import tqdm

    return tqdm(desc=desc, unit="obj", disable=not progress, leave=True, file=sys.stdout, delay=2.0,
                mininterval=1.0 if sys.stdout.isatty() else 10.0)


class StripeWindow:
    """The Stripe side of one triage: sessions and events over ``[lo, hi)`` (unix seconds)."""

    def __init__(self, settings: Settings, *, factory: ClientFactory | None = None, threads: int = THREADS,
                 max_rps: float | None = DEFAULT_MAX_RPS, progress: bool = True) -> None:
        self.factory = factory or client_factory(settings)
        self.threads, self.max_rps, self.progress = threads, max_rps, progress
        self.stats = PullStats()

    def sessions(self, lo: int, hi: int, *, status: str | None = None) -> list[dict[str, Any]]:
        """Checkout Sessions created in ``[lo, hi)`` (one ``status`` only, if given), newest first."""
        params: dict[str, Any] = {"status": status} if status else {}
        return pull_window(self.factory, lambda c, p: c.raw_request("get", "/v1/checkout/sessions", **p), params,
                           lo, hi, slices=self.threads, threads=self.threads, max_rps=self.max_rps,
                           bar=_bar("checkout sessions", self.progress), stats=self.stats)

    def events(self, lo: int, hi: int, types: Iterable[str] = EVENT_TYPES) -> list[dict[str, Any]]:
        """Events of ``types`` created in ``[lo, hi)``, newest first."""
        params = {"types": list(types)}
        return pull_window(self.factory, lambda c, p: c.raw_request("get", "/v1/events", **p), params, lo, hi,
                           slices=self.threads, threads=self.threads, max_rps=self.max_rps,
                           bar=_bar("stripe events", self.progress), stats=self.stats)

    def retrieve_sessions(self, ids: Iterable[str]) -> dict[str, dict[str, Any] | None]:
        """``GET /v1/checkout/sessions/{id}`` for each id (404 → None); other errors raise."""
        puller = _Puller(self.factory, self.max_rps, self.stats, None)

        def one(cs_id: str) -> tuple[str, dict[str, Any] | None]:
            try:
                return cs_id, puller.call(lambda c: c.v1.checkout.sessions.retrieve(cs_id))
            except stripe.InvalidRequestError as exc:
                if exc.http_status == 404:
                    return cs_id, None
                raise

        wanted = sorted(set(ids))
        if not wanted:
            return {}
        with ThreadPoolExecutor(max_workers=min(self.threads, len(wanted)), thread_name_prefix="cs-ids") as pool:
            return dict(pool.map(one, wanted))
