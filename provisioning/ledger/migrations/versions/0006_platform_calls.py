"""The outbox of calls to the merchant platform: each call written before it is sent, then settled.

A new table only: no existing row changes, so nothing is resealed.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 08:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _utc() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "platform_calls",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("request_no", sa.String(64), nullable=False),
        sa.Column("method", sa.String(64), nullable=False),
        sa.Column("serial", sa.String(64), nullable=True),
        sa.Column("biz", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("created", _utc(), nullable=False),
        sa.Column("updated", _utc(), nullable=False),
        sa.Column("reply", sa.JSON(), nullable=True),
        sa.Column("error", sa.String(1000), nullable=True),
        sa.Column("station_id", sa.Integer(), nullable=False),
        sa.Column("operator", sa.String(64), nullable=True),
        sa.CheckConstraint("state IN ('pending', 'done', 'refused', 'abandoned')", name=op.f("ck_platform_calls_state")),
        sa.ForeignKeyConstraint(["station_id"], ["stations.id"], name=op.f("fk_platform_calls_station_id_stations")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_platform_calls")),
        sa.UniqueConstraint("request_no", name=op.f("uq_platform_calls_request_no")),
    )
    op.create_index("ix_platform_calls_state_created", "platform_calls", ["state", "created"])
    op.create_index("ix_platform_calls_method_serial", "platform_calls", ["method", "serial"])


def downgrade() -> None:
    op.drop_index("ix_platform_calls_method_serial", table_name="platform_calls")
    op.drop_index("ix_platform_calls_state_created", table_name="platform_calls")
    op.drop_table("platform_calls")
