"""The runbook's numbers as pure functions: every threshold at its boundary, and the classifications."""

from __future__ import annotations

from decimal import Decimal

import pytest

from payops.incident import escalation as esc
from payops.incident import measure as m
from payops.incident.services import redact_url

T0 = 1_796_000_000


def ev(kind: str, t: int, **obj: object) -> dict[str, object]:
    return {"id": f"evt_{kind}_{t}_{len(obj)}", "type": kind, "created": t, "data": {"object": obj},
            "request": {"id": None, "idempotency_key": obj.pop("key", None)}}


@pytest.mark.parametrize(("ok", "failed", "meets"), [(97, 3, True), (96, 3, False), (9699, 301, False),
                                                     (9700, 300, True), (0, 0, True), (1, 0, True), (0, 1, False)])
def test_success_threshold_boundary(ok: int, failed: int, meets: bool) -> None:
    assert m.Rate(ok, failed).meets(Decimal("97")) is meets


def test_rate_from_events_counts_each_attempt_in_the_window() -> None:
    events = [ev(m.SUCCEEDED, T0 + i) for i in range(5)] + [ev(m.FAILED, T0 + 10), ev(m.FAILED, T0 - 1)]
    rate = m.payment_rate(events, T0, T0 + 11)
    assert (rate.succeeded, rate.failed, str(rate.percent), rate.text()) == (5, 1, "83.33", "83.33% (5/6)")
    assert m.payment_rate(events, T0, T0 + 10).failed == 0  # hi is exclusive
    assert m.Rate(0, 0).percent is None and m.Rate(0, 0).text() == "no payment attempts"


def test_trend() -> None:
    early_bad = [ev(m.FAILED, T0 + i) for i in range(3)] + [ev(m.SUCCEEDED, T0 + 5)]
    assert m.trend([*early_bad, ev(m.SUCCEEDED, T0 + 70)], T0, T0 + 120)[2] is True  # later: no failure
    assert m.trend([ev(m.SUCCEEDED, T0), ev(m.FAILED, T0 + 70)], T0, T0 + 120)[2] is False  # falling
    same = [ev(m.SUCCEEDED, T0), ev(m.FAILED, T0 + 1), ev(m.SUCCEEDED, T0 + 61), ev(m.FAILED, T0 + 62)]
    assert m.trend(same, T0, T0 + 120)[2] is True  # steady counts as not falling
    assert m.trend([ev(m.FAILED, T0 + 70)], T0, T0 + 120)[2] is False  # failures only, nothing before


def test_failures_by_code_and_affected() -> None:
    f1 = ev(m.FAILED, T0, id="pi_1", metadata={"auction_id": "AUC-1"}, receipt_email="a@x.io",
            last_payment_error={"code": "card_declined", "decline_code": "insufficient_funds"})
    f2 = ev(m.FAILED, T0 + 1, id="pi_2", metadata={}, last_payment_error={"code": "expired_card"})
    f3 = ev(m.FAILED, T0 + 2, id="pi_1", metadata={"auction_id": "AUC-1"},
            last_payment_error={"code": "card_declined", "decline_code": "insufficient_funds"})
    assert m.failures_by_code([f1, f2, f3]) == [
        {"code": "card_declined", "decline_code": "insufficient_funds", "count": 2},
        {"code": "expired_card", "decline_code": "", "count": 1}]
    sessions = [{"id": "cs_2", "payment_intent": "pi_2", "customer_email": "b@x.io", "customer_details": None,
                 "metadata": {"auction_id": "AUC-2"}}]
    got = m.affected_by_failures([f1, f2, f3], sessions)
    assert got.sessions == ["cs_2"] and got.customers == ["a@x.io", "b@x.io"] and got.auctions == ["AUC-1", "AUC-2"]


def test_idempotency_collisions_and_sessions_per_auction() -> None:
    events = [ev("payment_intent.created", T0, id="pi_1", key="k1"), ev("payment_intent.created", T0 + 1, id="pi_2",
                                                                       key="k1"),
              ev("payment_intent.created", T0 + 2, id="pi_3", key="k2"), ev(m.SUCCEEDED, T0 + 3, id="pi_3", key="k2")]
    assert m.idempotency_collisions(events) == [{"key": "k1", "objects": ["pi_1", "pi_2"]}]
    sessions = [{"id": "cs_a", "metadata": {"auction_id": "A"}}, {"id": "cs_b", "metadata": {"auction_id": "A"}},
                {"id": "cs_c", "metadata": {"auction_id": "B"}}, {"id": "cs_d", "metadata": {}}]
    assert m.sessions_per_auction(sessions) == [{"auction_id": "A", "sessions": ["cs_a", "cs_b"]}]


def test_lag_threshold_boundary() -> None:
    lag = m.lag_stats([1.0, 2.0, 60.0, 60.5, 3.0], 60)
    assert (lag.deliveries, lag.late, lag.worst, lag.p50) == (5, 1, 60.5, 3.0)  # exactly 60 s is not late
    assert m.lag_stats([], 60).as_dict()["deliveries"] == 0


def test_pending_beyond_24h_boundary() -> None:
    now = T0
    sessions = [{"id": "cs_edge", "status": "open", "created": now - 24 * 3600},
                {"id": "cs_over", "status": "open", "created": now - 24 * 3600 - 1},
                {"id": "cs_done", "status": "complete", "created": now - 90_000}]
    assert [cs["id"] for cs in m.pending_beyond(sessions, now, 24)] == ["cs_over"]


def test_window_keys_classification() -> None:
    now = T0
    sessions = {"cs_ok": {"status": "open", "created": now - 60}, "cs_old": {"status": "open", "created": now - 90_000},
                "cs_paid": {"status": "complete", "created": now - 60}, "cs_gone": None}
    keys = [{"key": f"p:{s}", "session_id": s, "ttl_seconds": 300} for s in ("cs_ok", "cs_old", "cs_paid", "cs_gone")]
    keys.append({"key": "p:cs_ok2", "session_id": "cs_ok", "ttl_seconds": -1})
    got = {k["key"]: k["why"] for k in m.classify_window_keys(keys, sessions, now, 24)}
    assert got == {"p:cs_ok": "", "p:cs_old": "session open beyond 24 h", "p:cs_paid": "session complete",
                   "p:cs_gone": "no such Checkout Session", "p:cs_ok2": "key has no TTL"}


@pytest.mark.parametrize(("depth", "age_min", "incident"), [(200, 31, False), (201, 31, True), (201, 30, False),
                                                             (201, 30.02, True), (5000, None, False)])
def test_backlog_incident_rule_boundary(depth: int, age_min: float | None, incident: bool) -> None:
    age = None if age_min is None else age_min * 60
    assert m.backlog_incident(depth, age, 200, 30) is incident


def test_backlog_cleared_boundary() -> None:
    assert m.backlog_cleared(9, 10) and not m.backlog_cleared(10, 10)


def test_retry_errors_and_expired_series() -> None:
    bodies = [{"last_error": {"code": "card_declined", "decline_code": "x"}}] * 2 + [{"last_error": {}}, {}]
    assert m.retry_errors(bodies) == [{"code": "card_declined", "decline_code": "x", "count": 2},
                                      {"code": "unknown", "decline_code": "", "count": 2}]  # ties by code
    series = m.expired_series([ev("checkout.session.expired", T0 + 10), ev("checkout.session.expired", T0 + 3700)],
                              T0, T0 + 7200)
    assert series == [{"from": T0, "expired": 1}, {"from": T0 + 3600, "expired": 1}]


def test_receipt_problem() -> None:
    good = {"status": "issued"}
    assert m.receipt_problem(good, 100, True) == "" and m.receipt_problem(good, 100, None) == ""
    assert m.receipt_problem(None, None, None) == "no receipt record"
    assert m.receipt_problem({"status": "error", "error": "boom"}, None, None) == "receipt error: boom"
    assert m.receipt_problem(good, None, None) == "receipt PDF missing"
    assert m.receipt_problem(good, 0, None) == "receipt PDF empty"
    assert m.receipt_problem(good, 10, False, "HTTP 403") == "download URL: HTTP 403"


def test_escalation_levels() -> None:
    def level(**kw: object) -> int:
        return esc.suggest(esc.Signals(**kw), severe_percent=Decimal("90"), customers_threshold=25).level  # type: ignore[arg-type]

    assert level(symptom=False) == 0
    assert level(symptom=True, success_percent="95.00") == 1
    assert level(symptom=True, signature_failures=1) == 2 and level(symptom=False, unreachable=["Redis"]) == 2
    assert level(symptom=True, backlog_incident=True) == 2 and level(symptom=True, receipt_403=1) == 2
    assert level(symptom=True, success_percent="89.99") == 3 and level(symptom=True, success_percent="90.00") == 1
    assert level(symptom=True, customers_affected=25) == 3 and level(symptom=True, customers_affected=24) == 1
    drafts = esc.drafts(incident_id="INC-1", scenario="receipts", alert="a", summary="s",
                        escalation=esc.Escalation(1, ["L1 Commerce Backend: x"]), numbers=["n"],
                        affected={"sessions": 1, "auction_ids": ["AUC-9"]}, incident_url="u", dry_run=True)
    assert set(drafts) == {"eng-commerce"} and "AUC-9" in drafts["eng-commerce"] and "dry run" in drafts["eng-commerce"]
    page = esc.drafts(incident_id="INC-1", scenario="receipts", alert="a", summary="s",
                      escalation=esc.Escalation(2, []), numbers=[], affected={}, incident_url="u", dry_run=False)
    assert page["ops-oncall"].startswith("PAGE L2 Infrastructure/SRE")


def test_redact_url() -> None:
    assert redact_url("redis://:s3cret@10.0.0.1:6379/0") == "redis://10.0.0.1:6379/0"
    assert redact_url("amqp://app:s3cret@mq:5672/%2F") == "amqp://app@mq:5672/%2F"
    assert redact_url("http://127.0.0.1:9000") == "http://127.0.0.1:9000"
