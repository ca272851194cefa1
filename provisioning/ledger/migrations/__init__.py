"""Alembic migration environment of the ledger (a package so that wheels and PyInstaller ship it)."""
