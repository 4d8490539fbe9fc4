"""POST /cron/payout-cycle: bearer auth, disabled without a secret, body validation, the background run."""

from __future__ import annotations

import logging
import sys
import threading
import types
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest
from webhook_helpers import CRON_SECRET, WEBHOOK_SECRET, serving

from payops.config import Settings
from payops.webhooks.app import create_app
from payops.webhooks.trigger import bearer_matches, parse_body

AUTH = {"Authorization": f"Bearer {CRON_SECRET}"}


class Recorder:
    def __init__(self, error: Exception | None = None, gate: threading.Event | None = None) -> None:
        self.calls: list[tuple[date | None, bool]] = []
        self.error = error
        self.gate = gate

    def __call__(self, cycle_date: date | None, live: bool) -> str:
        self.calls.append((cycle_date, live))
        if self.gate is not None:
            self.gate.wait(20)
        if self.error is not None:
            raise self.error
        return "run-1"


def _settings(tmp_path: Path, cron: str | None = CRON_SECRET) -> Settings:
    s = Settings(PAYOPS_DATABASE_URL=f"sqlite:///{tmp_path / 'payops.db'}", STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET)
    return s.model_copy(update={"cron_secret_key": None}) if cron is None else s.model_copy(
        update={"cron_secret_key": Settings(CRON_SECRET_KEY=cron).cron_secret_key})


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def served(tmp_path: Path, recorder: Recorder) -> Iterator[tuple[httpx.Client, Any]]:
    app = create_app(_settings(tmp_path), trigger=recorder)
    with serving(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        yield client, app


def test_no_or_wrong_token_is_401_and_nothing_runs(served: tuple[httpx.Client, Any], recorder: Recorder) -> None:
    client, app = served
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {CRON_SECRET}"},
                    {"Authorization": CRON_SECRET}, {"Authorization": f"Bearer {CRON_SECRET}x"},
                    {"Authorization": "Bearer"}):
        resp = client.post("/cron/payout-cycle", json={"dry_run": False}, headers=headers)
        assert resp.status_code == 401, headers
        assert resp.json() == {"error": "missing or wrong bearer token"}
        assert resp.headers["www-authenticate"].startswith("Bearer")
    app.state.trigger_runner.join(5)
    assert recorder.calls == []


def test_unset_secret_disables_the_trigger(tmp_path: Path, recorder: Recorder) -> None:
    app = create_app(_settings(tmp_path, cron=None), trigger=recorder)
    with serving(app) as url:
        for headers in ({}, AUTH, {"Authorization": "Bearer"}):
            resp = httpx.post(url + "/cron/payout-cycle", headers=headers)
            assert resp.status_code == 503
            assert resp.json() == {"error": "trigger disabled: CRON_SECRET_KEY is not set"}
    assert recorder.calls == []


def test_right_token_starts_the_cycle_with_date_and_live_flag(served: tuple[httpx.Client, Any],
                                                              recorder: Recorder) -> None:
    client, app = served
    resp = client.post("/cron/payout-cycle", json={"cycle_date": "2026-12-01", "dry_run": False}, headers=AUTH)
    assert resp.status_code == 202, resp.text
    body = resp.json()
    assert body["accepted"] is True
    assert (body["cycle_date"], body["dry_run"], body["live"], body["trigger"]) == ("2026-12-01", False, True, "http")
    app.state.trigger_runner.join(10)
    assert recorder.calls == [(date(2026, 12, 1), True)]
    assert app.state.trigger_runner.history[-1]["result"] == "run-1"


def test_dry_run_is_the_default(served: tuple[httpx.Client, Any], recorder: Recorder) -> None:
    client, app = served
    for kwargs in ({}, {"json": None}, {"json": {}}, {"json": {"cycle_date": None}}):
        resp = client.post("/cron/payout-cycle", headers=AUTH, **kwargs)
        assert resp.status_code == 202, resp.text
        assert resp.json()["dry_run"] is True and resp.json()["live"] is False
        app.state.trigger_runner.join(10)
    assert recorder.calls == [(None, False)] * 4


@pytest.mark.parametrize(("body", "field"), [
    (b'{"cycle_date": "2026-13-01"}', "cycle_date"),
    (b'{"cycle_date": "1 Dec 2026"}', "cycle_date"),
    (b'{"cycle_date": 20261201}', "cycle_date"),
    (b'{"dry_run": "no"}', "dry_run"),
    (b'{"dry_run": 0}', "dry_run"),
    (b'{"live": true}', "live"),
    (b'[1]', "body"),
    (b'{oops', "body"),
])
def test_bad_body_is_400_naming_the_field(served: tuple[httpx.Client, Any], recorder: Recorder, body: bytes,
                                          field: str) -> None:
    client, app = served
    resp = client.post("/cron/payout-cycle", content=body, headers={**AUTH, "Content-Type": "application/json"})
    assert resp.status_code == 400
    assert f"{field}: " in resp.json()["error"]
    assert "\n" not in resp.text
    app.state.trigger_runner.join(5)
    assert recorder.calls == []


def test_a_failing_cycle_is_logged_not_swallowed(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    recorder = Recorder(error=RuntimeError("the cycle broke"))
    app = create_app(_settings(tmp_path), trigger=recorder)
    with caplog.at_level(logging.ERROR, logger="payops.webhooks.trigger"), serving(app) as url:
        resp = httpx.post(url + "/cron/payout-cycle", json={"cycle_date": "2026-12-15"}, headers=AUTH)
        assert resp.status_code == 202
        app.state.trigger_runner.join(10)
    failures = [r for r in caplog.records if "payout cycle triggered over HTTP failed" in r.getMessage()]
    assert failures and failures[0].exc_info is not None
    assert app.state.trigger_runner.history[-1]["error"] == "RuntimeError: the cycle broke"


def test_one_cycle_at_a_time_per_process(tmp_path: Path) -> None:
    gate = threading.Event()
    recorder = Recorder(gate=gate)
    app = create_app(_settings(tmp_path), trigger=recorder)
    with serving(app) as url:
        assert httpx.post(url + "/cron/payout-cycle", headers=AUTH).status_code == 202
        second = httpx.post(url + "/cron/payout-cycle", headers=AUTH)
        assert second.status_code == 409
        gate.set()
        app.state.trigger_runner.join(10)
        assert httpx.post(url + "/cron/payout-cycle", headers=AUTH).status_code == 202
        app.state.trigger_runner.join(10)
    assert len(recorder.calls) == 2


def test_default_trigger_calls_the_cycle_runbook(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[Any, dict[str, Any]]] = []
    fake = types.ModuleType("payops.cycle.runbook")
    fake.run_cycle_runbook = lambda cycle_date, **kw: calls.append((cycle_date, kw)) or "rb-42"  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "payops.cycle.runbook", fake)
    settings = _settings(tmp_path)
    app = create_app(settings)
    with serving(app) as url:
        resp = httpx.post(url + "/cron/payout-cycle", json={"cycle_date": "2027-01-01", "dry_run": False},
                          headers=AUTH)
        assert resp.status_code == 202
        app.state.trigger_runner.join(10)
    assert calls == [(date(2027, 1, 1), {"live": True, "settings": settings, "trigger": "http"})]
    assert app.state.trigger_runner.history[-1]["result"] == "rb-42"


def test_bearer_and_body_helpers() -> None:
    assert bearer_matches(f"Bearer {CRON_SECRET}", CRON_SECRET)
    assert bearer_matches(f"bearer  {CRON_SECRET} ", CRON_SECRET)
    assert not bearer_matches(None, CRON_SECRET)
    assert not bearer_matches(f"Bearer {CRON_SECRET}", "")
    assert parse_body(b"").dry_run is True
    assert parse_body(b'{"cycle_date": "2026-12-01", "dry_run": false}').live is True
