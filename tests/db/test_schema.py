"""Schema management on SQLite and the real PostgreSQL: require_schema, upgrade, models vs migration, seed."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import BigInteger, inspect, select
from sqlalchemy.engine import make_url

from payops import db
from payops.config import get_settings
from payops.db.models import Base, LedgerPayout, PayoutRun, Studio
from payops.db.seed import ledger_counts, seed_ledger
from payops.errors import ConfigError

pytestmark = pytest.mark.db

MONEY_COLUMNS = {"amount", "gross", "fee", "reserve", "net", "reserve_after", "total", "reserve_minimum"}
STUDIO_A = "11111111-1111-1111-1111-111111111111"
REHEARSAL_LP = "22222222-2222-2222-2222-222222222222"


def test_require_schema_on_empty_database(db_url: str) -> None:
    with pytest.raises(ConfigError) as info:
        db.require_schema(db_url)
    msg = str(info.value)
    assert "no payops schema" in msg
    assert "run `payops db upgrade`" in msg
    assert make_url(db_url).database in msg  # says which database
    assert info.value.exit_code == 11


def test_require_schema_after_upgrade(db_url: str) -> None:
    db.upgrade(db_url)
    eng = db.require_schema(db_url)
    assert eng is db.get_engine(db_url)
    db.require_schema(db_url)  # cached path still returns


def test_require_schema_unreachable_database() -> None:
    url = "postgresql+psycopg://nobody:hunter2@127.0.0.1:1/none?connect_timeout=2"
    try:
        with pytest.raises(ConfigError) as info:
            db.require_schema(url)
    finally:
        db.dispose_engines()
    assert "cannot reach the database" in str(info.value)
    assert "hunter2" not in str(info.value)  # the password is hidden


def test_upgrade_creates_every_model_table(db_url: str) -> None:
    assert db.table_names(db_url) == []
    rev = db.upgrade(db_url)
    assert rev == db.head_revision()
    tables = set(db.table_names(db_url))
    expected = set(Base.metadata.tables)
    assert expected <= tables
    assert tables - expected == {"alembic_version"}
    # the design's tables, by name
    for t in ("studios", "payout_runs", "ledger_payouts", "manual_payouts", "runbook_runs", "runbook_steps",
              "approvals", "transfer_intents", "recon_runs", "recon_breaks", "credentials", "alerts"):
        assert t in tables


def test_revisions_read_without_alembic_are_alembics(db_url: str) -> None:
    """``current_revision`` / ``head_revision`` skip importing Alembic for a plain chain: same answers."""
    from alembic.script import ScriptDirectory

    assert db.head_revision() == ScriptDirectory.from_config(db._alembic_config("sqlite://")).get_current_head()
    for step in (None, "0001", "head"):
        if step:
            db.upgrade(db_url, step)
        with db.get_engine(db_url).connect() as conn:
            assert db.current_revision(db_url) == MigrationContext.configure(conn).get_current_revision()


def test_script_heads_follow_the_chain_and_leave_branches_to_alembic(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    versions = tmp_path / "versions"
    versions.mkdir()

    def script(name: str, body: str) -> None:
        (versions / f"{name}.py").write_text(f'"""{name}"""\nfrom alembic import op\n\n{body}\n')

    monkeypatch.setattr(db, "MIGRATIONS_DIR", tmp_path)
    script("a", 'revision = "0001"\ndown_revision = None\nbranch_labels = None\ndepends_on = None')
    script("b", 'revision: str = "0002"\ndown_revision: str | None = "0001"')
    db._script_heads.cache_clear()
    try:
        assert db._script_heads() == {"0002"}
        script("c", 'revision = "0003"\ndown_revision = "0001"')  # a second branch from 0001: two heads
        db._script_heads.cache_clear()
        assert db._script_heads() == {"0002", "0003"}
        script("d", 'revision = "0004"\ndown_revision = ("0002", "0003")')  # the merge
        db._script_heads.cache_clear()
        assert db._script_heads() == {"0004"}
        script("e", 'revision = "0005"\ndown_revision = "0004"\nbranch_labels = ("x",)')
        db._script_heads.cache_clear()
        assert db._script_heads() is None  # labels: Alembic decides
    finally:
        db._script_heads.cache_clear()


def test_current_revision_is_head(db_url: str) -> None:
    assert db.current_revision(db_url) is None
    db.upgrade(db_url)
    assert db.current_revision(db_url) == db.head_revision()
    assert db.upgrade(db_url) == db.head_revision()  # a second upgrade is a no-op


def test_migration_matches_models(db_url: str) -> None:
    db.upgrade(db_url)
    with db.get_engine(db_url).connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": True})
        diffs = compare_metadata(ctx, Base.metadata)
    assert diffs == [], f"models and migration disagree: {diffs}"


def test_money_columns_are_bigint(db_url: str) -> None:
    db.upgrade(db_url)
    insp = inspect(db.get_engine(db_url))
    seen: list[str] = []
    for table in insp.get_table_names():
        for col in insp.get_columns(table):
            if col["name"] in MONEY_COLUMNS:
                seen.append(f"{table}.{col['name']}")
                assert isinstance(col["type"], BigInteger), f"{table}.{col['name']} is {col['type']!r}"
    # every money column the models declare was found in the database
    declared = {f"{t.name}.{c.name}" for t in Base.metadata.tables.values() for c in t.columns
                if c.name in MONEY_COLUMNS}
    assert declared == set(seen)
    assert {"ledger_payouts.net", "manual_payouts.amount", "transfer_intents.amount",
            "studios.reserve_minimum", "payout_runs.total"} <= declared


def test_amounts_beyond_32_bits_round_trip(migrated_db: str) -> None:
    big = 99_999_999_999  # Money's upper bound, far beyond INTEGER
    with db.session_scope(url=migrated_db) as s:
        s.add(Studio(id="99999999-9999-4999-8999-999999999999", name="Big", email="big@example.com",
                     stripe_account_id="acct_big", currency="CAD", reserve_minimum=big))
    with db.session_scope(url=migrated_db) as s:
        got = s.get(Studio, "99999999-9999-4999-8999-999999999999")
        assert got is not None and got.reserve_minimum == big
        assert isinstance(got.reserve_minimum, int)


def _counts() -> dict[str, int]:
    c = ledger_counts()
    c.pop("seeded_at")
    return c


def test_seed_ledger_is_idempotent(migrated_db: str) -> None:
    settings = get_settings()
    assert settings.database_url == migrated_db
    first = seed_ledger(settings)
    assert first.studios >= 3 and first.payout_runs >= 1 and first.ledger_payouts >= 2
    after_first = _counts()
    assert after_first == {"studios": first.studios, "payout_runs": first.payout_runs,
                           "ledger_payouts": first.ledger_payouts}
    second = seed_ledger(settings)
    assert (second.studios, second.payout_runs, second.ledger_payouts) == (0, 0, 0)
    assert _counts() == after_first


def test_seed_keeps_changes_made_after_seeding(migrated_db: str) -> None:
    seed_ledger()
    with db.session_scope(url=migrated_db) as s:
        lp = s.get(LedgerPayout, REHEARSAL_LP)
        assert lp is not None
        lp.status = "manual"
    seed_ledger()
    with db.session_scope(url=migrated_db) as s:
        assert s.get(LedgerPayout, REHEARSAL_LP).status == "manual"  # type: ignore[union-attr]
    seed_ledger(reset=True)
    with db.session_scope(url=migrated_db) as s:
        assert s.get(LedgerPayout, REHEARSAL_LP).status == "pending"  # type: ignore[union-attr]


def test_seed_has_the_rehearsal_example(migrated_db: str) -> None:
    seed_ledger()
    with db.session_scope(url=migrated_db) as s:
        lp = s.get(LedgerPayout, REHEARSAL_LP)
        assert lp is not None
        assert lp.studio_id == STUDIO_A
        assert lp.net == 87550
        assert lp.currency == "CAD"
        assert lp.reserve == 12000
        assert lp.status == "pending"
        assert lp.stripe_transfer_id is None
        assert lp.gross - lp.fee - lp.reserve == lp.net  # the ledger adds up
        studio = s.get(Studio, STUDIO_A)
        assert studio is not None
        assert studio.name == "Test Studio A"
        assert studio.reserve_minimum == 10000
        assert studio.currency == "CAD"
        assert studio.stripe_account_id == "acct_test_studio_a"
        assert lp.run_id is not None
        run = s.get(PayoutRun, lp.run_id)
        assert run is not None and str(run.cycle_date) == "2026-11-15"
        # one ledger payout per studio per run
        same = s.scalars(select(LedgerPayout.id).where(LedgerPayout.run_id == lp.run_id,
                                                       LedgerPayout.studio_id == STUDIO_A)).all()
        assert same == [REHEARSAL_LP]
