"""Shared fixtures: databases (SQLite and the real PostgreSQL), the Stripe sandbox, Slack/SMTP sinks.

Under ``CI=true`` an unreachable PostgreSQL is a failure, not a skip.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from payops import db
from payops.config import Settings, get_settings

if os.environ.get("PYTEST_XDIST_WORKER"):
    # pytest-xdist workers inherit COLUMNS=80 / LINES=24 from their gateway; a Rich console created at import
    # would freeze at 80 columns and ignore the COLUMNS a test gives CliRunner — as in a serial run, leave
    # the width to each invocation
    os.environ.pop("COLUMNS", None)
    os.environ.pop("LINES", None)

PG_ADMIN_URL = os.environ.get("PAYOPS_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

OPERATOR = "aaaaaaaa-0000-4000-8000-000000000001"
OPS_APPROVER = "bbbbbbbb-0000-4000-8000-000000000002"
FINANCE_APPROVER = "cccccccc-0000-4000-8000-000000000003"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Longest first: tests marked ``slow`` (whole runbooks, demos, browsers), then ``e2e``, then the rest —
    stable within each group. pytest-xdist hands tests out in this order, so the long ones start while the
    short ones fill the gaps, instead of one worker finishing a demo alone at the end of the run."""
    def cost(item: pytest.Item) -> int:
        return 0 if item.get_closest_marker("slow") else 1 if item.get_closest_marker("e2e") else 2

    items[:] = sorted(items, key=cost)


@pytest.fixture(scope="session", autouse=True)
def _worker_private_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Each test process (each pytest-xdist worker) gets its own reconciliation page cache instead of the
    project's ``var/recon-cache``: workers never share a folder. Everything else a test touches is already
    its own (``tmp_path`` output folders, a fresh database per test, servers on port 0)."""
    if "PAYOPS_RECON_CACHE_DIR" in os.environ:
        yield
        return
    os.environ["PAYOPS_RECON_CACHE_DIR"] = str(tmp_path_factory.mktemp("recon-cache"))
    try:
        yield
    finally:
        os.environ.pop("PAYOPS_RECON_CACHE_DIR", None)


@pytest.fixture(scope="session", autouse=True)
def _kernel_template() -> Iterator[None]:
    """One kernel template per test process (payops.kernelfork), with every runbook's imports, joined by the
    CLI processes tests start (``PAYOPS_KERNEL_TEMPLATE``) — as a runner inside a kernel joins its runner's.
    Their kernels still end with the process that asked for them (each watches its runner's pid)."""
    from payops import kernelfork, pipeline, runner

    template = kernelfork.shared_template(
        pipeline.preload_lines(p for folder in set(runner.NOTEBOOK_DIRS.values()) for p in folder.glob("*.ipynb")),
        wait=False)
    if template is None or kernelfork.ENV_TEMPLATE in os.environ:
        yield
        return
    os.environ[kernelfork.ENV_TEMPLATE] = template.path
    try:
        yield
    finally:
        os.environ.pop(kernelfork.ENV_TEMPLATE, None)


@pytest.fixture(scope="session")
def in_ci() -> bool:
    """``CI=true``: a missing service or browser is a failure, not a skip.

    A fixture, not an import: test modules cannot ``from conftest import`` reliably, since each directory's
    conftest.py is loaded as a module named ``conftest`` and the last one loaded wins.
    """
    return IN_CI


def _pg_problem() -> str | None:
    try:
        eng = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with eng.connect() as conn:
            conn.execute(text("select 1"))
        eng.dispose()
        return None
    except Exception as exc:  # noqa: BLE001 — becomes a skip or, under CI, a failure
        return f"{type(exc).__name__}: {exc}"


@pytest.fixture(scope="session")
def pg_admin() -> str:
    problem = _pg_problem()
    if problem:
        if IN_CI:
            pytest.fail(f"PostgreSQL at {PG_ADMIN_URL} is unreachable under CI=true: {problem}")
        pytest.skip(f"PostgreSQL unreachable: {problem}")
    return PG_ADMIN_URL


def _fresh_pg_database(admin_url: str, template: str | None = None) -> tuple[str, str]:
    name = f"payops_t_{uuid.uuid4().hex[:12]}"
    eng = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with eng.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else "")))
    eng.dispose()
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False), name


def _drop_pg_database(admin_url: str, name: str) -> None:
    eng = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with eng.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    eng.dispose()


class _MigratedTemplates:
    """One migrated database per kind and test process, cloned for every test that asks for ``migrated_db``.

    Running the Alembic chain costs about 0.3 s on SQLite and 1.5-2 s on PostgreSQL per test; a copy of a
    database migrated once in this process (a file copy; ``CREATE DATABASE … TEMPLATE``) costs a fraction
    and is the same schema. Tests of the migrations themselves take ``db_url`` alone and still get an
    empty database."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._sqlite: Path | None = None
        self._pg: str | None = None
        self._pg_admin: str | None = None

    def sqlite_copy(self, dest: Path) -> None:
        if self._sqlite is None:
            path = self.folder / "template.db"
            db.upgrade(f"sqlite:///{path}")
            db.dispose_engines()
            self._sqlite = path
        shutil.copyfile(self._sqlite, dest)

    def pg_create(self, admin_url: str) -> tuple[str, str]:
        if self._pg is None:
            url, name = _fresh_pg_database(admin_url)
            db.upgrade(url)
            db.dispose_engines()  # a template must have no open connection while it is copied
            self._pg, self._pg_admin = name, admin_url
        return _fresh_pg_database(admin_url, template=self._pg)

    def drop(self) -> None:
        if self._pg and self._pg_admin:
            _drop_pg_database(self._pg_admin, self._pg)


@pytest.fixture(scope="session")
def _migrated_templates(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_MigratedTemplates]:
    templates = _MigratedTemplates(tmp_path_factory.mktemp("db-template"))
    yield templates
    templates.drop()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database: a SQLite file, or a fresh database on the real PostgreSQL — already migrated (a
    copy of this process's migrated template) when the test also asks for ``migrated_db``."""
    migrated = "migrated_db" in getattr(request.node, "fixturenames", ())
    templates: _MigratedTemplates | None = request.getfixturevalue("_migrated_templates") if migrated else None
    if request.param == "sqlite":
        path = tmp_path / "payops.db"
        if templates is not None:
            templates.sqlite_copy(path)
        yield f"sqlite:///{path}"
        db.dispose_engines()
        return
    admin = request.getfixturevalue("pg_admin")
    url, name = templates.pg_create(admin) if templates is not None else _fresh_pg_database(admin)
    try:
        yield url
    finally:
        db.dispose_engines()
        _drop_pg_database(admin, name)


@pytest.fixture()
def migrated_db(db_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """``db_url`` with the migrations applied and ``PAYOPS_DATABASE_URL`` pointing at it. ``db_url`` made it
    a copy of the migrated template (the migrations run here only when this fixture was asked for late,
    through ``request.getfixturevalue``)."""
    monkeypatch.setenv("PAYOPS_DATABASE_URL", db_url)
    get_settings(fresh=True)
    if db.current_revision(db_url) != db.head_revision():
        db.upgrade(db_url)
    return db_url


# --- a real browser (Debian's Chromium, `make browser`) ---------------------------------------------
CHROMIUM = Path("/usr/bin/chromium")
#: what a root, offline, headless Chromium needs (without the networking flags it keeps dialling out)
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


@pytest.fixture()
def chromium(in_ci: bool) -> Path:
    """Debian's Chromium for Playwright; a skip without it, a failure under CI=true."""
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing: `make browser` installs Debian's chromium"
        if in_ci:
            pytest.fail(message + " (CI=true: a missing browser is a failure)")
        pytest.skip(message)
    pytest.importorskip("playwright.sync_api")
    return CHROMIUM


@pytest.fixture(scope="session")
def chromium_args() -> list[str]:
    return list(CHROMIUM_ARGS)
# --- the approver roster ---------------------------------------------------------------------------
@pytest.fixture()
def roster(migrated_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """A test-only roster with the ids the tests have always used: the operator (role operator), the ops
    and the finance approver, each with an Ed25519 key generated into ``tmp_path/keys`` (never committed).
    ``roster["ops"].key_path`` is the private key, ``.pub_path`` the public one. See tests/approval_helpers.py.

    Test-only entries are refused in live mode, which includes "pointed at real Stripe" (the default base
    address): a test that has not pointed payops at the sandbox gets a local address nothing listens on."""
    from payops.approvals.testkeys import enroll_test_roster

    if not os.environ.get("PAYOPS_STRIPE_API_BASE"):
        monkeypatch.setenv("PAYOPS_STRIPE_API_BASE", "http://127.0.0.1:9")

    return enroll_test_roster(tmp_path / "keys", [
        ("operator", OPERATOR, "Oscar Operator", ("operator",)),
        ("ops", OPS_APPROVER, "Olivia Ops", ("ops",)),
        ("finance", FINANCE_APPROVER, "Farid Finance", ("finance",)),
    ], by=OPERATOR, settings=get_settings(fresh=True))


# --- sandbox and sinks ---------------------------------------------------------------------------
@pytest.fixture(scope="session")
def stripe_sandbox():  # type: ignore[no-untyped-def]
    from payops.sandbox.testing import start_sandbox

    # a bank that pays in 0.25 s of sandbox time instead of 3 s: step 50 follows the same transitions
    # (pending → in_transit → paid) in a second; tests that need a slow payout set their own delay
    sb = start_sandbox(seed="demo", rate_limit=0, payout_delay_seconds=0.25)
    yield sb
    sb.stop()


@pytest.fixture(scope="session")
def local_sinks():  # type: ignore[no-untyped-def]
    from payops.sandbox.sinks import start_sinks

    s = start_sinks(http_port=0, smtp_port=0)
    yield s
    s.stop()


@dataclass
class PayopsEnv:
    settings: Settings
    sandbox: object
    sinks: object
    output_dir: Path
    db_url: str


@pytest.fixture()
def payops_env(migrated_db: str, stripe_sandbox, local_sinks, tmp_path: Path,  # type: ignore[no-untyped-def]
               monkeypatch: pytest.MonkeyPatch) -> Iterator[PayopsEnv]:
    """A seeded world: sandbox (demo seed, reset), ledger seeded, sinks emptied, env pointing at all."""
    from payops.db.seed import seed_ledger

    stripe_sandbox.reset("demo")
    stripe_sandbox.clear_faults()
    local_sinks.clear()
    out = tmp_path / "outputs"
    env = {
        "PAYOPS_STRIPE_API_BASE": stripe_sandbox.url,
        "STRIPE_FALLBACK_SECRET_KEY": "rk_test_payops_fallback",
        "STRIPE_SECRET_KEY": "sk_test_payops_platform",
        "PAYOPS_OUTPUT_DIR": str(out),
        "PAYOPS_SLACK_WEBHOOK_URL": local_sinks.slack_webhook_url,
        "PAYOPS_SMTP_HOST": local_sinks.smtp_host,
        "PAYOPS_SMTP_PORT": str(local_sinks.smtp_port),
        "PAYOPS_ENVIRONMENT": "test",
        "PAYOPS_OPERATOR_ID": OPERATOR,
        "PAYOPS_STRIPE_MAX_RETRIES": "3",
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("PAYOPS_FAULT_KILL_AT", raising=False)
    settings = get_settings(fresh=True)
    seed_ledger(settings)
    yield PayopsEnv(settings, stripe_sandbox, local_sinks, out, migrated_db)
    get_settings(fresh=True)
