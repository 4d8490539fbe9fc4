"""The Stripe webhook receiver and the HTTP trigger of the automated payout cycle.

- :mod:`payops.webhooks.app` — the Starlette app: ``POST /stripe/webhook``, ``POST /cron/payout-cycle``,
  ``GET /healthz``;
- :mod:`payops.webhooks.receiver` — verify, de-duplicate and apply one event in one transaction;
- :mod:`payops.webhooks.handlers` — one function per event type, over the database session;
- :mod:`payops.webhooks.trigger` — bearer-token check, body parsing and the background cycle run;
- :mod:`payops.webhooks.cli` — ``payops webhooks serve | events``.
"""

from __future__ import annotations

from payops.webhooks.handlers import HANDLERS, SUBSCRIBED_EVENTS

__all__ = ["HANDLERS", "SUBSCRIBED_EVENTS"]
