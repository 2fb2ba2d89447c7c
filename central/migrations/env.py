"""Alembic environment: migrations run on the connection `central.migrate` hands over.

SQLite alterations that ALTER TABLE cannot do go through batch mode (`render_as_batch`).
"""

from __future__ import annotations

from alembic import context

from central import tables as T

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=T.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
