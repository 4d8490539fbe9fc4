"""``payops webhooks events`` and ``serve``'s refusals (the Typer app, mounted by payops.cli)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner
from webhook_helpers import make_event, post_event

from payops.config import get_settings
from payops.webhooks.cli import app

pytestmark = pytest.mark.db
runner = CliRunner()


def test_events_lists_what_the_receiver_recorded(wh_env: Any, http: httpx.Client) -> None:
    first = make_event("payment_intent.succeeded", {"id": "pi_cli_1", "object": "payment_intent"})
    second = make_event("charge.dispute.created", {"id": "dp_cli_2", "object": "dispute", "amount": 1000,
                                                   "currency": "cad", "charge": "ch_[bold]x", "reason": "general"})
    for event in (first, second):
        assert post_event(http, event).status_code == 200
    result = runner.invoke(app, ["events", "--limit", "20"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    assert first["id"] in result.output and second["id"] in result.output
    assert "ch_[bold]x" in result.output  # Stripe's values are shown as text, never as markup
    only = runner.invoke(app, ["events", "--type", "payment_intent.succeeded"], env={"COLUMNS": "250"})
    assert first["id"] in only.output and second["id"] not in only.output
    limited = runner.invoke(app, ["events", "--limit", "1"], env={"COLUMNS": "250"})
    assert limited.output.count("evt_") == 1


def test_events_on_an_empty_table(wh_env: Any) -> None:
    result = runner.invoke(app, ["events"])
    assert result.exit_code == 0 and "no webhook events recorded" in result.output


def test_events_without_the_schema_is_a_config_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAYOPS_DATABASE_URL", f"sqlite:///{tmp_path / 'empty.db'}")
    get_settings(fresh=True)
    try:
        result = runner.invoke(app, ["events"])
    finally:
        monkeypatch.undo()
        get_settings(fresh=True)
    assert result.exit_code == 11
    assert "payops db upgrade" in result.output


def test_serve_refuses_without_a_webhook_secret(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAYOPS_DATABASE_URL", f"sqlite:///{tmp_path / 'x.db'}")
    monkeypatch.delenv("STRIPE_WEBHOOK_SECRET", raising=False)
    get_settings(fresh=True)
    try:
        result = runner.invoke(app, ["serve", "--port", "1"])
    finally:
        monkeypatch.undo()
        get_settings(fresh=True)
    assert result.exit_code == 11
    assert "STRIPE_WEBHOOK_SECRET is not set" in result.output


def test_help_names_the_commands() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "Stripe webhook receiver and the cycle trigger." in result.output
    assert "serve" in result.output and "events" in result.output
