"""Least privilege on disk (#19): the archive, the recon cache and a SQLite database payops creates are
owner-only (files 0600, folders 0700), PAYOPS_ARCHIVE_GROUP opens the archive to one group (0640, 2750), and
``payops archive verify`` warns on anything others can read. Also: verify without a database says what it
could not prove."""

from __future__ import annotations

import grp
import os
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from payops import archive
from payops.archive.audit import verify_with_records
from payops.archive.verify import NO_ANCHORS, NO_RECORDS
from payops.cli import app
from payops.config import Settings, get_settings
from payops.errors import ConfigError

STARTED = datetime(2026, 12, 7, 9, 30, tzinfo=UTC)


def mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


@pytest.fixture(autouse=True)
def _loose_umask() -> object:
    """The ordinary 022 umask of a shared host, whatever the test runner's: modes must not depend on it."""
    old = os.umask(0o022)
    yield
    os.umask(old)


@pytest.fixture()
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PAYOPS_DATABASE_URL", f"sqlite:///{tmp_path / 'absent' / 'payops.db'}")
    monkeypatch.delenv("PAYOPS_ARCHIVE_GROUP", raising=False)
    monkeypatch.delenv("PAYOPS_ARCHIVE_ANCHORS", raising=False)
    out = tmp_path / "shared-host" / "outputs"
    monkeypatch.setenv("PAYOPS_OUTPUT_DIR", str(out))
    get_settings(fresh=True)
    yield out
    get_settings(fresh=True)


def sealed(out: Path, run_id: str = "run-1") -> Path:
    folder = archive.run_dir(out, "manual_payout", run_id, STARTED)
    (folder / "10-verify.ipynb").write_text("{}")  # written the way papermill and a kernel write: umask 022
    (folder / "stripe").mkdir()
    (folder / "stripe" / "transfer.json").write_text("{}")
    return archive.seal_run(folder, output_root=out, meta={"mode": "dry-run"})


def every_path(out: Path) -> list[Path]:
    return [out, *sorted(out.rglob("*"))]


def test_the_archive_is_owner_only_whatever_wrote_it(env: Path) -> None:
    sealed(env)
    modes = {p.relative_to(env).as_posix() or ".": mode(p) for p in every_path(env)}
    assert {k: v for k, v in modes.items() if (env / k).is_dir()} == dict.fromkeys(
        [".", "manual_payout", "manual_payout/2026-12-07", "manual_payout/2026-12-07/run-1",
         "manual_payout/2026-12-07/run-1/stripe"], 0o700)
    assert {k: v for k, v in modes.items() if (env / k).is_file()} == dict.fromkeys(
        [".chain.lock", "CHAIN.jsonl", "manual_payout/2026-12-07/run-1/10-verify.ipynb",
         "manual_payout/2026-12-07/run-1/manifest.json", "manual_payout/2026-12-07/run-1/stripe/transfer.json"],
        0o600)
    assert mode(env.parent) == 0o755  # above the output root: not payops's to change
    report = archive.verify_archive(env)
    assert report.ok and report.warnings == []


def test_an_archive_group_makes_it_group_readable_for_auditors(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    group = grp.getgrgid(1).gr_name  # any group this (root) test user may give: "daemon" on Debian
    monkeypatch.setenv("PAYOPS_ARCHIVE_GROUP", group)
    get_settings(fresh=True)
    manifest = sealed(env)
    for p in every_path(env):
        assert p.stat().st_gid == 1, p
        assert mode(p) == (0o2750 if p.is_dir() else 0o640), (p, oct(mode(p)))
    assert archive.verify_archive(env).warnings == []
    # a file written later into the (setgid) run folder keeps the group; the next seal gives it the mode
    (manifest.parent / "later.txt").write_text("x")
    assert (manifest.parent / "later.txt").stat().st_gid == 1
    assert archive.seal_run(manifest.parent, output_root=env, meta={}).name == "manifest.2.json"
    assert mode(manifest.parent / "later.txt") == 0o640


def test_an_unknown_archive_group_is_refused_naming_the_variable(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAYOPS_ARCHIVE_GROUP", "no-such-group-payops")
    get_settings(fresh=True)
    with pytest.raises(ConfigError, match="PAYOPS_ARCHIVE_GROUP: no group named 'no-such-group-payops'"):
        archive.run_dir(env, "manual_payout", "run-1", STARTED)


def test_verify_warns_on_a_file_others_can_read(env: Path) -> None:
    manifest = sealed(env)
    leaked = manifest.parent / "10-verify.ipynb"
    leaked.chmod(0o644)
    report = archive.verify_archive(env)
    assert report.ok  # a warning, not a broken chain
    assert report.warnings == [
        "1 file(s) or folder(s) with permissions for others: manual_payout/2026-12-07/run-1/10-verify.ipynb (0644) — "
        f"the archive is owner-only (PAYOPS_ARCHIVE_GROUP for auditors): chmod -R o-rwx {env}"]
    res = CliRunner().invoke(app, ["archive", "verify"])
    assert res.exit_code == 0
    assert "with permissions for others: manual_payout/2026-12-07/run-1/10-verify.ipynb" in res.stderr
    assert archive.verify_archive(manifest.parent).warnings[0].startswith(
        "1 file(s) or folder(s) with permissions for others")


def test_verify_without_a_database_says_what_it_could_not_prove(env: Path, tmp_path: Path) -> None:
    sealed(env)
    report = verify_with_records(env)
    assert report.ok and report.problems == []
    assert NO_RECORDS in report.unproven and NO_ANCHORS in report.unproven
    assert any(u.startswith("the database could not be read (no database: ") for u in report.unproven)
    assert not (tmp_path / "absent").exists()  # verify never creates the database it lacks
    res = CliRunner().invoke(app, ["archive", "verify"])
    assert res.exit_code == 0
    assert "not proven: the run records were not compared (no database)" in res.stdout
    assert "chain intact; 3 thing(s) not proven (above)" in res.stdout
    assert "held against the run records" not in res.stdout
    strict = CliRunner().invoke(app, ["archive", "verify", "--strict"])
    assert strict.exit_code == 9 and "not proven (--strict)" in strict.stderr


def test_a_sqlite_database_payops_creates_is_owner_only(tmp_path: Path) -> None:
    from payops import db

    url = f"sqlite:///{tmp_path / 'var' / 'payops.db'}"
    try:
        db.upgrade(url)
        with db.get_engine(url).connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    finally:
        db.dispose_engines()
    assert mode(tmp_path / "var") == 0o700
    files = sorted(p.name for p in (tmp_path / "var").iterdir())
    assert "payops.db" in files
    assert {name: mode(tmp_path / "var" / name) for name in files} == dict.fromkeys(files, 0o600)


def test_the_recon_cache_is_owner_only(tmp_path: Path) -> None:
    from payops.reconcile.load_stripe import _write_private
    from payops.reconcile.params import ReconContext

    settings = Settings(PAYOPS_RECON_CACHE_DIR=str(tmp_path / "recon-cache"))  # type: ignore[call-arg]
    ctx = ReconContext.__new__(ReconContext)
    ctx.settings = settings
    ctx.params = type("P", (), {"subject_key": "2026-11"})()  # type: ignore[assignment]
    folder = ctx.cache_dir
    assert folder == tmp_path / "recon-cache" / "2026-11"
    assert mode(tmp_path / "recon-cache") == 0o700 and mode(folder) == 0o700
    _write_private(folder / "page.json", "{}")
    assert mode(folder / "page.json") == 0o600


def test_anchor_settings_are_checked_naming_the_variable(tmp_path: Path) -> None:
    s = Settings(PAYOPS_ARCHIVE_ANCHORS=f" db , file:{tmp_path}/heads.jsonl,slack")  # type: ignore[call-arg]
    assert s.archive_anchor_list == ["db", f"file:{tmp_path}/heads.jsonl", "slack"]
    assert Settings().archive_anchor_list == ["db"]
    with pytest.raises(ValueError, match="PAYOPS_ARCHIVE_ANCHORS: 's3' is not db, slack or file:PATH"):
        Settings(PAYOPS_ARCHIVE_ANCHORS="db,s3")  # type: ignore[call-arg]
