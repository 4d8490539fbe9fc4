"""Bad input exits 2 naming the flag, before anything is created: no run, no incident, no archive folder."""

from __future__ import annotations

from pathlib import Path

import pytest
from incident_helpers import cli
from sqlalchemy import func, select

from payops.db import session_scope
from payops.db.models import Incident, RunbookRun
from payops.incident.params import duration_seconds, validate_incident

pytestmark = pytest.mark.db


def _nothing_created(output_dir: Path) -> None:
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(RunbookRun)) == 0
        assert s.scalar(select(func.count()).select_from(Incident)) == 0
    assert not output_dir.exists() or not any(output_dir.iterdir())


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(("args", "flag", "words"), [
    (["--scenario", "checkout-outage", "--incident-id", "INC-1"], "--scenario", "not a scenario"),
    (["--scenario", "", "--incident-id", "INC-1"], "--scenario", "not a scenario"),
    (["--scenario", "receipts", "--incident-id", "1234"], "--incident-id", "not an incident id"),
    (["--scenario", "receipts", "--incident-id", "INC-"], "--incident-id", "not an incident id"),
    (["--scenario", "receipts", "--incident-id", "INC-1; DROP TABLE"], "--incident-id", "not an incident id"),
    (["--scenario", "receipts", "--incident-id", "INC-1", "--since", "soon"], "--since", "not a duration"),
    (["--scenario", "receipts", "--incident-id", "INC-1", "--since", "30"], "--since", "not a duration"),
    (["--scenario", "receipts", "--incident-id", "INC-1", "--since", "30s"], "--since", "between 1 minute and 7 days"),
    (["--scenario", "receipts", "--incident-id", "INC-1", "--since", "8d"], "--since", "between 1 minute and 7 days"),
    (["--scenario", "receipts", "--incident-id", "INC-1", "--dry-run", "--live"], "--live", "cannot be combined"),
    (["--scenario", "receipts", "--incident-id", "INC-1", "--live"], "--live", "no dry-run plan"),
])
def test_bad_checkout_input_exits_2_naming_the_flag(payops_env, args: list[str], flag: str,  # type: ignore[no-untyped-def]
                                                    words: str) -> None:
    res = cli("checkout", *args)
    assert res.exit_code == 2, res.output
    assert flag in res.output and words in res.output
    _nothing_created(payops_env.output_dir)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_every_problem_is_named_at_once(payops_env) -> None:  # type: ignore[no-untyped-def]
    res = cli("checkout", "--scenario", "nope", "--incident-id", "X", "--since", "later")
    assert res.exit_code == 2
    assert all(f in res.output for f in ("--scenario", "--incident-id", "--since"))
    _nothing_created(payops_env.output_dir)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_verify_close_approve_an_unknown_or_malformed_incident(payops_env) -> None:  # type: ignore[no-untyped-def]
    for args in (["verify", "INC-NOPE"], ["close", "INC-NOPE"], ["approve", "INC-NOPE", "--statement-only"]):
        res = cli(*args)
        assert res.exit_code == 2 and "no incident INC-NOPE" in res.output, res.output
    res = cli("verify", "bogus")
    assert res.exit_code == 2 and "--incident-id" in res.output
    res = cli("verify", "INC-1", "--since", "forever")
    assert res.exit_code == 2 and "--since" in res.output
    _nothing_created(payops_env.output_dir)


def test_durations() -> None:
    assert [duration_seconds(t) for t in ("30m", "2h", "1h30m", "90s", "1d", " 45m ")] == [
        1800, 7200, 5400, 90, 86400, 2700]
    assert duration_seconds("1m") == 60 and duration_seconds("7d") == 7 * 86400
    for bad in ("", "m", "30", "-5m", "1.5h", "30 m", "59s", "7d1s"):
        with pytest.raises(ValueError):
            duration_seconds(bad)
    assert validate_incident({"scenario": "receipts", "incident_id": "INC-2026-1207-01"}).dry_run is True


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_live_expiry_needs_an_operator_and_an_approval(payops_env, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    from payops.config import get_settings
    from payops.incident import store
    from payops.incident.runbook import create_incident_run

    run_id = create_incident_run(validate_incident({"scenario": "payment-window", "incident_id": "INC-OP-1"}))
    with session_scope() as s:
        row = store.open_or_get(s, "INC-OP-1", "payment-window", "a", None, run_id)
        store.record_triage(row, {}, run_id=run_id, summary="x", level=1, plan={
            "scenario": "payment-window", "description": "expire 1", "items": [{"kind": "expire"}], "run_id": run_id})
    monkeypatch.delenv("PAYOPS_OPERATOR_ID")
    get_settings(fresh=True)
    res = cli("checkout", "--scenario", "payment-window", "--incident-id", "INC-OP-1", "--live")
    assert res.exit_code == 2 and "PAYOPS_OPERATOR_ID" in res.output
    monkeypatch.setenv("PAYOPS_OPERATOR_ID", "aaaaaaaa-0000-4000-8000-000000000001")
    get_settings(fresh=True)
    res = cli("checkout", "--scenario", "payment-window", "--incident-id", "INC-OP-1", "--live")
    assert res.exit_code == 4 and "no approval of the dry run's plan" in res.output
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(RunbookRun)) == 1  # only the dry run's: nothing created
