"""Engines, sessions and schema migrations of the ledger database.

SQLite (the embedded default) runs in WAL mode with foreign keys on and a busy timeout, and this
module emits BEGIN itself so that writers can take the write lock up front (``BEGIN IMMEDIATE``)
instead of failing half-way when another writer got there first.  Opening a database migrates it
to the newest schema with Alembic, configured in code: no ``alembic.ini`` is needed at run time.
Alembic (which loads every SQLAlchemy dialect) is imported only when the stored revision, read with
a plain query, is not ``HEAD_REVISION``: opening an up-to-date ledger does not pay for it.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, create_engine, event, func, inspect, select, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, SQLAlchemyError
from sqlalchemy.orm import Session
from sqlalchemy.pool import StaticPool

from i18n import _
from terminal.dirs import data_dir

from .errors import InvalidLedgerUrl, LedgerDriverMissing, LedgerError, LedgerSchemaTooNew, LedgerUnavailable

if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

LOG = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
DEFAULT_FILENAME = "ledger.sqlite"
# The newest script in migrations/versions (a test keeps the two equal).
HEAD_REVISION = "0007"
VERSION_TABLE = "alembic_version"
BUSY_TIMEOUT_MS = 30_000
"""How long a SQLite statement waits for another writer, and a PostgreSQL one for a lock, before giving up."""
STATEMENT_TIMEOUT_MS = 300_000
"""The longest one PostgreSQL statement may run: a stuck line never holds a station forever."""
CONNECT_TIMEOUT_S = 10
# Key of the PostgreSQL advisory lock that serialises migrations of one database across stations.
MIGRATION_LOCK_KEY = 0x4E414941_44_4C_44  # "NAIADLD"
_SQLITE_BEGIN_OPTION = "naiad_sqlite_begin"
_PROCESS_MIGRATION_LOCK = threading.Lock()


def default_path() -> Path:
    """``ledger.sqlite`` in Naiad's data directory: $NAIAD_DATA_DIR, else the platform's user data dir."""
    return data_dir() / DEFAULT_FILENAME


def default_url() -> str:
    return f"sqlite:///{default_path()}"


def redact_url(url: str | URL) -> str:
    """The URL with its password hidden, fit for errors and logs, however malformed it is.

    Parsed by hand: a password holding an unescaped ``@`` or ``/`` must not leak through a parser's
    idea of where the host starts.  Text that is not a URL is shown with the same rules (whatever
    precedes its last ``@`` after a ``:`` is hidden; ``USER:SECRET`` alone hides what follows the colon),
    so a typo stays recognisable; a ``password=`` anywhere, query or libpq keywords, is hidden too."""
    if isinstance(url, URL):
        url = url.render_as_string(hide_password=True)  # then the string rules, for a ?password= in the query
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    netloc, slash, path = rest.partition("/")
    if "@" in rest:  # credentials may run past the first "/" when the password holds one
        credentials, _, after = rest.rpartition("@")
        netloc, slash, path = after.partition("/")
        netloc = f"{credentials.split(':', 1)[0]}:***@{netloc}"
    elif not sep and netloc.partition(":")[2]:  # "naiad:s3cret": a user and password with nothing around them
        netloc = f"{netloc.partition(':')[0]}:***"
    shown = f"{scheme}{sep}{netloc}{slash}{path}"
    return re.sub(r"(password=)[^&\s]*", r"\1***", shown, flags=re.IGNORECASE)


def parse_url(url: str) -> URL:
    try:
        return make_url(url)
    except (ArgumentError, ValueError) as exc:
        raise InvalidLedgerUrl(url=redact_url(url)) from exc


# Python packages that provide SQLAlchemy's drivers, by the module a missing driver failed to import.
_DRIVER_PACKAGES = {
    "psycopg": "naiad[postgresql]",
    "psycopg2": "psycopg2-binary",
    "MySQLdb": "mysqlclient",
    "pymysql": "PyMySQL",
    "pyodbc": "pyodbc",
    "oracledb": "oracledb",
    "pg8000": "pg8000",
}


def _driver_missing(parsed: URL, exc: Exception) -> LedgerError:
    """A missing driver for a database SQLAlchemy knows, else the URL names no database at all."""
    if isinstance(exc, ImportError):
        module = (exc.name or parsed.get_driver_name()).split(".")[0]
        package = _DRIVER_PACKAGES.get(module, module)
    else:
        try:  # the backend without the driver: is it a database SQLAlchemy has a dialect for?
            URL.create(parsed.get_backend_name()).get_dialect()
        except (ArgumentError, ImportError):
            return InvalidLedgerUrl(url=redact_url(parsed))
        package = parsed.get_driver_name()
    return LedgerDriverMissing(url=redact_url(parsed), driver=parsed.get_driver_name(), package=package)


def create_ledger_engine(url: str | URL) -> Engine:
    """An engine for ``url``, with the SQLite connection settings the ledger relies on."""
    parsed = parse_url(str(url)) if isinstance(url, str) else url
    kwargs: dict[str, Any] = {}
    is_sqlite = parsed.get_backend_name() == "sqlite"
    if is_sqlite:
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": BUSY_TIMEOUT_MS / 1000}
        if parsed.database in (None, "", ":memory:"):
            # One shared connection, or every connection would see its own empty database.
            kwargs["poolclass"] = StaticPool
    elif parsed.get_backend_name() == "postgresql" and parsed.get_driver_name() in ("psycopg", "psycopg2"):
        # Another station's stuck transaction (a row lock on a BDK's counter, the chain head) or a dead server
        # must end in LedgerUnavailable, never in a wait without end.
        options = f"-c lock_timeout={BUSY_TIMEOUT_MS} -c statement_timeout={STATEMENT_TIMEOUT_MS}"
        kwargs["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT_S, "options": options}
    try:
        engine = create_engine(parsed, **kwargs)
    except (NoSuchModuleError, ImportError) as exc:
        raise _driver_missing(parsed, exc) from exc
    except ArgumentError as exc:
        raise InvalidLedgerUrl(url=redact_url(parsed)) from exc
    if is_sqlite:
        event.listen(engine, "connect", _sqlite_on_connect)
        event.listen(engine, "begin", _sqlite_on_begin)
    return engine


def _sqlite_on_connect(dbapi_connection: Any, connection_record: Any) -> None:
    # Take transaction control away from the sqlite3 module; _sqlite_on_begin emits BEGIN.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys = ON")
        _switch_to_wal(cursor)
        cursor.execute("PRAGMA synchronous = NORMAL")
    finally:
        cursor.close()


def _switch_to_wal(cursor: Any) -> None:
    """``PRAGMA journal_mode = WAL``, retried while another connection holds the lock.

    SQLite answers the journal-mode switch of a database that others are opening at the same moment with
    SQLITE_BUSY at once, without calling the busy handler; several stations opening one fresh ledger race
    there.  Retry for up to the busy timeout, as any other statement would wait.
    """
    import sqlite3

    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode != sqlite3.SQLITE_BUSY or time.monotonic() >= deadline:
                raise
            time.sleep(0.01)


def _sqlite_on_begin(connection: Connection) -> None:
    mode = connection.get_execution_options().get(_SQLITE_BEGIN_OPTION, "DEFERRED")
    connection.exec_driver_sql(f"BEGIN {mode}")


@contextmanager
def write_session(engine: Engine) -> Iterator[Session]:
    """A session whose transaction commits on success; on SQLite it holds the write lock from BEGIN."""
    with Session(engine, expire_on_commit=False) as session, session.begin():
        # The first connection of the transaction takes the options, before BEGIN is emitted.
        session.connection(execution_options={_SQLITE_BEGIN_OPTION: "IMMEDIATE"})
        yield session


@contextmanager
def read_session(engine: Engine, *, snapshot: bool = False) -> Iterator[Session]:
    """A read-only session; ``snapshot`` makes every query see one moment (REPEATABLE READ)."""
    with Session(engine) as session:
        if snapshot and engine.dialect.name == "postgresql":
            session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
        try:
            yield session
        finally:
            session.rollback()


@contextmanager
def translate_errors(url: str) -> Iterator[None]:
    """Turn database and migration failures into ledger errors (``url`` must be redacted)."""
    try:
        yield
    except DBAPIError as exc:
        if exc.connection_invalidated or _is_unavailable(exc):
            raise LedgerUnavailable(
                url=url, detail=_("the database reported: {reason}", reason=_first_line(exc.orig))
            ) from exc
        raise LedgerError(detail=_("the database reported: {reason}", reason=_first_line(exc.orig))) from exc
    except SQLAlchemyError as exc:
        raise LedgerError(detail=_("the database layer reported: {reason}", reason=_first_line(exc))) from exc


def _is_unavailable(exc: DBAPIError) -> bool:
    # OperationalError: the server went away, the file is locked or unreadable, a timeout.
    from sqlalchemy.exc import InterfaceError, OperationalError

    return isinstance(exc, OperationalError | InterfaceError)


def _first_line(exc: BaseException | None) -> str:
    text = str(exc).strip() if exc is not None else ""
    return text.splitlines()[0] if text else type(exc).__name__


def alembic_config(connection: Connection | None = None) -> Config:
    """The Alembic configuration, built in code, pointing at the package's migration scripts."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The newest schema revision this Naiad ships, as Alembic sees the scripts."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise LedgerError(detail=_("no migration scripts found"))
    return head


def revision_of(connection: Connection) -> str | None:
    """The stored schema revision, read with a plain query (None for a database never migrated)."""
    if not inspect(connection).has_table(VERSION_TABLE):
        return None
    found = connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars().all()
    return found[0] if len(found) == 1 else None


def current_revision(url: str | Engine) -> str | None:
    """The schema revision of the database at ``url`` (None when it was never migrated)."""
    engine = create_ledger_engine(url) if isinstance(url, str) else url
    shown = redact_url(engine.url)
    try:
        with translate_errors(shown), engine.connect() as connection:
            return revision_of(connection)
    finally:
        if isinstance(url, str):
            engine.dispose()


def migrate(engine: Engine) -> str:
    """Bring the database to the newest schema; safe when several stations open it at once.

    Alembic keeps its migration context in module globals, so migrations in one process take a
    process lock first (before the database lock, so that the two cannot deadlock).  A database
    already at ``HEAD_REVISION`` is left alone without importing Alembic (a revision never goes back).
    """
    shown = redact_url(engine.url)
    with translate_errors(shown), engine.connect() as connection:
        if revision_of(connection) == HEAD_REVISION:
            return HEAD_REVISION
    from alembic import command
    from alembic.script import ScriptDirectory
    from alembic.util.exc import CommandError

    try:
        with _PROCESS_MIGRATION_LOCK, translate_errors(shown), engine.connect() as connection:
            connection = connection.execution_options(**{_SQLITE_BEGIN_OPTION: "IMMEDIATE"})
            with connection.begin():
                if engine.dialect.name == "postgresql":
                    connection.execute(select(func.pg_advisory_xact_lock(MIGRATION_LOCK_KEY)))
                found = revision_of(connection)
                scripts = ScriptDirectory.from_config(alembic_config())
                if found is not None and not _known(scripts, found):
                    raise LedgerSchemaTooNew(url=shown, revision=found)
                head = scripts.get_current_head()
                if found != head:
                    LOG.info("migrating ledger %s from %s to %s", shown, found, head)
                    command.upgrade(alembic_config(connection), "head")
                revision = revision_of(connection)
    except CommandError as exc:
        raise LedgerUnavailable(
            url=shown, detail=_("the schema migration failed: {reason}", reason=_first_line(exc))
        ) from exc
    if revision is None:
        raise LedgerUnavailable(url=shown, detail=_("the migration left no schema revision"))
    return revision


def _known(scripts: ScriptDirectory, revision: str) -> bool:
    from alembic.util.exc import CommandError

    try:
        return scripts.get_revision(revision) is not None
    except CommandError:
        return False
