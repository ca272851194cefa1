"""What migrations that (re)seal rows share: the rows of a sealed table bound into the audit chain as
they are at that revision, in ``ledger.sealed`` entries of at most ``PER_ENTRY`` rows (station
``migration``).  Used by revision 0002 (every row) and 0003 (operators, whose columns changed).

Tables are described by each migration as they are at its revision; only ``audit_log`` (with ``seals``,
from 0002 on) and ``audit_head`` are defined here.  A row that cannot be read is left unsealed, so that
``verify`` reports it.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa

from provisioning.ledger import audit as chain
from provisioning.ledger import seals
from provisioning.ledger.models import UTCDateTime

PER_ENTRY = 500
STATION = "migration"
_meta = sa.MetaData()

AUDIT_LOG = sa.Table(
    "audit_log",
    _meta,
    sa.Column("id", sa.Integer(), primary_key=True),
    sa.Column("at", UTCDateTime()),
    sa.Column("station", sa.String()),
    sa.Column("operator", sa.String(), nullable=True),
    sa.Column("action", sa.String()),
    sa.Column("subject", sa.String()),
    sa.Column("details", sa.JSON()),
    sa.Column("seals", sa.JSON(), nullable=True),
    sa.Column("prev_hash", sa.String()),
    sa.Column("hash", sa.String()),
)
AUDIT_HEAD = sa.Table(
    "audit_head",
    _meta,
    sa.Column("id", sa.Integer(), primary_key=True),
    sa.Column("entry_id", sa.Integer()),
    sa.Column("hash", sa.String()),
)


def reseal(connection: sa.Connection, tables: tuple[sa.Table, ...], revision: str) -> None:
    """Seal every readable row of ``tables`` as it is now; no entry when there are no rows."""
    pending: dict[str, str | None] = {}
    for table in tables:
        for raw in connection.execute(seals.raw_select(table).order_by(*table.primary_key.columns)).mappings():
            try:
                values = seals.decode(table, raw)
            except seals.MalformedRow:
                continue
            pending[seals.row_key(table, values)] = seals.digest(table, values)
            if len(pending) == PER_ENTRY:
                _append(connection, pending, revision)
                pending = {}
    if pending:
        _append(connection, pending, revision)


def _append(connection: sa.Connection, row_seals: dict[str, str | None], revision: str) -> None:
    head = connection.execute(sa.select(AUDIT_HEAD).where(AUDIT_HEAD.c.id == 1).with_for_update()).mappings().one()
    entry_id = head["entry_id"] + 1
    fields: dict[str, Any] = {
        "at": dt.datetime.now(dt.UTC),
        "station": STATION,
        "operator": None,
        "action": "ledger.sealed",
        "subject": "ledger",
        "details": {"revision": revision, "rows": len(row_seals)},
        "seals": row_seals,
    }
    digest = chain.entry_hash(head["hash"], entry_id=entry_id, **fields)
    connection.execute(AUDIT_LOG.insert().values(id=entry_id, prev_hash=head["hash"], hash=digest, **fields))
    connection.execute(AUDIT_HEAD.update().where(AUDIT_HEAD.c.id == 1).values(entry_id=entry_id, hash=digest))
