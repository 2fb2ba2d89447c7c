"""Alembic migrations of the central registry; `central.migrate` runs them (`init`)."""
