"""Helpers of the rehearsal tests (imported by basename)."""

from __future__ import annotations

from typing import Any

REHEARSAL_HOOK_PATH = "/services/TREHEARSAL/BREHEARSAL/rehearsal-webhook-secret"
ALIAS = "payments-rehearsal@example.com"


def rehearsal_url(production_url: str, tmp_path: Any) -> str:
    """SQLite: its own file; PostgreSQL: the same database, the ``rehearsal`` schema."""
    if production_url.startswith("sqlite"):
        return f"sqlite:///{tmp_path / 'rehearsal.db'}"
    return production_url + "?options=-csearch_path%3Drehearsal"


def world_env(env: Any, tmp_path: Any) -> dict[str, str]:
    base = env.sinks.slack_webhook_url.split("/services/")[0]
    return {
        "PAYOPS_REHEARSAL_DATABASE_URL": rehearsal_url(env.db_url, tmp_path),
        "PAYOPS_REHEARSAL_SLACK_WEBHOOK_URL": base + REHEARSAL_HOOK_PATH,
        "PAYOPS_REHEARSAL_EMAIL_TO": ALIAS,
        "PAYOPS_REHEARSAL_OUTPUT_DIR": str(tmp_path / "outputs-rehearsal"),
    }
