"""recon_runs / recon_breaks on SQLite and PostgreSQL: first seen carried over, explain, sign-off."""

from __future__ import annotations

import uuid
from datetime import date

import pandas as pd
import pytest

from payops.errors import ParamsInvalid, PayopsError, ReconciliationBreaks
from payops.reconcile import store
from payops.reconcile.match import ReconResult
from payops.reconcile.schema import RESULT_COLUMNS, ReconConfig

pytestmark = pytest.mark.db
CFG = ReconConfig(date(2026, 10, 1), date(2026, 10, 31))
ALICE, BOB = "aaaaaaaa-0000-4000-8000-00000000000a", "bbbbbbbb-0000-4000-8000-00000000000b"


def _result(rows: list[dict[str, object]]) -> ReconResult:
    base = {c: None for c in RESULT_COLUMNS}
    df = pd.DataFrame([{**base, **r} for r in rows], columns=list(RESULT_COLUMNS))
    for c, t in RESULT_COLUMNS.items():
        df[c] = df[c].astype(t)
    return ReconResult(results=df, config=CFG)


MATCHED = {"category": "MATCHED", "ledger_payout_id": "lp-ok", "transfer_id": "tr_ok", "currency": "CAD",
           "ledger_amount": 100, "stripe_amount": 100, "difference": 0}
MISSING = {"category": "MISSING_IN_STRIPE", "ledger_payout_id": "lp-1", "currency": "CAD", "ledger_amount": 5_000,
           "reason": "no transfer", "suggested_action": "pay it"}
PARTIAL = {"category": "REVERSED_PARTIAL", "ledger_payout_id": "lp-2", "transfer_id": "tr_2", "payout_id": "po_2",
           "currency": "USD", "ledger_amount": 60_000, "stripe_amount": 45_000, "difference": -15_000}


def test_first_seen_and_explanations_carry_over(migrated_db: str) -> None:
    run1, run2 = str(uuid.uuid4()), str(uuid.uuid4())
    saved = store.save_result(_result([MATCHED, MISSING, PARTIAL]), run_id=run1, today=date(2026, 11, 1))
    assert (saved.breaks, saved.unexplained, saved.over_threshold) == (2, 2, True)
    rows = {b["category"]: b for b in store.breaks_of(run1)}
    assert rows["REVERSED_PARTIAL"]["amount"] == 15_000 and rows["MISSING_IN_STRIPE"]["amount"] == 5_000
    assert rows["REVERSED_PARTIAL"]["payout_id"] == "po_2" and rows["MISSING_IN_STRIPE"]["reason"] == "no transfer"
    store.explain(rows["REVERSED_PARTIAL"]["id"], "clawback agreed with the studio", ALICE)
    assert store.unexplained_count(run1) == 1

    new = {**MISSING, "ledger_payout_id": "lp-3"}
    saved2 = store.save_result(_result([MISSING, PARTIAL, new]), run_id=run2, max_unexplained=2,
                               today=date(2026, 11, 15))
    rows2 = {b["ledger_payout_id"]: b for b in store.breaks_of(run2)}
    assert rows2["lp-1"]["first_seen"] == "2026-11-01" and rows2["lp-2"]["first_seen"] == "2026-11-01"
    assert rows2["lp-3"]["first_seen"] == "2026-11-15"
    assert rows2["lp-2"]["explanation"] == "clawback agreed with the studio" and rows2["lp-2"]["explained_by"] == ALICE
    assert (saved2.unexplained, store.unexplained_count(run2), saved2.over_threshold) == (2, 2, False)
    # saving the same run again replaces it, keeping the first-seen dates
    again = store.save_result(_result([MISSING]), run_id=run2, today=date(2026, 11, 20))
    assert again.first_seen == {"MISSING_IN_STRIPE:lp-1:-": date(2026, 11, 1)}


def test_explain_checks(migrated_db: str) -> None:
    run = str(uuid.uuid4())
    store.save_result(_result([MISSING]), run_id=run)
    (b,) = store.breaks_of(run)
    with pytest.raises(ParamsInvalid) as info:
        store.explain(b["id"], "  ", "not-a-uuid")
    assert info.value.fields == ["--note"]
    with pytest.raises(ParamsInvalid):
        store.explain(b["id"], "ok", "not-a-uuid")
    with pytest.raises(PayopsError):
        store.explain(str(uuid.uuid4()), "ok", ALICE)


def test_signoff_distinct_people_threshold_once(migrated_db: str) -> None:
    run = str(uuid.uuid4())
    store.save_result(_result([MATCHED, MISSING]), run_id=run, max_unexplained=0)
    with pytest.raises(ParamsInvalid) as info:
        store.signoff(run, ALICE, ALICE)
    assert info.value.fields == ["--approver"]
    with pytest.raises(ParamsInvalid):
        store.signoff(run, "alice", BOB)
    with pytest.raises(ReconciliationBreaks):
        store.signoff(run, ALICE, BOB)
    (b,) = store.breaks_of(run)
    store.explain(b["id"], "paid by cheque, see INC-9", BOB)
    info2 = store.signoff(run, ALICE, BOB)
    assert info2["status"] == "signed_off" and info2["signed_off_at"] and info2["preparer_id"] == ALICE
    with pytest.raises(PayopsError, match="already signed off"):
        store.signoff(run, ALICE, BOB)
    with pytest.raises(PayopsError, match="signed off"):
        store.explain(b["id"], "late", ALICE)
    assert store.latest_run_id() == run


def test_cli_totals_past_the_payout_bound_are_still_written() -> None:
    from payops.money import MAX_MINOR_UNITS
    from payops.reconcile.cli import _total

    assert _total(123_456, "CAD") == "1,234.56 CAD"
    assert _total(MAX_MINOR_UNITS * 3, "USD") == "2999999999.97 USD"
