"""Operators who log in: a password hash, a disabled mark and a failed-login count per operator,
and the table of CLI sessions (only each token's SHA-256 is stored).

``operators`` is a sealed table whose columns change here, so every operator row is resealed as it
now is, in ``ledger.sealed`` entries like those of revision 0002; a ledger with no operators gets no
entry.  Existing operators have no password: they cannot log in until one is set (see docs/operators.md).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30 01:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from provisioning.ledger import seals
from provisioning.ledger.migrations.resealing import reseal
from provisioning.ledger.models import UTCDateTime

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_meta = sa.MetaData()

# The operators table as it is at this revision.
OPERATORS = sa.Table(
    "operators",
    _meta,
    sa.Column("id", sa.Integer(), primary_key=True),
    sa.Column("name", sa.String()),
    sa.Column("role", sa.String()),
    sa.Column("created", UTCDateTime()),
    sa.Column("password_hash", sa.String(), nullable=True),
    sa.Column("disabled", UTCDateTime(), nullable=True),
    sa.Column("failed_logins", sa.Integer()),
    **seals.sealed(),
)
def upgrade() -> None:
    op.add_column("operators", sa.Column("password_hash", sa.String(255), nullable=True))
    op.add_column("operators", sa.Column("disabled", sa.DateTime(timezone=True), nullable=True))
    op.add_column("operators", sa.Column("failed_logins", sa.Integer(), server_default="0", nullable=False))
    op.create_table(
        "operator_sessions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("operator_id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["operator_id"], ["operators.id"], name=op.f("fk_operator_sessions_operator_id_operators")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_operator_sessions")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_operator_sessions_token_hash")),
    )
    reseal(op.get_bind(), (OPERATORS,), revision)


def downgrade() -> None:
    # The seals written since then cover the dropped columns: a downgraded ledger reports those rows as edited.
    op.drop_table("operator_sessions")
    with op.batch_alter_table("operators") as batch:
        batch.drop_column("failed_logins")
        batch.drop_column("disabled")
        batch.drop_column("password_hash")
