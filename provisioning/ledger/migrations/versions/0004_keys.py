"""Payment keys: the registry of Base Derivation Keys (label, BDK ID, KCV, origin, custodians; never a key)
with the counter Initial Key IDs are allocated from.

New tables only: no existing row changes, so nothing is resealed.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 02:20:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _utc() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "bdks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("label", sa.String(64), nullable=False),
        sa.Column("bdk_id", sa.String(8), nullable=False),
        sa.Column("kcv", sa.String(10), nullable=False),
        sa.Column("origin", sa.String(16), nullable=False),
        sa.Column("custodians", sa.JSON(), nullable=False),
        sa.Column("station_id", sa.Integer(), nullable=False),
        sa.Column("operator", sa.String(64), nullable=True),
        sa.Column("registered", _utc(), nullable=False),
        sa.Column("last_derivation_id", sa.BigInteger(), server_default="0", nullable=False),
        sa.CheckConstraint("origin IN ('ceremony', 'generated')", name=op.f("ck_bdks_origin")),
        sa.CheckConstraint(
            "last_derivation_id BETWEEN 0 AND 4294967295", name=op.f("ck_bdks_derivation_range")
        ),
        sa.ForeignKeyConstraint(["station_id"], ["stations.id"], name=op.f("fk_bdks_station_id_stations")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bdks")),
        sa.UniqueConstraint("label", name=op.f("uq_bdks_label")),
        sa.UniqueConstraint("bdk_id", name=op.f("uq_bdks_bdk_id")),
    )


def downgrade() -> None:
    op.drop_table("bdks")
