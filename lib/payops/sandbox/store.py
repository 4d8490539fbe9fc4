"""Ordered indexes and Stripe list pagination in O(log n + page).

Every listable object gets a sort key ``(created, seq)`` — ``seq`` is a global insertion counter, a
stable tiebreak for objects created in the same second. An :class:`OrderedIndex` keeps keys sorted
ascending; Stripe lists newest first, so pages are read from the right. ``starting_after`` /
``ending_before`` cursors are located by binary search on the cursor object's key, so a cursor
works in any index (and over 20,000+ objects) without scanning.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

SortKey = tuple[int, int]


@dataclass
class OrderedIndex:
    keys: list[SortKey] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)

    def add(self, key: SortKey, obj_id: str) -> None:
        if not self.keys or key > self.keys[-1]:
            self.keys.append(key)
            self.ids.append(obj_id)
            return
        pos = bisect_left(self.keys, key)
        self.keys.insert(pos, key)
        self.ids.insert(pos, obj_id)

    def remove(self, key: SortKey, obj_id: str) -> None:
        pos = bisect_left(self.keys, key)
        if pos < len(self.keys) and self.ids[pos] == obj_id:
            del self.keys[pos]
            del self.ids[pos]

    def __len__(self) -> int:
        return len(self.ids)


@dataclass
class Page:
    ids: list[str]
    has_more: bool


def _bound_low(created_low: int | None) -> SortKey:
    return (created_low, -1) if created_low is not None else (-(2**62), -1)


def paginate(
    index: OrderedIndex | None,
    *,
    limit: int,
    created: tuple[int | None, int | None] | None = None,
    starting_after: SortKey | None = None,
    ending_before: SortKey | None = None,
    predicate: Callable[[str], bool] | None = None,
) -> Page:
    """One page, newest first. Cursors are sort keys of the cursor objects."""
    if index is None or not index.keys:
        return Page([], False)
    keys = index.keys
    lo, hi = 0, len(keys)
    if created is not None:
        low, high = created
        if low is not None:
            lo = bisect_left(keys, _bound_low(low))
        if high is not None:
            hi = bisect_left(keys, (high + 1, -1))
    if ending_before is not None:
        # the page just newer than the cursor, still listed newest first
        lo = max(lo, bisect_left(keys, ending_before) + (1 if _at(keys, ending_before) else 0))
        picked: list[str] = []
        i = lo
        while i < hi and len(picked) < limit:
            oid = index.ids[i]
            if predicate is None or predicate(oid):
                picked.append(oid)
            i += 1
        has_more = any(True for _ in _matching(index, i, hi, predicate, ascending=True))
        picked.reverse()
        return Page(picked, has_more)
    if starting_after is not None:
        hi = min(hi, bisect_left(keys, starting_after))
    picked = []
    i = hi - 1
    while i >= lo and len(picked) < limit:
        oid = index.ids[i]
        if predicate is None or predicate(oid):
            picked.append(oid)
        i -= 1
    has_more = any(True for _ in _matching(index, lo, i + 1, predicate, ascending=False))
    return Page(picked, has_more)


def _at(keys: list[SortKey], key: SortKey) -> bool:
    pos = bisect_left(keys, key)
    return pos < len(keys) and keys[pos] == key


def _matching(index: OrderedIndex, lo: int, hi: int, predicate: Callable[[str], bool] | None,
              *, ascending: bool) -> Iterator[str]:
    """Lazily yields matching ids in [lo, hi) — used only to answer ``has_more``."""
    rng = range(lo, hi) if ascending else range(hi - 1, lo - 1, -1)
    for i in rng:
        oid = index.ids[i]
        if predicate is None or predicate(oid):
            yield oid


def list_body(url: str, data: list[dict[str, Any]], has_more: bool) -> dict[str, Any]:
    return {"object": "list", "data": data, "has_more": has_more, "url": url}


__all__ = ["OrderedIndex", "Page", "SortKey", "list_body", "paginate"]
