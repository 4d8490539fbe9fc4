"""The one session factory, and schema management through Alembic.

``PAYOPS_DATABASE_URL`` selects the database (SQLite file under ``var/`` by default; PostgreSQL via
psycopg 3: ``postgresql+psycopg://user@host/db``). Every command that needs the schema calls
:func:`require_schema`, which says clearly when migrations have not been applied.

:func:`session_scope` is an ORM transaction; :func:`connection_scope` a Core one (no ``sqlalchemy.orm``
import: what the quick commands use with :mod:`payops.db.tables`).
"""

from __future__ import annotations

import ast
import functools
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url

from payops.config import Settings, get_settings
from payops.errors import ConfigError

if TYPE_CHECKING:  # the ORM is imported by session_scope, not here: `payops runs list` and `approve` use Core
    from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
_engines: dict[str, Engine] = {}
_engines_lock = threading.Lock()
_schema_ok: set[str] = set()


def normalize_url(url: str) -> str:
    """Accept ``postgresql://`` and ``postgres://`` and use psycopg 3 for them."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://"):]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    return url


def _sqlite_pragmas(dbapi_conn: object, _record: object) -> None:
    cur = dbapi_conn.cursor()  # type: ignore[attr-defined]
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def get_engine(url: str | None = None) -> Engine:
    """One engine per URL per process."""
    url = normalize_url(url or get_settings().database_url)
    with _engines_lock:
        eng = _engines.get(url)
        if eng is None:
            parsed = make_url(url)
            if parsed.get_backend_name() == "sqlite":
                if parsed.database and parsed.database != ":memory:" and not parsed.database.startswith("file:"):
                    from payops.filemodes import private_sqlite_file

                    private_sqlite_file(Path(parsed.database))  # owner-only: it holds who approved what
                eng = create_engine(url, connect_args={"timeout": 30})
                event.listen(eng, "connect", _sqlite_pragmas)
            else:
                eng = create_engine(url, pool_pre_ping=True)
            _engines[url] = eng
        return eng


def dispose_engines() -> None:
    with _engines_lock:
        for eng in _engines.values():
            eng.dispose()
        _engines.clear()
        _schema_ok.clear()


def _alembic_config(url: str):  # type: ignore[no-untyped-def]
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def head_revision() -> str:
    """The newest migration's revision: read from the scripts (:func:`_script_heads`) when they form one
    plain chain, else from Alembic (which also explains a branched history)."""
    heads = _script_heads()
    if heads is not None and len(heads) == 1:
        return next(iter(heads))
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(_alembic_config("sqlite://"))
    head = script.get_current_head()
    assert head is not None
    return head


_FIRST_DEF = re.compile(r"^(?:@|def |async def |class )", re.M)
_REVISION_LINE = re.compile(r"^(?:revision|down_revision|branch_labels|depends_on)\b", re.M)


def _header(source: str) -> ast.Module:
    """The top-level statements of a migration script before its first function or class — where Alembic's
    revision variables are — parsed without the (long) ``upgrade``/``downgrade`` bodies: the same
    assignments as the whole script's. The whole script is parsed when a revision variable is assigned
    after the first definition, or when the cut does not parse on its own."""
    cut = _FIRST_DEF.search(source)
    if cut is not None and not _REVISION_LINE.search(source, cut.start()):
        try:
            return ast.parse(source[:cut.start()])
        except SyntaxError:
            pass
    return ast.parse(source)


@functools.cache
def _script_heads() -> frozenset[str] | None:
    """The revisions no migration script names as its ``down_revision`` — read with ``ast`` instead of
    importing Alembic (which pulls in Mako, Pygments and every dialect: most of a quick command's start-up).
    None when a script uses anything but literal ``revision`` / ``down_revision`` (branch labels,
    dependencies): Alembic decides then."""
    revisions: set[str] = set()
    downs: set[str] = set()
    for path in sorted((MIGRATIONS_DIR / "versions").glob("*.py")):
        values: dict[str, object] = {}
        for node in _header(path.read_text(encoding="utf-8")).body:
            target = node.targets[0] if isinstance(node, ast.Assign) and len(node.targets) == 1 else (
                node.target if isinstance(node, ast.AnnAssign) else None)
            if isinstance(target, ast.Name) and node.value is not None:  # type: ignore[union-attr]
                try:
                    values[target.id] = ast.literal_eval(node.value)  # type: ignore[union-attr]
                except ValueError:
                    values[target.id] = ...
        revision, down = values.get("revision"), values.get("down_revision")
        if not isinstance(revision, str) or values.get("branch_labels") or values.get("depends_on"):
            return None
        if isinstance(down, str):
            downs.add(down)
        elif isinstance(down, tuple | list) and all(isinstance(d, str) for d in down):
            downs.update(down)
        elif down is not None:
            return None
        revisions.add(revision)
    return frozenset(revisions - downs)


def current_revision(url: str | None = None) -> str | None:
    """The revision in force (``alembic_version``), None before the first migration."""
    with get_engine(url).connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        rows = list(conn.execute(text("SELECT version_num FROM alembic_version")).scalars())
        if len(rows) <= 1:
            return rows[0] if rows else None
        from alembic.runtime.migration import MigrationContext  # several heads: Alembic's own error

        return MigrationContext.configure(conn).get_current_revision()


def upgrade(url: str | None = None, revision: str = "head") -> str:
    """Apply migrations (``payops db upgrade``). Returns the revision now in force."""
    from alembic import command

    url = normalize_url(url or get_settings().database_url)
    eng = get_engine(url)
    cfg = _alembic_config(url)
    with eng.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
    _schema_ok.discard(url)
    rev = current_revision(url)
    return rev or ""


def require_schema(url: str | None = None) -> Engine:
    """The engine, after checking the migrations are applied; a clear ConfigError otherwise."""
    url = normalize_url(url or get_settings().database_url)
    eng = get_engine(url)
    if url in _schema_ok:
        return eng
    try:
        rev = current_revision(url)
    except Exception as exc:
        raise ConfigError(f"cannot reach the database {make_url(url).render_as_string(hide_password=True)}: "
                          f"{exc.__class__.__name__}: {str(exc).splitlines()[0]}") from exc
    head = head_revision()
    if rev is None:
        raise ConfigError(
            f"the database {make_url(url).render_as_string(hide_password=True)} has no payops schema: "
            "run `payops db upgrade` first"
        )
    if rev != head:
        raise ConfigError(
            f"the database schema is at revision {rev}, payops needs {head}: run `payops db upgrade`"
        )
    _schema_ok.add(url)
    return eng


_sessionmakers: dict[int, sessionmaker[Session]] = {}


@contextmanager
def session_scope(settings: Settings | None = None, *, url: str | None = None) -> Iterator[Session]:
    """A transaction: committed on success, rolled back (and re-raised) on any error."""
    from sqlalchemy.orm import sessionmaker

    eng = require_schema(url or (settings or get_settings()).database_url)
    maker = _sessionmakers.get(id(eng))
    if maker is None:
        maker = _sessionmakers[id(eng)] = sessionmaker(eng, expire_on_commit=False)
    session = maker()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


@contextmanager
def connection_scope(settings: Settings | None = None, *, url: str | None = None) -> Iterator[Connection]:
    """:func:`session_scope` without the ORM: a Core connection in a transaction, committed on success,
    rolled back (and re-raised) on any error — for the quick commands' queries on :mod:`payops.db.tables`."""
    eng = require_schema(url or (settings or get_settings()).database_url)
    with eng.begin() as conn:
        yield conn


def table_names(url: str | None = None) -> list[str]:
    return sorted(inspect(get_engine(url)).get_table_names())
