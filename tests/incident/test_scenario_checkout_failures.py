"""Scenario A end to end: declines by test card and refused webhook signatures in the sandbox → the triage
detects them (success rate, failures by code, the receiver's own records) → the live run replays the refused
events → after recovery the five verification steps pass → the incident closes, sealed."""

from __future__ import annotations

import pytest
from incident_helpers import archive_of, cli, counts, incident, numbers, result_of, wait_deliveries
from sqlalchemy import select

from payops.archive import verify_archive
from payops.db import session_scope
from payops.db.models import WebhookEvent, WebhookFailure

pytestmark = [pytest.mark.e2e, pytest.mark.db, pytest.mark.slow]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_checkout_failures_from_alert_to_close(incident_env) -> None:  # type: ignore[no-untyped-def]
    w, sb, inc = incident_env.world, incident_env.sandbox, f"INC-A-{incident_env.tag}"
    paid = w.checkouts(6, tag="ok")
    seen = len(wait_deliveries(sb))
    sb.set_faults(webhook_bad_signature_rate=1.0)
    declined = (w.checkouts(2, card="pm_card_chargeDeclinedInsufficientFunds", tag="nsf")
                + w.checkouts(1, card="pm_card_chargeDeclined", tag="dcl"))
    attempts = wait_deliveries(sb)[seen:]
    sb.set_faults(webhook_bad_signature_rate=0.0)
    refused_ids = {a["event"] for a in attempts if a.get("bad_signature")}
    assert refused_ids and all(d.get("error", {}).get("code") == "card_declined" for d in declined)
    w.receipts([p["session"]["id"] for p in paid])
    before = counts()
    assert before["webhook_failures"] >= len(refused_ids) and before["replayed"] == 0

    dry = cli("checkout", "--scenario", "checkout-failures", "--incident-id", inc, "--since", "30m")
    assert dry.exit_code == 0, dry.output
    folder = archive_of(dry)
    tri = result_of(folder, "10-triage")
    n = numbers(tri)
    assert tri["firing"] is True
    assert n["PaymentIntent success, last 30 min"]["value"] == "66.67% (6/9)"
    assert n["PaymentIntent success, last 30 min"]["verdict"] == "ALERT"
    assert tri["details"]["failures_by_code"] == [
        {"code": "card_declined", "decline_code": "insufficient_funds", "count": 2},
        {"code": "card_declined", "decline_code": "generic_decline", "count": 1}]
    assert sorted(tri["affected"]["session_ids"]) == sorted(d["session"]["id"] for d in declined)
    assert sorted(tri["affected"]["auction_ids"]) == sorted(d["session"]["metadata"]["auction_id"] for d in declined)
    assert tri["affected"]["customers"] == 3
    assert int(n["webhook deliveries refused (signature)"]["value"]) >= len(refused_ids)
    assert {i["event_id"] for i in tri["plan"]["items"]} == refused_ids
    assert tri["escalation"]["level"] == 3  # 66.67% is below the severe 90%
    assert any("signature" in r for r in tri["escalation"]["reasons"])
    assert (folder / "drafts" / "eng-commerce.txt").is_file() and (folder / "drafts" / "ops-oncall.txt").is_file()
    assert inc in (folder / "drafts" / "ops-oncall.txt").read_text()
    assert counts() == before  # the dry run changed nothing
    assert result_of(folder, "20-act")["live"] is False

    live = cli("checkout", "--scenario", "checkout-failures", "--incident-id", inc, "--live")
    assert live.exit_code == 0, live.output
    done = result_of(archive_of(live), "20-act")["done"]
    assert {d["event_id"] for d in done} == refused_ids and {d["outcome"] for d in done} == {"replayed"}
    with session_scope() as s:
        replayed = set(s.scalars(select(WebhookEvent.id).where(WebhookEvent.delivery == "replay")))
        assert replayed == refused_ids
        assert all(f.replayed_at is not None for f in s.scalars(select(WebhookFailure)))

    # recovery: the declines age out of the 30-minute window, customers pay again, receipts are issued
    sb.advance_clock(31 * 60)
    again = w.checkouts(4, tag="again")
    w.receipts([p["session"]["id"] for p in again])
    wait_deliveries(sb)
    still_open = cli("close", inc)
    assert still_open.exit_code == 3 and "never verified" in still_open.output
    ok = cli("verify", inc, "--since", "1h")
    assert ok.exit_code == 0, ok.output
    report = result_of(archive_of(ok), "verify")
    assert [c["status"] for c in report["checks"]] == ["PASS"] * 5, report["checks"]
    assert "4/4" in report["checks"][0]["detail"]
    assert "missing" not in report["checks"][4]["detail"] and "payment_intent.payment_failed 3/3" in \
        report["checks"][4]["detail"]
    assert incident(inc)["status"] == "verified"

    closed = cli("close", inc)
    assert closed.exit_code == 0, closed.output
    summary = (archive_of(closed) / "summary.md").read_text()
    for section in ("## Timeline (UTC)", "## Impact", "## Actions taken", "## Verification", "## Follow-ups"):
        assert section in summary
    assert "LIVE: replay" in summary and "| 5 event counts | PASS |" in summary
    rec = incident(inc)
    assert rec["status"] == "closed" and rec["close_run_id"]
    assert verify_archive(incident_env.output_dir).ok
    again_close = cli("close", inc)
    assert again_close.exit_code != 0 and "already closed" in again_close.output
