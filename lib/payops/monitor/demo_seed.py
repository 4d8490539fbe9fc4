"""The demo world's monitoring history (``make demo``): with the demo's own runs, every rule has something to
say. Planted relative to ``now``, since the checker looks at the real clock:

- **credentials**: the Apple Pay payment-processing certificate expires in 12 days (the 14-day reminder), the
  merchant identity certificate in 75 days (quiet), the webhook signing secret was issued 350 days ago (15 days
  before its 365-day limit: the 30-day reminder), ``STRIPE_SECRET_KEY``'s rotation date is in 6 days (the 7-day
  reminder); the demo's own live manual payout has just marked ``STRIPE_FALLBACK_SECRET_KEY`` due (a page);
- **an interrupted manual payout** (money moved, record missing): a live run for Studio D (250.00 CAD, incident
  ``INC-DEMO-002``) whose transfer was made 25 minutes ago and which stopped before its audit row;
- with the demo's live payout that makes **two manual payouts in 30 days** (fallback volume: Slack + Jira);
- the **failed 2026-11-15 cycle** still has Studio B unpaid (automation failure), and the studios' reserves after
  the 2026-12-01 cycle sit under their buffer (reserve breach).

Idempotent: the ids are derived, a second call adds nothing.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from payops import demo_data
from payops.config import Settings
from payops.db import session_scope
from payops.db.models import Credential, LedgerPayout, RunbookRun, RunbookStep, TransferIntent
from payops.ids import stable_id, stable_uuid

INTERRUPTED_RUN_ID = stable_uuid("monitoring-demo", "interrupted-run")
INTERRUPTED_LEDGER_PAYOUT_ID = stable_uuid("monitoring-demo", "interrupted-ledger-payout")
STEPS = ("10-verify", "20-transfer", "30-audit-insert", "40-notify", "50-settle")


def demo_credentials(now: datetime) -> list[Credential]:
    return [
        Credential(kind="apple_pay_processing_cert", name="apple-pay-payment-processing", owner="payments-eng",
                   expires_at=now + timedelta(days=12), issued_at=now - timedelta(days=353), created_at=now,
                   notes="Apple Developer > Certificates; key in the payments HSM"),
        Credential(kind="apple_pay_merchant_identity_cert", name="apple-pay-merchant-identity", owner="payments-eng",
                   expires_at=now + timedelta(days=75), issued_at=now - timedelta(days=290), created_at=now),
        Credential(kind="webhook_signing_secret", name="stripe-webhook-payops", owner="payments-eng",
                   issued_at=now - timedelta(days=350), created_at=now,
                   notes="the endpoint of `payops webhooks serve` (STRIPE_WEBHOOK_SECRET)"),
        Credential(kind="stripe_restricted_key", name="STRIPE_SECRET_KEY", owner="payments-eng",
                   rotation_due_at=now + timedelta(days=6), issued_at=now - timedelta(days=84), created_at=now,
                   notes="90-day rotation policy"),
    ]


def seed_monitoring_history(settings: Settings, now: datetime) -> dict[str, int]:
    """Plant the monitoring history (see the module docstring); returns what was added."""
    added = {"credentials": 0, "interrupted_runs": 0}
    studio = demo_data.STUDIO_D
    transferred = now - timedelta(minutes=25)
    with session_scope(settings) as s:
        for cred in demo_credentials(now):
            if s.query(Credential).filter_by(name=cred.name).first() is None:
                s.add(cred)
                added["credentials"] += 1
        if s.get(RunbookRun, INTERRUPTED_RUN_ID) is not None:
            return added
        params = {"studio_id": studio.studio_id, "studio_name": studio.name, "incident_id": "INC-DEMO-002",
                  "ledger_payout_id": INTERRUPTED_LEDGER_PAYOUT_ID, "amount": "250.00", "currency": "CAD",
                  "reserve_after": "0.00", "reason": "automated payout failed (planted for the monitoring demo)",
                  "destination_account": studio.account_id, "is_rehearsal": False, "dry_run": False}
        tr = stable_id("tr", "monitoring-demo", "interrupted")
        s.add(RunbookRun(id=INTERRUPTED_RUN_ID, sop="manual_payout", mode="live", status="running",
                         params_json=json.dumps(params), params_hash=stable_id("h", "monitoring-demo", length=64)[2:],
                         subject_key=INTERRUPTED_LEDGER_PAYOUT_ID, operator="aaaaaaaa-0000-4000-8000-000000000001",
                         created_at=transferred - timedelta(minutes=3), started_at=transferred - timedelta(minutes=3),
                         detected_at=transferred - timedelta(minutes=38), lease_owner="demo-host:1",
                         lease_expires_at=transferred + timedelta(minutes=2)))
        s.add(LedgerPayout(id=INTERRUPTED_LEDGER_PAYOUT_ID, run_id=None, studio_id=studio.studio_id, gross=25_000,
                           fee=0, reserve=0, net=25_000, currency="CAD", status="manual", stripe_transfer_id=tr,
                           created_at=transferred - timedelta(days=1)))
        s.flush()
        s.add(TransferIntent(ledger_payout_id=INTERRUPTED_LEDGER_PAYOUT_ID, run_id=INTERRUPTED_RUN_ID,
                             idempotency_key=f"manual-payout:{INTERRUPTED_LEDGER_PAYOUT_ID}:{INTERRUPTED_RUN_ID}",
                             amount=25_000, currency="CAD", destination=studio.account_id, status="created",
                             stripe_transfer_id=tr, stripe_request_id="req_demo_interrupted", attempts=1,
                             created_at=transferred - timedelta(seconds=2), updated_at=transferred))
        for pos, step in enumerate(STEPS):
            done = pos < 2
            s.add(RunbookStep(run_id=INTERRUPTED_RUN_ID, step=step, position=pos,
                              status="succeeded" if done else ("running" if pos == 2 else "pending"),
                              attempts=1 if pos <= 2 else 0, started_at=transferred if pos <= 2 else None,
                              finished_at=transferred if done else None))
        added["interrupted_runs"] = 1
    return added
