"""Stripe pull benchmark: the parallel recon pull vs the SDK's serial ``auto_paging_iter``, same run.

20,000 transfers are booked straight into a sandbox's state (not timed), then both pulls run with
150 ms injected latency and a 25 req/s rate limit. Prints objects/s, the speed-up and the share of
what the rate limit allows (25 req/s × 100 objects/page = 2,500 objects/s); writes
``bench/results/recon_pull.json``. Targets: ≥ 3.5x serial, ≥ 90% of the limit.
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path
from typing import Any

from payops.reconcile.load_stripe import PullStats, pull_transfers
from payops.sandbox.testing import start_sandbox
from payops.sandbox.transfers import record_transfer

N = 20_000
LATENCY_MS = 150
RATE = 25
THREADS = 8
SLICES = 8
OUT = Path(__file__).resolve().parent / "results" / "recon_pull.json"


def main() -> dict[str, Any]:
    sb = start_sandbox(seed="none", rate_limit=0)
    try:
        sb.control("POST", "accounts", {"id": "acct_bench", "payout_interval": "manual"})
        hi = int(time.time()) // 86_400 * 86_400
        lo = hi - 80 * 86_400
        rng = random.Random(1)
        with sb.sandbox.state.lock:
            for i in range(N):
                record_transfer(sb.sandbox.state, amount=100 + i, currency="cad", destination="acct_bench",
                                created=rng.randrange(lo, hi), metadata={"ledger_payout_id": f"lp-{i}"})
            sb.sandbox.state.unswept.clear()
        sb.set_faults(latency_ms=LATENCY_MS, rate_limit=RATE)
        time.sleep(1.5)  # a full token bucket for each pass

        client = sb.client(max_network_retries=5)
        t0 = time.perf_counter()
        first = client.v1.transfers.list(params={"limit": 100, "created": {"gte": lo, "lt": hi}})
        serial_ids = [t.id for t in first.auto_paging_iter()]
        serial_s = time.perf_counter() - t0
        time.sleep(1.5)

        stats = PullStats()
        t0 = time.perf_counter()
        got = pull_transfers(sb.client, lo, hi, slices=SLICES, threads=THREADS, max_rps=RATE, progress=False,
                             stats=stats)
        parallel_s = time.perf_counter() - t0
    finally:
        sb.stop()
    ids = [t["id"] for t in got]
    assert len(ids) == len(set(ids)) == len(serial_ids) == N and set(ids) == set(serial_ids), "pull is wrong"
    limit = RATE * 100
    result = {
        "objects": N, "latency_ms": LATENCY_MS, "rate_limit_rps": RATE, "threads": THREADS, "slices": SLICES,
        "serial_seconds": round(serial_s, 2), "serial_objects_per_s": round(N / serial_s, 1),
        "parallel_seconds": round(parallel_s, 2), "parallel_objects_per_s": round(N / parallel_s, 1),
        "speedup_vs_serial": round(serial_s / parallel_s, 2),
        "share_of_rate_limit": round(N / parallel_s / limit, 3),
        "parallel_requests": stats.requests, "parallel_retries_429": stats.retries,
        "targets": {"speedup_vs_serial": 3.5, "share_of_rate_limit": 0.9},
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(f"serial   {result['serial_objects_per_s']:>8} obj/s  ({serial_s:.1f} s)")
    print(f"parallel {result['parallel_objects_per_s']:>8} obj/s  ({parallel_s:.1f} s, {stats.requests} requests, "
          f"{stats.retries} retried 429s)")
    print(f"speed-up {result['speedup_vs_serial']}x (target 3.5x) · {result['share_of_rate_limit']:.0%} of the "
          f"{limit} obj/s the rate limit allows (target 90%)")
    return result


if __name__ == "__main__":
    main()
