"""Start a sandbox in a background thread and talk to it — for tests, benchmarks and demos.

    with sandbox(seed="demo", rate_limit=0) as sb:
        client = sb.client()                       # stripe.StripeClient pointed at the sandbox
        client.v1.transfers.create(params={...})
        sb.set_faults(lost_response={"POST /v1/transfers": 1})
        sb.advance_clock(3)
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import stripe
import uvicorn

from payops import demo_data
from payops.sandbox.app import create_app
from payops.sandbox.faults import FaultConfig
from payops.sandbox.runtime import Sandbox

log = logging.getLogger(__name__)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def listening_socket(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    """A TCP socket bound to ``host:port`` (0 → a free port) and listening, for ``uvicorn.Server.run(sockets=…)``:
    the port is held from the start, so parallel test workers never race for one ``free_port`` answer.

    ``IPPROTO_TCP`` explicitly: asyncio turns Nagle off (TCP_NODELAY) only on connections whose socket says
    proto 6, and an accepted socket inherits the listener's 0 from ``socket.socket(AF_INET, SOCK_STREAM)`` —
    with Nagle on, every answer (headers, then body) waited ~40 ms for the client's delayed ACK."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


class RunningSandbox:
    """A sandbox served by uvicorn in a daemon thread."""

    platform_key: str = demo_data.PLATFORM_KEY
    fallback_key: str = demo_data.FALLBACK_KEY
    readonly_key: str = demo_data.READONLY_KEY

    def __init__(self, sandbox: Sandbox, server: uvicorn.Server, thread: threading.Thread, url: str) -> None:
        self.sandbox = sandbox
        self.url = url
        self._server = server
        self._thread = thread
        self._http = httpx.Client(base_url=url, timeout=30)

    def client(self, key: str | None = None, **kw: Any) -> stripe.StripeClient:
        """The official SDK pointed at this sandbox; ``kw`` go to ``StripeClient``."""
        kw.setdefault("max_network_retries", 0)
        return stripe.StripeClient(key or self.platform_key, base_addresses={"api": self.url}, **kw)

    def control(self, method: str, path: str, json: dict[str, Any] | None = None) -> dict[str, Any]:
        """Call the control plane (``path`` relative to ``/_sandbox/`` or absolute)."""
        if not path.startswith("/"):
            path = "/_sandbox/" + path
        resp = self._http.request(method, path, json=json)
        if resp.status_code >= 400:
            raise RuntimeError(f"sandbox control {method} {path} → {resp.status_code}: {resp.text}")
        result: dict[str, Any] = resp.json()
        return result

    def set_faults(self, **faults: Any) -> None:
        self.control("POST", "faults", faults)

    def clear_faults(self) -> None:
        self.control("DELETE", "faults")

    def advance_clock(self, seconds: float) -> None:
        self.control("POST", "clock/advance", {"seconds": seconds})

    def reset(self, seed: str = "demo") -> None:
        self.control("POST", "reset", {"seed": seed})

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        if self._thread.is_alive():
            log.error("sandbox server thread did not stop within 10 s")
        self._http.close()

    def __enter__(self) -> RunningSandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_sandbox(seed: str = "demo", host: str = "127.0.0.1", port: int = 0, state_file: Path | None = None,
                  **faults: Any) -> RunningSandbox:
    """Serve a sandbox on ``host:port`` (0 → a free port) and return once it answers."""
    sb = Sandbox(seed, state_file=state_file, faults=FaultConfig(**faults))
    sock = listening_socket(host, port)
    port = int(sock.getsockname()[1])
    config = uvicorn.Config(create_app(sb), host=host, port=port, log_level="warning", lifespan="on",
                            access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name=f"sandbox-{port}", daemon=True)
    thread.start()
    url = f"http://{host}:{port}"
    deadline = time.monotonic() + 15
    while True:
        try:
            if httpx.get(url + "/_sandbox/ping", timeout=1).status_code == 200:
                break
        except httpx.HTTPError as exc:
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError(f"the sandbox did not start on {url}") from exc
        time.sleep(0.02)
    return RunningSandbox(sb, server, thread, url)


@contextlib.contextmanager
def sandbox(seed: str = "demo", host: str = "127.0.0.1", port: int = 0, state_file: Path | None = None,
            **faults: Any) -> Iterator[RunningSandbox]:
    """Context manager around :func:`start_sandbox`."""
    running = start_sandbox(seed, host, port, state_file, **faults)
    try:
        yield running
    finally:
        running.stop()
