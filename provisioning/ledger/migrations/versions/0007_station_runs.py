"""The station's runs: each unit's run of a recipe (the unit's claim while it is ``running``) and each step of it.

New tables only: no existing row changes, so nothing is resealed.  At most one run of a unit is ``running``
at a time, across every station sharing the database: a partial unique index (SQLite and PostgreSQL).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 08:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_STATUSES = "status IN ('running', 'succeeded', 'failed')"
_RUNNING = sa.text("status = 'running'")


def _utc() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "unit_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("serial", sa.String(64), nullable=False),
        sa.Column("recipe", sa.String(64), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("batch", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("station_id", sa.Integer(), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("machine", sa.String(64), nullable=False),
        sa.Column("nonce", sa.String(64), nullable=False),
        sa.Column("operator", sa.String(64), nullable=True),
        sa.Column("started", _utc(), nullable=False),
        sa.Column("finished", _utc(), nullable=True),
        sa.Column("lease_seconds", sa.Integer(), nullable=False),
        sa.Column("heartbeat", _utc(), nullable=False),
        sa.CheckConstraint(_STATUSES, name=op.f("ck_unit_runs_status")),
        sa.ForeignKeyConstraint(["station_id"], ["stations.id"], name=op.f("fk_unit_runs_station_id_stations")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_unit_runs")),
    )
    op.create_index("ix_unit_runs_serial_started", "unit_runs", ["serial", "started"])
    op.create_index(
        "uq_unit_runs_running_serial",
        "unit_runs",
        ["serial"],
        unique=True,
        sqlite_where=_RUNNING,
        postgresql_where=_RUNNING,
    )
    op.create_table(
        "unit_steps",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("started", _utc(), nullable=False),
        sa.Column("finished", _utc(), nullable=True),
        sa.Column("milliseconds", sa.Integer(), nullable=True),
        sa.Column("detail", sa.String(1000), nullable=True),
        sa.Column("data", sa.JSON(), nullable=True),
        sa.Column("error", sa.JSON(), nullable=True),
        sa.Column("already_done", sa.Integer(), server_default="0", nullable=False),
        sa.CheckConstraint(_STATUSES, name=op.f("ck_unit_steps_status")),
        sa.CheckConstraint("already_done IN (0, 1)", name=op.f("ck_unit_steps_already_done")),
        sa.ForeignKeyConstraint(["run_id"], ["unit_runs.id"], name=op.f("fk_unit_steps_run_id_unit_runs")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_unit_steps")),
    )
    op.create_index("ix_unit_steps_run_id", "unit_steps", ["run_id"])


def downgrade() -> None:
    op.drop_index("ix_unit_steps_run_id", table_name="unit_steps")
    op.drop_table("unit_steps")
    op.drop_index("uq_unit_runs_running_serial", table_name="unit_runs")
    op.drop_index("ix_unit_runs_serial_started", table_name="unit_runs")
    op.drop_table("unit_runs")
