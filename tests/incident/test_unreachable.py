"""An unreachable Redis, broker or bucket: a clear error naming it (exit 16), and the record still seals — the run
is archived and verifies, the incident keeps the finding (Infrastructure/SRE) and its drafts name the system."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from incident_helpers import archive_of, cli, incident

from payops.archive import verify_archive
from payops.config import get_settings

pytestmark = [pytest.mark.e2e, pytest.mark.db, pytest.mark.slow]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(("scenario", "variable", "url", "named"), [
    ("payment-window", "PAYOPS_REDIS_URL", "redis://:hunter2hunter2@127.0.0.1:1/0", "Redis at redis://127.0.0.1:1/0"),
    ("retry-backlog", "PAYOPS_AMQP_URL", "amqp://guest:guest@127.0.0.1:1/%2F", "RabbitMQ at amqp://guest@127.0.0.1:1/%2F"),
    ("receipts", "PAYOPS_S3_ENDPOINT_URL", "http://127.0.0.1:1", "S3 bucket"),
])
def test_unreachable_system_is_named_and_the_record_seals(incident_env, monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
                                                          scenario: str, variable: str, url: str, named: str) -> None:
    monkeypatch.setenv(variable, url)
    get_settings(fresh=True)
    inc = f"INC-U-{incident_env.tag}"
    res = cli("checkout", "--scenario", scenario, "--incident-id", inc)
    assert res.exit_code == 16, res.output
    assert named in res.output and "is unreachable" in res.output and "hunter2" not in res.output
    folder = archive_of(res)
    assert (folder / "manifest.json").is_file() and (folder / "10-triage.html").is_file()
    assert verify_archive(incident_env.output_dir).ok
    result = json.loads((folder / "results" / "10-triage.json").read_text())
    assert named in result["error"] and result["escalation"]["level"] == 2
    assert named.split(" at ")[0] in (folder / "drafts" / "ops-oncall.txt").read_text()
    rec = incident(inc)
    assert rec["status"] == "open" and rec["escalation_level"] == 2
    assert any("triage stopped" in t["what"] and named in t["what"] for t in rec["timeline"])
    assert not (Path(folder) / "results" / "20-act.json").exists()  # nothing acted on


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_verification_fails_the_step_of_the_unreachable_system(incident_env,  # type: ignore[no-untyped-def]
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from payops.db import session_scope
    from payops.incident import store
    from payops.incident.params import validate_incident
    from payops.incident.runbook import create_incident_run

    inc = f"INC-V-{incident_env.tag}"
    run_id = create_incident_run(validate_incident({"scenario": "retry-backlog", "incident_id": inc}))
    with session_scope() as s:  # an incident under way (its triage is tested elsewhere)
        store.open_or_get(s, inc, "retry-backlog", "backlog", None, run_id)
    monkeypatch.setenv("PAYOPS_AMQP_URL", "amqp://guest:guest@127.0.0.1:1/%2F")
    get_settings(fresh=True)
    res = cli("verify", inc)
    assert res.exit_code == 15, res.output
    checks = {c["name"]: c for c in json.loads((archive_of(res) / "results" / "verify.json").read_text())["checks"]}
    assert checks["3 retry queue"]["status"] == "FAIL" and "RabbitMQ at amqp://guest@127.0.0.1:1" in \
        checks["3 retry queue"]["detail"]
    assert checks["1 success rate"]["status"] == "PASS"
    assert incident(inc)["status"] == "open"
    refused = cli("close", inc)
    assert refused.exit_code == 3 and "3 retry queue" in refused.output and "RabbitMQ" in refused.output
