"""Helpers for the incident tests: the CLI, waiting for webhook deliveries, reading the incident and the archive."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from typer.testing import CliRunner, Result

from payops.db import session_scope
from payops.db.models import Incident, WebhookEvent, WebhookFailure

APPROVER = "dddddddd-0000-4000-8000-000000000004"
runner = CliRunner()


def cli(*args: str, input: str | None = None) -> Result:
    from payops.cli import app

    return runner.invoke(app, ["incident", *args], env={"COLUMNS": "200"}, input=input)


def archive_of(result: Result) -> Path:
    found = re.findall(r"archive: (\S+)", result.output)
    assert found, result.output
    return Path(found[-1])


def wait_deliveries(sandbox: Any, *, timeout: float = 30.0) -> list[dict[str, Any]]:
    """Wait until the sandbox's webhook sender has nothing outstanding (every delivery done or given up), then
    return the attempts."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = sandbox.control("GET", "webhooks/deliveries")
        if got["outstanding"] == 0:
            return list(got["data"])
        time.sleep(0.05)
    raise AssertionError("webhook deliveries did not settle")


def incident(incident_id: str) -> dict[str, Any]:
    from payops.incident import store

    with session_scope() as s:
        row = s.get(Incident, incident_id)
        assert row is not None, f"no incident {incident_id}"
        return store.as_dict(row)


def counts() -> dict[str, int]:
    with session_scope() as s:
        return {"webhook_events": s.scalar(select(func.count()).select_from(WebhookEvent)) or 0,
                "webhook_failures": s.scalar(select(func.count()).select_from(WebhookFailure)) or 0,
                "replayed": s.scalar(select(func.count()).select_from(WebhookFailure)
                                     .where(WebhookFailure.replayed_at.is_not(None))) or 0}


def result_of(folder: Path, step: str) -> dict[str, Any]:
    return json.loads((folder / "results" / f"{step}.json").read_text())


def numbers(triage: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {n["number"]: n for n in triage["numbers"]}
