"""Generated reconciliation data: small frames by hand, a dataset with PLANTED breaks, bulk data for benchmarks.

- ``ledger_frame`` / ``transfer_frame`` / ``link_frame``: contract frames from a few dicts (defaults for
  the rest) — for tests and demos;
- ``planted_dataset``: clean pairs plus ``per_category`` planted breaks of every category across
  currencies, with ``expected`` counts and amounts per category and currency;
- ``bulk_dataset``: millions of rows built with numpy/pyarrow (no Python loop per row).
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from payops.reconcile.schema import LEDGER_COLUMNS, PAYOUT_LINK_COLUMNS, TRANSFER_COLUMNS, Category, ReconConfig

__all__ = ["Planted", "bulk_dataset", "ledger_frame", "link_frame", "planted_dataset", "transfer_frame"]


def _frame(rows: Iterable[dict[str, Any]], columns: dict[str, str], defaults: dict[str, Any]) -> pd.DataFrame:
    rows = list(rows)
    unknown = {k for r in rows for k in r} - set(columns)
    if unknown:
        raise ValueError(f"unknown column(s) {sorted(unknown)}")
    data = {c: [r.get(c, defaults.get(c)) for r in rows] for c in columns}
    out = {}
    for c, t in columns.items():
        if t.startswith("datetime64"):
            out[c] = pd.Series(pd.to_datetime(data[c], utc=True), dtype=t)
        else:
            out[c] = pd.Series(data[c], dtype=t)
    return pd.DataFrame(out)


def ledger_frame(rows: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """Ledger rows (schema.LEDGER_COLUMNS); ``status`` defaults to ``paid``."""
    return _frame(rows, LEDGER_COLUMNS, {"status": "paid"})


def transfer_frame(rows: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """Transfers (schema.TRANSFER_COLUMNS); ``source`` automated, nothing reversed by default."""
    return _frame(rows, TRANSFER_COLUMNS, {"source": "automated", "amount_reversed": 0, "reversed": False})


def link_frame(rows: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """Destination payment → payout links (schema.PAYOUT_LINK_COLUMNS); ``payout_status`` defaults to ``paid``."""
    return _frame(rows, PAYOUT_LINK_COLUMNS, {"payout_status": "paid"})


# --- planted ---------------------------------------------------------------------------------------
@dataclass
class Planted:
    ledger: pd.DataFrame
    transfers: pd.DataFrame
    links: pd.DataFrame
    config: ReconConfig
    expected: pd.DataFrame  # category, currency, count, ledger_amount, stripe_amount
    deferred: list[str]     # transfer ids of the next period, in the cut-off margin: left out of the results


PERIOD_FROM = date(2024, 3, 1)
PERIOD_TO = date(2024, 3, 31)
CYCLES = (datetime(2024, 3, 1, 6, tzinfo=UTC), datetime(2024, 3, 15, 6, tzinfo=UTC))
AFTER_END = datetime(2024, 4, 1, 10, tzinfo=UTC)
NEXT_CYCLE = datetime(2024, 4, 1, 6, tzinfo=UTC)  # the next period's first cycle: inside the cut-off margin


class _Builder:
    """Accumulates ledger rows, transfers and links, and what each planted row should be classified as."""

    def __init__(self, seed: int, currencies: Sequence[str], tolerance: int) -> None:
        self.rng = random.Random(seed)
        self.currencies = list(currencies)
        self.tolerance = tolerance
        self.ledger: list[dict[str, Any]] = []
        self.transfers: list[dict[str, Any]] = []
        self.links: list[dict[str, Any]] = []
        self.expected: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0])
        self._n = 0
        self._amounts: set[int] = set()

    def next_id(self) -> int:
        self._n += 1
        return self._n

    def amount(self) -> int:
        """A fresh amount (unique, so the fallback never pairs rows it was not meant to)."""
        while True:
            a = self.rng.randrange(5_000, 2_000_000)
            if a not in self._amounts and a + 1 not in self._amounts and a - 1 not in self._amounts:
                self._amounts.add(a)
                return a

    def expect(self, category: Category, currency: str, ledger_amount: int = 0, stripe_amount: int = 0) -> None:
        e = self.expected[(str(category), currency)]
        e[0] += 1
        e[1] += ledger_amount
        e[2] += stripe_amount

    def ledger_row(self, n: int, currency: str, amount: int, **kw: Any) -> dict[str, Any]:
        cycle = CYCLES[n % 2]
        row = {"ledger_payout_id": f"lp_{n:06d}", "run_id": f"run_{cycle.date().isoformat()}",
               "studio_id": f"studio_{n:06d}", "destination": f"acct_{n:06d}", "amount": amount,
               "currency": currency, "status": "paid", "expected_at": cycle, "ledger_transfer_id": f"tr_{n:06d}"}
        row.update(kw)
        self.ledger.append(row)
        return row

    def transfer(self, tid: str, led: dict[str, Any] | None, amount: int, currency: str, *, keyed: bool = True,
                 link: str | None = "paid", created: datetime | None = None, delay: timedelta = timedelta(minutes=5),
                 **kw: Any) -> dict[str, Any]:
        created = created or ((led["expected_at"] if led else CYCLES[0]) + delay)
        lid = led["ledger_payout_id"] if led and keyed else None
        row = {"transfer_id": tid, "created": created, "amount": amount, "currency": currency,
               "destination": led["destination"] if led else f"acct_x{tid}", "transfer_group": lid,
               "ledger_payout_id": lid, "source": "automated", "destination_payment": f"py_{tid[3:]}"}
        row.update(kw)
        self.transfers.append(row)
        if link:
            arrival = datetime.combine(created.date() + timedelta(days=2), datetime.min.time(), tzinfo=UTC)
            self.links.append({"destination_payment": row["destination_payment"], "payout_id": f"po_{tid[3:]}",
                               "account": row["destination"], "payout_status": link, "arrival_date": arrival,
                               "failure_code": "account_closed" if link == "failed" else None})
        return row

    def pair(self, cur: str, **transfer_kw: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        n = self.next_id()
        amt = self.amount()
        led = self.ledger_row(n, cur, amt)
        tr = self.transfer(f"tr_{n:06d}", led, transfer_kw.pop("amount", amt), transfer_kw.pop("currency", cur),
                           **transfer_kw)
        return led, tr


def _plant_one(b: _Builder, cat: Category, cur: str, i: int) -> None:
    other = b.currencies[(b.currencies.index(cur) + 1) % len(b.currencies)]
    if cat is Category.MATCHED_WITHIN_TOLERANCE:
        d = b.rng.choice([-1, 1]) * b.rng.randint(1, b.tolerance)
        led, _ = b.pair(cur)
        b.transfers[-1]["amount"] = led["amount"] + d
        b.expect(cat, cur, led["amount"], led["amount"] + d)
    elif cat is Category.AMOUNT_MISMATCH:
        led, _ = b.pair(cur)
        d = b.rng.choice([-1, 1]) * b.rng.randint(b.tolerance + 1, b.tolerance + 50_000)
        d = max(d, 1 - led["amount"])
        b.transfers[-1]["amount"] = led["amount"] + d
        b.expect(cat, cur, led["amount"], led["amount"] + d)
    elif cat is Category.CURRENCY_MISMATCH:
        led, tr = b.pair(cur, currency=other)
        b.expect(cat, cur, led["amount"], tr["amount"])
    elif cat is Category.DESTINATION_MISMATCH:
        led, tr = b.pair(cur, destination=f"acct_wrong{i}")
        b.expect(cat, cur, led["amount"], tr["amount"])
    elif cat is Category.REVERSED_FULL:
        led, tr = b.pair(cur, reversed=True, link=None)
        tr["amount_reversed"] = tr["amount"]
        b.expect(cat, cur, led["amount"], 0)
    elif cat is Category.REVERSED_PARTIAL:
        led, tr = b.pair(cur)
        tr["amount_reversed"] = b.rng.randint(1, tr["amount"] - 1)
        b.expect(cat, cur, led["amount"], tr["amount"] - tr["amount_reversed"])
    elif cat is Category.PAYOUT_FAILED:
        led, tr = b.pair(cur, link="failed")
        b.expect(cat, cur, led["amount"], tr["amount"])
    elif cat is Category.TIMING_IN_TRANSIT:
        variant = i % 3  # created after the period end · payout in transit · not swept by any payout yet
        kw: dict[str, Any] = [{"created": AFTER_END}, {"link": "in_transit"}, {"link": None}][variant]
        if variant == 1:
            kw["created"] = datetime(2024, 3, 30, 9, tzinfo=UTC)
        led, tr = b.pair(cur, **kw)
        b.expect(cat, cur, led["amount"], tr["amount"])
    elif cat is Category.MISSING_IN_STRIPE:
        n = b.next_id()
        led = b.ledger_row(n, cur, b.amount(), status="pending", ledger_transfer_id=None)
        b.expect(cat, cur, led["amount"], 0)
    elif cat is Category.MISSING_IN_LEDGER:
        n = b.next_id()
        keyed = {"ledger_payout_id": f"lp_ghost{n}", "transfer_group": f"lp_ghost{n}"} if i % 2 else {}
        tr = b.transfer(f"tr_{n:06d}", None, b.amount(), cur, **keyed)
        b.expect(cat, cur, 0, tr["amount"])
    elif cat is Category.DUPLICATE_PAYMENT:  # the automated transfer went through AND the manual fallback ran
        led, auto = b.pair(cur)
        manual = b.transfer(f"tr_{led['ledger_payout_id'][3:]}m", led, led["amount"], cur, source="manual",
                            created=led["expected_at"] + timedelta(hours=3))
        led.update(status="manual", ledger_transfer_id=None, manual_transfer_id=manual["transfer_id"])
        b.expect(cat, cur, led["amount"], auto["amount"])
        b.expect(cat, cur, 0, manual["amount"])
    else:  # pragma: no cover
        raise AssertionError(cat)


PLANTED_CATEGORIES = [c for c in Category if c not in (Category.MATCHED,)]


def planted_dataset(
    n_clean: int = 200, seed: int = 7, per_category: int = 3, currencies: Sequence[str] = ("CAD", "USD", "EUR")
) -> Planted:
    """Clean pairs plus ``per_category`` planted breaks of every category (currencies rotate).

    Among the clean pairs: ``per_category`` key-less transfers matched by the fallback, and one
    transfer whose first payout failed and whose second (re-sweep) was paid — both MATCHED. Plus, in the
    cut-off margin, ``per_category`` transfers of the next period's cycle (keyed to its ledger payouts, which are
    not in this ledger) and one key-less transfer no ledger payout matches: ``deferred``, in no category.
    """
    config = ReconConfig(period_from=PERIOD_FROM, period_to=PERIOD_TO, tolerance=100, cutoff_margin_days=3,
                         fallback_window_days=3)
    b = _Builder(seed, currencies, config.tolerance)
    k = 0
    for cat in PLANTED_CATEGORIES:
        for i in range(per_category):
            _plant_one(b, cat, b.currencies[k % len(b.currencies)], i)
            k += 1
    for i in range(n_clean):
        cur = b.currencies[i % len(b.currencies)]
        if i < per_category:  # key-less, found by destination + amount + date
            led, tr = b.pair(cur, keyed=False, delay=timedelta(hours=30))
            led["ledger_transfer_id"] = None
        elif i == per_category:  # first payout failed, funds re-swept and paid
            led, tr = b.pair(cur)
            b.links.append({"destination_payment": tr["destination_payment"],
                            "payout_id": f"po_{tr['transfer_id'][3:]}f", "account": tr["destination"],
                            "payout_status": "failed", "arrival_date": led["expected_at"] + timedelta(days=1),
                            "failure_code": "could_not_process"})
        else:
            led, tr = b.pair(cur)
        b.expect(Category.MATCHED, cur, led["amount"], tr["amount"])
    deferred = []
    for i in range(per_category):
        n = b.next_id()
        nxt = {"ledger_payout_id": f"lp_next{n:06d}", "expected_at": NEXT_CYCLE, "destination": f"acct_{n:06d}"}
        deferred.append(b.transfer(f"tr_{n:06d}", nxt, b.amount(), b.currencies[i % len(b.currencies)])["transfer_id"])
    n = b.next_id()
    deferred.append(b.transfer(f"tr_{n:06d}", None, b.amount(), b.currencies[0], keyed=False,
                               created=NEXT_CYCLE + timedelta(days=1))["transfer_id"])
    order = random.Random(seed + 1)
    order.shuffle(b.transfers)
    expected = pd.DataFrame(
        [{"category": c, "currency": cur, "count": v[0], "ledger_amount": v[1], "stripe_amount": v[2]}
         for (c, cur), v in b.expected.items()]
    ).sort_values(["category", "currency"]).reset_index(drop=True)
    return Planted(ledger_frame(b.ledger), transfer_frame(b.transfers), link_frame(b.links), config, expected,
                   deferred)


# --- bulk ------------------------------------------------------------------------------------------
def _ids(prefix: str, nums: np.ndarray) -> pa.Array:
    return pc.binary_join_element_wise(prefix, pa.array(nums).cast(pa.string()), "")


def _pandas(cols: dict[str, pa.Array], columns: dict[str, str]) -> pd.DataFrame:
    table = pa.table({c: cols[c] for c in columns})
    return table.to_pandas(types_mapper={pa.string(): pd.StringDtype()}.get)


def bulk_dataset(
    n_rows: int, seed: int = 1, break_rate: float = 0.01
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, ReconConfig]:
    """``n_rows`` ledger rows, transfers and payout links; about ``break_rate`` of them broken.

    Breaks (spread evenly): amount off by 10.00, key pointing at no ledger row (a missing pair on each
    side), partially reversed, failed payout, payout in transit, key-less (found by fallback), and
    a second transfer keyed to a neighbouring ledger row (duplicate + missing in Stripe).
    """
    rng = np.random.default_rng(seed)
    n = int(n_rows)
    idx = np.arange(n, dtype=np.int64)
    cur_codes = pa.array(["USD", "CAD", "EUR"])
    cur = cur_codes.take(pa.array(rng.integers(0, 3, n)))
    amount = rng.integers(1_000, 5_000_000, n, dtype=np.int64)
    dest = _ids("acct_", rng.integers(0, max(n // 20, 1), n))
    base = np.datetime64("2024-03-01T06:00:00", "us")
    expected_at = base + (idx % 2) * np.timedelta64(14, "D")
    lid = _ids("lp_", idx)
    ledger = _pandas({
        "ledger_payout_id": lid, "run_id": pa.array(np.where(idx % 2 == 0, "run_2024-03-01", "run_2024-03-15")),
        "studio_id": _ids("studio_", idx), "destination": dest, "amount": pa.array(amount), "currency": cur,
        "status": pa.array(np.full(n, "paid")), "expected_at": pa.array(expected_at).cast(pa.timestamp("us", "UTC")),
        "ledger_transfer_id": _ids("tr_", idx), "manual_transfer_id": pa.nulls(n, pa.string()),
    }, LEDGER_COLUMNS)

    kind = np.zeros(n, dtype=np.int8)
    broken = rng.random(n) < break_rate
    kind[broken] = rng.integers(1, 8, int(broken.sum()))
    t_amount = np.where(kind == 1, amount + 1_000, amount)
    key = np.where(kind == 2, -1, idx)          # ghost key
    key = np.where(kind == 7, np.maximum(idx - 1, 0), key)  # duplicate of the neighbour
    key_str = _ids("lp_", key)
    key_str = pc.if_else(pa.array(kind == 6), pa.nulls(n, pa.string()), key_str)  # key-less
    reversed_amt = np.where(kind == 3, t_amount // 2, 0)
    created = expected_at + np.timedelta64(5, "m") + rng.integers(0, 3600, n) * np.timedelta64(1, "s")
    tid = _ids("tr_", idx)
    dp = _ids("py_", idx)
    transfers = _pandas({
        "transfer_id": tid, "created": pa.array(created).cast(pa.timestamp("us", "UTC")), "amount": pa.array(t_amount),
        "currency": cur, "destination": dest, "transfer_group": key_str, "ledger_payout_id": key_str,
        "source": pa.array(np.where(kind == 6, "manual", "automated")), "amount_reversed": pa.array(reversed_amt),
        "reversed": pa.array(np.zeros(n, dtype=bool)), "destination_payment": dp,
    }, TRANSFER_COLUMNS)
    status = np.where(kind == 4, "failed", np.where(kind == 5, "in_transit", "paid"))
    arrival = (created.astype("datetime64[D]") + np.timedelta64(2, "D")).astype("datetime64[us]")
    links = _pandas({
        "destination_payment": dp, "payout_id": _ids("po_", idx), "account": dest, "payout_status": pa.array(status),
        "arrival_date": pa.array(arrival).cast(pa.timestamp("us", "UTC")),
        "failure_code": pa.array(np.where(kind == 4, "account_closed", None)),
    }, PAYOUT_LINK_COLUMNS)
    config = ReconConfig(period_from=PERIOD_FROM, period_to=PERIOD_TO, tolerance=0)
    return ledger, transfers, links, config
