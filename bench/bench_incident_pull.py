"""Incident triage pull benchmark: a busy window of 100,000 Checkout Sessions, the triage's parallel pull (the
reconciliation's pager: time slices in threads under one pacer) vs the SDK's serial ``auto_paging_iter``, same run.

The sandbox runs in its own process, like Stripe is not in the caller's: the sessions are booked straight into its
state there (not timed), all in the last 30 minutes — the triage's default window — then both pulls run with 150 ms
injected latency and a 25 req/s rate limit. The serial SDK listing (``auto_paging_iter``, a ``StripeObject`` per
session) reads the newest ``SERIAL_MAX`` sessions of the window (its rate is per page and steady; reading all
100,000 would take ~10 minutes of the run); the parallel pull reads the whole window. Prints sessions/s, the
speed-up and the share of what the rate limit allows (25 req/s × 100 sessions/page = 2,500 sessions/s); writes
``bench/results/incident_pull.json``. Target: ≥ 90% of the rate limit. ``PAYOPS_BENCH_SESSIONS`` (100000) sets
the size; ``PAYOPS_BENCH_SPIKE`` (0) puts that share of them in one minute of the window (an incident's burst: the
slice that draws the minute is split among the threads), the rest spread evenly.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from itertools import islice
from pathlib import Path
from typing import Any

import httpx

from payops import demo_data
from payops.config import Settings
from payops.incident.stripe_pull import THREADS, StripeWindow
from payops.sandbox.checkout import add_session, build_session, session_id
from payops.sandbox.testing import free_port, start_sandbox

N = int(os.environ.get("PAYOPS_BENCH_SESSIONS", "100000"))
SPIKE = float(os.environ.get("PAYOPS_BENCH_SPIKE", "0"))
LATENCY_MS = 150
RATE = 25
WINDOW = 30 * 60
SERIAL_MAX = 20_000
OUT = Path(__file__).resolve().parent / "results" / "incident_pull.json"


def serve(port: int, n: int, lo: int) -> None:
    """The child process: a sandbox on ``port`` holding ``n`` sessions created over ``[lo, lo + WINDOW)``."""
    sb = start_sandbox(seed="none", port=port, rate_limit=0)
    burst = int(n * SPIKE)
    with sb.sandbox.state.lock:
        for i in range(n):
            created = lo + WINDOW // 3 + i % 60 if i < burst else lo + (i - burst) * WINDOW // (n - burst)
            add_session(sb.sandbox.state, build_session(
                cs_id=session_id(), created=created, expires_at=created + 86400, amount=1000 + i % 5000,
                currency="cad", success_url="https://auctions.example.com/ok", cancel_url=None,
                customer_email=f"bidder{i}@example.com", client_reference_id=None,
                metadata={"auction_id": f"AUC-{i:06d}"}))
    sb.set_faults(latency_ms=LATENCY_MS, rate_limit=RATE)
    print("ready", flush=True)
    sys.stdin.read()  # until the parent closes it
    sb.stop()


def main() -> dict[str, Any]:
    hi = int(time.time())
    lo = hi - WINDOW
    port = free_port()
    child = subprocess.Popen([sys.executable, "-m", "bench.bench_incident_pull", "--serve", str(port), str(N), str(lo)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready", "the sandbox did not start"
        url = f"http://127.0.0.1:{port}"
        assert httpx.get(url + "/_sandbox/ping").status_code == 200
        time.sleep(1.5)  # a full token bucket for each pass
        client = stripe_client(url)
        t0 = time.perf_counter()
        first = client.v1.checkout.sessions.list(params={"limit": 100, "created": {"gte": lo, "lt": hi + 1}})
        serial_ids = [s.id for s in islice(first.auto_paging_iter(), min(N, SERIAL_MAX))]
        serial_s = time.perf_counter() - t0
        time.sleep(1.5)

        settings = Settings(PAYOPS_STRIPE_API_BASE=url, STRIPE_SECRET_KEY=demo_data.PLATFORM_KEY)  # type: ignore[call-arg]
        window = StripeWindow(settings, threads=THREADS, max_rps=RATE, progress=False)
        t0 = time.perf_counter()
        got = window.sessions(lo, hi + 1)
        parallel_s = time.perf_counter() - t0
    finally:
        if child.stdin:
            child.stdin.close()
        child.wait(timeout=60)
    ids = [s["id"] for s in got]
    assert len(ids) == len(set(ids)) == N and set(serial_ids) <= set(ids), "pull is wrong"
    limit = RATE * 100
    serial_n = len(serial_ids)
    result = {
        "sessions": N, "window_seconds": WINDOW, "latency_ms": LATENCY_MS, "rate_limit_rps": RATE, "threads": THREADS,
        "serial_sessions": serial_n, "serial_seconds": round(serial_s, 2),
        "serial_sessions_per_s": round(serial_n / serial_s, 1),
        "parallel_seconds": round(parallel_s, 2), "parallel_sessions_per_s": round(N / parallel_s, 1),
        "speedup_vs_serial": round((N / parallel_s) / (serial_n / serial_s), 2),
        "share_of_rate_limit": round(N / parallel_s / limit, 3),
        "parallel_requests": window.stats.requests, "parallel_retries_429": window.stats.retries,
        "spike_share": SPIKE, "slices": window.stats.slices_pulled, "slices_split": window.stats.slices_split,
        "targets": {"share_of_rate_limit": 0.9},
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(f"serial   {result['serial_sessions_per_s']:>8} sessions/s  ({serial_n:,} sessions in {serial_s:.1f} s)")
    print(f"parallel {result['parallel_sessions_per_s']:>8} sessions/s  ({parallel_s:.1f} s, {window.stats.requests} "
          f"requests, {window.stats.retries} retried 429s, {window.stats.slices_pulled} slices of which "
          f"{window.stats.slices_split} split off running ones)")
    print(f"speed-up {result['speedup_vs_serial']}x · {result['share_of_rate_limit']:.0%} of the {limit} sessions/s "
          "the rate limit allows (target 90%)")
    return result


def stripe_client(url: str) -> Any:
    import stripe

    return stripe.StripeClient(demo_data.PLATFORM_KEY, base_addresses={"api": url}, max_network_retries=8)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve"]:
        serve(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
    else:
        main()
