"""The sandbox's SQLite database: WAL so views read while a request writes, and one writer at a time.

The sandbox is one process; its writes are serialised by a lock around each write transaction, so concurrent
requests queue instead of failing with "database is locked" (a busy timeout covers anything else on the file).
SQLite keeps no time zone: times are written in UTC and every loaded row's times are made aware UTC again.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, DateTime, create_engine, event
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from .models import Base

BUSY_TIMEOUT_MS = 30_000


class Database:
    """The engine over one SQLite file, its schema created on opening."""

    def __init__(self, path: Path) -> None:
        self.engine = create_engine(f"sqlite:///{path}", pool_size=8, max_overflow=16)
        event.listen(self.engine, "connect", _on_connect)
        event.listen(self.engine, "begin", _on_begin)
        self._write_lock = threading.Lock()
        Base.metadata.create_all(self.engine)

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A session whose transaction commits when the block ends and rolls back when it raises."""
        with self._write_lock, Session(self.engine, expire_on_commit=False) as session, session.begin():
            yield session

    @contextmanager
    def read(self) -> Iterator[Session]:
        with Session(self.engine) as session, session.begin():
            yield session

    def close(self) -> None:
        self.engine.dispose()


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
    connection.exec_driver_sql("BEGIN")


@event.listens_for(Base, "load", propagate=True)
@event.listens_for(Base, "refresh", propagate=True)
def _aware_times(target: Any, *args: Any) -> None:
    """Give a loaded row's naive times (as SQLite returns them) back their UTC zone."""
    for prop in target.__mapper__.column_attrs:
        value = target.__dict__.get(prop.key)
        if isinstance(value, dt.datetime) and value.tzinfo is None and isinstance(prop.columns[0].type, DateTime):
            set_committed_value(target, prop.key, value.replace(tzinfo=dt.UTC))
