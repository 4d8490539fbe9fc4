"""The shared pager's plan: slices split while they run (no gap, no overlap, whatever the density), and the garbage
collector held off during a pull. A list in memory with Stripe's semantics stands in for the API (newest first,
``created`` range, ``starting_after`` cursor, ``has_more``); the sandbox end of it is tests/incident/test_stripe_pull.
"""

from __future__ import annotations

import gc
import random
import threading
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest

from payops.stripe_pager import MIN_SPLIT, PullStats, _Part, gc_paused, pull_window

LO = 1_700_000_000


class FakeList:
    """Objects ``{"id", "created"}`` listed like Stripe: newest first (ties: the later made first)."""

    def __init__(self, created: list[int], delay: float = 0.0,
                 hook: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.objs = sorted(({"id": f"obj_{i:06d}", "created": c, "seq": i} for i, c in enumerate(created)),
                           key=lambda o: (-o["created"], -o["seq"]))
        self.pos = {o["id"]: i for i, o in enumerate(self.objs)}
        self.delay, self.hook = delay, hook
        self.calls: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    def __call__(self, client: object, params: dict[str, Any]) -> SimpleNamespace:
        with self.lock:
            self.calls.append(params)
        if self.hook is not None:
            self.hook(params)
        if self.delay:
            time.sleep(self.delay * random.random())
        gte, lt = params["created"]["gte"], params["created"]["lt"]
        start = self.pos[params["starting_after"]] + 1 if "starting_after" in params else 0
        match = [o for o in self.objs[start:] if gte <= o["created"] < lt]
        page = [{"id": o["id"], "created": o["created"]} for o in match[:params["limit"]]]
        return SimpleNamespace(data={"object": "list", "data": page, "has_more": len(match) > len(page)})

    def ids(self, lo: int, hi: int) -> list[str]:
        return [o["id"] for o in self.objs if lo <= o["created"] < hi]


def _pull(fake: FakeList, lo: int, hi: int, *, slices: int, threads: int,
          stats: PullStats | None = None) -> list[dict[str, Any]]:
    return pull_window(lambda: None, fake, {}, lo, hi, slices=slices, threads=threads, max_rps=None,  # type: ignore[arg-type,return-value]
                       stats=stats)


def _check(got: list[dict[str, Any]], fake: FakeList, lo: int, hi: int) -> None:
    ids = [o["id"] for o in got]
    assert len(ids) == len(set(ids)), "an object twice"
    assert set(ids) == set(fake.ids(lo, hi)), "an object missing (or from outside the window)"
    assert [o["created"] for o in got] == sorted((o["created"] for o in got), reverse=True), "not newest first"


WINDOWS: dict[str, Callable[[random.Random], list[int]]] = {
    "uniform": lambda r: [LO + r.randrange(1_800) for _ in range(3_000)],
    # 90% of it in one minute of a day: the slice that draws the minute is split among the idle threads
    "spike": lambda r: [LO + 40_000 + r.randrange(60) for _ in range(2_700)] + [LO + r.randrange(86_400)
                                                                                  for _ in range(300)],
    "one_second": lambda r: [LO + 777] * 1_250,  # a part cannot be split below a second: paged through alone
    "one_second_and_a_spread": lambda r: [LO + 777] * 1_250 + [LO + r.randrange(3_600) for _ in range(1_500)],
    "sparse": lambda r: [LO + r.randrange(7 * 86_400) for _ in range(40)],
    "edges": lambda r: [LO + 3_600 * k + d for k in range(24) for d in (-1, 0, 0, 1) for _ in range(30)],
    "empty": lambda r: [],
}


@pytest.mark.parametrize("shape", list(WINDOWS))
@pytest.mark.parametrize(("slices", "threads"), [(1, 1), (1, 4), (4, 16), (16, 16), (64, 8)])
def test_every_object_once_whatever_the_density(shape: str, slices: int, threads: int) -> None:
    created = WINDOWS[shape](random.Random(shape))
    fake = FakeList(created, delay=0.002)
    lo, hi = LO - 3_600, LO + 8 * 86_400
    got = _pull(fake, lo, hi, slices=slices, threads=threads)
    _check(got, fake, lo, hi)
    narrow = (LO + 40_010, LO + 40_050)  # a window edge through the dense minute (and half-open: lt, not lte)
    _check(_pull(fake, *narrow, slices=slices, threads=threads), fake, *narrow)


def test_a_dense_minute_is_split_among_idle_threads() -> None:
    created = WINDOWS["spike"](random.Random(1))
    fake = FakeList(created, delay=0.004)
    lo, hi = LO, LO + 86_400
    stats = PullStats()
    _check(_pull(fake, lo, hi, slices=8, threads=8, stats=stats), fake, lo, hi)
    assert stats.slices_split >= 3, stats
    assert stats.slices_pulled == 8 + stats.slices_split
    pages = len(fake.calls)
    assert pages <= 3_000 / 100 + stats.slices_pulled, "a split should cost at most a partial page"


def test_a_page_in_flight_when_its_part_is_split() -> None:
    """The owner's next page was asked for with the old ``lo`` and the split happens while it is in flight: it comes
    back holding objects of the part split off it. They are kept once, and the owner stops there instead of paging
    on through the other part's range."""
    created = [LO + 900 + i for i in range(100)] + [LO + i for i in range(150)]  # 100 on top, a gap, 150 below
    stats = PullStats()
    asked = threading.Event()

    def hook(params: dict[str, Any]) -> None:
        if params["created"]["lt"] == LO + 2_000:  # the empty slice: its thread frees up once the owner asked
            assert asked.wait(5)
        elif "starting_after" in params and params["created"] == {"gte": LO, "lt": LO + 1_000}:
            asked.set()  # the owner's second page, asked for with the old lo: answered once the split is made
            deadline = time.monotonic() + 5
            while not stats.slices_split and time.monotonic() < deadline:
                time.sleep(0.001)

    fake = FakeList(created, hook=hook)
    # two slices: [LO+1000, LO+2000) is empty; [LO, LO+1000) is the owner's
    got = _pull(fake, LO, LO + 2_000, slices=2, threads=2, stats=stats)
    _check(got, fake, LO, LO + 2_000)
    assert asked.is_set() and stats.slices_split >= 1
    owner = [c for c in fake.calls if c["created"]["lt"] == LO + 1_000]
    assert len(owner) == 2, "the owner went on paging after its page crossed into the split-off part"
    assert sum(c["created"] == {"gte": LO, "lt": LO + 450} for c in fake.calls) == 2  # 150 objects: two pages
    # the owner's [450, 1000) may be split again while its page is out (read so far: one per second) — those
    # parts are empty: one request each
    assert len(fake.calls) == 1 + 2 + 2 + (stats.slices_split - 1)


def test_split_hands_over_the_older_half_only_past_the_cursor() -> None:
    part = _Part(LO, LO + 1_000)
    assert part.split() is None and part.left() == 0, "before its first page a part is not split"
    part.cursor, part.last, part.read = "obj_x", LO + 800, 100  # read [800, 1000): 0.5 per second
    assert part.left() == pytest.approx(0.5 * 801)
    older = part.split()
    assert older is not None and (older.lo, older.hi) == (LO, LO + 400)
    assert (part.lo, part.hi, part.cursor) == (LO + 400, LO + 1_000, "obj_x")
    part.last = LO + 400  # down to its lo: the second it is at stays whole, with its cursor
    assert part.split() is None
    assert MIN_SPLIT >= 200


def test_gc_is_held_off_during_a_pull_and_restored_after() -> None:
    was = gc.isenabled()
    gc.enable()
    try:
        frozen = gc.get_freeze_count()
        with gc_paused():
            assert not gc.isenabled()
            keep = [{"n": [i]} for i in range(1_000)]
            with gc_paused():
                assert not gc.isenabled()
            assert not gc.isenabled(), "an inner pull turned it back on under an outer one"
        assert gc.isenabled()
        assert gc.get_freeze_count() >= frozen + len(keep), "what the pull made is walked again by collections"
        gc.disable()
        with gc_paused():
            pass
        assert not gc.isenabled(), "a caller's disabled collector turned on"
    finally:
        gc.unfreeze()
        (gc.enable if was else gc.disable)()


def test_a_failing_page_stops_the_other_threads_and_raises() -> None:
    created = [LO + i for i in range(5_000)]
    boom = {"n": 0}

    def hook(params: dict[str, Any]) -> None:
        boom["n"] += 1
        if boom["n"] == 7:
            raise RuntimeError("page 7")

    fake = FakeList(created, delay=0.002, hook=hook)
    with pytest.raises(RuntimeError, match="page 7"):
        _pull(fake, LO, LO + 5_000, slices=4, threads=4)
    assert len(fake.calls) < 30, "the other threads paged on after the failure"
    assert gc.isenabled()
