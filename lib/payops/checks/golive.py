"""The go-live check's configuration rows: environment variables, the Stripe webhook endpoint, the
database schema. (Scheduler and Slack: :mod:`payops.checks.probes`; smoke tests: :mod:`payops.checks.smoke`.)

Secrets are never shown: a key appears as its prefix (``stripe_api.redact``), other secrets only as
"set" / "not set".
"""

from __future__ import annotations

import os
from typing import Literal

from pydantic import SecretStr

from payops.checks.report import FAIL, PASS, SKIP, WARN, Check, error_line
from payops.config import Settings
from payops.errors import PayopsError
from payops.stripe_api import describe_key, key_problems, make_client, redact

Target = Literal["test", "live"]
MIN_CRON_SECRET_LENGTH = 32


def _secret(value: SecretStr | None) -> str:
    return value.get_secret_value() if value is not None else ""


def _key_check(settings: Settings, target: Target, env_var: str, value: SecretStr | None,
               recommend_restricted: bool) -> Check:
    name = f"env {env_var}"
    problems = [str(p) for p in key_problems(value, env_var=env_var, settings=settings, rehearsal=False,
                                             want_restricted=False)]
    raw = _secret(value)
    if not raw:
        return Check(name, FAIL, "; ".join(problems))
    shown = redact(raw)
    try:
        kind, mode = describe_key(raw)
    except ValueError:
        return Check(name, FAIL, f"{shown}: " + "; ".join(problems))
    if mode != target:
        problems.append(f"{env_var}: is a {mode}-mode key but the go-live target is {target!r}")
    if problems:
        return Check(name, FAIL, f"{shown}: " + "; ".join(problems))
    if recommend_restricted and kind != "restricted":
        return Check(name, WARN, f"{shown}: a full secret key; the SOP asks for a restricted key (rk_…) with "
                                 "transfers write + balance read only")
    return Check(name, PASS, f"{shown} ({kind}, {mode} mode)")


def environment(settings: Settings, target: Target) -> list[Check]:
    """Required and recommended variables: present, well-formed, consistent with ``target``."""
    rows = [Check("env PAYOPS_ENVIRONMENT", PASS if settings.environment == target else FAIL,
                  f"{settings.environment!r}" + ("" if settings.environment == target
                                                  else f" but the go-live target is {target!r}"))]
    if target == "live" and not settings.uses_stripe_api:
        rows.append(Check("env PAYOPS_STRIPE_API_BASE", FAIL, f"{settings.stripe_api_base} is not Stripe's API: "
                                                              "a live go-live must talk to api.stripe.com"))
    else:
        rows.append(Check("env PAYOPS_STRIPE_API_BASE", PASS, settings.stripe_api_base))
    rows.append(_key_check(settings, target, "STRIPE_SECRET_KEY", settings.stripe_secret_key, False))
    rows.append(_key_check(settings, target, "STRIPE_FALLBACK_SECRET_KEY", settings.stripe_fallback_secret_key, True))
    whsec = _secret(settings.stripe_webhook_secret)
    rows.append(Check("env STRIPE_WEBHOOK_SECRET", PASS if whsec.startswith("whsec_") else FAIL,
                      "set (whsec_…)" if whsec.startswith("whsec_") else
                      ("not set: the webhook receiver refuses to start" if not whsec
                       else "set, but not a signing secret (expected whsec_…)")))
    rows.append(_database_url(settings, target))
    rows.append(_slack_url(settings, target))
    cron = _secret(settings.cron_secret_key)
    if not cron:
        rows.append(Check("env CRON_SECRET_KEY", FAIL, "not set: POST /cron/payout-cycle answers 503"))
    elif len(cron) < MIN_CRON_SECRET_LENGTH:
        rows.append(Check("env CRON_SECRET_KEY", WARN, f"set, but only {len(cron)} characters (use at least "
                                                       f"{MIN_CRON_SECRET_LENGTH}, e.g. `openssl rand -hex 32`)"))
    else:
        rows.append(Check("env CRON_SECRET_KEY", PASS, f"set ({len(cron)} characters)"))
    rows.append(policy(settings))
    url = settings.webhook_public_url
    if not url:
        rows.append(Check("env PAYOPS_WEBHOOK_URL", WARN, "not set: the endpoint's URL in Stripe is not verified"))
    elif not url.startswith("https://") and target == "live":
        rows.append(Check("env PAYOPS_WEBHOOK_URL", FAIL, f"{url}: Stripe delivers live events over https only"))
    else:
        rows.append(Check("env PAYOPS_WEBHOOK_URL", PASS, url))
    return rows


def _database_url(settings: Settings, target: Target) -> Check:
    from sqlalchemy.engine import make_url

    from payops.db import normalize_url

    try:
        url = make_url(normalize_url(settings.database_url))
    except Exception as exc:  # noqa: BLE001
        return Check("env PAYOPS_DATABASE_URL", FAIL, f"not a database URL: {error_line(exc)}")
    shown = url.render_as_string(hide_password=True)
    if not os.environ.get("PAYOPS_DATABASE_URL"):
        return Check("env PAYOPS_DATABASE_URL", FAIL if target == "live" else WARN,
                     f"not set: the default SQLite file {shown} is used")
    if url.get_backend_name() == "sqlite" and target == "live":
        return Check("env PAYOPS_DATABASE_URL", WARN, f"{shown}: SQLite in production (single host only)")
    return Check("env PAYOPS_DATABASE_URL", PASS, shown)


def _slack_url(settings: Settings, target: Target) -> Check:
    url = _secret(settings.slack_webhook_url)
    if not url:
        return Check("env PAYOPS_SLACK_WEBHOOK_URL", FAIL, "not set: cycle failures would page nobody")
    if not url.lower().startswith(("http://", "https://")):
        return Check("env PAYOPS_SLACK_WEBHOOK_URL", FAIL, "set, but not an http(s) URL")
    if target == "live" and not url.lower().startswith("https://"):
        return Check("env PAYOPS_SLACK_WEBHOOK_URL", WARN, "set, but not https")
    return Check("env PAYOPS_SLACK_WEBHOOK_URL", PASS, "set (URL not shown)")


def policy(settings: Settings) -> Check:
    """PAYOUT_* / PLATFORM_* policy and the schedule parse."""
    from payops.cycle import slots
    from payops.cycle.policy import PayoutPolicy

    try:
        pol = PayoutPolicy.from_settings(settings)
        slots.zone(settings)
        slots.payout_expr(settings)
    except PayopsError as exc:
        return Check("env PAYOUT_* policy", FAIL, str(exc))
    return Check("env PAYOUT_* policy", PASS, f"{pol.describe()}; schedule {settings.payout_schedule_cron!r} in "
                                              f"{settings.payout_timezone}")


# --- Stripe ------------------------------------------------------------------------------------------
def webhook_endpoint(settings: Settings, required: tuple[str, ...] | None = None) -> list[Check]:
    """An enabled endpoint in Stripe sending every event the receiver handles (and at PAYOPS_WEBHOOK_URL)."""
    from payops.webhooks import SUBSCRIBED_EVENTS

    required = tuple(required or SUBSCRIBED_EVENTS)
    name = "stripe webhook endpoint"
    try:
        client = make_client(settings=settings, purpose="platform", max_network_retries=1)
        endpoints = list(client.v1.webhook_endpoints.list({"limit": 100}).auto_paging_iter())
    except Exception as exc:  # noqa: BLE001
        return [Check(name, FAIL, f"cannot list webhook endpoints with STRIPE_SECRET_KEY: {error_line(exc)}"),
                Check("stripe webhook events", SKIP, "no endpoint list")]
    enabled = [e for e in endpoints if getattr(e, "status", "enabled") == "enabled"]
    url = settings.webhook_public_url
    if url:
        candidates = [e for e in enabled if e.url.rstrip("/") == url.rstrip("/")]
        if not candidates:
            seen = ", ".join(e.url for e in enabled) or "none"
            return [Check(name, FAIL, f"no enabled endpoint at PAYOPS_WEBHOOK_URL {url} (enabled: {seen})"),
                    Check("stripe webhook events", SKIP, "no matching endpoint")]
    else:
        candidates = enabled
        if not candidates:
            return [Check(name, FAIL, f"no enabled webhook endpoint in Stripe ({len(endpoints)} disabled)"),
                    Check("stripe webhook events", SKIP, "no endpoint")]

    def missing(e: object) -> list[str]:
        events = set(getattr(e, "enabled_events", None) or [])
        return [] if "*" in events else [ev for ev in required if ev not in events]

    best = min(candidates, key=lambda e: len(missing(e)))
    rows = [Check(name, PASS, f"{best.id} → {best.url}")]
    gaps = missing(best)
    rows.append(Check("stripe webhook events", FAIL if gaps else PASS,
                      f"{best.id} does not send: {', '.join(gaps)}" if gaps
                      else f"all {len(required)} required events: {', '.join(required)}"))
    return rows


# --- database ------------------------------------------------------------------------------------------
def database(settings: Settings) -> list[Check]:
    """Migrations at head; every table, index and unique constraint of the models present."""
    from sqlalchemy import inspect

    from payops import db
    from payops.db.models import Base

    try:
        current, head = db.current_revision(settings.database_url), db.head_revision()
    except Exception as exc:  # noqa: BLE001
        return [Check("database migrations", FAIL, f"cannot read the schema revision: {error_line(exc)}"),
                Check("database tables and indexes", SKIP, "database unreachable")]
    rows = [Check("database migrations", PASS if current == head else FAIL,
                  f"at head {head}" if current == head else
                  f"at {current or 'nothing (empty database)'}, head is {head}: run `payops db upgrade`")]
    insp = inspect(db.get_engine(settings.database_url))
    present = set(insp.get_table_names())
    missing_tables = sorted(set(Base.metadata.tables) - present)
    missing_idx: list[str] = []
    for tname, table in Base.metadata.tables.items():
        if tname not in present:
            continue
        have = {tuple(i["column_names"]) for i in insp.get_indexes(tname)}
        have |= {tuple(u["column_names"]) for u in insp.get_unique_constraints(tname)}
        wanted = [tuple(c.name for c in ix.columns) for ix in table.indexes]
        wanted += [tuple(c.name for c in uc.columns) for uc in table.constraints
                   if type(uc).__name__ == "UniqueConstraint"]
        wanted += [(c.name,) for c in table.columns if c.unique]
        pk = tuple(c.name for c in table.primary_key.columns)
        missing_idx += [f"{tname}({', '.join(w)})" for w in wanted if w not in have and w != pk]
    if missing_tables or missing_idx:
        parts = ([f"missing tables: {', '.join(missing_tables)}"] if missing_tables else []) + (
            [f"missing indexes: {', '.join(sorted(set(missing_idx)))}"] if missing_idx else [])
        rows.append(Check("database tables and indexes", FAIL, "; ".join(parts)))
    else:
        rows.append(Check("database tables and indexes", PASS,
                          f"{len(Base.metadata.tables)} tables with their indexes and unique constraints"))
    return rows
