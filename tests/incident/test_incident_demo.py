"""``make incident-demo`` itself, in a fresh folder: one checkout incident from alert to close, the archive
verifying, and nothing left behind in Redis or RabbitMQ — so the README's command cannot rot unseen."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_incident_demo_plays_alert_to_close(tmp_path: Path, redis_server: str, amqp_server: str) -> None:
    import redis

    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "PAYOPS_", "STRIPE_"))}
    env |= {"COLUMNS": "200", "PAYOPS_REDIS_URL": redis_server, "PAYOPS_AMQP_URL": amqp_server}
    res = subprocess.run([sys.executable, "-m", "payops.incident.demo"], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=600, check=False)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-4000:]
    for words in ("1. Triage, dry run", "would expire 4 Checkout Session(s)", "✔ approved by",
                  "4 expired, 4 keys cleared", "PASSED", "incident INC-DEMO-CHECKOUT-001 closed",
                  "## Follow-ups", "archive verifies"):
        assert words in out, words
    engine = create_engine(f"sqlite:///{tmp_path / 'var' / 'incident-demo' / 'payops.db'}")
    with engine.connect() as conn:
        status = conn.execute(text("SELECT status FROM incidents WHERE id = 'INC-DEMO-CHECKOUT-001'")).scalar_one()
        runs = conn.execute(text("SELECT sop, mode, status FROM runbook_runs ORDER BY created_at")).all()
    engine.dispose()
    assert status == "closed"
    assert [tuple(r) for r in runs] == [("checkout_incident", "dry-run", "succeeded"),
                                        ("checkout_incident", "live", "succeeded"),
                                        ("incident_verify", "check", "succeeded"),
                                        ("incident_close", "report", "succeeded")]
    assert "127.0.0.1 - -" not in out  # no S3 request log in the operator's terminal
    r = redis.Redis.from_url(redis_server)
    assert list(r.scan_iter(match="payops-demo-*")) == []  # the demo cleared its own keys
    r.close()
