"""Fixtures: one sandbox server per test session, reset to the demo seed before each test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import stripe

from payops.sandbox.testing import RunningSandbox, start_sandbox


@pytest.fixture(scope="session")
def sandbox_server() -> Iterator[RunningSandbox]:
    server = start_sandbox(seed="demo", rate_limit=0)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def sb(sandbox_server: RunningSandbox) -> RunningSandbox:
    sandbox_server.reset("demo")
    return sandbox_server


@pytest.fixture
def client(sb: RunningSandbox) -> stripe.StripeClient:
    return sb.client()

