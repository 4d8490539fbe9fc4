"""Go-live smoke tests of the cycle's own logic, offline, in a throwaway SQLite database.

A temporary ``PAYOPS_DATABASE_URL`` (a file in a temporary folder, migrated to head, deleted at the
end) holds three made-up studios; the real ledger is never touched and nothing reaches Stripe or
Slack. Exercised: the pure planner (threshold skip), the engine's claim (idempotency: a second run
of one cycle is refused, the plan is written once), the failure path (the disable switch fails the
cycle and leaves its payouts pending; a later run takes it over), the webhook receiver (a signed
``account.updated`` through the real Starlette app) and the trigger's bearer-token auth.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from sqlalchemy import func, select

from payops.checks.report import FAIL, PASS, Check, error_line
from payops.config import Settings

THRESHOLD = "smoke: threshold skip"
IDEMPOTENCY = "smoke: idempotency (duplicate run prevented)"
FAILURE = "smoke: failure handling"
WEBHOOK = "smoke: webhook updates"
TRIGGER = "smoke: trigger auth"
CYCLE_SMOKE = (THRESHOLD, IDEMPOTENCY, FAILURE, WEBHOOK, TRIGGER)
STUDIOS = (("aaaaaaaa-5a0e-4000-8000-00000000000a", "Smoke Ready", "acct_smoke_ready", True),
           ("aaaaaaaa-5a0e-4000-8000-00000000000b", "Smoke Small", "acct_smoke_small", True),
           ("aaaaaaaa-5a0e-4000-8000-00000000000c", "Smoke Onboarding", "acct_smoke_onboarding", False))


@contextmanager
def throwaway_settings(settings: Settings) -> Iterator[Settings]:
    """``settings`` pointed at a fresh, migrated SQLite file; no Slack, no cron secret, test mode."""
    from payops import db

    folder = Path(tempfile.mkdtemp(prefix="payops-go-live-"))
    url = f"sqlite:///{folder / 'smoke.db'}"
    temp = settings.model_copy(update={
        "database_url": url, "slack_webhook_url": None, "cron_secret_key": None, "environment": "test",
        "stripe_webhook_secret": SecretStr("whsec_" + secrets.token_hex(16)), "payout_cycle_disabled": False,
        "output_dir": folder / "outputs"})
    try:
        db.upgrade(url)
        yield temp
    finally:
        db.get_engine(url).dispose()
        shutil.rmtree(folder, ignore_errors=True)


def _cycle(settings: Settings) -> tuple[date, datetime]:
    from payops.cycle import slots

    (cycle,) = slots.next_cycle_dates(settings, datetime.now(UTC), 1)
    slot = slots.cycle_slot(settings, cycle)
    assert slot is not None
    return cycle, slot.astimezone(UTC)


def _amounts(settings: Settings) -> tuple[int, int]:
    from payops.cycle.policy import PayoutPolicy

    threshold = PayoutPolicy.from_settings(settings).min_threshold
    return max(threshold * 10, 100_000), max(threshold - 1, 0)


def _seed(settings: Settings, cutoff: datetime) -> None:
    from payops.db import session_scope
    from payops.db.models import Studio, StudioEarning

    big, small = _amounts(settings)
    currency = settings.platform_default_currency.upper()
    with session_scope(settings) as s:
        for (sid, name, acct, ready), gross in zip(STUDIOS, (big, small, big), strict=True):
            s.add(Studio(id=sid, name=name, email=f"{acct}@example.com", stripe_account_id=acct, currency=currency,
                         charges_enabled=ready, payouts_enabled=ready))
            s.flush()
            s.add(StudioEarning(id=str(uuid.uuid4()), studio_id=sid, amount=gross, currency=currency,
                                earned_at=cutoff - timedelta(days=3), source="sale"))


def _ctx(settings: Settings, cycle: date) -> Any:
    from payops.cycle.runbook import CycleContext, CycleParams

    return CycleContext(step="go-live-smoke", run_id=str(uuid.uuid4()), settings=settings, run_dir=Path("."),
                        mode="live", operator=None, params_hash="0" * 64,
                        params=CycleParams(cycle_date=cycle, dry_run=False, trigger="test"))


def threshold_skip(settings: Settings) -> Check:
    """Pure planner: a ready studio above the minimum is paid, one below it is skipped and carried."""
    from payops.cycle.plan import Earning, StudioFacts, plan_cycle
    from payops.cycle.policy import PayoutPolicy

    cycle, cutoff = _cycle(settings)
    policy = PayoutPolicy.from_settings(settings)
    big, small = _amounts(settings)
    cur = policy.default_currency
    facts = [StudioFacts(sid, name, acct, cur, ready, ready) for sid, name, acct, ready in STUDIOS[:2]]
    earnings = [Earning("e1", STUDIOS[0][0], big, cur, cutoff - timedelta(days=1)),
                Earning("e2", STUDIOS[1][0], small, cur, cutoff - timedelta(days=1))]
    plan = plan_cycle(cycle, cutoff, facts, earnings, policy)
    paid = [p.studio_name for p in plan.payouts]
    skipped = {k.studio_name: k.code for k in plan.skips}
    if paid != [STUDIOS[0][1]] or skipped != {STUDIOS[1][1]: "below_threshold"}:
        return Check(THRESHOLD, FAIL, f"paid {paid}, skipped {skipped}")
    return Check(THRESHOLD, PASS, f"gross {small} (net {plan.skips[0].net}) below the minimum {policy.min_threshold} "
                                  f"skipped and carried; gross {big} paid")


def idempotency(settings: Settings) -> Check:
    """Engine: the first run writes the plan once; a second run of the same cycle is refused."""
    from payops.cycle import engine
    from payops.db import session_scope
    from payops.db.models import LedgerPayout, PayoutRun, StudioEarning
    from payops.errors import ConcurrentRun

    cycle, _cutoff = _cycle(settings)
    first = _ctx(settings, cycle)
    claim, plan = engine.claim_and_write_plan(first)
    if claim.state != "new" or plan is None:
        return Check(IDEMPOTENCY, FAIL, f"first run of {cycle} was {claim.state!r}, not new")
    try:
        engine.claim_and_write_plan(_ctx(settings, cycle))
    except ConcurrentRun:
        pass
    else:
        return Check(IDEMPOTENCY, FAIL, f"a second run of cycle {cycle} was not refused while the first was running")
    with session_scope(settings) as s:
        runs = s.scalar(select(func.count()).select_from(PayoutRun))
        lps = s.scalar(select(func.count()).select_from(LedgerPayout))
        allocated = s.scalar(select(func.count()).select_from(StudioEarning)
                             .where(StudioEarning.ledger_payout_id.is_not(None)))
    want = sum(len(p.earning_ids) for p in plan.payouts)
    if (runs, lps, allocated) != (1, len(plan.payouts), want):
        return Check(IDEMPOTENCY, FAIL, f"after two runs: {runs} payout run(s), {lps} ledger payout(s), {allocated} "
                                        f"earning(s) allocated; expected 1, {len(plan.payouts)}, {want}")
    return Check(IDEMPOTENCY, PASS, f"cycle {cycle}: one payout run, {lps} ledger payout(s), {allocated} earning(s) "
                                    "allocated once; the second run got ConcurrentRun and changed nothing")


def failure_handling(settings: Settings) -> Check:
    """Engine + transfer step: a disabled cycle fails on purpose, its payouts stay pending, the next run
    takes it over. Runs after :func:`idempotency` (the cycle is claimed)."""
    from payops.cycle import engine, transfers
    from payops.db import session_scope
    from payops.db.models import LedgerPayout, PayoutRun
    from payops.errors import CycleDisabled
    from payops.ids import payout_run_id

    cycle, _cutoff = _cycle(settings)
    with session_scope(settings) as s:
        holder = s.get(PayoutRun, payout_run_id(cycle))
        holder_id = holder.runbook_run_id if holder else None
    if holder_id is None:
        return Check(FAILURE, FAIL, "no claimed cycle to fail (the idempotency smoke test did not write one)")
    disabled = settings.model_copy(update={"payout_cycle_disabled": True})
    ctx = _ctx(disabled, cycle)
    ctx.run_id = holder_id
    try:
        transfers.run(ctx)
    except CycleDisabled:
        pass
    else:
        return Check(FAILURE, FAIL, "the transfer step ran although the cycle was disabled")
    with session_scope(settings) as s:
        run = s.get(PayoutRun, payout_run_id(cycle))
        statuses = sorted({lp.status for lp in s.scalars(select(LedgerPayout))})
        claim = engine.check_claim(s, _ctx(settings, cycle), datetime.now(UTC))
    if run is None or run.status != "failed" or statuses != ["pending"] or claim.state != "takeover":
        return Check(FAILURE, FAIL, f"after the failure: run {run.status if run else None}, ledger payouts {statuses}, "
                                    f"next claim {claim.state!r}")
    return Check(FAILURE, PASS, f"cycle failed with its reason recorded ({run.failure_reason}); ledger payouts left "
                                "pending for the manual fallback; the next run takes the cycle over")


def _signature(payload: bytes, secret: str, timestamp: int) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def webhook_updates(settings: Settings) -> Check:
    """A signed ``account.updated`` through the receiver app updates the studio once; a forged one is refused."""
    from starlette.testclient import TestClient

    from payops.db import session_scope
    from payops.db.models import Studio
    from payops.webhooks.app import create_app

    sid, _name, acct, _ready = STUDIOS[2]
    assert settings.stripe_webhook_secret is not None
    secret = settings.stripe_webhook_secret.get_secret_value()
    now = int(time.time())
    event = {"id": f"evt_smoke_{uuid.uuid4().hex[:16]}", "object": "event", "type": "account.updated",
             "created": now, "livemode": False, "account": acct, "api_version": "2024-06-20",
             "data": {"object": {"id": acct, "object": "account", "charges_enabled": True, "payouts_enabled": True},
                      "previous_attributes": {"charges_enabled": False, "payouts_enabled": False}}}
    payload = json.dumps(event).encode()
    with TestClient(create_app(settings, trigger=_never)) as client:
        forged = client.post("/stripe/webhook", content=payload,
                             headers={"Stripe-Signature": _signature(payload, "whsec_wrong", now)})
        first = client.post("/stripe/webhook", content=payload,
                            headers={"Stripe-Signature": _signature(payload, secret, now)})
        again = client.post("/stripe/webhook", content=payload,
                            headers={"Stripe-Signature": _signature(payload, secret, now)})
    with session_scope(settings) as s:
        studio = s.get(Studio, sid)
        ready = bool(studio and studio.charges_enabled and studio.payouts_enabled)
    got = (forged.status_code, first.status_code, again.status_code, ready)
    if got != (400, 200, 200, True) or "duplicate" not in again.text:
        return Check(WEBHOOK, FAIL, f"forged → {forged.status_code}, signed → {first.status_code} {first.text[:120]}, "
                                    f"replayed → {again.status_code} {again.text[:80]}, studio ready: {ready}")
    return Check(WEBHOOK, PASS, "signed account.updated → 200, studio charges/payouts enabled; replay → duplicate; "
                                "forged signature → 400")


def _never(cycle_date: date | None, live: bool) -> str:
    raise AssertionError("the webhook smoke test never triggers a cycle")


def trigger_auth(settings: Settings) -> Check:
    """POST /cron/payout-cycle: no token → 401, wrong token → 401, CRON_SECRET_KEY unset → 503; the trigger
    is never called for any of them."""
    from starlette.testclient import TestClient

    from payops.webhooks.app import create_app

    calls: list[tuple[date | None, bool]] = []

    def record(cycle_date: date | None, live: bool) -> str:
        calls.append((cycle_date, live))
        return "recorded"

    token = secrets.token_hex(24)
    armed = settings.model_copy(update={"cron_secret_key": SecretStr(token)})
    with TestClient(create_app(armed, trigger=record)) as client:
        none = client.post("/cron/payout-cycle").status_code
        wrong = client.post("/cron/payout-cycle", headers={"Authorization": f"Bearer {secrets.token_hex(24)}"})
    with TestClient(create_app(settings.model_copy(update={"cron_secret_key": None}), trigger=record)) as client:
        unset = client.post("/cron/payout-cycle", headers={"Authorization": f"Bearer {token}"}).status_code
    got = (none, wrong.status_code, unset)
    if got != (401, 401, 503) or calls:
        return Check(TRIGGER, FAIL, f"no token → {none}, wrong token → {wrong.status_code}, unset → {unset} "
                                    f"(expected 401, 401, 503); trigger called {len(calls)} time(s)")
    return Check(TRIGGER, PASS, "no token → 401, wrong token → 401, CRON_SECRET_KEY unset → 503; trigger never called")


def cycle_smoke(settings: Settings) -> list[Check]:
    """The five offline smoke tests, in order, each a row (a crash is that row's FAIL)."""
    rows: list[Check] = []
    try:
        with throwaway_settings(settings) as temp:
            _seed(temp, _cycle(temp)[1])
            for name, fn in ((THRESHOLD, threshold_skip), (IDEMPOTENCY, idempotency), (FAILURE, failure_handling),
                             (WEBHOOK, webhook_updates), (TRIGGER, trigger_auth)):
                try:
                    rows.append(fn(temp))
                except Exception as exc:  # noqa: BLE001 — reported as this row's failure
                    rows.append(Check(name, FAIL, error_line(exc)))
    except Exception as exc:  # noqa: BLE001 — the throwaway database itself could not be prepared
        done = {r.name for r in rows}
        rows += [Check(n, FAIL, f"throwaway database: {error_line(exc)}") for n in CYCLE_SMOKE if n not in done]
    return rows
