"""The checkout retry queue, through one adapter: :class:`RetryQueue` (RabbitMQ via ``pika`` here).

A message is one checkout operation the backend could not finish and will retry (JSON body)::

    {"session_id": "cs_…", "payment_intent": "pi_…" | null, "auction_id": "AUC-…", "customer": "a@b.c",
     "operation": "confirm_payment" | "fulfil_order" | …, "attempts": 3,
     "last_error": {"type": "card_error", "code": "card_declined", "decline_code": "insufficient_funds"}}

with the AMQP ``message_id`` and ``timestamp`` (when it was first enqueued) set by the publisher.

Contract of every adapter:

1. ``depth()`` is the number of messages ready in the queue (a passive declare: a queue that does not
   exist is a ``ConfigError`` naming it; nothing is created).
2. ``peek(n)`` returns the ``n`` oldest messages, oldest first, and consumes nothing: they are taken
   unacknowledged and handed back with one ``nack(requeue)``, which RabbitMQ puts back at their places.
3. ``move_to_dead_letter(ids)`` moves the listed messages, oldest first: each is published to the
   dead-letter queue (publisher confirms), and only once the broker confirmed it is the original
   acknowledged — a crash in between leaves a copy in both queues, never a lost message. It stops at the
   first message at the head that is not listed (it is handed back untouched).
4. Connection errors become ``ServiceUnreachable`` naming the broker (password hidden).

SQS (``PAYOPS_QUEUE_BACKEND=sqs``) plugs in at :func:`open_queue`: an adapter with the same three methods
over ``boto3`` (``get_queue_attributes(ApproximateNumberOfMessages)``, ``receive_message`` with
``VisibilityTimeout=0`` to peek, ``send_message`` to the DLQ then ``delete_message``). It is not shipped.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from payops.config import Settings
from payops.errors import ConfigError
from payops.incident.services import redact_url, unreachable

MOVED_HEADER = "x-payops-moved-by"


@dataclass(frozen=True)
class QueueMessage:
    message_id: str
    enqueued_at: datetime | None
    body: dict[str, Any]
    headers: dict[str, Any] = field(default_factory=dict)

    def age_seconds(self, now: datetime) -> float | None:
        return None if self.enqueued_at is None else (now - self.enqueued_at).total_seconds()

    def as_dict(self) -> dict[str, Any]:
        return {"message_id": self.message_id,
                "enqueued_at": self.enqueued_at.isoformat() if self.enqueued_at else None, "body": self.body}


class RetryQueue(Protocol):
    name: str
    dead_letter: str

    def depth(self) -> int: ...

    def peek(self, limit: int) -> list[QueueMessage]: ...

    def move_to_dead_letter(self, message_ids: list[str], *, moved_by: str) -> list[str]: ...

    def close(self) -> None: ...


def _decode(method: Any, props: Any, raw: bytes) -> QueueMessage:
    try:
        body = json.loads(raw)
        body = body if isinstance(body, dict) else {"value": body}
    except ValueError:
        body = {"raw": raw[:200].decode("utf-8", "replace")}
    mid = props.message_id or "sha256:" + hashlib.sha256(raw).hexdigest()[:32]
    when = datetime.fromtimestamp(props.timestamp, UTC) if props.timestamp else None
    return QueueMessage(str(mid), when, body, dict(props.headers or {}))


class RabbitRetryQueue:
    """:class:`RetryQueue` on RabbitMQ (``PAYOPS_AMQP_URL``, ``PAYOPS_RETRY_QUEUE``, ``PAYOPS_DEAD_LETTER_QUEUE``)."""

    def __init__(self, settings: Settings, *, queue: str | None = None, dead_letter: str | None = None) -> None:
        import pika

        self.url = settings.amqp_url
        self.name = queue or settings.retry_queue
        self.dead_letter = dead_letter or settings.dead_letter_queue
        self._pika = pika
        params = pika.URLParameters(self.url)
        params.socket_timeout = params.blocked_connection_timeout = settings.service_timeout_seconds
        params.connection_attempts = 1
        try:
            self._conn = pika.BlockingConnection(params)
            self._ch = self._conn.channel()
        except pika.exceptions.AMQPError as exc:
            raise unreachable("RabbitMQ", self.url, exc, f"opening the retry queue {self.name}") from exc

    @contextmanager
    def _talking(self, doing: str) -> Iterator[None]:
        try:
            yield
        except self._pika.exceptions.ChannelClosedByBroker as exc:
            if exc.reply_code == 404:
                raise ConfigError(f"queue {self.name!r} does not exist on {redact_url(self.url)} "
                                  "(PAYOPS_RETRY_QUEUE)") from exc
            raise unreachable("RabbitMQ", self.url, exc, doing) from exc
        except self._pika.exceptions.AMQPError as exc:
            raise unreachable("RabbitMQ", self.url, exc, doing) from exc

    def depth(self) -> int:
        with self._talking(f"reading the depth of {self.name}"):
            return int(self._ch.queue_declare(self.name, passive=True).method.message_count)

    def peek(self, limit: int) -> list[QueueMessage]:
        out: list[QueueMessage] = []
        last_tag = None
        with self._talking(f"reading the oldest messages of {self.name}"):
            try:
                while len(out) < limit:
                    method, props, raw = self._ch.basic_get(self.name, auto_ack=False)
                    if method is None:
                        break
                    last_tag = method.delivery_tag
                    out.append(_decode(method, props, raw))
            finally:
                if last_tag is not None:
                    self._ch.basic_nack(last_tag, multiple=True, requeue=True)
        return out

    def move_to_dead_letter(self, message_ids: list[str], *, moved_by: str) -> list[str]:
        wanted = set(message_ids)
        moved: list[str] = []
        with self._talking(f"moving messages from {self.name} to {self.dead_letter}"):
            self._ch.queue_declare(self.dead_letter, durable=True)
            self._ch.confirm_delivery()
            while len(moved) < len(wanted):
                method, props, raw = self._ch.basic_get(self.name, auto_ack=False)
                if method is None:
                    break
                msg = _decode(method, props, raw)
                if msg.message_id not in wanted:
                    self._ch.basic_nack(method.delivery_tag, requeue=True)
                    break
                headers = {**(props.headers or {}), MOVED_HEADER: moved_by,
                           "x-payops-moved-at": datetime.now(UTC).isoformat(timespec="seconds")}
                out_props = self._pika.BasicProperties(
                    message_id=props.message_id, timestamp=props.timestamp, content_type=props.content_type,
                    headers=headers, delivery_mode=2)
                self._ch.basic_publish("", self.dead_letter, raw, out_props, mandatory=True)  # confirmed or raises
                self._ch.basic_ack(method.delivery_tag)
                moved.append(msg.message_id)
        return moved

    def publish(self, body: dict[str, Any], *, message_id: str, enqueued_at: datetime) -> None:
        """What the checkout backend does when an operation fails (used by the demo and the tests)."""
        with self._talking(f"publishing to {self.name}"):
            self._ch.basic_publish("", self.name, json.dumps(body).encode(), self._pika.BasicProperties(
                message_id=message_id, timestamp=int(enqueued_at.timestamp()), content_type="application/json",
                delivery_mode=2))

    def declare(self) -> None:
        """Create the queues (durable) — the backend's deployment does this; the runbook never does."""
        with self._talking(f"declaring {self.name}"):
            self._ch.queue_declare(self.name, durable=True)
            self._ch.queue_declare(self.dead_letter, durable=True)

    def dead_letter_depth(self) -> int:
        with self._talking(f"reading the depth of {self.dead_letter}"):
            return int(self._ch.queue_declare(self.dead_letter, passive=True).method.message_count)

    def close(self) -> None:
        try:
            if self._conn.is_open:
                self._conn.close()
        except self._pika.exceptions.AMQPError:
            pass  # closing a broken connection: nothing left to release


def open_queue(settings: Settings) -> RetryQueue:
    """The retry queue adapter for ``PAYOPS_QUEUE_BACKEND`` (the seam where SQS plugs in)."""
    if settings.queue_backend == "rabbitmq":
        return RabbitRetryQueue(settings)
    raise ConfigError("PAYOPS_QUEUE_BACKEND=sqs: the SQS adapter (boto3) plugs in at payops.incident.queues."
                      "open_queue and is not shipped yet; use rabbitmq")
