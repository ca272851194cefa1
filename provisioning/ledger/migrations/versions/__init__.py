"""Ledger schema revisions, one Alembic script each."""
