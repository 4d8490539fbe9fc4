"""``payops webhooks`` — serve the Stripe webhook receiver and the cycle trigger; list recorded events.

    payops webhooks serve [--host 127.0.0.1] [--port 8787]
    payops webhooks events [--limit 20] [--type payout.paid]

``serve`` checks the environment (STRIPE_WEBHOOK_SECRET set, schema migrated) before listening.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from payops.cli_support import handles_errors

app = typer.Typer(help="Stripe webhook receiver and the cycle trigger.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
console = Console(highlight=False)


@app.command("serve")
@handles_errors
def serve(
    host: Annotated[str, typer.Option("--host", help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="TCP port.")] = 8787,
    log_level: Annotated[str, typer.Option("--log-level", help="uvicorn log level.")] = "info",
) -> None:
    """Serve POST /stripe/webhook, POST /cron/payout-cycle and GET /healthz with uvicorn."""
    import logging

    import uvicorn

    from payops.config import get_settings
    from payops.db import require_schema
    from payops.webhooks.app import create_app

    settings = get_settings()
    application = create_app(settings)  # ConfigError without STRIPE_WEBHOOK_SECRET
    require_schema(settings.database_url)
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    trigger = "enabled" if settings.cron_secret_key else "disabled (CRON_SECRET_KEY unset)"
    console.print(f"webhook receiver on http://{host}:{port}/stripe/webhook · trigger {trigger} · "
                  f"environment {settings.environment}")
    uvicorn.run(application, host=host, port=port, log_level=log_level.lower(), access_log=True)


@app.command("events")
@handles_errors
def events(
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000, help="How many, newest first.")] = 20,
    event_type: Annotated[str | None, typer.Option("--type", help="Only this event type.")] = None,
) -> None:
    """The Stripe events the receiver recorded, newest first, with what each changed."""
    from sqlalchemy import select

    from payops.db import session_scope
    from payops.db.models import WebhookEvent

    with session_scope() as s:
        query = select(WebhookEvent).order_by(WebhookEvent.received_at.desc(), WebhookEvent.id).limit(limit)
        if event_type:
            query = query.where(WebhookEvent.type == event_type)
        rows = list(s.scalars(query))
    if not rows:
        console.print("no webhook events recorded" + (f" of type {event_type}" if event_type else ""))
        return
    table = Table(title=f"webhook events (newest {len(rows)})")
    for col in ("received (UTC)", "event", "type", "account", "object", "outcome"):
        table.add_column(col, overflow="fold")
    for r in rows:
        # Text(): values come from Stripe and must never be read as Rich markup
        table.add_row(*(Text(v) for v in (r.received_at.strftime("%Y-%m-%d %H:%M:%S"), r.id, r.type,
                                          r.account or "—", r.object_id or "—", r.outcome)))
    console.print(table)
