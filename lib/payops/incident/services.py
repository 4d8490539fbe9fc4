"""What the incident adapters share: a service URL shown without its password, and one clear error per
unreachable system (``ServiceUnreachable``, exit 16) that names it — Redis, the message broker, the bucket."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from payops.errors import ServiceUnreachable


def redact_url(url: str) -> str:
    """``redis://:pw@host:6379/0`` → ``redis://host:6379/0``; ``amqp://u:pw@h/v`` → ``amqp://u@h/v``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    netloc = f"{parts.username}@{host}" if parts.username else host
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def unreachable(what: str, url: str, exc: BaseException, doing: str) -> ServiceUnreachable:
    """``Redis at redis://127.0.0.1:1/0 is unreachable while scanning the payment-window keys: …``"""
    reason = " ".join(str(exc).split())[:300] or type(exc).__name__
    return ServiceUnreachable(f"{what} at {redact_url(url)} is unreachable while {doing}: {type(exc).__name__}: "
                              f"{reason}")
