"""Row seals: audit entries carry the digests of the rows they change, and existing rows are sealed.

The rows already in the ledger are bound into the chain as they are now, by ``ledger.sealed``
entries appended at the end of the chain (at most ``PER_ENTRY`` rows each).  What happened to them
before this migration cannot be proven; from here on ``verify`` catches any edit.  A row that
cannot be read is left unsealed, so that ``verify`` reports it.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 23:50:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from provisioning.ledger import seals
from provisioning.ledger.migrations.resealing import reseal
from provisioning.ledger.models import UTCDateTime

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_meta = sa.MetaData()


def _table(name: str, *columns: sa.Column[object], unsealed: tuple[str, ...] = ()) -> sa.Table:
    return sa.Table(name, _meta, *columns, **seals.sealed(unsealed=unsealed))


def _utc(name: str, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, UTCDateTime(), nullable=nullable)


def _text(name: str, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.String(), nullable=nullable)


def _int(name: str, nullable: bool = False, primary_key: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.Integer(), nullable=nullable, primary_key=primary_key)


# The sealed tables as they are at this revision.
SEALED = (
    _table("stations", _int("id", primary_key=True), _text("name"), _text("hostname"), _utc("created")),
    _table("operators", _int("id", primary_key=True), _text("name"), _text("role"), _utc("created")),
    _table(
        "devices",
        sa.Column("serial", sa.String(), primary_key=True),
        _text("model"),
        _utc("first_seen"),
        _utc("last_seen"),
        _text("port_path", nullable=True),
        unsealed=("last_seen",),
    ),
    _table(
        "operations",
        _int("id", primary_key=True),
        _text("device_serial"),
        _int("station_id"),
        _int("operator_id", nullable=True),
        _text("kind"),
        _text("status"),
        _utc("started"),
        _utc("ended", nullable=True),
        sa.Column("result", sa.JSON(), nullable=True),
    ),
)
def upgrade() -> None:
    op.add_column("audit_log", sa.Column("seals", sa.JSON(), nullable=True))
    reseal(op.get_bind(), SEALED, revision)


def downgrade() -> None:
    # Entries that carried seals no longer hash as stored: a downgraded ledger reports them as edited.
    with op.batch_alter_table("audit_log") as batch:
        batch.drop_column("seals")
