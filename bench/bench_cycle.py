"""Benchmark: a payout cycle for N_STUDIOS studios next to N_STUDIOS bare SDK transfer creations.

The sandbox runs as its own process (``payops sandbox serve``, no injected latency, rate limit off)
with N_STUDIOS ready connected accounts and a funded platform. Measured in the same run:

- ``baseline_serial``: ``client.v1.transfers.create`` N times in a loop (the issue's baseline);
- ``baseline_threads``: the same creations from PAYOPS_CYCLE_CONCURRENCY threads (what the cycle
  does on the wire, without the database);
- ``cycle_library``: plan (read studios + earnings, write payout run, ledger payouts, allocation),
  write-ahead intents, the concurrent transfers, results and summary — the library calls the
  notebooks make, on a SQLite file (the default) and on PostgreSQL when reachable;
- ``cycle_runbook``: the same through the runner (three papermill notebooks, archive sealed), SQLite.

Each cycle gets its own database and cycle date (cycles are idempotent per date). Ratios are against
``baseline_serial``; the target is the runbook within 1.5x. Results: ``bench/results/cycle.json``.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import requests
import stripe
from rich.console import Console
from rich.table import Table
from sqlalchemy import insert

from payops import demo_data

N_STUDIOS = int(os.environ.get("PAYOPS_BENCH_STUDIOS", "10000"))
RESULTS = Path(__file__).parent / "results" / "cycle.json"
TARGET_RATIO = 1.5
PG_ADMIN = os.environ.get("PAYOPS_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def _accounts(url: str, n: int) -> list[str]:
    s = requests.Session()
    ids = [f"acct_bench_{i:06d}" for i in range(n)]
    for acct in ids:
        r = s.post(f"{url}/_sandbox/accounts", json={"id": acct, "country": "CA", "default_currency": "cad",
                                                    "charges_enabled": True, "payouts_enabled": True,
                                                    "payout_interval": "manual"})
        r.raise_for_status()
    s.post(f"{url}/_sandbox/fund", json={"amount": 10**13, "currency": "cad"}).raise_for_status()
    return ids


def _seed_db(db_url: str, accounts: list[str], cycle: date) -> None:
    from payops import db
    from payops.db import session_scope
    from payops.db.models import Studio, StudioEarning

    db.upgrade(db_url)
    earned = datetime(cycle.year, cycle.month, cycle.day, tzinfo=UTC) - timedelta(days=3)
    studios = [{"id": demo_data.stable_uuid("bench-studio", a), "name": f"Bench studio {a[-6:]}",
                "email": f"{a}@example.com", "stripe_account_id": a, "currency": "CAD", "reserve_minimum": 0,
                "charges_enabled": True, "payouts_enabled": True, "created_at": earned} for a in accounts]
    earnings = [{"id": demo_data.stable_uuid("bench-earning", cycle, st["id"]), "studio_id": st["id"],
                 "amount": 20_000 + i % 977, "currency": "CAD", "earned_at": earned, "source": "sale",
                 "source_ref": None, "created_at": earned} for i, st in enumerate(studios)]
    with session_scope(url=db_url) as s:
        for i in range(0, len(studios), 1000):
            s.execute(insert(Studio), studios[i:i + 1000])
            s.execute(insert(StudioEarning), earnings[i:i + 1000])


def _settings(url: str, db_url: str, out: Path) -> Any:
    from payops.config import get_settings

    os.environ.update({"PAYOPS_STRIPE_API_BASE": url, "STRIPE_SECRET_KEY": demo_data.PLATFORM_KEY,
                       "PAYOPS_DATABASE_URL": db_url, "PAYOPS_OUTPUT_DIR": str(out), "PAYOPS_ENVIRONMENT": "test"})
    os.environ.pop("PAYOPS_SLACK_WEBHOOK_URL", None)
    return get_settings(fresh=True)


def _cycle_library(settings: Any, cycle: date) -> float:
    from payops.cycle import report, transfers
    from payops.cycle.runbook import CycleContext, create_cycle_run, validate_cycle

    run_id = create_cycle_run(validate_cycle({"cycle_date": cycle, "dry_run": False, "trigger": "bench"}, settings),
                              settings)
    t0 = time.perf_counter()
    ctx = CycleContext.load("10-plan", run_id, settings)
    plan = report.plan(ctx)
    ctx = CycleContext.load("20-transfer", run_id, settings)
    res = transfers.run(ctx)
    ctx = CycleContext.load("30-summary", run_id, settings)
    summary = report.summarize(ctx)
    elapsed = time.perf_counter() - t0
    assert len(plan.payouts) == N_STUDIOS and res.created == N_STUDIOS and summary.transferred == N_STUDIOS, (
        len(plan.payouts), res.created, summary.transferred)
    return elapsed


def _cycle_runbook(settings: Any, cycle: date) -> float:
    from payops.cycle.runbook import run_cycle_runbook

    t0 = time.perf_counter()
    outcome = run_cycle_runbook(cycle, live=True, settings=settings, trigger="bench")
    elapsed = time.perf_counter() - t0
    assert outcome.results["30-summary"]["transferred"] == N_STUDIOS, outcome.results["30-summary"]
    return elapsed


def _pg_db() -> tuple[str, str] | None:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"payops_bench_{os.getpid()}"
    try:
        eng = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
        with eng.connect() as c:
            c.execute(text(f'CREATE DATABASE "{name}"'))
        eng.dispose()
    except Exception as exc:  # noqa: BLE001 — PostgreSQL is optional for the benchmark; said in the output
        print(f"PostgreSQL not measured: {type(exc).__name__}: {exc}")
        return None
    return make_url(PG_ADMIN).set(database=name).render_as_string(hide_password=False), name


def _drop_pg(name: str) -> None:
    from sqlalchemy import create_engine, text

    from payops import db

    db.dispose_engines()
    eng = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with eng.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    eng.dispose()


def _baselines(url: str, accounts: list[str], threads: int) -> tuple[float, float]:
    from concurrent.futures import ThreadPoolExecutor

    client = stripe.StripeClient(demo_data.PLATFORM_KEY, base_addresses={"api": url}, max_network_retries=0)
    client.v1.balance.retrieve()  # warm the connection
    t0 = time.perf_counter()
    for i, acct in enumerate(accounts):
        client.v1.transfers.create({"amount": 15_000, "currency": "cad", "destination": acct},
                                   options={"idempotency_key": f"bench-serial-{i}"})
    serial = time.perf_counter() - t0
    clients = [stripe.StripeClient(demo_data.PLATFORM_KEY, base_addresses={"api": url}, max_network_retries=0)
               for _ in range(threads)]
    t0 = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda ia: clients[ia[0] % threads].v1.transfers.create(
            {"amount": 15_000, "currency": "cad", "destination": ia[1]},
            options={"idempotency_key": f"bench-threads-{ia[0]}"}), enumerate(accounts)))
    return serial, time.perf_counter() - t0


def main() -> dict[str, Any]:
    from bench.bench_sandbox import _start_server
    from payops.config import Settings
    from payops.sandbox.testing import free_port

    console = Console()
    port = free_port()
    proc = _start_server(port)
    url = f"http://127.0.0.1:{port}"
    tmp = Path(tempfile.mkdtemp(prefix="payops-bench-cycle-"))
    results: dict[str, Any] = {"n_studios": N_STUDIOS, "server": "separate process (payops sandbox serve)"}
    try:
        console.print(f"creating {N_STUDIOS} connected accounts in the sandbox…")
        accounts = _accounts(url, N_STUDIOS)
        threads = Settings().payout_cycle_concurrency
        serial, threaded = _baselines(url, accounts, threads)
        results |= {"baseline_serial_s": round(serial, 2), "baseline_threads_s": round(threaded, 2),
                    "threads": threads}
        sqlite_url = f"sqlite:///{tmp / 'lib.db'}"
        _seed_db(sqlite_url, accounts, date(2026, 11, 1))
        results["cycle_library_sqlite_s"] = round(_cycle_library(_settings(url, sqlite_url, tmp / "o1"),
                                                                 date(2026, 11, 1)), 2)
        pg = _pg_db()
        if pg is not None:
            try:
                _seed_db(pg[0], accounts, date(2026, 11, 1))
                results["cycle_library_postgresql_s"] = round(
                    _cycle_library(_settings(url, pg[0], tmp / "o2"), date(2026, 11, 1)), 2)
            finally:
                _drop_pg(pg[1])
        runbook_url = f"sqlite:///{tmp / 'runbook.db'}"
        _seed_db(runbook_url, accounts, date(2026, 11, 15))
        results["cycle_runbook_sqlite_s"] = round(_cycle_runbook(_settings(url, runbook_url, tmp / "o3"),
                                                                 date(2026, 11, 15)), 2)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    for key in [k for k in results if k.startswith("cycle_")]:
        results[key[:-2] + "_ratio"] = round(results[key] / serial, 2)
    results["target_ratio"] = TARGET_RATIO
    results["meets_target"] = results["cycle_runbook_sqlite_ratio"] <= TARGET_RATIO
    table = Table("measurement", "seconds", "× serial SDK", title=f"payout cycle, {N_STUDIOS} studios")
    for key in ("baseline_serial", "baseline_threads", "cycle_library_sqlite", "cycle_library_postgresql",
                "cycle_runbook_sqlite"):
        if f"{key}_s" in results:
            table.add_row(key, f"{results[f'{key}_s']:.2f}", f"{results[f'{key}_s'] / serial:.2f}")
    console.print(table)
    console.print(f"target: runbook within {TARGET_RATIO}x of the serial SDK baseline → "
                  f"{'MET' if results['meets_target'] else 'NOT MET'}")
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    return results
