"""The checkout incident world: the sandbox (reset per test), the webhook receiver served on a free port, the real
Redis and RabbitMQ on this machine (a fresh key prefix and fresh queue names per test; the management API is not
needed) and a local S3 (``moto`` in server mode, one per test session; a fresh bucket per test).

Under ``CI=true`` an unreachable Redis or RabbitMQ is a failure, not a skip (like ``pg_admin``).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from payops import demo_data as dd
from payops.config import Settings, get_settings

REDIS_URL = os.environ.get("PAYOPS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
AMQP_URL = os.environ.get("PAYOPS_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
S3_KEY_ID, S3_SECRET = "AKIAPAYOPSTEST", "moto-secret-7f3a9c2e41b8d6"


def _needs(in_ci: bool, what: str, problem: str | None) -> None:
    if problem:
        if in_ci:
            pytest.fail(f"{what} is unreachable under CI=true: {problem}")
        pytest.skip(f"{what} unreachable: {problem}")


@pytest.fixture(scope="session")
def redis_server(in_ci: bool) -> str:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3).ping()
        problem = None
    except redis.exceptions.RedisError as exc:
        problem = f"{type(exc).__name__}: {exc}"
    _needs(in_ci, f"Redis at {REDIS_URL}", problem)
    return REDIS_URL


@pytest.fixture(scope="session")
def amqp_server(in_ci: bool) -> str:
    import pika

    try:
        params = pika.URLParameters(AMQP_URL)
        params.connection_attempts, params.socket_timeout = 1, 3
        pika.BlockingConnection(params).close()
        problem = None
    except pika.exceptions.AMQPError as exc:
        problem = f"{type(exc).__name__}: {exc!r}"
    _needs(in_ci, "RabbitMQ at 127.0.0.1:5672", problem)
    return AMQP_URL


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    from payops.incident.world import start_s3

    served = start_s3()
    yield served.url
    served.stop()


@dataclass
class IncidentEnv:
    settings: Settings
    sandbox: Any
    world: Any
    receiver_url: str
    tag: str
    output_dir: Any
    db_url: str


def _cleanup(settings: Settings) -> None:
    import pika
    import redis

    r = redis.Redis.from_url(settings.redis_url)
    keys = list(r.scan_iter(match=settings.redis_key_prefix + "*", count=500))
    if keys:
        r.delete(*keys)
    r.close()
    conn = pika.BlockingConnection(pika.URLParameters(settings.amqp_url))
    ch = conn.channel()
    for q in (settings.retry_queue, settings.dead_letter_queue):
        ch.queue_delete(q)
    conn.close()


@pytest.fixture()
def incident_env(payops_env, redis_server: str, amqp_server: str, s3_server: str,  # type: ignore[no-untyped-def]
                 monkeypatch: pytest.MonkeyPatch) -> Iterator[IncidentEnv]:
    from payops.incident.world import CheckoutWorld, serve_receiver
    from payops.sandbox import webhooks as sandbox_webhooks

    tag = uuid.uuid4().hex[:10]
    env = {
        "PAYOPS_REDIS_URL": redis_server, "PAYOPS_REDIS_KEY_PREFIX": f"t{tag}:", "PAYOPS_AMQP_URL": amqp_server,
        "PAYOPS_RETRY_QUEUE": f"t{tag}.checkout.retry", "PAYOPS_DEAD_LETTER_QUEUE": f"t{tag}.checkout.dlq",
        "PAYOPS_S3_ENDPOINT_URL": s3_server, "PAYOPS_S3_BUCKET": f"t{tag}-receipts",
        "PAYOPS_S3_ACCESS_KEY_ID": S3_KEY_ID, "PAYOPS_S3_SECRET_ACCESS_KEY": S3_SECRET,
        "STRIPE_WEBHOOK_SECRET": dd.WEBHOOK_SECRET, "PAYOPS_SERVICE_TIMEOUT": "3",
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setattr(sandbox_webhooks, "RETRY_DELAYS", (0.05, 0.05, 0.05))  # the sandbox runs in this process
    settings = get_settings(fresh=True)
    receiver = serve_receiver(settings)
    world = CheckoutWorld(settings, payops_env.sandbox)
    world.subscribe(receiver.url, dd.WEBHOOK_SECRET)
    world.bucket()
    world.backlog(0, minutes_ago=0)  # the backend's deployment declares its queues
    try:
        yield IncidentEnv(settings, payops_env.sandbox, world, receiver.url, tag, payops_env.output_dir,
                          payops_env.db_url)
    finally:
        payops_env.sandbox.control("DELETE", "webhooks")
        receiver.stop()
        _cleanup(settings)
