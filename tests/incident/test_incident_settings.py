"""The incident settings: services by URL, credentials as secrets the archive scanner refuses, thresholds exact."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from payops import archive
from payops.config import Settings
from payops.errors import ArchiveError


def test_service_credentials_are_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAYOPS_S3_SECRET_ACCESS_KEY", "s3-secret-Zq81xA")
    monkeypatch.setenv("PAYOPS_REDIS_URL", "redis://:redis-pass-81Kq@cache.internal:6379/2")
    monkeypatch.setenv("PAYOPS_AMQP_URL", "amqp://checkout:amqp%2Fpass-7Yw@mq.internal:5672/shop")
    secrets = Settings().secret_values()
    assert {"s3-secret-Zq81xA", "redis-pass-81Kq", "amqp/pass-7Yw"} <= set(secrets)
    monkeypatch.setenv("PAYOPS_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
    assert "guest" not in Settings().secret_values()  # RabbitMQ's built-in, loopback-only account


def test_the_archive_refuses_a_run_holding_the_bucket_secret(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAYOPS_S3_SECRET_ACCESS_KEY", "s3-secret-Zq81xA")
    run = tmp_path / "outputs" / "checkout_incident" / "2026-12-07" / "r1"
    run.mkdir(parents=True)
    (run / "10-triage.ipynb").write_text('{"text": "aws_secret_access_key = s3-secret-Zq81xA"}')
    with pytest.raises(ArchiveError, match="configured_secret"):
        archive.seal_run(run, output_root=tmp_path / "outputs", meta={}, extra_secrets=Settings().secret_values())


def test_defaults_and_thresholds(monkeypatch: pytest.MonkeyPatch) -> None:
    st = Settings()
    assert (st.redis_url, st.amqp_url, st.retry_queue, st.queue_backend) == (
        "redis://127.0.0.1:6379/0", "amqp://guest:guest@127.0.0.1:5672/%2F", "checkout.retry", "rabbitmq")
    assert (st.incident_success_threshold, st.incident_retry_depth, st.incident_retry_ok_depth) == (Decimal("97"), 200,
                                                                                                    10)
    monkeypatch.setenv("PAYOPS_INCIDENT_SUCCESS_THRESHOLD", "97.5")
    assert Settings().incident_success_threshold == Decimal("97.5")  # exact, no float
    monkeypatch.setenv("PAYOPS_INCIDENT_SUCCESS_THRESHOLD", "101")
    with pytest.raises(ValueError, match=r"incident_success_threshold|PAYOPS_INCIDENT_SUCCESS_THRESHOLD"):
        Settings()
