"""Benchmark: ``reconcile`` against a bare DuckDB FULL OUTER JOIN of the same two tables, same run.

For each size (rows per side: ledger, transfers and payout links each have N rows, ~1% broken) a
fresh subprocess generates the data with ``synth.bulk_dataset`` (not timed), then times:

- ``baseline``: ``SELECT * FROM ledger FULL OUTER JOIN transfers ON ledger_payout_id`` materialised
  as an Arrow table (the frames are registered in an in-memory DuckDB connection);
- ``reconcile``: the full ``reconcile(ledger, transfers, links, config)`` — uniqueness checks,
  duplicates, fallback, payout chain, classification, reasons, and the pandas result frame;
- ``joins`` (for reading the ratio, not a target): the two joins no matcher can skip — that FULL OUTER JOIN
  plus the LEFT JOIN of the payout links on ``destination_payment`` — as one Arrow table. ``reconcile`` over
  ``joins`` is what the matcher costs beyond them.

The three alternate, ``REPEATS`` times below 5M rows (once at 5M), and each side's best run counts: on a
small shared VM one run of either can be 30% off.

At 1M the two sides are measured again with each side's rows in its own random order (``shuffled``): the
generator writes row i of every table for the same payout, so gathers by position read in order; loaded data is
seldom that aligned, and both the join and the matcher pay for random access.

Process CPU time (all threads) goes along, best run of each side: steadier than wall time here.

Peak memory per size: ``ru_maxrss`` of the subprocess (includes generation) and the RSS peak sampled
every 10 ms while ``reconcile`` ran. Every run's time and the 1-minute load average go along (a busy
machine skews both sides). Results go to ``bench/results/recon_match.json``.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

SIZES = (100_000, 1_000_000, 5_000_000)
RESULTS = Path(__file__).parent / "results" / "recon_match.json"
TARGET_RATIO = 2.0
TARGET_PEAK_GB = 4.0
REPEATS = 3
SHUFFLED_AT = 1_000_000  # also measured with each side's rows shuffled
#: the baseline: the bare join the target is relative to (every measurement runs exactly this)
BARE_JOIN = "SELECT * FROM ledger l FULL OUTER JOIN transfers t ON l.ledger_payout_id = t.ledger_payout_id"
#: the two joins no matcher can skip (for reading the ratio): that join + the payout-link join
BOTH_JOINS = f"{BARE_JOIN} LEFT JOIN links b ON b.destination_payment = t.destination_payment"


class _PeakRss:
    """Samples this process's RSS in a thread; ``peak`` in bytes."""

    def __init__(self, interval: float = 0.01) -> None:
        import psutil

        self._proc = psutil.Process()
        self._interval = interval
        self._stop = threading.Event()
        self.peak = self._proc.memory_info().rss
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._proc.memory_info().rss)
            time.sleep(self._interval)

    def __enter__(self) -> _PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._proc.memory_info().rss)


def measure(n: int) -> dict[str, Any]:
    """One size, in this process (run it in a fresh subprocess so peaks don't mix)."""
    import duckdb
    import psutil

    from payops.reconcile.match import reconcile
    from payops.reconcile.synth import bulk_dataset

    load = os.getloadavg()[0]  # other work on the machine skews both timings
    t0 = time.perf_counter()
    ledger, transfers, links, config = bulk_dataset(n)
    gen_s = time.perf_counter() - t0
    rss_data = psutil.Process().memory_info().rss

    con = duckdb.connect()
    con.register("ledger", ledger)
    con.register("transfers", transfers)
    con.register("links", links)
    baseline: list[float] = []
    joins: list[float] = []
    runs: list[float] = []
    cpu: dict[str, list[float]] = {"baseline": [], "reconcile": [], "joins": []}  # process CPU (all threads): steadier
    peak = 0
    # interleaved, best of REPEATS each: both sides see the same machine (2 shared cores, noisy)
    for _ in range(1 if n >= 5_000_000 else REPEATS):
        c, t = time.process_time(), time.perf_counter()
        tbl = con.sql(BARE_JOIN).to_arrow_table()
        baseline.append(time.perf_counter() - t)
        cpu["baseline"].append(time.process_time() - c)
        rows_baseline = tbl.num_rows
        del tbl
        c, t = time.process_time(), time.perf_counter()
        tbl = con.sql(BOTH_JOINS).to_arrow_table()
        joins.append(time.perf_counter() - t)
        cpu["joins"].append(time.process_time() - c)
        del tbl
        with _PeakRss() as sampler:
            c, t = time.process_time(), time.perf_counter()
            result = reconcile(ledger, transfers, links, config)
            runs.append(time.perf_counter() - t)
            cpu["reconcile"].append(time.process_time() - c)
        peak = max(peak, sampler.peak)
        rows_result = len(result.results)
        breaks = int((~result.results["category"].isin(["MATCHED", "MATCHED_WITHIN_TOLERANCE"])).sum())
        del result
    con.close()
    shuffled = _shuffled(ledger, transfers, links, config) if n == SHUFFLED_AT else None
    return {
        "shuffled": shuffled,
        "rows_per_side": n, "generate_s": round(gen_s, 3),
        "baseline_s": round(min(baseline), 3), "reconcile_s": round(min(runs), 3),
        "ratio": round(min(runs) / min(baseline), 2),
        "baseline_runs_s": [round(x, 3) for x in baseline], "reconcile_runs_s": [round(x, 3) for x in runs],
        "cpu_ratio": round(min(cpu["reconcile"]) / min(cpu["baseline"]), 2),  # best CPU-seconds of each side
        "joins_s": round(min(joins), 3), "joins_runs_s": [round(x, 3) for x in joins],
        "ratio_to_joins": round(min(runs) / min(joins), 2),
        "baseline_cpu_s": [round(x, 3) for x in cpu["baseline"]],
        "reconcile_cpu_s": [round(x, 3) for x in cpu["reconcile"]],
        "joins_cpu_s": [round(x, 3) for x in cpu["joins"]],
        "load_avg_1m": round(load, 2),
        "baseline_rows": rows_baseline, "result_rows": rows_result, "breaks": breaks,
        "rss_after_generate_gb": round(rss_data / 2**30, 3),
        "peak_rss_reconcile_gb": round(peak / 2**30, 3),
        "ru_maxrss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 3),
    }


def _shuffled(ledger: Any, transfers: Any, links: Any, config: Any) -> dict[str, Any]:
    """The same tables with each side's rows in its own random order (the generator writes row i of each side
    for the same payout, so the gathers above read in order; loaded data is seldom so aligned), same protocol."""
    import duckdb
    import numpy as np

    from payops.reconcile.match import reconcile

    rng = np.random.default_rng(7)
    ledger, transfers, links = (df.iloc[rng.permutation(len(df))].reset_index(drop=True)
                                for df in (ledger, transfers, links))
    con = duckdb.connect()
    con.register("ledger", ledger)
    con.register("transfers", transfers)
    baseline: list[float] = []
    runs: list[float] = []
    for _ in range(REPEATS):
        t = time.perf_counter()
        con.sql(BARE_JOIN).to_arrow_table()
        baseline.append(time.perf_counter() - t)
        t = time.perf_counter()
        reconcile(ledger, transfers, links, config)
        runs.append(time.perf_counter() - t)
    con.close()
    return {"baseline_s": round(min(baseline), 3), "reconcile_s": round(min(runs), 3),
            "ratio": round(min(runs) / min(baseline), 2),
            "baseline_runs_s": [round(x, 3) for x in baseline], "reconcile_runs_s": [round(x, 3) for x in runs]}


def main(sizes: tuple[int, ...] = SIZES) -> dict[str, Any]:
    import duckdb
    from rich.console import Console
    from rich.table import Table

    rows = []
    for n in sizes:
        proc = subprocess.run([sys.executable, "-m", "bench.bench_recon_match", str(n)], capture_output=True,
                              text=True, cwd=Path(__file__).parent.parent, check=False)
        if proc.returncode != 0:
            rows.append({"rows_per_side": n, "error": proc.stderr.strip().splitlines()[-1:]})
            continue
        rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    table = Table(title="reconcile vs bare DuckDB FULL OUTER JOIN (same tables, same run)")
    for col in ("rows/side", "baseline s", "reconcile s", "ratio", "CPU ratio", "both joins s", "over joins",
                "peak RSS (reconcile)", "ru_maxrss", "breaks"):
        table.add_column(col, justify="right")
    for r in rows:
        if "error" in r:
            table.add_row(f"{r['rows_per_side']:,}", "error", str(r["error"]), *[""] * 8)
            continue
        table.add_row(f"{r['rows_per_side']:,}", f"{r['baseline_s']:.2f}", f"{r['reconcile_s']:.2f}",
                      f"{r['ratio']:.2f}x", f"{r['cpu_ratio']:.2f}x", f"{r['joins_s']:.2f}",
                      f"{r['ratio_to_joins']:.2f}x", f"{r['peak_rss_reconcile_gb']:.2f} GB",
                      f"{r['ru_maxrss_gb']:.2f} GB",
                      f"{r['breaks']:,}")
    console = Console(width=None if sys.stdout.isatty() else 150)  # a log is not 80 columns: do not cut numbers
    console.print(table)
    for r in rows:
        if r.get("shuffled"):
            sh = r["shuffled"]
            console.print(f"{r['rows_per_side']:,} rows per side, each side in its own random order: reconcile "
                            f"{sh['reconcile_s']:.2f} s vs bare join {sh['baseline_s']:.2f} s = {sh['ratio']:.2f}x")
    at_1m = next((r for r in rows if r.get("rows_per_side") == 1_000_000 and "ratio" in r), None)
    out = {
        "sizes": rows,
        "targets": {"ratio_at_1m": TARGET_RATIO, "peak_gb": TARGET_PEAK_GB},
        "met": None if at_1m is None else {
            "ratio_at_1m": at_1m["ratio"] <= TARGET_RATIO,
            "peak_under_4gb_at_1m": at_1m["ru_maxrss_gb"] < TARGET_PEAK_GB,  # the target is at 1M
        },
        "duckdb": duckdb.__version__, "cores": _cores(),
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {RESULTS}")
    return out


def _cores() -> int:
    return os.cpu_count() or 0


if __name__ == "__main__":
    if len(sys.argv) == 2:
        print(json.dumps(measure(int(sys.argv[1]))))
    else:
        main()
