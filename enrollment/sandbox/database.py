"""The sandbox's SQLite database: WAL so views read while a request writes, and one writer at a time.

The file holds the sandbox platform's private keys (tls.py), so it and its ``-wal``/``-shm`` files are made
owner-only (0600) and a more open existing file is narrowed.  One sandbox uses a file at a time: an exclusive
lock on ``<db>.lock``, ``<db>`` resolved (symlinks followed), refuses a second one (:class:`DatabaseInUse`).
A file the sandbox did not make (no :data:`APPLICATION_ID`) is refused rather than rewritten
(:class:`NotASandboxDatabase`).  :meth:`Database.close` waits for sessions under way (a handler thread can
outlive the server) before it releases the file and its lock.
Writes are serialised by a lock around each write transaction, and each begins ``IMMEDIATE`` (it takes the
file's write lock before reading, so it waits on the busy timeout instead of failing on a stale snapshot).
SQLite keeps no time zone: times are written in UTC and every loaded row's times are made aware UTC again.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import sqlite3
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, DateTime, create_engine, event
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from .models import Base

LOG = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 30_000
APPLICATION_ID = 0x4E414944
"""``PRAGMA application_id`` of a sandbox database ("NAID")."""
OWNER_ONLY = 0o600
IMMEDIATE = "naiad_immediate"
"""Execution option of the write sessions' connections: their transactions begin IMMEDIATE."""


class DatabaseInUse(Exception):
    """Another sandbox holds the database's lock file."""


class DatabaseClosed(Exception):
    """A session was asked for after the sandbox began to stop."""


class NotASandboxDatabase(Exception):
    """The file is an SQLite database (or something else) the sandbox did not make."""


class Database:
    """The engine over one SQLite file, its schema created on opening; :meth:`close` releases the file."""

    def __init__(self, path: Path) -> None:
        path = Path(path).resolve()  # the file, not the spelling: a symlink or `..` takes the same lock
        self._lock_fd = _lock(path)
        try:
            os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, OWNER_ONLY))  # a new file: owner-only
            _mark(path)  # before any change to a file that may not be the sandbox's
            _owner_only(path)
            self.engine = create_engine(f"sqlite:///{path}", pool_size=8, max_overflow=16)
            event.listen(self.engine, "connect", _on_connect)
            event.listen(self.engine, "begin", _on_begin)
            self._writer = self.engine.execution_options(**{IMMEDIATE: True})
            self._write_lock = threading.Lock()
            self._busy = threading.Condition()
            self._sessions, self._closing = 0, False
            Base.metadata.create_all(self.engine)
        except BaseException:
            os.close(self._lock_fd)
            raise

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A session whose transaction commits when the block ends and rolls back when it raises."""
        with (
            self._counted(),
            self._write_lock,
            Session(self._writer, expire_on_commit=False) as session,
            session.begin(),
        ):
            yield session

    @contextmanager
    def read(self) -> Iterator[Session]:
        with self._counted(), Session(self.engine) as session, session.begin():
            yield session

    def close(self, wait: float = 0.0) -> bool:
        """Release the file once no session is under way (a handler thread may outlive the server's), waiting up
        to ``wait`` seconds for them; new sessions are refused from now on (DatabaseClosed).  False, and the
        file and its lock kept, if sessions are still under way then."""
        with self._busy:
            self._closing = True
            if not self._busy.wait_for(lambda: self._sessions == 0, wait):
                return False
        self.engine.dispose()
        os.close(self._lock_fd)
        return True

    @contextmanager
    def _counted(self) -> Iterator[None]:
        """Count a session under way for :meth:`close`, or refuse it once the database is closing."""
        with self._busy:
            if self._closing:
                raise DatabaseClosed()
            self._sessions += 1
        try:
            yield
        finally:
            with self._busy:
                self._sessions -= 1
                self._busy.notify_all()


def _lock(path: Path) -> int:
    """The descriptor of ``<path>.lock``, locked exclusively for this sandbox (DatabaseInUse if another has it)."""
    fd = os.open(f"{path}.lock", os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), OWNER_ONLY)
    try:
        _lock_exclusively(fd)
    except OSError:  # held by another process (BlockingIOError on POSIX, EACCES/EDEADLOCK on Windows)
        os.close(fd)
        raise DatabaseInUse(str(path)) from None
    return fd


def _lock_exclusively(fd: int) -> None:
    """Take the lock file without waiting: flock on POSIX, a byte-range lock on Windows (an installer's laptop)."""
    if sys.platform == "win32":
        import msvcrt

        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
    else:
        import fcntl

        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


def _owner_only(path: Path) -> None:
    """Make ``path`` and its -wal/-shm files readable by their owner only."""
    for name in (str(path), f"{path}-wal", f"{path}-shm"):
        try:
            mode = os.stat(name).st_mode & 0o777
        except FileNotFoundError:
            continue
        if mode & 0o077:
            LOG.warning("sandbox database file %s was readable by others (mode %o): made owner-only", name, mode)
            os.chmod(name, OWNER_ONLY)


def _mark(path: Path) -> None:
    """Mark a new (empty) file as a sandbox database; refuse a non-empty file that lacks the mark."""
    connection = sqlite3.connect(path)
    try:
        marked = connection.execute("PRAGMA application_id").fetchone()[0]
        if marked == APPLICATION_ID:
            return
        if marked or connection.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
            raise NotASandboxDatabase(str(path))
        connection.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        connection.commit()
    except sqlite3.OperationalError:
        raise
    except sqlite3.DatabaseError:  # not a database at all
        raise NotASandboxDatabase(str(path)) from None
    finally:
        connection.close()


def _on_connect(dbapi_connection: Any, connection_record: Any) -> None:
    dbapi_connection.isolation_level = None  # _on_begin emits BEGIN itself
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
    finally:
        cursor.close()


def _on_begin(connection: Connection) -> None:
    immediate = connection.get_execution_options().get(IMMEDIATE, False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


@event.listens_for(Base, "load", propagate=True)
@event.listens_for(Base, "refresh", propagate=True)
def _aware_times(target: Any, *args: Any) -> None:
    """Give a loaded row's naive times (as SQLite returns them) back their UTC zone."""
    for prop in target.__mapper__.column_attrs:
        value = target.__dict__.get(prop.key)
        if isinstance(value, dt.datetime) and value.tzinfo is None and isinstance(prop.columns[0].type, DateTime):
            set_committed_value(target, prop.key, value.replace(tzinfo=dt.UTC))
