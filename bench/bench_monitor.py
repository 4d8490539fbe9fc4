"""Benchmark: ``payops monitor check`` over a year of history for 10,000 studios next to the bare SQL aggregates
the rules need, in the same run.

Seeded (SQLite file; PostgreSQL too when reachable): N_STUDIOS studios with reserve minimums, 24 payout cycles
(the 1st and 15th of 2026) with one ledger payout per studio each (240,000 rows; one cycle partial), 50 live
manual payouts over the year (two interrupted before their audit row, three in the last 30 days), the
scheduler's slots, a credential inventory, and earnings since the last cycle.

Measured, best of REPEATS each, alternating:

- ``baseline_sql``: the aggregates the rules read, as bare SQL statements on one connection — ledger payouts
  per run, status and currency; the latest payout per studio (window function); unallocated earnings per
  studio; the automated volume in the 30-day window; live manual transfers with their audit rows and notify
  steps; unpaid payouts held by reserve caps; credentials; failed scheduler slots — rows fetched, nothing else;
- ``check``: ``run_check`` in-process (snapshot, the five rules, the alert transaction, the outbox: a steady
  state check — the alerts are already open and sent, as every 5 minutes);
- ``check_first``: the first check, once (opens every alert and sends them to the local sinks);
- ``cli``: ``payops monitor check`` as a subprocess (imports included), once.

Target: ``check`` within 3x of ``baseline_sql``. Results: ``bench/results/monitor.json``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from sqlalchemy import and_, exists, func, insert, select

from payops.ids import stable_uuid

N_STUDIOS = int(os.environ.get("PAYOPS_BENCH_STUDIOS", "10000"))
N_MANUAL = 50
CYCLES = [date(2026, m, d) for m in range(1, 13) for d in (1, 15)]
AT = datetime(2026, 12, 16, 9, 0, tzinfo=UTC)  # the day after the 24th cycle
REPEATS = 5
TARGET_RATIO = 3.0
RESULTS = Path(__file__).parent / "results" / "monitor.json"
PG_ADMIN = os.environ.get("PAYOPS_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def _slot(d: date) -> datetime:
    return datetime(d.year, d.month, d.day, 6, 0, tzinfo=UTC)


def seed(db_url: str) -> dict[str, int]:
    """A year of history; bulk inserts, 5,000 rows at a time."""
    from payops import db
    from payops.db import session_scope
    from payops.db.models import (
        Credential,
        LedgerPayout,
        ManualPayout,
        PayoutRun,
        RunbookRun,
        RunbookStep,
        ScheduledExecution,
        Studio,
        StudioEarning,
        TransferIntent,
    )

    db.upgrade(db_url)
    studios = [{"id": stable_uuid("bench-monitor-studio", i), "name": f"Studio {i:05d}", "email": f"s{i}@example.com",
                "stripe_account_id": f"acct_bm_{i:06d}", "currency": "USD" if i % 10 == 0 else "CAD",
                "reserve_minimum": 200_00 if i % 500 == 7 else 50_00, "charges_enabled": True,
                "payouts_enabled": True, "created_at": _slot(CYCLES[0])} for i in range(N_STUDIOS)]
    with session_scope(url=db_url) as s:
        s.execute(insert(Studio), studios)
        for ci, cycle in enumerate(CYCLES):
            run_id = stable_uuid("bench-monitor-run", cycle)
            partial = ci == 11
            s.execute(insert(PayoutRun), [{
                "id": run_id, "cycle_date": cycle, "status": "partial" if partial else "completed",
                "started_at": _slot(cycle), "finished_at": _slot(cycle) + timedelta(minutes=4 + ci % 5),
                "studios_scheduled": N_STUDIOS, "studios_paid": N_STUDIOS - (200 if partial else 0),
                "studios_skipped": 0, "studios_failed": 200 if partial else 0}])
            rows = []
            for i, st in enumerate(studios):
                gross = 100_000 + (i * 7 + ci * 13) % 977
                reserve, fee = gross // 10, gross * 15 // 100
                status = "failed" if partial and i < 200 else "paid"
                rows.append({"id": stable_uuid("bench-monitor-lp", cycle, i), "run_id": run_id, "studio_id": st["id"],
                             "gross": gross, "fee": fee, "reserve": reserve, "net": gross - fee - reserve,
                             "currency": st["currency"], "status": status, "created_at": _slot(cycle),
                             "updated_at": _slot(cycle)})
            for k in range(0, len(rows), 5000):
                s.execute(insert(LedgerPayout), rows[k:k + 5000])
            s.execute(insert(ScheduledExecution), [{"job": "payout-cycle", "slot_at": _slot(cycle),
                                                    "status": "succeeded", "started_at": _slot(cycle),
                                                    "finished_at": _slot(cycle) + timedelta(minutes=5)}])
        earned = [{"id": stable_uuid("bench-monitor-earning", i), "studio_id": st["id"], "amount": 30_000 + i % 500,
                   "currency": st["currency"], "earned_at": AT - timedelta(hours=12), "source": "sale",
                   "source_ref": None, "created_at": AT - timedelta(hours=12)} for i, st in enumerate(studios)]
        for k in range(0, len(earned), 5000):
            s.execute(insert(StudioEarning), earned[k:k + 5000])
        for n in range(N_MANUAL):
            when = AT - timedelta(days=365) + timedelta(days=7 * n) if n < N_MANUAL - 3 else \
                AT - timedelta(days=3 * (N_MANUAL - n), minutes=30)
            sid = studios[(n * 97) % N_STUDIOS]["id"]
            run_id, lp = stable_uuid("bench-monitor-manual", n), stable_uuid("bench-monitor-manual-lp", n)
            interrupted = n in (20, N_MANUAL - 1)
            s.add(RunbookRun(id=run_id, sop="manual_payout", mode="live", status="failed" if interrupted else
                             "succeeded", params_json=json.dumps({"incident_id": f"INC-B{n}", "studio_id": sid,
                                                                  "studio_name": f"Studio {n}"}),
                             params_hash=f"{n:064d}", detected_at=when - timedelta(minutes=30), created_at=when))
            s.add(LedgerPayout(id=lp, run_id=None, studio_id=sid, gross=40_000, fee=0, reserve=0, net=40_000,
                               currency="CAD", status="manual" if interrupted else "paid", created_at=when))
            s.flush()
            s.add(TransferIntent(ledger_payout_id=lp, run_id=run_id, idempotency_key=f"mp:{lp}", amount=40_000,
                                 currency="CAD", destination="acct_x", status="created", stripe_transfer_id=f"tr_bm{n}",
                                 attempts=1, created_at=when, updated_at=when))
            for pos, step in enumerate(("10-verify", "20-transfer", "30-audit-insert", "40-notify", "50-settle")):
                s.add(RunbookStep(run_id=run_id, step=step, position=pos,
                                  status="pending" if interrupted and pos >= 2 else "succeeded", attempts=1))
            if not interrupted:
                s.add(ManualPayout(run_id=run_id, incident_id=f"INC-B{n}", studio_id=sid, studio_name=f"Studio {n}",
                                   ledger_payout_id=lp, amount=40_000, currency="CAD", reserve_after=0, reason="bench",
                                   destination_account="acct_x", stripe_transfer_id=f"tr_bm{n}",
                                   idempotency_key=f"mp:{lp}", approver_ops_id="o", approver_finance_id="f",
                                   operator="op", is_rehearsal=False, status="settled", created_at=when,
                                   transferred_at=when, settled_at=when + timedelta(minutes=5)))
        for name, kind, extra in (("apple-pay-processing", "apple_pay_processing_cert", {"expires_at": AT + timedelta(
                days=10)}), ("apple-pay-merchant", "apple_pay_merchant_identity_cert", {"expires_at": AT + timedelta(
                    days=200)}), ("whsec", "webhook_signing_secret", {"issued_at": AT - timedelta(days=300)}),
                ("STRIPE_FALLBACK_SECRET_KEY", "stripe_restricted_key", {"rotation_due_at": AT - timedelta(days=3)})):
            s.add(Credential(name=name, kind=kind, created_at=AT - timedelta(days=400), **extra))
    return {"studios": N_STUDIOS, "cycles": len(CYCLES), "ledger_payouts": N_STUDIOS * len(CYCLES),
            "manual_payouts": N_MANUAL}


def baseline_statements() -> list[Any]:
    """The aggregates the rules need, as plain SQL statements (rows fetched, nothing computed after)."""
    from payops.db.models import (
        Credential,
        LedgerPayout,
        ManualPayout,
        PayoutRun,
        RunbookRun,
        RunbookStep,
        ScheduledExecution,
        Studio,
        StudioEarning,
        TransferIntent,
    )

    lp, pr = LedgerPayout, PayoutRun
    ranked = (select(lp.studio_id, lp.currency, lp.reserve, lp.gross, pr.cycle_date,
                     func.row_number().over(partition_by=lp.studio_id, order_by=(pr.cycle_date.desc(), lp.id))
                     .label("rn"))
              .join(pr, pr.id == lp.run_id).where(pr.started_at <= AT, lp.status.in_(("transferred", "paid", "manual")))
              .join(Studio, and_(Studio.id == lp.studio_id, Studio.reserve_minimum > 0)).subquery())
    manual = exists().where(TransferIntent.ledger_payout_id == lp.id, RunbookRun.id == TransferIntent.run_id,
                            RunbookRun.sop == "manual_payout")
    return [
        select(pr.id, pr.cycle_date, pr.status, pr.started_at, pr.finished_at).where(pr.started_at <= AT),
        select(lp.run_id, lp.status, lp.currency, func.count(), func.sum(lp.net)).join(pr, pr.id == lp.run_id)
        .where(pr.started_at <= AT).group_by(lp.run_id, lp.status, lp.currency),
        select(ScheduledExecution.slot_at).where(ScheduledExecution.job == "payout-cycle",
                                                 ScheduledExecution.status.in_(("failed", "missed", "interrupted"))),
        select(TransferIntent.run_id, TransferIntent.amount, RunbookRun.params_json, ManualPayout.status,
               ManualPayout.settled_at)
        .join(RunbookRun, RunbookRun.id == TransferIntent.run_id)
        .outerjoin(ManualPayout, ManualPayout.run_id == TransferIntent.run_id)
        .where(RunbookRun.sop == "manual_payout", RunbookRun.mode == "live", TransferIntent.status == "created"),
        select(RunbookStep.run_id).join(RunbookRun, RunbookRun.id == RunbookStep.run_id)
        .where(RunbookRun.sop == "manual_payout", RunbookStep.step == "40-notify", RunbookStep.status == "succeeded"),
        select(lp.currency, func.sum(lp.net)).join(pr, pr.id == lp.run_id)
        .where(pr.started_at > AT - timedelta(days=30), pr.started_at <= AT, lp.status.in_(("transferred", "paid")),
               ~manual).group_by(lp.currency),
        select(Credential),
        select(Studio.id, Studio.name, Studio.currency, Studio.reserve_minimum).where(Studio.reserve_minimum > 0),
        select(ranked).where(ranked.c.rn == 1),
        select(StudioEarning.studio_id, StudioEarning.currency, func.sum(StudioEarning.amount))
        .where(StudioEarning.ledger_payout_id.is_(None), StudioEarning.earned_at <= AT)
        .group_by(StudioEarning.studio_id, StudioEarning.currency),
        select(lp.currency, func.count(), func.sum(lp.net)).join(Studio, Studio.id == lp.studio_id)
        .where(lp.status.in_(("scheduled", "pending", "failed")), lp.reserve < Studio.reserve_minimum)
        .group_by(lp.currency),
    ]


def time_baseline(db_url: str) -> float:
    from payops.db import get_engine

    stmts = baseline_statements()
    with get_engine(db_url).connect() as conn:
        t0 = time.perf_counter()
        for st in stmts:
            conn.execute(st).all()
        return time.perf_counter() - t0


def time_check(settings: Any) -> tuple[float, Any]:
    from payops.monitor.check import run_check

    t0 = time.perf_counter()
    report = run_check(settings, at=AT)
    return time.perf_counter() - t0, report


def measure(label: str, db_url: str, sinks: Any, out: Path) -> dict[str, Any]:
    from payops.config import get_settings
    from payops.sandbox.alert_sinks import SANDBOX_ROUTING_KEY

    t0 = time.perf_counter()
    seeded = seed(db_url)
    seed_s = time.perf_counter() - t0
    env = {"PAYOPS_DATABASE_URL": db_url, "PAYOPS_OUTPUT_DIR": str(out),
           "PAYOPS_SLACK_WEBHOOK_URL": sinks.slack_webhook_url, "PAYOPS_SMTP_HOST": sinks.smtp_host,
           "PAYOPS_SMTP_PORT": str(sinks.smtp_port),
           "PAGERDUTY_ROUTING_KEY": SANDBOX_ROUTING_KEY, "PAYOPS_PAGERDUTY_EVENTS_URL": sinks.pagerduty_url,
           "PAYOPS_JIRA_URL": sinks.jira_url, "PAYOPS_JIRA_TOKEN": "bench-jira-token"}
    os.environ.update(env)
    settings = get_settings(fresh=True)
    first_s, first = time_check(settings)
    base, check = [], []
    for _ in range(REPEATS):
        base.append(time_baseline(db_url))
        check.append(time_check(settings)[0])
    t0 = time.perf_counter()
    cli = subprocess.run([sys.executable, "-m", "payops.cli", "monitor", "check", "--at", AT.isoformat()],
                         capture_output=True, text=True, env=os.environ.copy(), check=False, timeout=600)
    cli_s = time.perf_counter() - t0
    rules = sorted({c.rule for c in first.conditions})
    return {"database": label, **seeded, "seed_s": round(seed_s, 1), "baseline_sql_s": round(min(base), 3),
            "check_s": round(min(check), 3), "ratio": round(min(check) / min(base), 2),
            "check_first_s": round(first_s, 3), "first_deliveries": len(first.outcomes),
            "cli_s": round(cli_s, 2), "cli_exit": cli.returncode, "conditions": len(first.conditions), "rules": rules,
            "met": min(check) / min(base) <= TARGET_RATIO}


def _pg_url() -> str | None:
    import uuid

    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    try:
        eng = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
        name = f"payops_bench_monitor_{uuid.uuid4().hex[:8]}"
        with eng.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        eng.dispose()
        return make_url(PG_ADMIN).set(database=name).render_as_string(hide_password=False)
    except Exception:  # noqa: BLE001 — PostgreSQL is optional for the benchmark
        return None


def _drop_pg(url: str) -> None:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from payops import db

    db.dispose_engines()
    eng = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with eng.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)'))
    eng.dispose()


def main() -> dict[str, Any]:
    from payops.sandbox.sinks import start_sinks

    console = Console()
    results = []
    sinks = start_sinks(http_port=0, smtp_port=0)
    try:
        with tempfile.TemporaryDirectory(prefix="payops-bench-monitor-") as tmp:
            results.append(measure("sqlite", f"sqlite:///{Path(tmp) / 'monitor.db'}", sinks, Path(tmp) / "out"))
            pg = _pg_url()
            if pg is not None:
                try:
                    sinks.clear()
                    results.append(measure("postgresql", pg, sinks, Path(tmp) / "out-pg"))
                finally:
                    _drop_pg(pg)
    finally:
        sinks.stop()
    table = Table("database", "bare SQL aggregates", "monitor check (steady)", "ratio", "first check (sends)",
                  "CLI (subprocess)", "conditions", title=f"monitor check over {N_STUDIOS} studios × {len(CYCLES)} "
                  f"cycles, {N_MANUAL} manual payouts (target ≤ {TARGET_RATIO}x)")
    for r in results:
        table.add_row(r["database"], f"{r['baseline_sql_s']:.3f} s", f"{r['check_s']:.3f} s", f"{r['ratio']}x",
                      f"{r['check_first_s']:.2f} s ({r['first_deliveries']} sent)", f"{r['cli_s']:.2f} s",
                      f"{r['conditions']} ({', '.join(r['rules'])})")
    console.print(table)
    out = {"benchmark": "monitor", "target_ratio": TARGET_RATIO, "measured_at": datetime.now(UTC).isoformat(),
           "results": results}
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=2, default=str) + "\n")
    console.print(f"wrote {RESULTS}")
    return out


if __name__ == "__main__":
    main()
