"""``POST /cron/payout-cycle``: who may trigger a payout cycle, with what, and the background run.

Authorization is ``Bearer <CRON_SECRET_KEY>``, compared in constant time (``hmac.compare_digest``).
The optional JSON body is ``{"cycle_date": "YYYY-MM-DD" | null, "dry_run": true}``; dry run is the
default, as everywhere in payops. The cycle runs in a background thread (non-daemon, and the app's
lifespan waits for it: a graceful shutdown lets a cycle in progress finish instead of abandoning it
half way); its errors are logged with their traceback and kept in :attr:`TriggerRunner.history`,
never swallowed silently. One triggered cycle at a time per process (a second request gets 409).
"""

from __future__ import annotations

import hmac
import json
import logging
import re
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from payops.config import Settings
from payops.errors import FieldProblem, ParamsInvalid

log = logging.getLogger(__name__)
TriggerFn = Callable[[date | None, bool], str]
BODY_FIELDS = ("cycle_date", "dry_run")
_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")


@dataclass(frozen=True)
class TriggerRequest:
    """A validated trigger body."""

    cycle_date: date | None = None
    dry_run: bool = True

    @property
    def live(self) -> bool:
        return not self.dry_run


def bearer_matches(authorization: str | None, secret: str) -> bool:
    """Whether ``Authorization: Bearer <token>`` carries ``secret`` (constant-time comparison)."""
    if not authorization or not secret:
        return False
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return False
    return hmac.compare_digest(token.encode(), secret.encode())


def parse_body(raw: bytes) -> TriggerRequest:
    """The trigger body (empty → defaults), or ParamsInvalid naming every bad field."""
    if not raw.strip():
        return TriggerRequest()
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ParamsInvalid(FieldProblem("body", f"is not valid JSON ({exc})"), "trigger body") from exc
    if body is None:
        return TriggerRequest()
    if not isinstance(body, dict):
        raise ParamsInvalid(FieldProblem("body", "must be a JSON object"), "trigger body")
    problems = [FieldProblem(str(k), f"unknown field (expected {', '.join(BODY_FIELDS)})")
                for k in body if k not in BODY_FIELDS]
    cycle_date: date | None = None
    raw_date = body.get("cycle_date")
    if raw_date is not None:
        if not isinstance(raw_date, str) or not _DATE_RE.fullmatch(raw_date):
            problems.append(FieldProblem("cycle_date", f"must be a date YYYY-MM-DD or null, got {raw_date!r}"))
        else:
            try:
                cycle_date = date.fromisoformat(raw_date)
            except ValueError as exc:
                problems.append(FieldProblem("cycle_date", f"{raw_date!r} is not a calendar date ({exc})"))
    dry_run = body.get("dry_run", True)
    if not isinstance(dry_run, bool):
        problems.append(FieldProblem("dry_run", f"must be true or false, got {dry_run!r}"))
    if problems:
        raise ParamsInvalid(problems, "trigger body")
    return TriggerRequest(cycle_date, dry_run)


def default_trigger(settings: Settings) -> TriggerFn:
    """The real trigger: ``payops.cycle.runbook.run_cycle_runbook``, imported only when a cycle runs."""

    def run(cycle_date: date | None, live: bool) -> str:
        from payops.cycle.runbook import run_cycle_runbook  # type: ignore[import-not-found,unused-ignore]

        return str(run_cycle_runbook(cycle_date, live=live, settings=settings, trigger="http"))

    return run


class TriggerRunner:
    """Runs the trigger callable in a background thread, one at a time per process."""

    def __init__(self, fn: TriggerFn) -> None:
        self.fn = fn
        self.history: deque[dict[str, Any]] = deque(maxlen=50)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @property
    def busy(self) -> bool:
        """Whether a triggered cycle is still running in this process."""
        return self._thread is not None and self._thread.is_alive()

    def start(self, req: TriggerRequest) -> dict[str, Any] | None:
        """Start the cycle in the background; ``None`` when one is still running here."""
        with self._lock:
            if self.busy:
                return None
            record: dict[str, Any] = {
                "cycle_date": req.cycle_date.isoformat() if req.cycle_date else None, "dry_run": req.dry_run,
                "requested_at": datetime.now(UTC).isoformat(), "finished_at": None, "result": None, "error": None,
            }
            self.history.append(record)
            self._thread = threading.Thread(target=self._run, args=(req, record), name="payout-cycle-http",
                                            daemon=False)
            self._thread.start()
        return record

    def join(self, timeout: float | None = None) -> None:
        """Wait for the running cycle (tests, shutdown)."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)

    def _run(self, req: TriggerRequest, record: dict[str, Any]) -> None:
        mode = "live" if req.live else "dry-run"
        log.info("payout cycle triggered over HTTP: cycle_date=%s, %s", req.cycle_date or "(current)", mode)
        try:
            record["result"] = self.fn(req.cycle_date, req.live)
            log.info("payout cycle (cycle_date=%s, %s) finished: %s", req.cycle_date or "(current)", mode,
                     record["result"])
        except BaseException as exc:
            record["error"] = f"{type(exc).__name__}: {exc}"
            log.exception("payout cycle triggered over HTTP failed (cycle_date=%s, %s)",
                          req.cycle_date or "(current)", mode)
            if not isinstance(exc, Exception):
                raise
        finally:
            record["finished_at"] = datetime.now(UTC).isoformat()
