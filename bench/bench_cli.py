"""Benchmark: how fast the CLI answers, next to bare interpreter baselines measured in the same run.

Every measurement is the wall time of a fresh subprocess (what an operator waits for), repeated REPEAT
times round-robin (so a busy moment on the machine hits every command alike), medians reported:

- baselines: ``python -c "import typer, rich"`` and ``python -c "import sqlalchemy, stripe, typer, rich"``;
- ``payops --help``: target within 3x the first baseline;
- ``payops approve RUN --role ops --key KEY`` (a real signed approval — ssh-keygen signs, payops verifies it
  against the roster — a new run each time), ``payops runs list`` and ``payops runs show RUN`` against a
  migrated SQLite database: target within 1.5x the second.

Wall time is the measure; on a shared machine it swings with the neighbours' load, so the CPU time
(user + system) of each subprocess is reported next to it — far steadier there, and the ratio of what
each command costs to start. Results: ``bench/results/cli.json``.
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench import write_results
from payops import demo_data

REPEAT = int(os.environ.get("PAYOPS_BENCH_CLI_REPEAT", "5"))
RESULTS = Path(__file__).parent / "results" / "cli.json"
OPERATOR = "aaaaaaaa-0000-4000-8000-000000000001"
APPROVER = "bbbbbbbb-0000-4000-8000-000000000002"
TARGETS = {"help": ("typer_rich", 3.0), "approve": ("db_stack", 1.5), "runs_list": ("db_stack", 1.5),
           "runs_show": ("db_stack", 1.5)}


def _payops() -> list[str]:
    script = Path(sys.executable).with_name("payops")
    return [str(script)] if script.exists() else [sys.executable, "-m", "payops.cli"]


def _runs(db_url: str, n: int, keys: Path) -> tuple[list[str], Path]:
    """``n`` dry-run manual payout runs (distinct parameters), created the way ``payops manual-payout`` does,
    and a test-only roster (operator, ops approver) whose ops key is returned."""
    from payops import db, runner
    from payops.approvals.testkeys import enroll_test_roster
    from payops.config import get_settings
    from payops.params import validate_manual_payout

    db.upgrade(db_url)
    settings = get_settings(fresh=True)
    keys.mkdir(mode=0o700)
    team = enroll_test_roster(keys, [("operator", OPERATOR, "Bench Operator", ("operator",)),
                                     ("ops", APPROVER, "Bench Ops", ("ops",))], by=OPERATOR, settings=settings)
    ids = []
    for i in range(n):
        params = validate_manual_payout({
            "studio_id": demo_data.STUDIO_A.studio_id, "studio_name": "Test Studio A",
            "ledger_payout_id": demo_data.REHEARSAL_LEDGER_PAYOUT_ID, "incident_id": f"INC-BENCH-CLI-{i}",
            "amount": "875.50", "reserve_after": "120.00", "reason": "benchmark", "currency": "CAD",
            "destination_account": "acct_test_studio_a", "notes": "", "operator": OPERATOR, "dry_run": True})
        ids.append(runner.prepare_run("manual_payout", params, live=False, settings=settings).id)
    db.dispose_engines()
    return ids, team["ops"].key_path


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _time(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall time and CPU time (user + system) of one run of ``cmd``."""
    c0, t0 = _cpu(), time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False, timeout=120)
    elapsed, cpu = time.perf_counter() - t0, _cpu() - c0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}: {proc.stderr or proc.stdout}")
    return elapsed, cpu


def main() -> dict[str, Any]:
    console = Console()
    tmp = Path(tempfile.mkdtemp(prefix="payops-bench-cli-"))
    db_url = f"sqlite:///{tmp / 'payops.db'}"
    # test-only roster keys count only away from real Stripe: point at a local address nothing is sent to
    local = {"PAYOPS_DATABASE_URL": db_url, "PAYOPS_OUTPUT_DIR": str(tmp / "outputs"),
             "PAYOPS_STRIPE_API_BASE": "http://127.0.0.1:9"}
    env = {**os.environ, **local, "COLUMNS": "100"}
    os.environ.update(local)
    run_ids, ops_key = _runs(db_url, REPEAT + 1, tmp / "keys")
    py, payops = sys.executable, _payops()
    commands: dict[str, Any] = {
        "typer_rich": lambda i: [py, "-c", "import typer, rich"],
        "db_stack": lambda i: [py, "-c", "import sqlalchemy, stripe, typer, rich"],
        "help": lambda i: [*payops, "--help"],
        "approve": lambda i: [*payops, "approve", run_ids[i], "--role", "ops", "--key", str(ops_key)],
        "runs_list": lambda i: [*payops, "runs", "list"],
        "runs_show": lambda i: [*payops, "runs", "show", run_ids[-1]],
    }
    for make in commands.values():  # warm the OS page cache and .pyc files once
        _time(make(REPEAT), env)
    times: dict[str, list[float]] = {name: [] for name in commands}
    cpus: dict[str, list[float]] = {name: [] for name in commands}
    for i in range(REPEAT):
        for name, make in commands.items():
            wall, cpu = _time(make(i), env)
            times[name].append(wall)
            cpus[name].append(cpu)
    med = {name: statistics.median(v) for name, v in times.items()}
    cpu_med = {name: statistics.median(v) for name, v in cpus.items()}
    results: dict[str, Any] = {"repeat": REPEAT, "load_average": os.getloadavg(),
                               "median_s": {k: round(v, 3) for k, v in med.items()},
                               "cpu_median_s": {k: round(v, 3) for k, v in cpu_med.items()},
                               "all_s": {k: [round(x, 3) for x in v] for k, v in times.items()}}
    table = Table("command", "wall median (s)", "baseline", "ratio", "target", "CPU median (s)", "CPU ratio",
                  title="CLI, fresh process each time")
    for name in ("typer_rich", "db_stack"):
        table.add_row(" ".join(commands[name](0)[1:]).replace("-c ", "python -c "), f"{med[name]:.3f}", "", "", "",
                      f"{cpu_med[name]:.3f}", "")
    met = True
    for name, (base, target) in TARGETS.items():
        ratio = med[name] / med[base]
        cpu_ratio = cpu_med[name] / cpu_med[base]
        ok = ratio <= target
        met &= ok
        results[f"{name}_ratio"] = round(ratio, 2)
        results[f"{name}_cpu_ratio"] = round(cpu_ratio, 2)
        label = "payops " + " ".join(a for a in commands[name](0)[len(payops):] if a not in run_ids)
        table.add_row(label, f"{med[name]:.3f}", base, f"{ratio:.2f}x", f"≤ {target}x {'met' if ok else 'NOT met'}",
                      f"{cpu_med[name]:.3f}", f"{cpu_ratio:.2f}x")
    results["targets"] = {k: {"baseline": b, "ratio": t} for k, (b, t) in TARGETS.items()}
    results["meets_targets"] = met
    console.print(table)
    write_results(RESULTS, results)
    return results


if __name__ == "__main__":
    main()
