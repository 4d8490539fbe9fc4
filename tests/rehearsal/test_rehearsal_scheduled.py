"""The scheduler's rehearsal job with a controlled clock: the dry part in the rehearsal world, a message to
#payments-rehearsal with what each person runs, never live — then people approve with their own keys and
``payops rehearse --continue RUN_ID --key …`` takes it live and wraps it up (the attended path)."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from rehearsal_helpers import REHEARSAL_HOOK_PATH
from rich.console import Console
from sqlalchemy import func, select
from typer.testing import CliRunner

from payops.approvals import submit
from payops.approvals.testkeys import enroll_test_roster
from payops.cli import app
from payops.config import get_settings
from payops.db import session_scope
from payops.db.models import ManualPayout, RunbookRun
from payops.rehearsal import world
from payops.scheduler import REHEARSAL, Scheduler, default_registry

pytestmark = [pytest.mark.e2e, pytest.mark.db, pytest.mark.slow]
OPERATOR = "aaaaaaaa-0000-4000-8000-000000000001"


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_scheduled_dry_part_then_people_continue_it(rehearsal_env, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAYOPS_OPERATOR_ID", OPERATOR)
    settings = get_settings(fresh=True)
    with world.entered(world.preflight(settings)) as s:  # the rehearsal's roster: real people, their own keys
        world.ensure_database(s)
        team = enroll_test_roster(tmp_path / "keys", [
            ("operator", OPERATOR, "Oscar Operator", ("operator",)),
            ("ops", "bbbbbbbb-0000-4000-8000-000000000002", "Olivia Ops", ("ops",)),
            ("finance", "cccccccc-0000-4000-8000-000000000003", "Farid Finance", ("finance",)),
        ], by=OPERATOR, settings=s)
    settings = get_settings(fresh=True)
    slot = datetime(2027, 2, 2, 14, 0, tzinfo=UTC)
    at = slot + timedelta(seconds=20)
    report = Scheduler(settings, clock=lambda: at, jobs=[default_registry().get(REHEARSAL)]).tick(at)
    (ex,) = report.executions
    assert (ex.job, ex.status, ex.error) == (REHEARSAL, "succeeded", None), ex.error
    with session_scope(settings) as sess:  # production: only the scheduler's own record
        assert sess.scalar(select(func.count()).select_from(RunbookRun)) == 0
    (post,) = rehearsal_env.sinks.slack_messages()[-1:]
    assert post["path"] == REHEARSAL_HOOK_PATH and post["json"]["channel"] == "#payments-rehearsal"
    text = post["json"]["text"]
    assert "REH-2027-Q1" in text and "never goes live" in text and f"--continue {ex.run_id}" in text
    dry_id = text.split("payops approve ")[1].split()[0]
    assert f"payops approve {dry_id} --role finance" in text
    with world.entered(world.preflight(settings)) as s:
        with session_scope(s) as sess:
            assert sess.scalar(select(func.count()).select_from(ManualPayout)) == 0  # never live on its own
        for role in ("ops", "finance"):
            submit.approve(dry_id, role=role, key=team[role].key_path, yes=True, console=Console(file=io.StringIO()))
    res = CliRunner().invoke(app, ["rehearse", "--continue", ex.run_id, "--key", str(team["operator"].key_path),
                                   "--wait", "10s", "--settle-wait", "60s"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert len(re.findall(r"\bPASS\b", res.output)) == 4 and "FAIL" not in res.output
    assert "rehearsal run " + ex.run_id + ": passed" in res.output and "payops approve" in res.output
