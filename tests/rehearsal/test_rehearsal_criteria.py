"""Each criterion broken in turn, at the cheapest level: the judging and wrap-up logic over prepared
evidence (the shape step 70 records). The report fails on exactly that criterion, and the wrap-up switches
the automation back on in the rehearsal database whatever failed."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta

import pytest

from payops.rehearsal import criteria
from payops.rehearsal.criteria import Evidence

T0 = datetime(2027, 2, 2, 14, 0, tzinfo=UTC)
PAYLOAD = {"amount": 123456, "currency": "cad", "destination": "acct_test_studio_a", "transfer_group": "lp-1",
           "description": "Manual payout REH-2027-Q1 for ledger payout lp-1",
           "metadata": {"incident_id": "REH-2027-Q1", "is_rehearsal": "true", "run_id": "dry",
                        "approver_ops_id": "", "approver_finance_id": "", "operator": "op"}}


def good() -> Evidence:
    live = copy.deepcopy(PAYLOAD)
    live["metadata"].update(run_id="live", approver_ops_id="ops", approver_finance_id="fin")
    return Evidence(
        started_at=T0, failed_at=T0 + timedelta(minutes=1), transfer_at=T0 + timedelta(minutes=4),
        finished_at=T0 + timedelta(minutes=6), transfer_id="tr_1", payload_dry=copy.deepcopy(PAYLOAD),
        payload_live=live, stripe_transfer={k: PAYLOAD[k] for k in ("amount", "currency", "destination",
                                                                     "transfer_group")},
        audit_row={"id": 1, "run_id": "live", "amount": 123456, "currency": "CAD", "stripe_transfer_id": "tr_1",
                   "is_rehearsal": True, "approver_ops_id": "ops", "approver_finance_id": "fin"},
        expected_audit={"run_id": "live", "amount": 123456, "currency": "CAD", "stripe_transfer_id": "tr_1"},
        slack={"channel": "#payments-rehearsal", "delivered": True,
               "text": ":test_tube: _This is a rehearsal in Stripe test mode — no real money moved_"},
        email={"to": "Test Studio A <payments-rehearsal@example.com>", "delivered": True,
               "subject": "[REHEARSAL] Manual payout sent: 1,234.56 CAD",
               "body": "*** This is a rehearsal in Stripe test mode — no real money moved ***"},
        payout_id="po_1", payout_status="paid")


def failed(e: Evidence) -> list[str]:
    return [c.name for c in criteria.judge(e) if not c.ok]


def test_the_prepared_evidence_passes_every_criterion() -> None:
    assert failed(good()) == []


def _no_marker(e: Evidence) -> None:
    e.email["subject"] = "Manual payout sent: 1,234.56 CAD"  # type: ignore[index]


def _no_slack_marker(e: Evidence) -> None:
    e.slack["text"] = "Manual payout sent"  # type: ignore[index]


def _audit_missing(e: Evidence) -> None:
    e.audit_row = None


def _audit_not_rehearsal(e: Evidence) -> None:
    e.audit_row["is_rehearsal"] = False  # type: ignore[index]


def _stripe_refused(e: Evidence) -> None:
    e.transfer_id, e.transfer_error = None, "PaymentError: insufficient_funds (request req_1)"


def _payload_edited(e: Evidence) -> None:
    e.payload_live["amount"] = 123457  # type: ignore[index]


def _never_paid(e: Evidence) -> None:
    e.payout_status = "in_transit"


def _wrong_channel(e: Evidence) -> None:
    e.slack["channel"] = "#payments-alerts"  # type: ignore[index]


@pytest.mark.parametrize(("breaks", "criterion"), [
    (_no_marker, "notifications"), (_no_slack_marker, "notifications"), (_wrong_channel, "notifications"),
    (_audit_missing, "audit"), (_audit_not_rehearsal, "audit"),
    (_stripe_refused, "transfer"), (_payload_edited, "transfer"),
    (_never_paid, "sla"),
])
def test_breaking_one_thing_fails_exactly_that_criterion(breaks, criterion: str) -> None:  # type: ignore[no-untyped-def]
    e = good()
    breaks(e)
    assert failed(e) == [criterion]


def test_a_step_pushed_past_the_sla_with_the_sandbox_clock_fails_only_the_sla() -> None:
    from payops.config import Settings
    from payops.rehearsal.world import stripe_now
    from payops.sandbox.testing import start_sandbox

    sb = start_sandbox(seed="none", rate_limit=0)  # its own: the sandbox clock only moves forward
    try:
        settings = Settings(PAYOPS_STRIPE_API_BASE=sb.url)
        e = good()
        e.started_at = stripe_now(settings)
        sb.advance_clock(46 * 60)  # the settlement step took 46 minutes on Stripe's clock
        e.finished_at = stripe_now(settings)
    finally:
        sb.stop()
    assert e.finished_at - e.started_at >= timedelta(minutes=46)
    assert failed(e) == ["sla"]
    (sla,) = [c for c in criteria.judge(e) if c.name == "sla"]
    assert "over the 45-minute SLA" in sla.evidence


@pytest.mark.db
def test_the_wrap_up_switches_the_automation_back_on_and_reports_the_failure(migrated_db: str) -> None:
    from payops.config import get_settings
    from payops.cycle import engine
    from payops.db import session_scope
    from payops.rehearsal.evidence import conclude, switch_automation_on

    settings = get_settings(fresh=True)
    with session_scope(settings) as s:
        engine.set_disabled(s, disabled=True, reason="fallback rehearsal", by=None)
    e = good()
    _audit_missing(e)
    state = switch_automation_on(settings, None)
    wrap = conclude("REH-2027-Q1", e, ["Check the audit insert=Payments Engineering"], state)
    with session_scope(settings) as s:
        assert engine.disabled_reason(s, settings) is None
    assert state == "enabled" and not wrap.passed
    assert [c["criterion"] for c in wrap.as_dict()["criteria"] if c["result"] == "FAIL"] == ["audit"]
    assert wrap.actions[0] == {"text": "Check the audit insert", "owner": "Payments Engineering"}
    assert any(a["text"].startswith("Fix: Audit row") for a in wrap.actions)
    assert "FAILED — 3/4 criteria" in wrap.summary and "Failed: audit" in wrap.summary


@pytest.mark.db
def test_a_failing_wrap_up_still_switches_the_automation_back_on(migrated_db: str,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from payops import runner
    from payops.config import get_settings
    from payops.cycle import engine
    from payops.db import session_scope
    from payops.rehearsal import flow

    settings = get_settings(fresh=True)
    with session_scope(settings) as s:
        engine.set_disabled(s, disabled=True, reason="fallback rehearsal", by=None)

    def broken(*_a: object, **_k: object) -> None:
        raise runner.StepFailed("r", "70-validate", "KernelDied: gone", runner.ROOT / "x.ipynb")

    monkeypatch.setattr(runner, "execute", broken)
    with pytest.raises(runner.StepFailed):
        flow._wrap_up(settings, "r", None)
    with session_scope(settings) as s:
        assert engine.disabled_reason(s, settings) is None
