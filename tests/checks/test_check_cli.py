"""``payops check …``: the table is printed, exit 0 on pass and 15 on a failure (SQLite only: the
database layer is covered by the other check tests)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from payops.cli import app

pytestmark = [pytest.mark.db, pytest.mark.e2e]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_pre_run_cli_prints_the_table(checks_env) -> None:  # type: ignore[no-untyped-def]
    res = CliRunner().invoke(app, ["check", "pre-run", "--cycle-date", "2026-12-01"])
    assert res.exit_code == 0, res.output
    for name in ("scheduler armed", "platform balance sufficient", "eligible studios", "no stuck runs"):
        assert name in res.output
    assert "pre-run check 2026-12-01: PASSED" in res.output and "archive:" in res.output


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_go_live_cli_exits_15_naming_the_failure(checks_env, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("STRIPE_WEBHOOK_SECRET")
    res = CliRunner().invoke(app, ["check", "go-live", "--target", "test"])
    assert res.exit_code == 15, res.output
    assert "env STRIPE_WEBHOOK_SECRET" in res.output and "FAIL" in res.output
    assert "failing: env STRIPE_WEBHOOK_SECRET" in res.output


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_cli_refuses_bad_parameters_before_any_run(checks_env) -> None:  # type: ignore[no-untyped-def]
    res = CliRunner().invoke(app, ["check", "go-live", "--target", "prod"])
    assert res.exit_code == 2 and "target" in res.output
    res = CliRunner().invoke(app, ["check", "post-run", "--cycle-date", "2026-12-02"])
    assert res.exit_code == 2 and "cycle_date" in res.output
