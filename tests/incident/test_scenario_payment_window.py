"""Scenario B end to end: Checkout Sessions open past 24 h (the sandbox's expiry paused) and stale
``payment:window:{sessionId}`` keys in the real Redis → detected → the live run refuses without a second person's
approval → approved, it expires exactly the listed sessions through Stripe and clears their keys → verified."""

from __future__ import annotations

import pytest
import redis
from incident_helpers import APPROVER, archive_of, cli, incident, numbers, result_of, wait_deliveries

pytestmark = [pytest.mark.e2e, pytest.mark.db, pytest.mark.slow]
OPERATOR = "aaaaaaaa-0000-4000-8000-000000000001"  # PAYOPS_OPERATOR_ID of payops_env


def _keys(settings) -> dict[str, int]:  # type: ignore[no-untyped-def]
    r = redis.Redis.from_url(settings.redis_url, decode_responses=True)
    try:
        return {k: r.ttl(k) for k in r.scan_iter(match=settings.redis_key_prefix + "*")}
    finally:
        r.close()


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_payment_window_from_alert_to_close(incident_env, roster) -> None:  # type: ignore[no-untyped-def]
    w, sb, st, inc = incident_env.world, incident_env.sandbox, incident_env.settings, f"INC-B-{incident_env.tag}"
    stale = w.stale_sessions(3, hours_ago=26)
    fresh = [w.session(f"AUC-fresh-{i}", f"fresh{i}@example.com") for i in range(2)]
    done = w.checkouts(1, tag="paid")[0]["session"]
    w.receipts([done["id"]])
    w.payment_windows([cs["id"] for cs in stale], None)  # never expire: the symptom
    w.payment_windows([cs["id"] for cs in fresh], 1800)
    w.payment_windows([done["id"]], 3600)  # paid, but its window key was left behind
    wait_deliveries(sb)
    keys_before = _keys(st)
    assert len(keys_before) == 6

    dry = cli("checkout", "--scenario", "payment-window", "--incident-id", inc)
    assert dry.exit_code == 0, dry.output
    assert "payops incident approve" in dry.output
    tri = result_of(archive_of(dry), "10-triage")
    n = numbers(tri)
    assert tri["firing"] and n["Checkout Sessions open beyond 24 h"]["value"] == "3"
    assert n["checkout.session.expired in the window"]["value"] == "0"
    assert n["checkout.session.expired in the window"]["verdict"] == "ALERT"  # flat while sessions are overdue
    assert n["stale payment-window keys"]["value"] == "4" and n["stale keys without a TTL"]["value"] == "3"
    assert sorted(tri["affected"]["auction_ids"]) == sorted(cs["metadata"]["auction_id"] for cs in stale)
    plan = tri["plan"]["items"]
    assert sorted(i["session_id"] for i in plan if i["kind"] == "expire") == sorted(cs["id"] for cs in stale)
    cleared = {i["key"] for i in plan if i["kind"] == "clear_key"}
    assert cleared == {st.redis_key_prefix + "payment:window:" + s for s in [*(cs["id"] for cs in stale), done["id"]]}
    after = _keys(st)  # the dry run touched nothing (TTLs only ran down)
    assert set(after) == set(keys_before) and all((after[k] == -1) == (v == -1) for k, v in keys_before.items())
    assert {w.client.v1.checkout.sessions.retrieve(cs["id"]).status for cs in stale} == {"open"}

    refused = cli("checkout", "--scenario", "payment-window", "--incident-id", inc, "--live")
    assert refused.exit_code == 4 and "approve" in refused.output
    assert {w.client.v1.checkout.sessions.retrieve(cs["id"]).status for cs in stale} == {"open"}
    typed = cli("approve", inc, "--approver", APPROVER)  # a typed id proves nothing
    assert typed.exit_code == 2 and "--approver" in typed.output and "--key" in typed.output
    own = cli("approve", inc, "--key", str(roster["operator"].key_path))
    assert own.exit_code == 2 and "--key" in own.output and "not enrolled as ops" in own.output
    ok = cli("approve", inc, "--key", str(roster["ops"].key_path))
    assert ok.exit_code == 0, ok.output
    assert f"incident: {inc}" in ok.output and "approved by" in ok.output

    live = cli("checkout", "--scenario", "payment-window", "--incident-id", inc, "--live")
    assert live.exit_code == 0, live.output
    acts = result_of(archive_of(live), "20-act")["done"]
    assert sorted(a["session_id"] for a in acts if a["outcome"] == "expired") == sorted(cs["id"] for cs in stale)
    assert {w.client.v1.checkout.sessions.retrieve(cs["id"]).status for cs in stale} == {"expired"}
    assert {w.client.v1.checkout.sessions.retrieve(cs["id"]).status for cs in fresh} == {"open"}
    left = _keys(st)
    assert set(left) == set(keys_before) - cleared and all(ttl > 0 for ttl in left.values())

    wait_deliveries(sb)
    ok = cli("verify", inc)
    assert ok.exit_code == 0, ok.output
    checks = result_of(archive_of(ok), "verify")["checks"]
    assert [c["status"] for c in checks] == ["PASS"] * 5, checks
    assert checks[1]["detail"].startswith("0 session(s) open beyond 24 h")
    rec = incident(inc)
    assert rec["status"] == "verified"
    assert any("approved by" in t["what"] for t in rec["timeline"])
    assert cli("close", inc).exit_code == 0
    assert incident(inc)["status"] == "closed"
