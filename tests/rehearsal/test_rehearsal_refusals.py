"""``payops rehearse`` refuses before anything is created: a live key anywhere in the environment, the
production database as the rehearsal database, the #payments-alerts webhook, --unattended outside the
rehearsal world."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from payops.cli import app
from payops.config import get_settings

pytestmark = [pytest.mark.db]


def _nothing_created(env, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert not (tmp_path / "rehearsal.db").exists()
    assert not (tmp_path / "outputs-rehearsal").exists()
    assert env.sinks.slack_messages() == [] and env.sinks.emails() == []


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # refused before any database is opened
@pytest.mark.parametrize("var", ["STRIPE_SECRET_KEY", "SOME_OTHER_TEAMS_KEY"])
def test_a_live_key_anywhere_stops_the_rehearsal_naming_it(rehearsal_env, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                           monkeypatch: pytest.MonkeyPatch, var: str) -> None:
    monkeypatch.setenv(var, "sk_live_" + "x" * 24)
    get_settings(fresh=True)
    res = CliRunner().invoke(app, ["rehearse", "--unattended"])
    assert res.exit_code != 0
    assert var in res.output and "live Stripe key" in res.output and "sk_live_xxx" not in res.output
    _nothing_created(rehearsal_env, tmp_path)


def test_the_production_database_is_refused_as_the_rehearsal_database(rehearsal_env, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAYOPS_REHEARSAL_DATABASE_URL", rehearsal_env.db_url)
    monkeypatch.setenv("PAYOPS_REHEARSAL_SLACK_WEBHOOK_URL", rehearsal_env.sinks.slack_webhook_url)
    get_settings(fresh=True)
    res = CliRunner().invoke(app, ["rehearse", "--unattended"])
    assert res.exit_code != 0
    assert "PAYOPS_REHEARSAL_DATABASE_URL: is the production database" in res.output
    assert "PAYOPS_REHEARSAL_SLACK_WEBHOOK_URL: is the #payments-alerts webhook" in res.output
    _nothing_created(rehearsal_env, tmp_path)


def test_the_public_schema_of_the_production_database_is_the_production_database() -> None:
    from payops.rehearsal.world import database_identity

    prod = "postgresql://postgres@127.0.0.1:5432/payops"
    assert database_identity(prod) == database_identity(prod + "?options=-csearch_path%3Dpublic")
    assert database_identity(prod) != database_identity(prod + "?options=-csearch_path%3Drehearsal")
    assert database_identity("sqlite:///var/payops.db") != database_identity("sqlite:///var/rehearsal.db")


def test_an_attended_rehearsal_needs_the_operator_and_their_key_before_anything(rehearsal_env, tmp_path: Path  # type: ignore[no-untyped-def]
                                                                                ) -> None:
    res = CliRunner().invoke(app, ["rehearse"])
    assert res.exit_code != 0
    assert "--operator: an attended rehearsal needs the operator's UUID" in res.output
    assert "--key: the operator signs the go-live" in res.output
    _nothing_created(rehearsal_env, tmp_path)


def test_generated_approvers_are_refused_outside_the_rehearsal_world(rehearsal_env, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from payops.errors import ParamsInvalid
    from payops.rehearsal.flow import _sign_unattended

    with pytest.raises(ParamsInvalid, match="--unattended: generated rehearsal-only approvers are refused here"):
        _sign_unattended(get_settings(fresh=True), "00000000-0000-4000-8000-000000000000",
                         "aaaaaaaa-0000-4000-8000-000000000001", tmp_path, None)
    from sqlalchemy import func, select

    from payops.db import session_scope
    from payops.db.models import ApproverPerson

    with session_scope() as s:  # nothing enrolled in the production roster
        assert s.scalar(select(func.count()).select_from(ApproverPerson)) == 0
