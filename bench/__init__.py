"""Benchmarks (``make bench``): each ``bench_*.py`` prints ratios against a baseline measured in the same run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def write_results(path: Path, results: dict[str, Any]) -> None:
    """Write one benchmark's numbers to ``bench/results/<name>.json`` and say where."""
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(f"wrote {path}")
