"""The sandbox and the sinks listen on sockets that asyncio turns Nagle off for.

asyncio sets TCP_NODELAY on an accepted connection only when its socket says ``proto == IPPROTO_TCP``; a
socket made with ``socket.socket(AF_INET, SOCK_STREAM)`` says 0, its connections inherit the 0, and every
answer then waited for the client's delayed ACK (~40 ms a request: the whole suite and every runbook paid it)."""

from __future__ import annotations

import socket

from payops.sandbox.sinks import _bind
from payops.sandbox.testing import listening_socket


def test_listening_sockets_are_tcp_so_connections_get_tcp_nodelay() -> None:
    with _bind("127.0.0.1", 0) as sinks_sock:  # the Slack sink's (uvicorn listens on it)
        assert sinks_sock.proto == socket.IPPROTO_TCP
    with listening_socket() as sock:
        assert sock.proto == socket.IPPROTO_TCP
        with socket.create_connection(sock.getsockname()):
            accepted, _ = sock.accept()
            with accepted:
                assert accepted.proto == socket.IPPROTO_TCP  # what asyncio's _set_nodelay checks
