"""Crash points for the exactly-once tests: ``PAYOPS_FAULT_KILL_AT=after:20-transfer,...``.

The process is killed with SIGKILL at the named point — no cleanup, no exception handler, exactly
like a power cut. Never set this outside tests.
"""

from __future__ import annotations

import os
import signal


def maybe_kill(point: str) -> None:
    wanted = {p.strip() for p in os.environ.get("PAYOPS_FAULT_KILL_AT", "").split(",") if p.strip()}
    if point in wanted:
        os.kill(os.getpid(), signal.SIGKILL)
