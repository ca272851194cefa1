"""Row seals: the state of every ledger row that matters, bound into the audit hash chain.

A table opts in with one line, ``__table_args__ = (..., sealed())``.  Whenever a write changes,
adds or deletes a row of such a table, the audit entry written in the same transaction carries the
row's *seal* (``"table:key" -> SHA-256 of its canonical state``, or None once deleted), and that
entry's hash covers it.  ``verify`` then replays the seals along the chain and compares them with
the rows as they are, so a row edited, deleted or inserted behind the ledger's back is named.
Rows are read back raw and decoded here, so that a malformed value is a finding, not a traceback.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import JSON, Column, DateTime, Integer, Select, String, Table, event, inspect, select, type_coerce
from sqlalchemy.orm import Session
from sqlalchemy.types import NullType, TypeEngine

from .encoding import canonical_json, iso_utc

SEAL_INFO = "naiad_seal"
_TOUCHED = "naiad_touched_rows"
READ_BATCH = 500
_SQLITE_MOMENT = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(\.\d{6})?")


@dataclass(frozen=True)
class SealSpec:
    """How a sealed table is sealed: every column but ``unsealed`` ones (e.g. a polled timestamp)."""

    unsealed: frozenset[str] = frozenset()


def sealed(*, unsealed: tuple[str, ...] = ()) -> dict[str, Any]:
    """The ``__table_args__`` entry that binds a table's rows into the audit chain."""
    return {"info": {SEAL_INFO: SealSpec(frozenset(unsealed))}}


class MalformedRow(Exception):
    """A stored value that the ledger could never have written (raised while decoding a raw row)."""

    def __init__(self, column: str) -> None:
        super().__init__(column)
        self.column = column


def sealed_tables(tables: Iterable[Table]) -> list[Table]:
    return [t for t in tables if SEAL_INFO in t.info]


def sealed_columns(table: Table) -> list[Column[Any]]:
    spec: SealSpec = table.info[SEAL_INFO]
    return [c for c in table.columns if c.name not in spec.unsealed]


def row_key(table: Table, values: Mapping[Any, Any]) -> str:
    """``table:key`` naming one row, the key being its primary key values joined by '/'."""
    return f"{table.name}:" + "/".join(str(values[c.name]) for c in table.primary_key.columns)


def digest(table: Table, values: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of the canonical JSON of the row's sealed columns."""
    state = {
        c.name: iso_utc(values[c.name]) if isinstance(values[c.name], dt.datetime) else values[c.name]
        for c in sealed_columns(table)
    }
    return hashlib.sha256(canonical_json(state).encode("utf-8")).hexdigest()


# -- while writing: which sealed rows this transaction touched ------------------------------------


def track(session: Session) -> None:
    """Collect, at every flush, the sealed rows the session adds, deletes or changes."""
    session.info[_TOUCHED] = {}
    event.listen(session, "before_flush", _collect)


def _collect(session: Session, flush_context: Any, instances: Any) -> None:
    touched: dict[int, tuple[Any, bool]] = session.info[_TOUCHED]
    for obj in session.new:
        if SEAL_INFO in _table(obj).info:
            touched[id(obj)] = (obj, False)
    for obj in session.deleted:
        if SEAL_INFO in _table(obj).info:
            touched[id(obj)] = (obj, True)
    for obj in session.dirty:
        table = _table(obj)
        if SEAL_INFO in table.info and id(obj) not in touched:
            state = inspect(obj)
            if any(state.attrs[c.key].history.has_changes() for c in sealed_columns(table)):
                touched[id(obj)] = (obj, False)


def _table(obj: Any) -> Table:
    table = inspect(obj).mapper.local_table
    assert isinstance(table, Table)
    return table


def take_seals(session: Session) -> dict[str, str | None]:
    """Flush, then the seals of every sealed row touched since the last call (None: deleted)."""
    session.flush()
    touched: dict[int, tuple[Any, bool]] = session.info[_TOUCHED]
    seals: dict[str, str | None] = {}
    for obj, deleted in touched.values():
        table = _table(obj)
        values = {c.name: getattr(obj, c.key) for c in table.columns}
        seals[row_key(table, values)] = None if deleted else digest(table, values)
    touched.clear()
    return seals


def unsealed_rows(session: Session) -> list[str]:
    """Rows changed since the last audit entry of the transaction: a writer forgot to audit them."""
    session.flush()
    touched: dict[int, tuple[Any, bool]] = session.info[_TOUCHED]
    return [row_key(_table(o), {c.name: getattr(o, c.key) for c in _table(o).columns}) for o, _ in touched.values()]


# -- while verifying: rows read raw and decoded strictly ------------------------------------------


def raw_select(table: Table) -> Select[*tuple[Any, ...]]:
    """Every column of ``table`` as the driver returns it, with no type processing that could raise."""
    return select(*(type_coerce(c, NullType()).label(c.name) for c in table.columns))


def decode(table: Table, raw: Mapping[Any, Any]) -> dict[str, Any]:
    """The row's values as the ORM would load them; ``MalformedRow`` names the first bad column."""
    values = {}
    for name, convert, nullable in _decoders(table):
        value = raw[name]
        try:
            if value is not None:
                values[name] = convert(value)
            elif nullable:
                values[name] = None
            else:
                raise ValueError(name)
        except (ValueError, TypeError, OverflowError) as exc:
            raise MalformedRow(name) from exc
    return values


@functools.cache
def _decoders(table: Table) -> tuple[tuple[str, Callable[[Any], Any], bool], ...]:
    return tuple((c.name, _decoder(c.type), bool(c.nullable)) for c in table.columns)


def _decoder(kind: TypeEngine[Any]) -> Callable[[Any], Any]:
    if isinstance(kind, DateTime) or isinstance(getattr(kind, "impl", None), DateTime):
        return _moment
    if isinstance(kind, JSON):
        return _json
    if isinstance(kind, Integer):
        return _integer
    if isinstance(kind, String):
        return _string
    return lambda value: value


def _integer(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(value)
    return value


def _string(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(value)
    value.encode("utf-8")  # a lone surrogate raises: it could be neither hashed nor shown
    return value


def _moment(value: Any) -> dt.datetime:
    if isinstance(value, str):  # SQLite: exactly the text SQLAlchemy writes, UTC without an offset
        if not _SQLITE_MOMENT.fullmatch(value):
            raise ValueError(value)
        value = dt.datetime.fromisoformat(value)
    if not isinstance(value, dt.datetime):
        raise TypeError(value)
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def _json(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        value = value.decode("utf-8")
    if isinstance(value, str):
        value = json.loads(value, parse_constant=_refuse_constant)
    canonical_json(value).encode("utf-8")  # what the driver decoded must be JSON that can be hashed
    return value


def _refuse_constant(name: str) -> Any:
    raise ValueError(name)
