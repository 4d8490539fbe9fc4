"""The sandbox's in-memory Stripe world: objects, indexes, balances, keys, clock, persistence.

One :class:`SandboxState` holds everything. All reads and writes happen under ``state.lock`` (a
re-entrant lock): the ASGI handlers, the background ticker, the webhook worker and the control
plane all go through it, so the state is consistent whether handlers run on the event loop or in a
thread pool.

Time is a *sandbox clock*: real time plus an offset that ``advance_clock`` moves forward. Timed
transitions (payouts pending → in_transit → paid/failed) sit in a heap keyed by due time and are
applied by :meth:`SandboxState.tick`, called before every request and by a ticker — so the result
is deterministic under the clock and costs nothing when nothing is due.

Persistence: :meth:`to_json` / :meth:`from_json` (one JSON document), :meth:`save` writes it
atomically (temp file + ``os.replace``).
"""

from __future__ import annotations

import heapq
import json
import logging
import os
import secrets
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from payops.sandbox.store import OrderedIndex, SortKey
from payops.sandbox.transitions import apply_transition

log = logging.getLogger(__name__)

PLATFORM = "acct_test_platform"
API_VERSION = "2026-10-28.endive"
IDEMPOTENCY_TTL = 24 * 3600
STATE_FORMAT = 1


_URLSAFE_TO_ALNUM = str.maketrans("-_", "xZ")


def clone(value: Any) -> Any:
    """Deep copy of JSON data (dicts, lists, scalars) — several times faster than ``copy.deepcopy``."""
    if isinstance(value, dict):
        return {k: clone(v) for k, v in value.items()}
    if isinstance(value, list):
        return [clone(v) for v in value]
    return value


def random_id(prefix: str, length: int = 24) -> str:
    """``prefix_`` + ``length`` random alphanumerics (Stripe-looking ids)."""
    return prefix + "_" + secrets.token_urlsafe(length).translate(_URLSAFE_TO_ALNUM)[:length]


class SandboxState:
    """Thread-safe container of the sandbox world. Mutate only while holding ``lock``."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.on_event: Callable[[dict[str, Any]], None] | None = None
        self.expiry_paused: Callable[[], bool] = lambda: False  # the runtime wires the fault knob in
        # expires the due Checkout Sessions; the runtime wires in ``checkout.expire_due`` (checkout uses state)
        self.expire_sessions: Callable[[SandboxState], int] | None = None
        self.dirty = False
        self.clear()

    # --- lifecycle -----------------------------------------------------------------------------
    def clear(self, *, keep_clock: bool = False) -> None:
        with self.lock:
            if not keep_clock:
                self.clock_offset = 0.0
            self.seq = 0
            self.objects: dict[str, dict[str, Any]] = {}
            self.owner: dict[str, str] = {}
            self.sort_key: dict[str, SortKey] = {}
            self.index_names: dict[str, list[tuple[str, ...]]] = {}
            self.indexes: dict[tuple[str, ...], OrderedIndex] = {}
            self.balances: dict[str, dict[str, dict[str, int]]] = {}
            self.keys: dict[str, dict[str, Any]] = {}
            self.idempotency: dict[str, dict[str, Any]] = {}
            self.schedule: list[tuple[float, int, str, str]] = []
            self.unswept: dict[str, list[str]] = {}  # "acct|cur" → balance txn ids not yet paid out
            self.payout_txns: dict[str, list[str]] = {}  # po → txns it settled
            self.webhook_secrets: dict[str, str] = {}
            self.payout_plans: dict[str, dict[str, Any]] = {}  # po → {"fail": {...}} decided at creation
            self.expiries: list[tuple[int, str]] = []  # (expires_at, cs_…) of open Checkout Sessions (heap)
            self.checkout_extra: dict[str, dict[str, Any]] = {}  # cs → {"payment_intent_data": {...}}
            self.dirty = True

    # --- clock ---------------------------------------------------------------------------------
    def now(self) -> float:
        return time.time() + self.clock_offset

    def now_int(self) -> int:
        return int(self.now())

    def advance_clock(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("the sandbox clock only moves forward")
        with self.lock:
            self.clock_offset += seconds
            self.dirty = True
        self.tick()

    # --- objects and indexes -------------------------------------------------------------------
    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def add(self, obj: dict[str, Any], owner: str, indexes: list[tuple[str, ...]],
            seq: int | None = None) -> dict[str, Any]:
        oid = obj["id"]
        key = (int(obj.get("created", 0)), seq if seq is not None else self.next_seq())
        self.seq = max(self.seq, key[1])
        self.objects[oid] = obj
        self.owner[oid] = owner
        self.sort_key[oid] = key
        self.index_names[oid] = indexes
        for name in indexes:
            idx = self.indexes.get(name)
            if idx is None:
                idx = self.indexes[name] = OrderedIndex()
            idx.add(key, oid)
        self.dirty = True
        return obj

    def index_add(self, oid: str, name: tuple[str, ...]) -> None:
        self.index_names[oid].append(name)
        self.indexes.setdefault(name, OrderedIndex()).add(self.sort_key[oid], oid)

    def index_remove(self, oid: str, name: tuple[str, ...]) -> None:
        if name in self.index_names.get(oid, []):
            self.index_names[oid].remove(name)
            self.indexes[name].remove(self.sort_key[oid], oid)

    def remove(self, oid: str) -> None:
        for name in self.index_names.pop(oid, []):
            self.indexes[name].remove(self.sort_key[oid], oid)
        self.objects.pop(oid, None)
        self.owner.pop(oid, None)
        self.sort_key.pop(oid, None)
        self.dirty = True

    def get(self, oid: str, kind: str, owner: str | None = None) -> dict[str, Any] | None:
        obj = self.objects.get(oid)
        if obj is None or obj.get("object") != kind:
            return None
        if owner is not None and self.owner.get(oid) != owner:
            return None
        return obj

    # --- balances ------------------------------------------------------------------------------
    def balance(self, account: str, currency: str) -> dict[str, int]:
        per = self.balances.setdefault(account, {})
        bal = per.get(currency)
        if bal is None:
            bal = per[currency] = {"available": 0, "pending": 0, "connect_reserved": 0}
        return bal

    def post_txn(self, account: str, *, amount: int, currency: str, type: str,
                 reporting_category: str, source: str | None, description: str | None,
                 created: int | None = None, txn_id: str | None = None, status: str = "available",
                 affects_balance: bool = True, fee: int = 0,
                 fee_details: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """Create a balance transaction and move the account's available (or pending) balance.

        ``fee`` (Stripe's fee, positive) is taken from ``amount``: the balance moves by ``net``.
        """
        created = self.now_int() if created is None else created
        txn = {
            "amount": amount, "available_on": created, "created": created, "currency": currency,
            "description": description, "exchange_rate": None, "fee": fee, "fee_details": fee_details or [],
            "id": txn_id or random_id("txn"), "net": amount - fee, "object": "balance_transaction",
            "reporting_category": reporting_category, "source": source, "status": status,
            "type": type, "balance_type": "payments",
        }
        self.add(txn, account, [("txn", account), ("txn_type", account, type)])
        if affects_balance:
            bal = self.balance(account, currency)
            bal["available" if status == "available" else "pending"] += amount - fee
        return txn

    # --- events --------------------------------------------------------------------------------
    def emit(self, type: str, obj: dict[str, Any], *, account: str = PLATFORM,
             request_id: str | None = None, idempotency_key: str | None = None,
             previous: dict[str, Any] | None = None, created: int | None = None,
             event_id: str | None = None, deliver: bool = True) -> dict[str, Any]:
        data: dict[str, Any] = {"object": clone(obj)}
        if previous is not None:
            data["previous_attributes"] = previous
        event: dict[str, Any] = {
            "api_version": API_VERSION, "created": self.now_int() if created is None else created,
            "data": data, "id": event_id or random_id("evt"), "livemode": False, "object": "event",
            "pending_webhooks": 0, "request": {"id": request_id, "idempotency_key": idempotency_key},
            "type": type,
        }
        if account != PLATFORM:
            event["account"] = account
        self.add(event, account, [("events", account), ("events_type", account, type)])
        if deliver and self.on_event is not None:
            self.on_event(event)
        return event

    # --- timed transitions ---------------------------------------------------------------------
    def schedule_at(self, due: float, obj_id: str, action: str) -> None:
        heapq.heappush(self.schedule, (due, self.next_seq(), obj_id, action))
        self.dirty = True

    def tick(self) -> int:
        """Apply every scheduled transition that is due on the sandbox clock, and expire the Checkout
        Sessions whose ``expires_at`` has passed (unless the ``checkout_expiry_paused`` fault holds them)."""
        done = 0
        if (self.expire_sessions is not None and self.expiries and self.expiries[0][0] <= self.now()
                and not self.expiry_paused()):
            with self.lock:
                done += self.expire_sessions(self)
        if not self.schedule:
            return done
        with self.lock:
            now = self.now()
            while self.schedule and self.schedule[0][0] <= now:
                due, _, obj_id, action = heapq.heappop(self.schedule)
                apply_transition(self, obj_id, action, due)
                done += 1
            if done:
                self.dirty = True
        return done

    # --- persistence ---------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        with self.lock:
            order = sorted(self.objects, key=lambda oid: self.sort_key[oid][1])
            return {
                "format": STATE_FORMAT, "clock_offset": self.clock_offset, "seq": self.seq,
                "objects": [
                    {"owner": self.owner[oid], "seq": self.sort_key[oid][1],
                     "indexes": [list(n) for n in self.index_names[oid]], "object": self.objects[oid]}
                    for oid in order
                ],
                "balances": self.balances, "keys": self.keys, "idempotency": self.idempotency,
                "schedule": [list(item) for item in self.schedule], "unswept": self.unswept,
                "payout_txns": self.payout_txns, "webhook_secrets": self.webhook_secrets,
                "payout_plans": self.payout_plans, "checkout_extra": self.checkout_extra,
            }

    def load_json(self, doc: dict[str, Any]) -> None:
        if doc.get("format") != STATE_FORMAT:
            raise ValueError(f"unknown sandbox state format {doc.get('format')!r}")
        with self.lock:
            self.clear()
            self.clock_offset = float(doc["clock_offset"])
            for row in doc["objects"]:
                self.add(row["object"], row["owner"], [tuple(n) for n in row["indexes"]], seq=row["seq"])
            self.seq = max(self.seq, int(doc["seq"]))
            self.balances = doc["balances"]
            self.keys = doc["keys"]
            self.idempotency = {k: v for k, v in doc["idempotency"].items() if v.get("state") == "done"}
            self.schedule = [(float(a), int(b), str(c), str(d)) for a, b, c, d in doc["schedule"]]
            heapq.heapify(self.schedule)
            self.unswept = doc["unswept"]
            self.payout_txns = doc["payout_txns"]
            self.webhook_secrets = doc["webhook_secrets"]
            self.payout_plans = doc["payout_plans"]
            self.checkout_extra = doc.get("checkout_extra", {})
            self.expiries = [(int(o["expires_at"]), o["id"]) for o in self.objects.values()
                             if o.get("object") == "checkout.session" and o["status"] == "open"]
            heapq.heapify(self.expiries)
            self.dirty = False

    def save(self, path: Path) -> None:
        """Write the state atomically (a reader never sees a half-written file)."""
        with self.lock:
            text = json.dumps(self.to_json(), separators=(",", ":"))
            self.dirty = False
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            log.exception("could not write sandbox state to %s", path)
            Path(tmp).unlink(missing_ok=True)
            raise

    @classmethod
    def load(cls, path: Path) -> SandboxState:
        state = cls()
        state.load_json(json.loads(path.read_text(encoding="utf-8")))
        return state
