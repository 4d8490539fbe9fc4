"""``payops sandbox …``: serve the Stripe sandbox and drive a running one over its control plane."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.table import Table

from payops import demo_data
from payops.sandbox.faults import FaultConfig, parse_spec
from payops.sandbox.seeds import SEEDS

log = logging.getLogger(__name__)
app = typer.Typer(help="The local Stripe test-mode sandbox (the official stripe SDK talks to it unchanged).",
                  no_args_is_help=True)
clock_app = typer.Typer(help="The sandbox clock (real time + offset).", no_args_is_help=True)
app.add_typer(clock_app, name="clock")
console = Console()
DEFAULT_URL = "http://127.0.0.1:12111"
UrlOpt = Annotated[str, typer.Option("--url", envvar="PAYOPS_STRIPE_API_BASE", help="Sandbox base URL.")]


def _control(url: str, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    try:
        resp = httpx.request(method, url.rstrip("/") + "/_sandbox/" + path, json=body, timeout=30)
    except httpx.HTTPError as exc:
        console.print(f"[red]cannot reach the sandbox at {url}: {exc}[/red]")
        raise typer.Exit(2) from exc
    if resp.status_code >= 400:
        console.print(f"[red]{method} /_sandbox/{path} → {resp.status_code}: {resp.text}[/red]")
        raise typer.Exit(1)
    result: dict[str, Any] = resp.json()
    return result


def _check_seed(seed: str) -> str:
    if seed not in SEEDS:
        raise typer.BadParameter(f"choose one of {', '.join(SEEDS)}")
    return seed


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind (keep loopback).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port of the Stripe API.")] = 12111,
    seed: Annotated[str, typer.Option(help="demo | rehearsal | none", callback=_check_seed)] = "demo",
    state: Annotated[Path | None, typer.Option("--state", help="JSON file: loaded if present, saved.")] = None,
    latency_ms: Annotated[float, typer.Option(help="Added latency per API request.")] = 0.0,
    jitter_ms: Annotated[float, typer.Option(help="Random extra latency 0..N ms.")] = 0.0,
    rate_limit: Annotated[float, typer.Option(help="Requests/s per key (0 = off).")] = 25.0,
    error_rate: Annotated[float, typer.Option(help="Share of API requests answered 500.")] = 0.0,
    payout_delay_seconds: Annotated[float, typer.Option(help="Seconds from payout to paid.")] = 3.0,
    slack_port: Annotated[int, typer.Option(help="Port of the Slack webhook sink.")] = 12112,
    smtp_port: Annotated[int, typer.Option(help="Port of the SMTP sink.")] = 1025,
    no_sinks: Annotated[bool, typer.Option("--no-sinks", help="Do not start the Slack/SMTP/PagerDuty/Jira sinks.")
                        ] = False,
) -> None:
    """Run the sandbox (and the Slack/SMTP sinks) in the foreground; Ctrl-C stops it cleanly."""
    import uvicorn

    from payops.sandbox.app import create_app
    from payops.sandbox.runtime import Sandbox

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("mail.log", "httpx"):  # per-connection chatter of the SMTP sink and HTTP clients
        logging.getLogger(noisy).setLevel(logging.WARNING)
    faults = FaultConfig(latency_ms=latency_ms, jitter_ms=jitter_ms, rate_limit=rate_limit,
                         error_rate=error_rate, payout_delay_seconds=payout_delay_seconds)
    sb = Sandbox(seed, state_file=state, faults=faults)
    url = f"http://{host}:{port}"
    sinks = None
    if not no_sinks:
        from payops.sandbox.sinks import start_sinks

        sinks = start_sinks(host=host, http_port=slack_port, smtp_port=smtp_port)
    _banner(sb, url, sinks)
    try:
        uvicorn.run(create_app(sb), host=host, port=port, log_level="warning", access_log=False)
    finally:
        if sinks is not None:
            sinks.stop()
        console.print("[green]sandbox stopped[/green]" + (f" (state saved to {state})" if state else ""))


def _banner(sb: Any, url: str, sinks: Any) -> None:
    console.print(f"[bold green]payops Stripe sandbox[/bold green] on [cyan]{url}[/cyan] (seed {sb.seed})")
    keys = Table("key", "kind", "permissions", title="API keys (test mode only)")
    for key, info in sb.state.keys.items():
        perms = ", ".join(f"{r}:{a}" for r, a in (info["permissions"] or {}).items()) or "all"
        keys.add_row(key, info["kind"], perms)
    console.print(keys)
    accounts = Table("account", "name", "transfers", "payouts", title="Connected accounts")
    for acct_id in getattr(sb.state.indexes.get(("accounts",)), "ids", []):
        acct = sb.state.objects[acct_id]
        accounts.add_row(acct_id, acct["business_profile"]["name"], acct["capabilities"].get("transfers", "-"),
                         "enabled" if acct["payouts_enabled"] else "disabled")
    console.print(accounts)
    lines = [f"export PAYOPS_STRIPE_API_BASE={url}",
             f"export STRIPE_SECRET_KEY={demo_data.PLATFORM_KEY}",
             f"export STRIPE_FALLBACK_SECRET_KEY={demo_data.FALLBACK_KEY}",
             f"export STRIPE_WEBHOOK_SECRET={demo_data.WEBHOOK_SECRET}"]
    if sinks is not None:
        lines.append(f"export SLACK_WEBHOOK_URL={sinks.slack_webhook_url}")
        lines += [f"export SMTP_HOST={sinks.smtp_host}", f"export SMTP_PORT={sinks.smtp_port}"]
        from payops.sandbox.alert_sinks import SANDBOX_ROUTING_KEY

        lines += [f"export PAYOPS_PAGERDUTY_EVENTS_URL={sinks.pagerduty_url}",
                  f"export PAGERDUTY_ROUTING_KEY={SANDBOX_ROUTING_KEY}",
                  f"export PAYOPS_JIRA_URL={sinks.jira_url}", "export PAYOPS_JIRA_TOKEN=sandbox-jira-token"]
        console.print(f"Slack/SMTP/PagerDuty/Jira inbox: [cyan]{sinks.inbox_url}[/cyan]")
    typer.echo("\n".join(lines))  # plain echo: never wrapped, safe to copy-paste
    console.print("Ctrl-C to stop.")


@clock_app.command("advance")
def clock_advance(seconds: Annotated[float, typer.Option(help="Seconds to move the clock forward.")],
                  url: UrlOpt = DEFAULT_URL) -> None:
    """Move the sandbox clock forward (payouts progress, idempotency keys expire)."""
    result = _control(url, "POST", "clock/advance", {"seconds": seconds})
    console.print(f"sandbox clock offset now {result['offset']:.0f} s")


@clock_app.command("show")
def clock_show(url: UrlOpt = DEFAULT_URL) -> None:
    """Print the sandbox clock."""
    console.print_json(data=_control(url, "GET", "clock"))


@app.command()
def faults(
    url: UrlOpt = DEFAULT_URL,
    latency_ms: Annotated[float | None, typer.Option(help="Latency per request.")] = None,
    jitter_ms: Annotated[float | None, typer.Option(help="Random extra latency.")] = None,
    rate_limit: Annotated[float | None, typer.Option(help="Requests/s per key, 0 = off.")] = None,
    error_rate: Annotated[float | None, typer.Option(help="Share of requests answered 500.")] = None,
    fail_next: Annotated[list[str] | None, typer.Option(help="'POST /v1/transfers:2' (repeatable).")] = None,
    lost_response: Annotated[list[str] | None, typer.Option(help="'POST /v1/transfers:1' (repeatable).")] = None,
    payout_failure: Annotated[str | None, typer.Option(help="'acct_…:account_closed[:count]'.")] = None,
    payout_delay_seconds: Annotated[float | None, typer.Option(help="Seconds from payout to paid.")] = None,
    clear: Annotated[bool, typer.Option("--clear", help="Restore the start-up configuration first.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show or change the fault injection of a running sandbox."""
    if clear:
        _control(url, "DELETE", "faults")
    changes: dict[str, Any] = {k: v for k, v in {
        "latency_ms": latency_ms, "jitter_ms": jitter_ms, "rate_limit": rate_limit, "error_rate": error_rate,
        "payout_delay_seconds": payout_delay_seconds}.items() if v is not None}
    if fail_next:
        changes["fail_next"] = dict(parse_spec(s) for s in fail_next)
    if lost_response:
        changes["lost_response"] = dict(parse_spec(s) for s in lost_response)
    if payout_failure:
        parts = payout_failure.split(":")
        changes["payout_failure"] = {"account": parts[0], "failure_code": parts[1] if len(parts) > 1 else
                                     "account_closed", "count": int(parts[2]) if len(parts) > 2 else 1}
    result = _control(url, "POST", "faults", changes) if changes else _control(url, "GET", "faults")
    if as_json:
        typer.echo(json.dumps(result))
        return
    table = Table("fault", "value", title="sandbox faults")
    for name, value in result.items():
        table.add_row(name, json.dumps(value))
    console.print(table)


@app.command()
def reset(seed: Annotated[str, typer.Option(help="demo | rehearsal | none", callback=_check_seed)] = "demo",
          url: UrlOpt = DEFAULT_URL) -> None:
    """Reset a running sandbox to a fresh seed (objects, keys, clock, faults)."""
    _control(url, "POST", "reset", {"seed": seed})
    console.print(f"sandbox reset to seed [bold]{seed}[/bold]")


@app.command()
def dump(url: UrlOpt = DEFAULT_URL) -> None:
    """Print the full state of a running sandbox as JSON."""
    typer.echo(json.dumps(_control(url, "GET", "state"), indent=2))


@app.command()
def seed(
    db: Annotated[bool, typer.Option("--db/--no-db", help="Seed the ledger database.")] = True,
    stripe: Annotated[bool, typer.Option("--stripe/--no-stripe", help="Re-seed a running sandbox.")] = False,
    seed_name: Annotated[str, typer.Option("--seed", help="Sandbox seed for --stripe.",
                                           callback=_check_seed)] = "demo",
    url: UrlOpt = DEFAULT_URL,
) -> None:
    """Seed the demo world: the ledger database (--db) and/or a running sandbox (--stripe)."""
    if db:
        from payops.db.seed import seed_ledger

        seed_ledger()
        console.print("ledger database seeded")
    if stripe:
        _control(url, "POST", "seed", {"seed": seed_name})
        console.print(f"sandbox at {url} re-seeded ({seed_name})")


@app.command()
def inbox(
    url: Annotated[str, typer.Option(help="The sinks' inbox address.")] = "http://127.0.0.1:12112/_inbox",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    clear: Annotated[bool, typer.Option("--clear", help="Empty the inbox after printing it.")] = False,
) -> None:
    """Show what the local Slack, SMTP, PagerDuty and Jira sinks received."""
    from payops.sandbox.sinks import inbox_command

    inbox_command(url=url, as_json=as_json, clear=clear)


if __name__ == "__main__":
    app()
