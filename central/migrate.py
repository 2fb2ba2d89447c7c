"""Schema migrations: `init` brings any registry database to the newest revision with Alembic.

A database made before Alembic (release 0.1 or 0.2) has no `alembic_version` table; the first
revision is written so that it applies to those as well as to an empty database, so every
database takes the same path from there.
"""

from __future__ import annotations

import functools

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from central.db import Store


def alembic_config() -> Config:
    """Return an Alembic configuration for the migrations shipped in this package."""
    config = Config()
    config.set_main_option("script_location", "central:migrations")
    return config


@functools.cache
def head_revision() -> str:
    """Return the newest revision this release knows."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(store: Store) -> str | None:
    """Return the revision a database is at (None: made before Alembic, or empty)."""
    with store.engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(store: Store, revision: str = "head") -> None:
    """Apply every migration up to `revision` in one transaction per run."""
    config = alembic_config()
    with store.engine.connect() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, revision)
        conn.commit()
