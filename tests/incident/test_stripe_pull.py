"""The triage's Stripe pull against the sandbox, through the SDK: a window with a dense minute in it comes back whole,
once each, newest first — the minute's slice split among the threads — under the pacer, with no 429."""

from __future__ import annotations

import random
import time

from payops import demo_data as dd
from payops.config import Settings
from payops.incident.stripe_pull import StripeWindow
from payops.sandbox.checkout import add_session, build_session, session_id
from payops.sandbox.testing import RunningSandbox, start_sandbox


def _book(sb: RunningSandbox, created: list[int]) -> None:
    with sb.sandbox.state.lock:
        for i, at in enumerate(created):
            add_session(sb.sandbox.state, build_session(
                cs_id=session_id(), created=at, expires_at=at + 86_400, amount=1_000 + i, currency="cad",
                success_url="https://auctions.example.com/ok", cancel_url=None, customer_email=f"b{i}@example.com",
                client_reference_id=None, metadata={"auction_id": f"AUC-{i:06d}"}))


def test_a_dense_minute_in_a_day_comes_back_whole_split_and_paced() -> None:
    rng = random.Random(23)
    hi = int(time.time()) - 600
    lo = hi - 86_400
    spike = lo + 50_000
    created = [spike + rng.randrange(60) for _ in range(1_400)] + [lo + rng.randrange(86_400) for _ in range(150)]
    created += [lo - 1, lo, hi - 1, hi]  # on the window's edges: half-open, lo in, hi out
    with start_sandbox(seed="none", rate_limit=0) as sb:
        _book(sb, created)
        sb.set_faults(latency_ms=30, rate_limit=25)
        settings = Settings(PAYOPS_STRIPE_API_BASE=sb.url, STRIPE_SECRET_KEY=dd.PLATFORM_KEY)  # type: ignore[call-arg]
        win = StripeWindow(settings, threads=6, max_rps=25, progress=False)
        got = win.sessions(lo, hi)
        serial = [s.id for s in sb.client().v1.checkout.sessions.list(
            params={"limit": 100, "created": {"gte": lo, "lt": hi}}).auto_paging_iter()]
    ids = [s["id"] for s in got]
    assert len(ids) == len(set(ids)) == len(created) - 2
    assert set(ids) == set(serial)
    assert [s["created"] for s in got] == sorted((s["created"] for s in got), reverse=True)
    assert win.stats.retries == 0, "the pacer let a 429 through"
    assert win.stats.slices_split >= 1, "the dense minute was paged by one thread alone"
    assert win.stats.requests <= len(created) / 100 + win.stats.slices_pulled
