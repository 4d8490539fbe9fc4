"""Scenario C end to end on the real RabbitMQ (fresh queue names per test): a backlog of failing retries →
detected (depth, oldest age, retries by Stripe error) → the move asks for confirmation → the listed messages go
to the dead-letter queue, oldest first → verified. The incident rule's boundaries on real queues."""

from __future__ import annotations

import pika
import pytest
from incident_helpers import archive_of, cli, incident, numbers, result_of, wait_deliveries

from payops.incident.params import validate_incident
from payops.incident.queues import RabbitRetryQueue
from payops.incident.runbook import IncidentContext, create_incident_run
from payops.incident.scenarios import retry_backlog

pytestmark = [pytest.mark.e2e, pytest.mark.db, pytest.mark.slow]


def _depths(settings) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    q = RabbitRetryQueue(settings)
    try:
        return q.depth(), q.dead_letter_depth()
    finally:
        q.close()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_retry_backlog_from_alert_to_close(incident_env) -> None:  # type: ignore[no-untyped-def]
    w, sb, st, inc = incident_env.world, incident_env.sandbox, incident_env.settings, f"INC-C-{incident_env.tag}"
    ids = w.backlog(150, minutes_ago=50, code="card_declined", decline_code="insufficient_funds")
    ids += w.backlog(60, minutes_ago=40, code="expired_card", decline_code="expired_card")
    young = w.backlog(5, minutes_ago=2, code="processing_error", decline_code="processing_error")
    paid = w.checkouts(1, tag="paid")[0]["session"]
    w.receipts([paid["id"]])
    wait_deliveries(sb)

    dry = cli("checkout", "--scenario", "retry-backlog", "--incident-id", inc)
    assert dry.exit_code == 0, dry.output
    tri = result_of(archive_of(dry), "10-triage")
    n = numbers(tri)
    assert tri["firing"] and n[f"messages in {st.retry_queue}"]["value"] == "215"
    assert float(n["oldest message waiting (min)"]["value"]) >= 50
    assert tri["details"]["retry_errors"][:2] == [
        {"code": "card_declined", "decline_code": "insufficient_funds", "count": 150},
        {"code": "expired_card", "decline_code": "expired_card", "count": 60}]
    assert [i["message_id"] for i in tri["plan"]["items"]] == ids  # the 210 older than 30 min, oldest first
    assert tri["affected"]["auctions"] == 215 and tri["escalation"]["level"] == 3
    assert _depths(st) == (215, 0)  # the dry run peeked and put everything back

    declined = cli("checkout", "--scenario", "retry-backlog", "--incident-id", inc, "--live", input="n\n")
    assert declined.exit_code == 1 and "Move the 210 message(s)" in declined.output
    assert _depths(st) == (215, 0)

    live = cli("checkout", "--scenario", "retry-backlog", "--incident-id", inc, "--live", "--yes")
    assert live.exit_code == 0, live.output
    done = result_of(archive_of(live), "20-act")["done"]
    assert [d["message_id"] for d in done if d["outcome"] == "moved"] == ids
    assert _depths(st) == (5, 210)
    q = RabbitRetryQueue(st)
    try:
        left = [m.message_id for m in q.peek(10)]
    finally:
        q.close()
    assert left == young
    conn = pika.BlockingConnection(pika.URLParameters(st.amqp_url))
    method, props, _body = conn.channel().basic_get(st.dead_letter_queue, auto_ack=False)
    assert method is not None and props.message_id == ids[0] and inc in props.headers["x-payops-moved-by"]
    conn.close()  # unacknowledged: it stays in the dead-letter queue

    ok = cli("verify", inc)
    assert ok.exit_code == 0, ok.output
    checks = result_of(archive_of(ok), "verify")["checks"]
    assert [c["status"] for c in checks] == ["PASS"] * 5, checks
    assert checks[2]["detail"].startswith("depth 5 (< 10 wanted)")
    assert cli("close", inc).exit_code == 0 and incident(inc)["status"] == "closed"


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_incident_rule_boundaries_on_a_real_queue(incident_env) -> None:  # type: ignore[no-untyped-def]
    w = incident_env.world
    run_id = create_incident_run(validate_incident({"scenario": "retry-backlog", "incident_id": "INC-C-EDGE"}))

    def firing() -> bool:
        ctx = IncidentContext.load("10-triage", run_id)
        lo, hi = ctx.window
        return retry_backlog(ctx, lo, hi).firing

    w.backlog(200, minutes_ago=31)
    assert firing() is False  # exactly 200 is not "more than 200"
    w.backlog(1, minutes_ago=31)
    assert firing() is True
    for q in (incident_env.settings.retry_queue,):
        conn = pika.BlockingConnection(pika.URLParameters(incident_env.settings.amqp_url))
        conn.channel().queue_purge(q)
        conn.close()
    w.backlog(201, minutes_ago=29.9)
    assert firing() is False  # more than 200, but not yet for more than 30 minutes
