"""The rehearsal's own world: its database, Slack channel, email alias and archive — never production's.

Contract (checked by :func:`preflight` before anything is created, each failure naming the variable):

1. No live key anywhere in the environment: any variable whose value holds ``sk_live_``, ``rk_live_``,
   ``pk_live_`` (…) stops the rehearsal — whatever the variable's name.
2. ``PAYOPS_REHEARSAL_DATABASE_URL`` is set and is not the production database: not the same SQLite
   file, and on PostgreSQL not the same database *and* schema (a ``rehearsal`` schema is chosen with
   ``?options=-csearch_path%3Drehearsal``).
3. The rehearsal's Slack webhook is set and is not the production one; the channel is not the
   production channel; the email alias is set.

:func:`entered` then points this process **and every notebook kernel it starts** (they inherit the
environment) at that world: ``PAYOPS_DATABASE_URL`` → the rehearsal database, ``PAYOPS_SLACK_*`` →
#payments-rehearsal, ``PAYOPS_OUTPUT_DIR`` → the rehearsal archive. Nothing in the rehearsal can reach
the production database or #payments-alerts through settings, because the settings it reads *are*
the rehearsal's. Leaving restores the environment exactly.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs

from sqlalchemy.engine import make_url

from payops.config import Settings, get_settings
from payops.errors import FieldProblem, ParamsInvalid

LIVE_KEY_RE = re.compile(r"\b(?:sk|rk|pk)_live_[A-Za-z0-9]+")


class RehearsalRefused(ParamsInvalid):
    """The rehearsal world is not safe to use: nothing was created."""


def live_key_problems(environ: Mapping[str, str] | None = None) -> list[FieldProblem]:
    """Every environment variable holding a live Stripe key (its name, never its value)."""
    env = os.environ if environ is None else environ
    return [FieldProblem(name, "holds a live Stripe key (sk_live_/rk_live_/pk_live_): a rehearsal runs in test "
                               "mode only — unset it (nothing was created)")
            for name, value in sorted(env.items()) if value and LIVE_KEY_RE.search(value)]


def _schema(url: str) -> str:
    """The PostgreSQL schema a URL selects through ``options=-csearch_path=…`` (default ``public``)."""
    options = " ".join(parse_qs(make_url(url).render_as_string(hide_password=False).partition("?")[2])
                       .get("options", []))
    m = re.search(r"search_path\s*=\s*([A-Za-z_][A-Za-z0-9_]*)", options)
    return m[1] if m else "public"


def database_identity(url: str) -> tuple[str, ...]:
    """What makes two URLs the same database: the SQLite file, or PostgreSQL host, port, database, schema."""
    from payops.db import normalize_url

    parsed = make_url(normalize_url(url))
    if parsed.get_backend_name() == "sqlite":
        return ("sqlite", str(Path(parsed.database or ":memory:").resolve()))
    return (parsed.get_backend_name(), (parsed.host or "localhost").lower(), str(parsed.port or 5432),
            parsed.database or "", _schema(url))


def rehearsal_schema(url: str) -> str | None:
    """The schema to create on PostgreSQL before migrating (None on SQLite or the default schema)."""
    if make_url(url).get_backend_name() == "sqlite":
        return None
    schema = _schema(url)
    return None if schema == "public" else schema


def output_dir(settings: Settings) -> Path:
    return settings.rehearsal_output_dir or settings.output_dir.with_name(settings.output_dir.name + "-rehearsal")


def world_problems(settings: Settings) -> list[FieldProblem]:
    """The rehearsal database, channel and alias (rule 2 and 3 of the module docstring)."""
    problems: list[FieldProblem] = []
    url = settings.rehearsal_database_url
    if not url:
        problems.append(FieldProblem("PAYOPS_REHEARSAL_DATABASE_URL", "is not set: the rehearsal needs its own "
                                     "database (a SQLite file, or a `rehearsal` schema on PostgreSQL)"))
    else:
        try:
            same = database_identity(url) == database_identity(settings.database_url)
        except Exception as exc:  # noqa: BLE001 — an unparsable URL is named, not raised as is
            problems.append(FieldProblem("PAYOPS_REHEARSAL_DATABASE_URL", f"is not a database URL ({exc})"))
        else:
            if same:
                problems.append(FieldProblem("PAYOPS_REHEARSAL_DATABASE_URL", "is the production database "
                                             "(PAYOPS_DATABASE_URL): a rehearsal never writes there"))
    hook = settings.rehearsal_slack_webhook_url
    prod_hook = settings.slack_webhook_url
    if hook is None or not hook.get_secret_value():
        problems.append(FieldProblem("PAYOPS_REHEARSAL_SLACK_WEBHOOK_URL",
                                     f"is not set: the rehearsal posts to {settings.rehearsal_slack_channel}"))
    elif prod_hook is not None and hook.get_secret_value() == prod_hook.get_secret_value():
        problems.append(FieldProblem("PAYOPS_REHEARSAL_SLACK_WEBHOOK_URL", "is the #payments-alerts webhook "
                                     "(PAYOPS_SLACK_WEBHOOK_URL): give the #payments-rehearsal one"))
    if settings.rehearsal_slack_channel.strip().lower() == settings.slack_channel.strip().lower():
        problems.append(FieldProblem("PAYOPS_REHEARSAL_SLACK_CHANNEL", f"is the production channel "
                                     f"{settings.slack_channel}"))
    if "@" not in settings.rehearsal_email_to:
        problems.append(FieldProblem("PAYOPS_REHEARSAL_EMAIL_TO", "must be the rehearsal alias, e.g. "
                                     "payments-rehearsal@example.com"))
    return problems


def preflight(settings: Settings | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Rules 1–3 before anything is created; raises :class:`RehearsalRefused` listing every problem."""
    problems = live_key_problems(environ)
    settings = settings or get_settings(fresh=True)
    problems += world_problems(settings)
    if settings.environment == "live":
        problems.append(FieldProblem("PAYOPS_ENVIRONMENT", "is 'live': a rehearsal runs in Stripe test mode only"))
    if problems:
        raise RehearsalRefused(problems, "rehearsal environment")
    return settings


@dataclass(frozen=True)
class World:
    """The production settings a rehearsal was started from, and the overrides that make its world."""

    production_url: str
    production_channel: str
    env: dict[str, str]


def world_env(settings: Settings) -> dict[str, str]:
    assert settings.rehearsal_database_url and settings.rehearsal_slack_webhook_url  # preflight said so
    return {
        "PAYOPS_DATABASE_URL": settings.rehearsal_database_url,
        "PAYOPS_SLACK_WEBHOOK_URL": settings.rehearsal_slack_webhook_url.get_secret_value(),
        "PAYOPS_SLACK_CHANNEL": settings.rehearsal_slack_channel,
        "PAYOPS_OUTPUT_DIR": str(output_dir(settings)),
        # the rehearsal world's own production values, so that its checks can still tell them apart
        "PAYOPS_REHEARSAL_PRODUCTION_DATABASE_URL": settings.database_url,
        "PAYOPS_REHEARSAL_PRODUCTION_CHANNEL": settings.slack_channel,
    }


@contextmanager
def entered(settings: Settings) -> Iterator[Settings]:
    """This process (and the kernels it starts) in the rehearsal world; the environment restored after."""
    overrides = world_env(settings)
    # the aliases of the production variables must not shadow the rehearsal's values
    hidden = {k: os.environ.pop(k) for k in ("SLACK_WEBHOOK_URL",) if k in os.environ}
    saved = {k: os.environ.get(k) for k in overrides}
    os.environ.update(overrides)
    try:
        yield get_settings(fresh=True)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        os.environ.update(hidden)
        get_settings(fresh=True)


def in_rehearsal_world(settings: Settings) -> bool:
    """True inside :func:`entered` (the kernels of a rehearsal run too)."""
    prod = os.environ.get("PAYOPS_REHEARSAL_PRODUCTION_DATABASE_URL")
    return bool(prod) and database_identity(prod) != database_identity(settings.database_url)


def ensure_database(settings: Settings) -> str:
    """Create the rehearsal schema (PostgreSQL) if needed and migrate the rehearsal database; its revision."""
    from sqlalchemy import text

    from payops import db

    url = db.normalize_url(settings.database_url)
    schema = rehearsal_schema(url)
    if schema:
        base = make_url(url).difference_update_query(["options"])
        from sqlalchemy import create_engine

        eng = create_engine(base, isolation_level="AUTOCOMMIT")
        try:
            with eng.connect() as conn:
                conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
        finally:
            eng.dispose()
    return db.upgrade(settings.database_url)


# --- the clock the SLA is measured on -----------------------------------------------------------------
def stripe_now(settings: Settings) -> datetime:
    """Now on Stripe's clock: the sandbox's (which tests move forward) or, against Stripe, this host's."""
    if settings.uses_stripe_api:
        return datetime.now(UTC)
    import httpx

    try:
        r = httpx.get(settings.stripe_api_base.rstrip("/") + "/_sandbox/clock", timeout=5.0)
        r.raise_for_status()
        return datetime.fromtimestamp(float(r.json()["now"]), UTC)
    except (httpx.HTTPError, KeyError, ValueError):
        return datetime.now(UTC)
