"""``make bench``: run every ``bench/bench_*.py`` (each has ``main() -> dict``); numbers go to bench/results/."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

HERE = Path(__file__).parent


def run(names: list[str]) -> int:
    modules = sorted(p.stem for p in HERE.glob("bench_*.py"))
    chosen = [m for m in modules if not names or m.removeprefix("bench_") in names or m in names]
    if not chosen:
        print(f"no benchmark matches {names}; have: {', '.join(modules)}", file=sys.stderr)
        return 2
    summary = {}
    for name in chosen:
        print(f"== {name}")
        summary[name] = importlib.import_module(f"bench.{name}").main()
    out = HERE / "results" / "summary.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(summary, indent=2, default=str) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(run(sys.argv[1:]))
