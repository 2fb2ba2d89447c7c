"""Consistency checker (issue #6): the links verdict of a lease's last full reconcile.

`leases.links_ok` keeps whether the agent's link records matched the registry's when it last
reconciled in full (NULL: never compared), as `digest_ok` does for its event ids, so the
checker can ask for a re-send and report the lease without re-reading a digest it never saw.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("leases", sa.Column("links_ok", sa.Boolean))


def downgrade() -> None:
    raise NotImplementedError("downgrades are not supported; restore the backup taken before")
