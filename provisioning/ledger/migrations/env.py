"""Alembic environment of the ledger.

Naiad runs migrations through ``provisioning.ledger.db.migrate``, which hands over an open
connection (already inside a locked transaction) in ``config.attributes["connection"]``.  For
development, ``sqlalchemy.url`` in a hand-made config also works, online or offline (``--sql``).
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from provisioning.ledger.models import Base

config = context.config
target_metadata = Base.metadata


def _configure_and_run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure_and_run(connection)
        return
    from provisioning.ledger.db import create_ledger_engine

    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise SystemExit("set sqlalchemy.url or pass a connection in config.attributes")
    engine = create_ledger_engine(url)
    try:
        with engine.connect() as fresh:
            _configure_and_run(fresh)
            fresh.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
