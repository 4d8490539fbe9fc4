"""The parallel Stripe pager: a time window split into slices, paged in threads under one rate limit.

Shared by the reconciliation's pull (:mod:`payops.reconcile.load_stripe`) and the checkout incident's
triage (:mod:`payops.incident.stripe_pull`): a ``created`` window is split into half-open slices
``created[gte]=lo & created[lt]=hi``; each slice is paged with ``starting_after`` in a thread pool, every
thread with its own ``StripeClient`` (from ``client_factory``) — in :func:`pull_window`, a thread out of planned
slices splits the running one with the most left (:class:`_Part`); a shared client-side pacer keeps under
``max_rps`` and every call goes through :func:`payops.stripe_api.with_backoff` (429 / 5xx / connection
errors are retried, honouring ``Retry-After``). Objects are de-duplicated by id and kept only inside the
window, so slice edges can neither lose nor double-count one.
"""

from __future__ import annotations

import gc
import itertools
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import stripe

from payops.stripe_api import with_backoff

ClientFactory = Callable[[], stripe.StripeClient]
ListCall = Callable[[stripe.StripeClient, dict[str, Any]], Any]
PAGE_LIMIT = 100
DEFAULT_THREADS = 8
DEFAULT_MAX_RPS = 25.0  # Stripe's test-mode limit; live mode allows 100


@dataclass(frozen=True)
class Slice:
    """A half-open window of ``created`` (unix seconds): ``lo <= created < hi``."""

    lo: int
    hi: int

    @property
    def name(self) -> str:
        fmt = "%Y%m%dT%H%M%S"
        return f"{datetime.fromtimestamp(self.lo, UTC):{fmt}}_{datetime.fromtimestamp(self.hi, UTC):{fmt}}"


def plan_slices(lo: int, hi: int, n: int) -> list[Slice]:
    """``n`` contiguous half-open slices covering ``[lo, hi)`` exactly (no gap, no overlap)."""
    if hi <= lo:
        return []
    n = max(1, min(n, hi - lo))
    edges = [lo + (hi - lo) * i // n for i in range(n + 1)]
    return [Slice(a, b) for a, b in itertools.pairwise(edges) if b > a]


_gc_lock = threading.Lock()
_gc_holders = 0
_gc_restore = False


@contextmanager
def gc_paused() -> Iterator[None]:
    """The cyclic garbage collector held off for the duration, what was allocated meanwhile frozen after it (nested
    and concurrent uses allowed: the last one out freezes and turns the collector back on, if it was on).

    A pull keeps every page it reads — 100,000 Checkout Sessions are ~1.7 million containers (the SDK parses into
    ``OrderedDict``) — and CPython's full collections, which come each time the heap grows by a quarter, walk all of
    them with the GIL held: measured 0.5–1.3 s stalls, every thread and the pacer's budget idle, four times in
    one such pull (86–90% of the rate limit; 96% without them). Turning the collector back on is not enough: its
    next young collection then walks everything allocated meanwhile (measured 2 s). ``gc.freeze()`` moves what is
    alive to the permanent generation instead, which collections skip; those objects are still freed when no
    longer referenced. Parsed JSON holds no reference cycles (and the requests made none: the collection after a
    pull found nothing), so what freezing can keep from the collector is only cyclic garbage of other threads,
    made meanwhile — the price of the pull's objects never being walked again."""
    global _gc_holders, _gc_restore
    with _gc_lock:
        if _gc_holders == 0:
            _gc_restore = gc.isenabled()
            gc.disable()
        _gc_holders += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_holders -= 1
            if _gc_holders == 0 and _gc_restore:
                gc.freeze()
                gc.enable()


class Pacer:
    """A thread-safe token bucket: at most ``rate`` calls per second (burst ``burst``)."""

    def __init__(self, rate: float | None, burst: float = 1.0) -> None:
        self.rate = rate if rate and rate > 0 else None
        self.burst = max(1.0, burst)
        self._tokens = self.burst
        self._last = time.monotonic()
        self._lock = threading.Lock()

    def wait(self) -> None:
        if self.rate is None:
            return
        while True:
            with self._lock:
                now = time.monotonic()
                self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
                self._last = now
                if self._tokens >= 1.0:
                    self._tokens -= 1.0
                    return
                sleep = (1.0 - self._tokens) / self.rate
            time.sleep(sleep)


@dataclass
class PullStats:
    """What a pull did: requests sent (incl. retries), retries, slices from cache vs pulled, timing."""

    requests: int = 0
    retries: int = 0
    slices_cached: int = 0
    slices_pulled: int = 0
    slices_split: int = 0  # parts split off a running slice for an idle thread (:func:`pull_window`)
    transfers: int = 0
    payouts: int = 0
    links: int = 0
    recorded_found: int = 0  # transfers the ledger records, outside the window, retrieved by id
    recorded_not_found: int = 0  # ... that Stripe does not have (404)
    seconds: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, **counts: int) -> None:
        with self._lock:
            for k, v in counts.items():
                setattr(self, k, getattr(self, k) + v)

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_")}


def describe_pull(stats: dict[str, Any]) -> str:
    """A :class:`PullStats` (``as_dict``) in words, for the report."""
    recorded = stats.get("recorded_found", 0) + stats.get("recorded_not_found", 0)
    parts = [f"{stats.get('requests', 0):,} request(s), {stats.get('retries', 0):,} retried, "
             f"{stats.get('seconds', 0.0):.1f} s",
             f"{stats.get('slices_pulled', 0)} time slice(s) pulled, {stats.get('slices_cached', 0)} from cache",
             f"{stats.get('transfers', 0):,} transfer(s) in the window",
             f"{stats.get('payouts', 0):,} payout(s), {stats.get('links', 0):,} link(s)"]
    if recorded:
        parts.insert(3, f"{stats.get('recorded_found', 0)} of {recorded} recorded by the ledger outside it found "
                        "by id")
    return " · ".join(parts)


class _Puller:
    """Shared machinery of one pull: per-thread clients, pacing, backoff, stats, progress."""

    def __init__(self, client_factory: ClientFactory, max_rps: float | None, stats: PullStats,
                 bar: Any | None) -> None:
        self.factory = client_factory
        self.pacer = Pacer(max_rps, burst=min(5.0, max_rps or 1.0))
        self.stats = stats
        self.bar = bar
        self._local = threading.local()
        self._timing = [0, 0.0]  # requests answered, their seconds (the pacer's wait not included)
        self._timing_lock = threading.Lock()

    def mean_request_seconds(self) -> float:
        """A request's mean time so far, from sending to its parsed answer (0 before the first)."""
        with self._timing_lock:
            n, total = self._timing
        return total / n if n else 0.0

    def client(self) -> stripe.StripeClient:
        c = getattr(self._local, "client", None)
        if c is None:
            c = self._local.client = self.factory()
        return c

    def call(self, fn: Callable[[stripe.StripeClient], Any]) -> dict[str, Any]:
        def once() -> Any:
            self.pacer.wait()
            self.stats.add(requests=1)
            t0 = time.monotonic()
            try:
                return fn(self.client())
            finally:
                with self._timing_lock:
                    self._timing[0] += 1
                    self._timing[1] += time.monotonic() - t0

        page = with_backoff(once, attempts=8, on_retry=lambda *_: self.stats.add(retries=1))
        if hasattr(page, "to_dict"):
            return page.to_dict()  # type: ignore[no-any-return]
        return dict(page.data)  # a raw response (``client.raw_request``): the parsed JSON, no StripeObjects

    def pages(self, fn: Callable[[stripe.StripeClient, dict[str, Any]], Any],
              params: dict[str, Any]) -> list[dict[str, Any]]:
        """Every page of one list, following ``starting_after``."""
        out: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            p = {**params, "limit": PAGE_LIMIT, **({"starting_after": cursor} if cursor else {})}
            page = self.call(lambda c, p=p: fn(c, p))
            out.append(page)
            if self.bar is not None:
                self.bar.update(len(page["data"]))
            if not page.get("has_more") or not page["data"]:
                return out
            cursor = page["data"][-1]["id"]


Puller = _Puller


MIN_SPLIT = 2 * PAGE_LIMIT  # a part is split only if about this many objects are estimated left in it


@dataclass(eq=False)
class _Part:
    """A slice being paged, newest first: what is left to read is the objects created in ``[lo, hi)`` after
    ``cursor`` — all created at ``last`` or before (``last``: the created of the cursor object). ``lo`` rises when
    an idle thread takes the older end of the part (:meth:`split`)."""

    lo: int
    hi: int
    cursor: str | None = None
    last: int | None = None
    read: int = 0
    pages: list[dict[str, Any]] = field(default_factory=list)

    @property
    def splittable(self) -> bool:
        """Past its first page (nothing known before it), with more than one second left."""
        return self.last is not None and self.last > self.lo

    def left(self) -> float:
        """Objects estimated still to read: the density of what was read, over the seconds not read yet."""
        if self.last is None:
            return 0.0
        return self.read / max(1, self.hi - self.last) * (self.last - self.lo + 1)

    def split(self) -> _Part | None:
        """Hand the older half of what is left to a new part (``[lo, mid)``); this part keeps ``[mid, hi)`` and its
        cursor. ``mid <= last``: every object older than ``mid`` comes after the cursor, so the new part has read
        none of them, and this part keeps the objects created at ``last`` it has not read — no gap, no overlap
        (a page of this part already in flight with the old ``lo`` may also hold some of the new part's objects:
        read twice, kept once by :func:`in_window`, and this part stops there)."""
        if self.last is None or self.last <= self.lo:
            return None
        mid = self.lo + (self.last + 1 - self.lo) // 2
        older = _Part(self.lo, mid)
        self.lo = mid
        return older


class _Window:
    """The threads' shared plan of one :func:`pull_window`: parts still to page (the planned slices first), the
    parts being paged, and — once no planned slice is left — the splitting of the part with the most left when a
    thread is idle, so the last slices' pages do not come one after the other from a few threads while the rest
    wait (and a dense minute in a sparse window is paged by every thread, not by the one that drew it)."""

    def __init__(self, puller: _Puller, list_call: ListCall, params: dict[str, Any], plan: list[Slice],
                 max_rps: float | None) -> None:
        self.puller, self.list_call, self.params, self.max_rps = puller, list_call, params, max_rps
        self.todo = [_Part(sl.lo, sl.hi) for sl in plan]
        self.todo.reverse()  # popped from the end: the newest slice first
        self.active: list[_Part] = []
        self.parts: list[_Part] = []
        self.failed = False
        self.cond = threading.Condition()

    def _enough_in_flight(self) -> bool:
        """Under a rate limit, parts enough to keep the pacer busy (its rate × a request's time, and two spare):
        an idle thread then has nothing to gain by splitting one (each split costs a partial page)."""
        if not self.max_rps:
            return False
        return len(self.active) >= self.max_rps * self.puller.mean_request_seconds() + 2

    def _take(self) -> _Part | None:
        with self.cond:
            while not self.failed:
                if self.todo:
                    part = self.todo.pop()
                elif not self.active:
                    return None
                else:
                    victim = max((p for p in self.active if p.splittable), key=_Part.left, default=None)
                    part = (victim.split() if victim is not None and victim.left() >= MIN_SPLIT
                            and not self._enough_in_flight() else None)
                    if part is None:
                        self.cond.wait()
                        continue
                    self.puller.stats.add(slices_split=1)
                self.active.append(part)
                return part
            return None

    def _page_through(self, part: _Part) -> None:
        while True:
            with self.cond:
                if self.failed:
                    return
                p = {**self.params, "created": {"gte": part.lo, "lt": part.hi}, "limit": PAGE_LIMIT,
                     **({"starting_after": part.cursor} if part.cursor else {})}
            page = self.puller.call(lambda c, p=p: self.list_call(c, p))
            data = page["data"]
            if self.puller.bar is not None:
                self.puller.bar.update(len(data))
            with self.cond:
                part.pages.append(page)
                if data:
                    part.cursor, part.last = data[-1]["id"], int(data[-1]["created"])
                    part.read += len(data)
                done = not page.get("has_more") or not data or part.last is None or part.last < part.lo
                if done:
                    self.active.remove(part)
                    self.parts.append(part)
                    self.puller.stats.add(slices_pulled=1)
                self.cond.notify_all()
            if done:
                return

    def work(self) -> None:
        """One thread's loop: take a part (planned, or split off a running one), page it through, again."""
        try:
            while (part := self._take()) is not None:
                self._page_through(part)
        except BaseException:
            with self.cond:
                self.failed = True
                self.cond.notify_all()
            raise


def pull_window(client_factory: ClientFactory, list_call: ListCall, params: dict[str, Any], lo: int, hi: int, *,
                slices: int = 16, threads: int = DEFAULT_THREADS, max_rps: float | None = DEFAULT_MAX_RPS,
                bar: Any | None = None, stats: PullStats | None = None) -> list[dict[str, Any]]:
    """Every object of one list (``list_call(client, params)``, e.g. Checkout Sessions with ``status``)
    with ``lo <= created < hi``, once each, newest first — ``slices`` planned slices paged in parallel, a
    running one split when a thread would otherwise be idle (:class:`_Window`). ``bar`` (a tqdm bar, optional)
    is advanced by each page's size. The garbage collector is held off meanwhile (:func:`gc_paused`)."""
    stats = stats or PullStats()
    plan = plan_slices(lo, hi, slices)
    puller = _Puller(client_factory, max_rps, stats, bar)
    win = _Window(puller, list_call, params, plan, max_rps)
    t0 = time.monotonic()
    with gc_paused():
        try:
            with ThreadPoolExecutor(max_workers=max(1, threads), thread_name_prefix="pager") as pool:
                for fut in [pool.submit(win.work) for _ in range(max(1, threads) if plan else 0)]:
                    fut.result()
        finally:
            if bar is not None:
                bar.close()
        objs = in_window([part.pages for part in win.parts], lo, hi)
    stats.seconds += time.monotonic() - t0
    return objs


def in_window(results: list[list[dict[str, Any]]], lo: int, hi: int) -> list[dict[str, Any]]:
    """The objects of every slice's pages with ``lo <= created < hi``, once each (by id), newest first."""
    seen: dict[str, dict[str, Any]] = {}
    for pages in results:
        for page in pages:
            for obj in page["data"]:
                if lo <= int(obj["created"]) < hi:
                    seen.setdefault(obj["id"], obj)
    return sorted(seen.values(), key=lambda o: (-int(o["created"]), o["id"]))
