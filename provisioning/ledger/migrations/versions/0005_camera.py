"""Camera records: each calibration written to a unit (its blob's checksum, format version and figures) and
each depth-quality run or field check (kind, passed, verdict, figures, the calibration it checked).

New tables only: no existing row changes, so nothing is resealed.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 05:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _utc() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "camera_calibrations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("serial", sa.String(64), nullable=False),
        sa.Column("checksum", sa.String(64), nullable=False),
        sa.Column("blob_version", sa.Integer(), nullable=False),
        sa.Column("figures", sa.JSON(), nullable=False),
        sa.Column("station_id", sa.Integer(), nullable=False),
        sa.Column("operator", sa.String(64), nullable=True),
        sa.Column("created", _utc(), nullable=False),
        sa.ForeignKeyConstraint(
            ["station_id"], ["stations.id"], name=op.f("fk_camera_calibrations_station_id_stations")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_camera_calibrations")),
        sa.UniqueConstraint("checksum", name=op.f("uq_camera_calibrations_checksum")),
    )
    op.create_index("ix_camera_calibrations_serial", "camera_calibrations", ["serial"])
    op.create_table(
        "camera_checks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("serial", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("passed", sa.Integer(), nullable=False),
        sa.Column("verdict", sa.String(32), nullable=True),
        sa.Column("figures", sa.JSON(), nullable=False),
        sa.Column("calibration", sa.String(64), nullable=True),
        sa.Column("station_id", sa.Integer(), nullable=False),
        sa.Column("operator", sa.String(64), nullable=True),
        sa.Column("created", _utc(), nullable=False),
        sa.CheckConstraint("kind IN ('depth-quality', 'field-check')", name=op.f("ck_camera_checks_kind")),
        sa.CheckConstraint("passed IN (0, 1)", name=op.f("ck_camera_checks_passed")),
        sa.ForeignKeyConstraint(["station_id"], ["stations.id"], name=op.f("fk_camera_checks_station_id_stations")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_camera_checks")),
    )
    op.create_index("ix_camera_checks_serial", "camera_checks", ["serial"])


def downgrade() -> None:
    op.drop_index("ix_camera_checks_serial", table_name="camera_checks")
    op.drop_table("camera_checks")
    op.drop_index("ix_camera_calibrations_serial", table_name="camera_calibrations")
    op.drop_table("camera_calibrations")
