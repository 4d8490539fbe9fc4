"""Scenario D end to end on the local S3 (moto server, endpoint URL like a real bucket): receipts whose download
URL the private bucket refuses (403), one whose generation failed and one never written → detected with a sample
URL fetched like a customer → the listed receipts regenerated → a sample download verified → closed."""

from __future__ import annotations

import httpx
import pytest
from incident_helpers import archive_of, cli, incident, numbers, result_of, wait_deliveries

from payops.incident.receipts import ReceiptStore

pytestmark = [pytest.mark.e2e, pytest.mark.db, pytest.mark.slow]


def _bucket(settings) -> dict[str, str]:  # type: ignore[no-untyped-def]
    s3 = ReceiptStore(settings).s3
    objs = s3.list_objects_v2(Bucket=settings.s3_bucket).get("Contents", [])
    return {o["Key"]: o["ETag"] for o in objs}


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_receipts_from_alert_to_close(incident_env) -> None:  # type: ignore[no-untyped-def]
    w, sb, st, inc = incident_env.world, incident_env.sandbox, incident_env.settings, f"INC-D-{incident_env.tag}"
    paid = [p["session"]["id"] for p in w.checkouts(8, tag="rcpt")]
    healthy, forbidden, failed, missing = paid[:4], paid[4:6], paid[6:7], paid[7:]
    w.receipts(healthy)
    w.receipts(forbidden, broken="403")
    w.receipts(failed, broken="failed")
    wait_deliveries(sb)
    plain = ReceiptStore(st).record(forbidden[0])["download_url"]  # type: ignore[index]
    assert httpx.get(plain).status_code == 403  # what the customer sees
    before = _bucket(st)

    dry = cli("checkout", "--scenario", "receipts", "--incident-id", inc)
    assert dry.exit_code == 0, dry.output
    tri = result_of(archive_of(dry), "10-triage")
    n = numbers(tri)
    assert tri["firing"] and n["receipt errors"]["value"] == "4" and n["download URLs answering 403"]["value"] == "2"
    sample = tri["details"]["sample"]
    assert sample["session_id"] in forbidden and sample["url_status"] == 403
    assert "X-Amz-Signature" not in str(tri)  # download URLs are shown without their signature
    assert sorted(i["session_id"] for i in tri["plan"]["items"]) == sorted(forbidden + failed + missing)
    assert tri["escalation"]["level"] == 2 and any("403" in r for r in tri["escalation"]["reasons"])
    assert _bucket(st) == before  # the dry run wrote nothing

    live = cli("checkout", "--scenario", "receipts", "--incident-id", inc, "--live")
    assert live.exit_code == 0, live.output
    done = result_of(archive_of(live), "20-act")["done"]
    regenerated = sorted(d["session_id"] for d in done if d["outcome"] == "regenerated")
    assert regenerated == sorted(forbidden + failed + missing)
    store = ReceiptStore(st)
    for sid in forbidden + failed + missing:
        rec = store.record(sid)
        assert rec is not None and rec["status"] == "issued"
        got = httpx.get(rec["download_url"])
        assert got.status_code == 200 and got.content.startswith(b"%PDF") and sid.encode() in got.content
    assert {k: v for k, v in _bucket(st).items() if any(h in k for h in healthy)} == \
        {k: v for k, v in before.items() if any(h in k for h in healthy)}  # the healthy ones were left alone

    ok = cli("verify", inc)
    assert ok.exit_code == 0, ok.output
    checks = result_of(archive_of(ok), "verify")["checks"]
    assert [c["status"] for c in checks] == ["PASS"] * 5, checks
    assert "0 receipt error(s) among 8 paid session(s)" in checks[3]["detail"] and "HTTP 200" in checks[3]["detail"]
    assert cli("close", inc).exit_code == 0 and incident(inc)["status"] == "closed"
