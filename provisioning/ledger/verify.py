"""``verify``: walk the audit chain, then check every sealed row against the state the chain recorded.

Everything is read raw (no ORM type processing) and decoded strictly, in one snapshot, so that
appends by other stations during the walk are not mistaken for tampering and a malformed value
(an unparseable time, text that is not JSON, a NULL where the ledger always writes a value) is
reported against its table and row instead of raising.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Table
from sqlalchemy.orm import Session

from . import seals
from .audit import GENESIS_HASH, stored_entry_hash
from .models import AuditEntry, AuditHeadRow, Base
from .records import AuditHead, ChainProblem, VerifyReport

LOG = logging.getLogger(__name__)

_LOG_TABLE = Base.metadata.tables[AuditEntry.__tablename__]
_HEAD_TABLE = Base.metadata.tables[AuditHeadRow.__tablename__]


class _Found(Exception):
    """The first problem found; carries the report (control flow out of the nested walk)."""

    def __init__(self, report: VerifyReport) -> None:
        super().__init__(report.problem)
        self.report = report


@dataclass
class _Walk:
    head: AuditHead
    anchor: AuditHead | None
    entries: int = 0
    rows: int = 0
    # "table:key" -> (seal, id of the entry that set it), as of the end of the chain
    sealed: dict[str, tuple[str | None, int]] = field(default_factory=dict)

    def fail(
        self, problem: ChainProblem, entry_id: int | None, table: str = "audit_log", row: str | None = None
    ) -> _Found:
        row = str(entry_id) if row is None and table == "audit_log" else row
        LOG.warning("ledger verify: %s row %s: %s", table, row, problem.name)
        return _Found(VerifyReport(False, self.entries, entry_id, problem, self.head, table, row, self.rows))


def verify(session: Session, anchor: AuditHead | None = None) -> VerifyReport:
    """The first thing wrong in the ledger, or ok.  Run it in a snapshot transaction."""
    try:
        walk = _Walk(_read_head(session), anchor)
        _walk_chain(session, walk)
        for table in seals.sealed_tables(Base.metadata.sorted_tables):
            _check_rows(session, table, walk)
        _check_deleted(walk)
    except _Found as found:
        return found.report
    return VerifyReport(True, walk.entries, None, None, walk.head, rows=walk.rows)


def _read_head(session: Session) -> AuditHead:
    raw = session.execute(seals.raw_select(_HEAD_TABLE).where(_HEAD_TABLE.c.id == 1)).mappings().one_or_none()
    bad = _Found(VerifyReport(False, 0, None, ChainProblem.MALFORMED, None, "audit_head", "1"))
    if raw is None:
        raise bad
    try:
        values = seals.decode(_HEAD_TABLE, raw)
    except seals.MalformedRow:
        raise bad from None
    return AuditHead(entry_id=values["entry_id"], hash=values["hash"])


def _walk_chain(session: Session, walk: _Walk) -> None:
    anchor = walk.anchor
    prev_hash, last_id = GENESIS_HASH, 0
    anchor_seen = anchor is None or anchor.entry_id == 0
    query = seals.raw_select(_LOG_TABLE).order_by(_LOG_TABLE.c.id)
    for raw in session.execute(query, execution_options={"yield_per": seals.READ_BATCH}).mappings():
        entry_id = raw["id"]
        try:
            entry = seals.decode(_LOG_TABLE, raw)
            row_seals = _seals_of(entry["seals"])
        except seals.MalformedRow:
            raise walk.fail(ChainProblem.MALFORMED, entry_id) from None
        if stored_entry_hash(entry) != entry["hash"]:
            raise walk.fail(ChainProblem.EDITED, entry_id)
        if entry["prev_hash"] != prev_hash:
            raise walk.fail(ChainProblem.BROKEN_LINK, entry_id)
        if anchor is not None and entry_id == anchor.entry_id:
            if entry["hash"] != anchor.hash:
                raise walk.fail(ChainProblem.ANCHOR_MISMATCH, entry_id)
            anchor_seen = True
        for key, seal in row_seals.items():
            walk.sealed[key] = (seal, entry_id)
        prev_hash, last_id, walk.entries = entry["hash"], entry_id, walk.entries + 1
    head = walk.head
    if last_id != head.entry_id or prev_hash != head.hash:
        first_bad = min(last_id, head.entry_id) + 1 if last_id != head.entry_id else last_id
        raise walk.fail(ChainProblem.HEAD_MISMATCH, first_bad)
    if not anchor_seen:
        raise walk.fail(ChainProblem.ANCHOR_MISSING, last_id + 1)


def _seals_of(value: Any) -> Mapping[str, str | None]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and (v is None or isinstance(v, str)) for k, v in value.items()
    ):
        raise seals.MalformedRow("seals")
    return value


def _check_rows(session: Session, table: Table, walk: _Walk) -> None:
    query = seals.raw_select(table).order_by(*table.primary_key.columns)
    for raw in session.execute(query, execution_options={"yield_per": seals.READ_BATCH}).mappings():
        key = seals.row_key(table, raw)
        row = key.partition(":")[2]
        recorded, entry_id = walk.sealed.pop(key, (None, None))
        try:
            values = seals.decode(table, raw)
        except seals.MalformedRow:
            raise walk.fail(ChainProblem.MALFORMED, entry_id, table.name, row) from None
        if recorded is None:
            raise walk.fail(ChainProblem.ROW_UNRECORDED, entry_id, table.name, row)
        if seals.digest(table, values) != recorded:
            raise walk.fail(ChainProblem.ROW_EDITED, entry_id, table.name, row)
        walk.rows += 1


def _check_deleted(walk: _Walk) -> None:
    missing = [(entry_id, key) for key, (seal, entry_id) in walk.sealed.items() if seal is not None]
    if missing:
        entry_id, key = min(missing)
        table, _sep, row = key.partition(":")
        raise walk.fail(ChainProblem.ROW_DELETED, entry_id, table, row)
