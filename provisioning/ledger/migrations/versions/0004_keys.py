"""Payment keys: the registry of Base Derivation Keys (label, BDK ID, KCV, origin, custodians; never a key)
with the counter Initial Key IDs are allocated from, the Initial Key IDs issued, the injections recorded,
and the inventory of units the line is authorised to key.

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
    op.create_table(
        "initial_key_ids",
        sa.Column("initial_key_id", sa.String(16), nullable=False),
        sa.Column("bdk_label", sa.String(64), nullable=False),
        sa.Column("derivation_id", sa.BigInteger(), nullable=False),
        sa.Column("serial", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("station_id", sa.Integer(), nullable=False),
        sa.Column("operator", sa.String(64), nullable=True),
        sa.Column("allocated", _utc(), nullable=False),
        sa.Column("ended", _utc(), nullable=True),
        sa.Column("reason", sa.String(255), nullable=True),
        sa.CheckConstraint("state IN ('allocated', 'injected', 'failed')", name=op.f("ck_initial_key_ids_state")),
        sa.CheckConstraint(
            "derivation_id BETWEEN 1 AND 4294967295", name=op.f("ck_initial_key_ids_derivation_range")
        ),
        sa.ForeignKeyConstraint(["bdk_label"], ["bdks.label"], name=op.f("fk_initial_key_ids_bdk_label_bdks")),
        sa.ForeignKeyConstraint(
            ["station_id"], ["stations.id"], name=op.f("fk_initial_key_ids_station_id_stations")
        ),
        sa.PrimaryKeyConstraint("initial_key_id", name=op.f("pk_initial_key_ids")),
        sa.UniqueConstraint("bdk_label", "derivation_id", name=op.f("uq_initial_key_ids_bdk_label")),
    )
    op.create_index("ix_initial_key_ids_serial", "initial_key_ids", ["serial"])
    op.create_table(
        "key_injections",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("initial_key_id", sa.String(16), nullable=False),
        sa.Column("serial", sa.String(64), nullable=False),
        sa.Column("kcv", sa.String(10), nullable=False),
        sa.Column("certificate_serial", sa.String(40), nullable=False),
        sa.Column("station_id", sa.Integer(), nullable=False),
        sa.Column("operator", sa.String(64), nullable=True),
        sa.Column("injected", _utc(), nullable=False),
        sa.ForeignKeyConstraint(
            ["initial_key_id"],
            ["initial_key_ids.initial_key_id"],
            name=op.f("fk_key_injections_initial_key_id_initial_key_ids"),
        ),
        sa.ForeignKeyConstraint(
            ["station_id"], ["stations.id"], name=op.f("fk_key_injections_station_id_stations")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_key_injections")),
        sa.UniqueConstraint("initial_key_id", name=op.f("uq_key_injections_initial_key_id")),
    )
    op.create_index("ix_key_injections_serial", "key_injections", ["serial"])
    op.create_table(
        "inventory",
        sa.Column("serial", sa.String(64), nullable=False),
        sa.Column("reference", sa.String(255), nullable=True),
        sa.Column("added_by", sa.String(64), nullable=True),
        sa.Column("added", _utc(), nullable=False),
        sa.PrimaryKeyConstraint("serial", name=op.f("pk_inventory")),
    )


def downgrade() -> None:
    op.drop_table("inventory")
    op.drop_index("ix_key_injections_serial", table_name="key_injections")
    op.drop_table("key_injections")
    op.drop_index("ix_initial_key_ids_serial", table_name="initial_key_ids")
    op.drop_table("initial_key_ids")
    op.drop_table("bdks")
