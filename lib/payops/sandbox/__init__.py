"""A local Stripe test-mode server that the official ``stripe`` SDK talks to unchanged.

Module map:

- ``app``        Starlette ASGI app: the ``/v1`` pipeline (auth, rate limit, idempotency, faults) and
                 the connection-dropping wrapper; the control plane is documented in its docstring
- ``control``    ``/_sandbox/…`` control-plane handlers
- ``runtime``    ``Sandbox``: state + faults + webhook sender + ticker + persistence
- ``state``      thread-safe in-memory world, sandbox clock, JSON persistence
- ``store``      ordered indexes and O(log n + page) pagination
- ``transfers``, ``payouts``, ``accounts``, ``events``  the resources; ``connect`` account create/
                 update/delete; ``payments`` PaymentIntents (destination charges); ``charges`` test
                 cards, charges and their money; ``disputes`` disputes (opened by the control plane)
- ``auth``       secret/restricted keys and permissions; ``faults`` fault knobs
- ``forms``      Stripe form decoding; ``api_errors`` Stripe-shaped errors; ``context`` request ctx
- ``seeds``      the demo/rehearsal world from ``payops.demo_data``; ``webhooks`` signed delivery
- ``testing``    ``start_sandbox`` / ``sandbox`` / ``RunningSandbox``; ``cli`` ``payops sandbox …``
- ``sinks``      local Slack/SMTP sinks (separate component)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from payops.sandbox.testing import RunningSandbox, sandbox, start_sandbox

__all__ = ["RunningSandbox", "sandbox", "start_sandbox"]


def __getattr__(name: str) -> Any:  # lazy: importing payops.sandbox must not import uvicorn/stripe
    if name in __all__:
        from payops.sandbox import testing

        return getattr(testing, name)
    raise AttributeError(name)
