"""State persistence across a restart, and the ``payops sandbox`` CLI."""

from __future__ import annotations

import json
from pathlib import Path

from sandbox_helpers import transfer_params
from typer.testing import CliRunner

from payops.sandbox.cli import app
from payops.sandbox.testing import RunningSandbox, sandbox

runner = CliRunner()


def test_state_survives_a_restart(tmp_path: Path) -> None:
    state_file = tmp_path / "sandbox.json"
    with sandbox(seed="demo", state_file=state_file, rate_limit=0) as first:
        client = first.client()
        tr = client.v1.transfers.create(params=transfer_params(4_321), options={"idempotency_key": "k-persist"})
        first.advance_clock(3600)
        cad = client.v1.balance.retrieve().available
    assert state_file.exists() and json.loads(state_file.read_text())["format"] == 1
    with sandbox(seed="none", state_file=state_file, rate_limit=0) as second:
        client = second.client()
        assert client.v1.transfers.retrieve(tr.id).amount == 4_321
        again = client.v1.transfers.create(params=transfer_params(4_321), options={"idempotency_key": "k-persist"})
        assert again.id == tr.id and again.last_response.headers["Idempotent-Replayed"] == "true"
        assert client.v1.balance.retrieve().available == cad
        assert second.control("GET", "clock")["offset"] >= 3600


def test_cli_clock_faults_dump_reset(sb: RunningSandbox) -> None:
    result = runner.invoke(app, ["clock", "advance", "--seconds", "120", "--url", sb.url])
    assert result.exit_code == 0, result.output
    assert sb.control("GET", "clock")["offset"] >= 120
    result = runner.invoke(app, ["faults", "--url", sb.url, "--latency-ms", "5", "--lost-response",
                                 "POST /v1/transfers:2", "--fail-next", "GET /v1/balance", "--json"])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    assert shown["latency_ms"] == 5 and shown["lost_response"] == {"POST /v1/transfers": 2}
    assert shown["fail_next"] == {"GET /v1/balance": 1}
    result = runner.invoke(app, ["faults", "--url", sb.url, "--clear", "--json"])
    assert json.loads(result.output)["lost_response"] == {}
    result = runner.invoke(app, ["dump", "--url", sb.url])
    assert result.exit_code == 0 and "acct_test_studio_a" in result.output
    result = runner.invoke(app, ["reset", "--url", sb.url, "--seed", "none"])
    assert result.exit_code == 0, result.output
    assert sb.client().v1.accounts.list().data == []


def test_cli_help_and_unreachable() -> None:
    result = runner.invoke(app, ["serve", "--help"])
    assert result.exit_code == 0 and "--latency-ms" in result.output and "--no-sinks" in result.output
    result = runner.invoke(app, ["dump", "--url", "http://127.0.0.1:9"])
    assert result.exit_code == 2 and "cannot reach" in result.output
