"""``payops lab [--port N]`` — the runbooks in JupyterLab (see :mod:`payops.lab.server`)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from payops.cli_support import handles_errors

app = typer.Typer(help="JupyterLab on the runbooks and notebooks: forms, approvals, go-live (loopback, token).",
                  invoke_without_command=True, pretty_exceptions_enable=False)
console = Console(highlight=False)


@app.callback()
@handles_errors
def lab(
    port: Annotated[int, typer.Option("--port", help="TCP port on 127.0.0.1 (0: a free one).")] = 8888,
    open_browser: Annotated[bool, typer.Option("--open/--no-open", help="Open a browser tab.")] = False,
) -> None:
    """Start JupyterLab from the project's environment, bound to 127.0.0.1, with a token (printed)."""
    from sqlalchemy.engine import make_url

    from payops.config import get_settings
    from payops.lab import server

    settings = get_settings()
    srv = server.build(port, settings=settings, open_browser=open_browser)
    console.print(f"JupyterLab on [bold]{escape(srv.url)}[/]", soft_wrap=True)
    console.print(f"  database {make_url(settings.database_url).render_as_string(hide_password=True)}\n"
                  f"  Stripe   {settings.stripe_api_base}\n  outputs  {srv.env['PAYOPS_OUTPUT_DIR']}\n"
                  "  open runbooks/manual_payout/10-verify.ipynb (or notebooks/reconciliation/…) and run the panel "
                  "cell; Ctrl-C stops the server", soft_wrap=True, markup=False)
    raise typer.Exit(server.serve(srv))
