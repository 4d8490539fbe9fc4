"""Benchmark: the Stripe sandbox through the official SDK, against baselines from the same run.

The sandbox runs as its own process (``payops sandbox serve``, as users run it: no injected
latency, rate limit off) so the client and the server each get a core. Measured, sequentially
from one client:

- ``transfers.create``            ``client.v1.transfers.create`` (N_CREATE calls)
- ``transfers.list(limit=100)``   ``client.v1.transfers.list(params={"limit": 100})`` (N_LIST calls)
- baselines: the SDK calling ``GET /_sandbox/ping`` (``raw_request``: the SDK + HTTP + uvicorn +
  Starlette floor), the same create/list through a bare ``requests`` session (server cost without
  the SDK), and the SDK turning an already-fetched 100-transfer list body into objects
  (``deserialize``: the client-side ceiling for list calls, no network).

Results go to ``bench/results/sandbox.json``; ``main()`` returns them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import requests
import stripe
from rich.console import Console
from rich.table import Table

from payops import demo_data
from payops.sandbox.testing import free_port

N_CREATE = 2_000
N_LIST = 500
N_BASE = 2_000
RESULTS = Path(__file__).parent / "results" / "sandbox.json"
TARGET_RPS = 500


def _rate(n: int, fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return n / (time.perf_counter() - start)


def _start_server(port: int) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "payops.sandbox.cli", "serve", "--port", str(port), "--seed", "demo",
           "--rate-limit", "0", "--no-sinks"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/_sandbox/ping", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("sandbox did not start: " + (proc.stderr.read().decode() if proc.stderr else ""))


def _asgi_rate(n: int, method: str, path: str, query: bytes = b"", body: bytes = b"") -> float:
    """The sandbox app alone (ASGI calls in this process: no HTTP, no SDK): its own capacity."""
    import asyncio

    from payops.sandbox.app import create_app
    from payops.sandbox.faults import FaultConfig
    from payops.sandbox.runtime import Sandbox

    app = create_app(Sandbox("demo", faults=FaultConfig(rate_limit=0)))
    headers = [(b"authorization", f"Bearer {demo_data.PLATFORM_KEY}".encode()),
               (b"content-type", b"application/x-www-form-urlencoded"), (b"content-length", str(len(body)).encode())]
    scope = {"type": "http", "http_version": "1.1", "method": method, "path": path, "raw_path": path.encode(),
             "query_string": query, "root_path": "", "scheme": "http", "server": ("127.0.0.1", 1),
             "client": ("127.0.0.1", 2), "headers": headers}

    async def one() -> None:
        sent = False

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return {"type": "http.disconnect"}

        async def send(_message: dict[str, Any]) -> None:
            return None

        await app(dict(scope), receive, send)

    async def run(k: int) -> float:
        start = time.perf_counter()
        for _ in range(k):
            await one()
        return time.perf_counter() - start

    asyncio.run(run(50))
    return n / asyncio.run(run(n))


def main() -> dict[str, Any]:
    create_body = b"amount=10&currency=usd&destination=acct_test_studio_b"
    app_create = _asgi_rate(N_CREATE, "POST", "/v1/transfers", body=create_body)
    app_list = _asgi_rate(N_LIST, "GET", "/v1/transfers", query=b"limit=100")
    port = free_port()
    proc = _start_server(port)
    url = f"http://127.0.0.1:{port}"
    try:
        client = stripe.StripeClient(demo_data.PLATFORM_KEY, base_addresses={"api": url}, max_network_retries=0)
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {demo_data.PLATFORM_KEY}"
        params = {"amount": 10, "currency": "usd", "destination": "acct_test_studio_b"}
        _rate(50, lambda: client.v1.balance.retrieve())  # warm up connections
        baseline_ping = _rate(N_BASE, lambda: client.raw_request("get", "/_sandbox/ping"))
        create = _rate(N_CREATE, lambda: client.v1.transfers.create(params=params))
        raw_create = _rate(N_CREATE // 2, lambda: session.post(url + "/v1/transfers", data=params))
        listing = _rate(N_LIST, lambda: client.v1.transfers.list(params={"limit": 100}))
        raw_list = _rate(N_LIST, lambda: session.get(url + "/v1/transfers", params={"limit": 100}))
        body = client.raw_request("get", "/v1/transfers", limit=100)
        parse_only = _rate(N_LIST, lambda: client.deserialize(body, api_mode="V1"))
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    results: dict[str, Any] = {
        "n_create": N_CREATE, "n_list": N_LIST, "server": "separate process (payops sandbox serve)",
        "sdk_ping_rps": round(baseline_ping, 1),
        "sdk_create_rps": round(create, 1), "raw_create_rps": round(raw_create, 1),
        "sdk_list100_rps": round(listing, 1), "raw_list100_rps": round(raw_list, 1),
        "sdk_list100_parse_only_rps": round(parse_only, 1),
        "app_create_rps": round(app_create, 1), "app_list100_rps": round(app_list, 1),
        "app_meets_target": app_create >= TARGET_RPS and app_list >= TARGET_RPS,
        "ratio_create_vs_ping": round(create / baseline_ping, 3),
        "ratio_list100_vs_ping": round(listing / baseline_ping, 3),
        "ratio_list100_vs_parse_only": round(listing / parse_only, 3),
        "target_rps": TARGET_RPS,
        "create_meets_target": create >= TARGET_RPS, "list100_meets_target": listing >= TARGET_RPS,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    table = Table("measure", "req/s", "vs SDK ping", title=f"Stripe sandbox through stripe {stripe.VERSION}")
    for label, key in (("SDK GET /_sandbox/ping (baseline)", "sdk_ping_rps"),
                       ("SDK transfers.create", "sdk_create_rps"),
                       ("requests POST /v1/transfers", "raw_create_rps"),
                       ("SDK transfers.list(limit=100)", "sdk_list100_rps"),
                       ("requests GET /v1/transfers?limit=100", "raw_list100_rps"),
                       ("SDK deserialize 100 transfers (no I/O)", "sdk_list100_parse_only_rps"),
                       ("sandbox app alone: create (ASGI, no HTTP/SDK)", "app_create_rps"),
                       ("sandbox app alone: list(limit=100)", "app_list100_rps")):
        table.add_row(label, f"{results[key]:.0f}", f"{results[key] / baseline_ping:.2f}")
    Console().print(table)
    Console().print(f"results written to {RESULTS}")
    return results


if __name__ == "__main__":
    main()
