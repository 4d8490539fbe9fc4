"""The one ledger adapter: what the ledger says each studio was owed in a period.

``load_ledger(source, config, settings)`` returns exactly :data:`schema.LEDGER_COLUMNS` from

- ``"db"`` — the configured database (``PAYOPS_DATABASE_URL``): ``ledger_payouts`` ⟕ ``payout_runs``
  ⟕ ``studios`` ⟕ ``manual_payouts``, one row per ledger payout whose cycle falls in the period
  (``expected_at`` = the cycle date at 06:00 in ``config.timezone``; an ad-hoc row without a payout
  run uses its ``created_at``);
- a ``.csv`` or ``.parquet`` export of the company's ledger with this column contract (extra
  columns are ignored; rows outside the period are dropped the same way):

  ====================  ==========  ==========================================================
  column                type        meaning
  ====================  ==========  ==========================================================
  ledger_payout_id      text        required; = Stripe ``transfer_group`` / ``metadata.ledger_payout_id``
  run_id                text        payout cycle id (empty for ad-hoc rows)
  studio_id             text        required
  destination           text        the studio's connected account on record (``acct_…``)
  amount                integer     required; net owed in MINOR units (cents) — ``875.50`` is refused
  currency              text        required; ISO code (any case)
  status                text        required; scheduled · pending · transferred · paid · failed · manual
  expected_at           timestamp   required; ISO 8601 (``2026-10-15T06:00:00Z``); naive = UTC
  ledger_transfer_id    text        the transfer the ledger recorded (``tr_…``), empty when unpaid
  manual_transfer_id    text        the manual fallback's transfer (``tr_…``), empty when none
  ====================  ==========  ==========================================================

  A missing column, a non-integer amount or an unparseable timestamp raises ``ParamsInvalid``
  naming the column (field ``ledger.<column>``).

``load_ledger_ids(source, ids, config, settings)`` returns, from the same source, the rows with those
``ledger_payout_id`` whatever their period: the ledger payouts of other periods that the period's Stripe
transfers name (``periods.other_period_keys``) — a cycle paid after its cut-off is paid in the next period.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd
from sqlalchemy import and_, or_, select

from payops.config import Settings, get_settings
from payops.errors import FieldProblem, ParamsInvalid
from payops.reconcile.schema import LEDGER_COLUMNS, ReconConfig, currency_problem

CYCLE_HOUR = time(6, 0)
REQUIRED = ("ledger_payout_id", "studio_id", "amount", "currency", "status", "expected_at")
STRING_COLUMNS = [c for c, t in LEDGER_COLUMNS.items() if t == "string"]


def load_ledger(source: str, config: ReconConfig, settings: Settings | None = None) -> pd.DataFrame:
    """The ledger rows expected in ``[config.period_from, config.period_to]`` (see module docstring)."""
    if source == "db":
        frame = _from_db(config, settings or get_settings())
    else:
        frame = _from_file(Path(source))
    return in_period(conform(frame), config)


def load_ledger_ids(source: str, ids: Iterable[str], config: ReconConfig,
                    settings: Settings | None = None) -> pd.DataFrame:
    """The ledger rows whose ``ledger_payout_id`` is in ``ids``, whatever their period (unknown ids: no row)."""
    wanted = sorted({str(i) for i in ids if i is not None and str(i).strip()})
    if not wanted:
        return empty_ledger()
    if source == "db":
        frame = _from_db(config, settings or get_settings(), ids=wanted)
    else:
        frame = _from_file(Path(source))
    frame = conform(frame)
    return frame[frame["ledger_payout_id"].isin(wanted)].reset_index(drop=True)


def empty_ledger() -> pd.DataFrame:
    return conform(pd.DataFrame({c: [] for c in LEDGER_COLUMNS}))


def conform(frame: pd.DataFrame) -> pd.DataFrame:
    """Exactly LEDGER_COLUMNS with their dtypes (strings stripped, empty → NA, currency upper-case)."""
    out = pd.DataFrame(index=frame.index)
    for col in STRING_COLUMNS:
        s = frame[col].astype("string").str.strip()
        out[col] = s.mask(s == "")
    out["currency"] = out["currency"].str.upper()
    out["amount"] = frame["amount"].astype("int64")
    out["expected_at"] = pd.to_datetime(frame["expected_at"], utc=True).astype("datetime64[us, UTC]")
    return out[list(LEDGER_COLUMNS)].reset_index(drop=True)


def in_period(frame: pd.DataFrame, config: ReconConfig) -> pd.DataFrame:
    """Rows whose ``expected_at`` falls on a day of the period, in ``config.timezone``."""
    if frame.empty:
        return frame
    local_day = frame["expected_at"].dt.tz_convert(config.timezone).dt.date
    keep = (local_day >= config.period_from) & (local_day <= config.period_to)
    return frame[keep].reset_index(drop=True)


def cycle_time(cycle: date, tz: str) -> datetime:
    """When a payout cycle ran: its date at 06:00 in ``tz``, as UTC."""
    return datetime.combine(cycle, CYCLE_HOUR, tzinfo=ZoneInfo(tz)).astimezone(UTC)


# --- the database ----------------------------------------------------------------------------------
#: ids per ``IN (...)`` query when loading by id (well under SQLite's and PostgreSQL's bind limits)
ID_CHUNK = 500


def _from_db(config: ReconConfig, settings: Settings, ids: list[str] | None = None) -> pd.DataFrame:
    """The period's ledger rows (with a day's margin each side; ``in_period`` cuts exactly), or the rows ``ids``."""
    from payops.db import session_scope
    from payops.db.models import LedgerPayout, ManualPayout, PayoutRun, Studio

    lo = datetime.combine(config.period_from - timedelta(days=1), time(0), tzinfo=UTC)
    hi = datetime.combine(config.period_to + timedelta(days=2), time(0), tzinfo=UTC)
    base = (
        select(LedgerPayout.id, LedgerPayout.run_id, LedgerPayout.studio_id, Studio.stripe_account_id,
               LedgerPayout.net, LedgerPayout.currency, LedgerPayout.status, PayoutRun.cycle_date,
               LedgerPayout.created_at, LedgerPayout.stripe_transfer_id, ManualPayout.stripe_transfer_id)
        .select_from(LedgerPayout)
        .outerjoin(PayoutRun, PayoutRun.id == LedgerPayout.run_id)
        .outerjoin(Studio, Studio.id == LedgerPayout.studio_id)
        .outerjoin(ManualPayout, ManualPayout.ledger_payout_id == LedgerPayout.id)
        .order_by(LedgerPayout.id)
    )
    if ids is None:
        stmts = [base.where(or_(
            PayoutRun.cycle_date.between(config.period_from - timedelta(days=1),
                                         config.period_to + timedelta(days=1)),
            and_(PayoutRun.id.is_(None), LedgerPayout.created_at >= lo, LedgerPayout.created_at < hi),
        ))]
    else:
        stmts = [base.where(LedgerPayout.id.in_(ids[i:i + ID_CHUNK])) for i in range(0, len(ids), ID_CHUNK)]
    rows = []
    with session_scope(settings) as s:
        for stmt in stmts:
            for (lp_id, run_id, studio_id, dest, net, cur, status, cycle, created, tr_id, manual_tr) in s.execute(stmt):
                expected = cycle_time(cycle, config.timezone) if cycle is not None else created
                rows.append((lp_id, run_id, studio_id, dest, int(net), cur, status, expected, tr_id, manual_tr))
    if not rows:
        return empty_ledger()
    return pd.DataFrame(rows, columns=list(LEDGER_COLUMNS))


# --- an export file ------------------------------------------------------------------------------------
def _from_file(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise ParamsInvalid(FieldProblem("ledger", f"{path} does not exist"))
    suffix = path.suffix.lower()
    if suffix == ".csv":
        raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    elif suffix == ".parquet":
        raw = pd.read_parquet(path)
    else:
        raise ParamsInvalid(FieldProblem("ledger", f"{path}: expected a .csv or .parquet export"))
    return validate_export(raw, str(path))


def validate_export(raw: pd.DataFrame, where: str = "export") -> pd.DataFrame:
    """Check the column contract; returns the contract's columns (not yet conformed)."""
    missing = [c for c in LEDGER_COLUMNS if c not in raw.columns]
    if missing:
        raise ParamsInvalid([FieldProblem(f"ledger.{c}", f"column missing from {where}") for c in missing],
                            "ledger export")
    frame = raw[list(LEDGER_COLUMNS)].copy()
    problems: list[FieldProblem] = []
    for col in REQUIRED:
        blank = frame[col].isna() | (frame[col].astype("string").str.strip() == "")
        if blank.any():
            problems.append(FieldProblem(f"ledger.{col}", f"empty in {int(blank.sum())} row(s), first at row "
                                                          f"{int(blank.idxmax()) + 1} of {where}"))
    if (bad := currency_problem(frame["currency"], "ledger.currency", where)) is not None:
        problems.append(bad)
    amount = _integer_amounts(frame["amount"], where, problems)
    if amount is not None:
        frame["amount"] = amount
    try:
        ts = pd.to_datetime(frame["expected_at"], utc=True, format="ISO8601")
        frame["expected_at"] = ts
    except (ValueError, TypeError) as exc:
        problems.append(FieldProblem("ledger.expected_at", f"not an ISO 8601 timestamp in {where}: {exc}"))
    if problems:
        raise ParamsInvalid(problems, "ledger export")
    return frame


def _integer_amounts(col: pd.Series, where: str, problems: list[FieldProblem]) -> pd.Series | None:
    """Integer minor units, or a problem naming ``ledger.amount`` (floats and decimals are refused)."""
    if pd.api.types.is_float_dtype(col.dtype):
        problems.append(FieldProblem("ledger.amount", f"is a float column in {where}: amounts must be integer "
                                                      "minor units (cents), e.g. 87550 for 875.50"))
        return None
    if pd.api.types.is_integer_dtype(col.dtype):
        return col.astype("int64")
    text = col.astype("string").str.strip()
    bad = ~text.fillna("").str.fullmatch(r"-?\d{1,18}")
    if bad.any():
        first = int(bad.idxmax())
        problems.append(FieldProblem("ledger.amount", f"{text.iloc[first]!r} (row {first + 1} of {where}) is not "
                                                      "an integer amount in minor units (cents), e.g. 87550"))
        return None
    return text.astype("int64")
