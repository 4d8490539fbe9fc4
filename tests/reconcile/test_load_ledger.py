"""The ledger adapter: the database (SQLite and PostgreSQL) and CSV/Parquet exports with their contract."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from payops import demo_data as dd
from payops.db.seed import seed_ledger
from payops.errors import ParamsInvalid
from payops.reconcile.load_ledger import load_ledger, load_ledger_ids
from payops.reconcile.schema import LEDGER_COLUMNS, ReconConfig

pytestmark = pytest.mark.db
PERIOD = ReconConfig(date(2026, 9, 1), date(2026, 11, 30))


def _dtypes(df: pd.DataFrame) -> dict[str, str]:
    return {c: str(t) for c, t in df.dtypes.items()}


def test_ledger_from_database(migrated_db: str) -> None:
    seed_ledger()
    df = load_ledger("db", PERIOD)
    assert list(df.columns) == list(LEDGER_COLUMNS)
    assert _dtypes(df) == {c: t for c, t in LEDGER_COLUMNS.items()}
    expected = {h.ledger_payout_id for h in [*dd.demo_history(), *dd.recon_demo_ledger()]}
    assert set(df["ledger_payout_id"]) == expected and df["ledger_payout_id"].is_unique
    row = df.set_index("ledger_payout_id").loc[dd.RECON_REVERSED_LEDGER_ID]
    assert (row["destination"], row["amount"], row["currency"], row["status"]) == (
        "acct_test_studio_d", 60_000, "CAD", "paid")
    assert row["expected_at"] == pd.Timestamp("2026-10-15T06:00:00Z")
    assert row["ledger_transfer_id"] == dd.RECON_REVERSED_TRANSFER and pd.isna(row["manual_transfer_id"])
    assert df["amount"].sum() == sum(h.net for h in [*dd.demo_history(), *dd.recon_demo_ledger()])


def test_ledger_period_and_timezone(migrated_db: str) -> None:
    seed_ledger()
    one_day = load_ledger("db", ReconConfig(date(2026, 10, 15), date(2026, 10, 15)))
    assert len(one_day) == 5 and set(one_day["run_id"]) == {dd.RECON_RUN_ID}
    # 06:00 in Tokyo is the previous day in UTC: the cycle still belongs to its own local day
    tokyo = load_ledger("db", ReconConfig(date(2026, 10, 15), date(2026, 10, 15), timezone="Asia/Tokyo"))
    assert len(tokyo) == 5 and (tokyo["expected_at"] == pd.Timestamp("2026-10-14T21:00:00Z")).all()
    assert load_ledger("db", ReconConfig(date(2025, 1, 1), date(2025, 1, 31))).empty


def test_ledger_csv_and_parquet_roundtrip(migrated_db: str, tmp_path: Path) -> None:
    seed_ledger()
    df = load_ledger("db", PERIOD)
    csv, parquet = tmp_path / "ledger.csv", tmp_path / "ledger.parquet"
    df.assign(extra="ignored").to_csv(csv, index=False)
    df.to_parquet(parquet)
    for path in (csv, parquet):
        got = load_ledger(str(path), PERIOD)
        pd.testing.assert_frame_equal(got.sort_values("ledger_payout_id").reset_index(drop=True),
                                      df.sort_values("ledger_payout_id").reset_index(drop=True))


def test_ledger_rows_by_id_whatever_their_period(migrated_db: str, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The rows a period's transfers name from other periods come by id, with the period's own columns."""
    seed_ledger()
    nov = ReconConfig(date(2026, 11, 16), date(2026, 11, 30))
    assert dd.REHEARSAL_LEDGER_PAYOUT_ID not in set(load_ledger("db", nov)["ledger_payout_id"])
    whole = load_ledger("db", PERIOD).set_index("ledger_payout_id")
    wanted = [dd.REHEARSAL_LEDGER_PAYOUT_ID, dd.RECON_REVERSED_LEDGER_ID, "not-a-ledger-id", ""]
    got = load_ledger_ids("db", wanted, nov)
    assert _dtypes(got) == dict(LEDGER_COLUMNS)
    assert sorted(got["ledger_payout_id"]) == sorted(wanted[:2])
    pd.testing.assert_frame_equal(got.set_index("ledger_payout_id").sort_index(), whole.loc[sorted(wanted[:2])])
    assert load_ledger_ids("db", [], nov).empty and load_ledger_ids("db", [None, " "], nov).empty  # type: ignore[list-item]
    # more ids than one IN (...) takes: every chunk is asked
    monkeypatch.setattr("payops.reconcile.load_ledger.ID_CHUNK", 1)
    assert sorted(load_ledger_ids("db", wanted, nov)["ledger_payout_id"]) == sorted(wanted[:2])
    csv = tmp_path / "ledger.csv"
    whole.reset_index().to_csv(csv, index=False)
    assert sorted(load_ledger_ids(str(csv), wanted, nov)["ledger_payout_id"]) == sorted(wanted[:2])


def _export(tmp_path: Path, **changes: object) -> pd.DataFrame:
    return pd.DataFrame([{
        "ledger_payout_id": "lp-1", "run_id": "", "studio_id": "s-1", "destination": "acct_x", "amount": "87550",
        "currency": "cad", "status": "paid", "expected_at": "2026-10-15T06:00:00Z", "ledger_transfer_id": "tr_1",
        "manual_transfer_id": "", **changes}])


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_export_contract_errors_name_the_column(tmp_path: Path, migrated_db: str) -> None:
    path = tmp_path / "l.csv"
    _export(tmp_path).drop(columns=["destination"]).to_csv(path, index=False)
    with pytest.raises(ParamsInvalid) as info:
        load_ledger(str(path), PERIOD)
    assert info.value.fields == ["ledger.destination"]
    _export(tmp_path, amount="875.50").to_csv(path, index=False)
    with pytest.raises(ParamsInvalid) as info:
        load_ledger(str(path), PERIOD)
    assert info.value.fields == ["ledger.amount"] and "875.50" in str(info.value)
    pq = tmp_path / "l.parquet"
    _export(tmp_path).assign(amount=875.5).to_parquet(pq)
    with pytest.raises(ParamsInvalid) as info:
        load_ledger(str(pq), PERIOD)
    assert info.value.fields == ["ledger.amount"] and "float" in str(info.value)
    _export(tmp_path, expected_at="yesterday").to_csv(path, index=False)
    with pytest.raises(ParamsInvalid) as info:
        load_ledger(str(path), PERIOD)
    assert info.value.fields == ["ledger.expected_at"]
    _export(tmp_path).to_csv(path, index=False)
    ok = load_ledger(str(path), PERIOD)
    assert ok["amount"].tolist() == [87550] and ok["currency"].tolist() == ["CAD"] and pd.isna(ok["run_id"][0])
