"""The matcher's formatting in numpy/pyarrow is DuckDB's, exactly: amounts (fmt/cexp), dates, fallback distances.

Each is held against the DuckDB expression it replaced, on values chosen to reach the edges (int64 extremes,
odd currencies, years outside 1-9999, sub-millisecond and pre-1970 timestamps)."""

from __future__ import annotations

import duckdb
import numpy as np
import pyarrow as pa
import pytest

from payops.money import CURRENCY_EXPONENT
from payops.reconcile import match, match_rows, match_text

ZERO = "|".join(c for c, e in sorted(CURRENCY_EXPONENT.items()) if e == 0)
THREE = "|".join(c for c, e in sorted(CURRENCY_EXPONENT.items()) if e == 3)
#: the SQL the matcher used (before match_text): the oracle
CEXP_SQL = (f"CASE WHEN contains('|{ZERO}|', '|' || c || '|') THEN 0 WHEN contains('|{THREE}|', '|' || c || '|') THEN 3"
            " ELSE 2 END")
FMT_SQL = ("CASE WHEN a IS NULL THEN '?' WHEN e = 0 THEN a::VARCHAR || ' ' || c WHEN e = 3 THEN (a * 0.001)::VARCHAR"
           " || ' ' || c ELSE (a * 0.01)::VARCHAR || ' ' || c END")


@pytest.fixture
def con() -> duckdb.DuckDBPyConnection:
    c = duckdb.connect()
    c.execute("SET TimeZone = 'UTC'")
    return c


def test_cexp_is_the_macros(con: duckdb.DuckDBPyConnection) -> None:
    currencies = [*CURRENCY_EXPONENT, "CAD", "cad", "", "JPY|KRW", "|", "XYZ", None]
    got = [match_text.cexp(c) for c in currencies]
    want = [r[0] for r in con.execute(f"SELECT {CEXP_SQL} FROM unnest(?) AS t(c)", [currencies]).fetchall()]
    assert got == want


@pytest.mark.parametrize("seed", range(5))
def test_fmt_is_duckdbs_decimal_text(con: duckdb.DuckDBPyConnection, seed: int) -> None:
    rng = np.random.default_rng(seed)
    edges = [0, 1, -1, 5, -5, 9, 10, 99, 100, -100, 999, 1000, -1001, 2**62, 2**63 - 1, -(2**63)]
    amounts = [*edges, *rng.integers(-(2**63), 2**63 - 1, 300, dtype=np.int64).tolist(),
               *rng.integers(-10_000, 10_000, 300).tolist()]
    currencies = ["JPY", "KWD", "CAD", None, "BHD", "USD"]
    table = pa.table({
        "a": pa.array([*amounts, None, None], pa.int64()),
        "c": pa.array([currencies[i % len(currencies)] for i in range(len(amounts) + 2)], pa.large_string()),
    })
    exp = np.array([match_text.cexp(c) for c in table["c"].to_pylist()])
    got = match_text.fmt(table["a"].combine_chunks(), table["c"].combine_chunks(), exp).to_pylist()
    con.register("amounts", table)
    want = [r[0] for r in con.execute(f"SELECT {FMT_SQL} FROM (SELECT *, {CEXP_SQL} AS e FROM amounts)").fetchall()]
    assert got == want


def test_days_are_duckdbs_strftime(con: duckdb.DuckDBPyConnection) -> None:
    rng = np.random.default_rng(3)
    lo, hi = match_text._DAY_RANGE
    us = np.concatenate([
        [lo, lo - 1, hi, hi + 1, 0, -1, 1, 86_400_000_000 - 1, -86_400_000_000],
        rng.integers(lo, hi, 300), rng.integers(-(2**62), 2**62, 50),  # years far outside 1-9999 as well
    ]).astype(np.int64)
    ts = pa.array([*us.tolist(), None], pa.timestamp("us", "UTC"))
    got = match_text._day(ts, lambda t: match._day(con, t)).to_pylist()
    con.register("t", pa.table({"ts": ts}))
    want = [r[0] for r in con.execute("SELECT strftime(ts, '%Y-%m-%d') FROM t").fetchall()]
    assert got == want


def test_fallback_distances_are_duckdbs_epoch_doubles(con: duckdb.DuckDBPyConnection) -> None:
    rng = np.random.default_rng(5)
    us = np.concatenate([rng.integers(-(2**60), 2**60, 5000), rng.integers(1_700_000_000_000_000, 1_800_000_000_000_000,
                                                                          5000), [0, -1, 1, -999, -1000, -1001]])
    con.register("t", pa.table({"ts": pa.array(us.astype(np.int64), pa.timestamp("us", "UTC"))}))
    want = con.execute("SELECT epoch(ts) AS e FROM t").fetchnumpy()["e"]
    assert np.array_equal(match_rows.epoch(us.astype(np.int64)), want)
