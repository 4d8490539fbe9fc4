"""Bad input gets a clear error naming the field and writes nothing; the credential inventory never holds a
secret; ``credentials rotate`` records a rotation; a live manual payout marks the fallback key due."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from monitor_helpers import T0, cli, credential, live_manual, table_counts

from payops.db import session_scope
from payops.monitor.credentials import FALLBACK_KEY_NAME, inventory, mark_fallback_rotation_due, secret_problem

pytestmark = pytest.mark.db


@pytest.mark.parametrize("bad", ["yesterday", "2026-13-01T00:00:00Z", "2026-12-01T25:00", "1701400000", ""])
def test_malformed_at_names_the_field_and_writes_nothing(monitor_env, bad: str) -> None:  # type: ignore[no-untyped-def]
    live_manual(T0, audit=False)
    res = cli("monitor", "check", "--at", bad)
    assert res.exit_code == 2, res.output
    assert "--at" in res.output and "is not an ISO 8601 timestamp" in res.output
    assert table_counts() == {"alerts": 0, "deliveries": 0, "credentials": 0}
    assert monitor_env.sinks.pagerduty_events() == []


@pytest.mark.parametrize(("args", "field", "words"), [
    (["--kind", "ssh_key", "--expires", "2027-01-01"], "--kind", "unknown credential kind 'ssh_key'"),
    (["--kind", "apple_pay_processing_cert", "--expires", "next year"], "--expires", "is not a date"),
    (["--kind", "apple_pay_processing_cert", "--expires", "2027-02-30"], "--expires", "is not a date"),
    (["--kind", "apple_pay_processing_cert"], "--expires", "watched by its expiry date"),
    (["--kind", "stripe_restricted_key"], "--rotation-due", "watched by its rotation date"),
    (["--kind", "webhook_signing_secret", "--issued", "soon"], "--issued", "is not a date"),
    (["--kind", "stripe_restricted_key", "--rotation-due", "2027-01-01", "--notes", "rk_live_51Habcdefghijkl"],
     "--notes", "looks like a secret (stripe restricted key)"),
    (["--kind", "webhook_signing_secret", "--notes", "whsec_abcdefghijklmnop"], "--notes", "stripe webhook secret"),
    (["--kind", "apple_pay_processing_cert", "--expires", "2027-01-01", "--notes",
      "-----BEGIN PRIVATE KEY-----MIIEvQIBADANBgkqhkiG9w0BAQEFAASC"], "--notes", "looks like a secret (private key)"),
    (["--kind", "apple_pay_processing_cert", "--expires", "2027-01-01", "--notes",
      "-----BEGIN CERTIFICATE-----MIIEvQIBADANBgkqhkiG9w0BAQEFAASC"], "--notes", "PEM block"),
    (["--kind", "stripe_restricted_key", "--rotation-due", "2027-01-01", "--owner",
      "https://hooks.slack.com/services/T000/B000/XXXXXXXXXXXX"], "--owner", "slack webhook url"),
    (["--kind", "stripe_restricted_key", "--rotation-due", "2027-01-01", "--notes",
      "token 3f9c2a7b1e8d4c6a9b0f2e7d5c3a1b8e"], "--notes", "long token"),
])
def test_credentials_add_refuses_bad_input(monitor_env, args: list[str], field: str, words: str) -> None:  # type: ignore[no-untyped-def]
    res = cli("credentials", "add", "payops-test-cred", *args)
    assert res.exit_code == 2, res.output
    line = " ".join(res.output.split())
    assert f"{field}:" in line and words in line, line
    assert table_counts()["credentials"] == 0


def test_a_secret_as_the_name_is_refused(monitor_env) -> None:  # type: ignore[no-untyped-def]
    res = cli("credentials", "add", "sk_test_4eC39HqLyjWDarjtT1zdp7dc", "--kind", "stripe_restricted_key",
              "--rotation-due", "2027-01-01")
    assert res.exit_code == 2 and "name: looks like a secret (stripe secret key)" in " ".join(res.output.split())
    assert "4eC39HqLyjWDarjtT1zdp7dc" not in res.output  # the refusal does not echo the key
    assert table_counts()["credentials"] == 0


def test_configured_secret_value_is_refused(monitor_env, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("CRON_SECRET_KEY", "correct-horse-battery-staple")
    monitor_env.refresh()
    res = cli("credentials", "add", "cron", "--kind", "stripe_restricted_key", "--rotation-due", "2027-01-01",
              "--notes", "value correct-horse-battery-staple")
    assert res.exit_code == 2 and "contains the value of a configured secret" in " ".join(res.output.split())


def test_secret_detector_leaves_ordinary_metadata_alone() -> None:
    for ok in ("apple-pay-processing-2026", "STRIPE_FALLBACK_SECRET_KEY", "owned by payments-eng",
               "bbbbbbbb-0000-4000-8000-000000000002", "rotated via Stripe dashboard > Developers > API keys",
               "task_test_cleanup"):
        assert secret_problem(ok) is None, ok


def test_add_list_rotate(monitor_env) -> None:  # type: ignore[no-untyped-def]
    res = cli("credentials", "add", "apple-pay-processing-2026", "--kind", "apple_pay_processing_cert",
              "--expires", "2027-01-15", "--owner", "payments-eng", "--notes", "Keychain: payments-prod")
    assert res.exit_code == 0, res.output
    dup = cli("credentials", "add", "apple-pay-processing-2026", "--kind", "apple_pay_processing_cert",
              "--expires", "2027-01-15")
    assert dup.exit_code == 2 and "already in the inventory" in " ".join(dup.output.split())
    assert cli("credentials", "rotate", "nope").exit_code == 2
    bad = cli("credentials", "rotate", "apple-pay-processing-2026")
    assert bad.exit_code == 2 and "--expires" in bad.output  # a rotated certificate has a new expiry
    ok = cli("credentials", "rotate", "apple-pay-processing-2026", "--expires", "2028-01-15")
    assert ok.exit_code == 0, ok.output
    listed = cli("credentials", "list", "--json")
    assert listed.exit_code == 0 and '"expires_at": "2028-01-15 00:00:00+00:00"' in listed.output
    with session_scope() as s:
        (row,) = inventory(s)
    assert row["rotated_at"] is not None and row["owner"] == "payments-eng"


def test_fallback_key_marked_due_keeps_the_earliest_and_rotate_clears_it(monitor_env) -> None:  # type: ignore[no-untyped-def]
    with session_scope() as s:
        mark_fallback_rotation_due(s, at=T0, reason="used by live manual payout INC-1 (run r1)")
    with session_scope() as s:
        mark_fallback_rotation_due(s, at=T0 + timedelta(days=1), reason="used by live manual payout INC-2 (run r2)")
    with session_scope() as s:
        (row,) = inventory(s)
    assert row["name"] == FALLBACK_KEY_NAME and row["rotation_due_at"] == T0
    assert "INC-1" in row["rotation_due_reason"] and "INC-2" in row["rotation_due_reason"]
    assert cli("credentials", "rotate", FALLBACK_KEY_NAME, "--rotation-due", "2027-03-01").exit_code == 0
    with session_scope() as s:
        (row,) = inventory(s)
    assert row["rotation_due_at"] == datetime(2027, 3, 1, tzinfo=UTC) and row["rotation_due_reason"] is None


def test_credentials_list_shows_days_left(monitor_env) -> None:  # type: ignore[no-untyped-def]
    credential("whsec-main", "webhook_signing_secret", issued_at=datetime.now(UTC) - timedelta(days=360))
    res = cli("credentials", "list")
    assert res.exit_code == 0 and "whsec-main" in res.output and "5" in res.output
