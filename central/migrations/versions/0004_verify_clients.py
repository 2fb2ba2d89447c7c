"""Public verify (issue #7): count distinct clients per day instead of requests.

`verify_clients` holds one row per (serial, UTC day, client) where a client is a keyed hash
of an IPv4 address or IPv6 /64 under the day's salt in `verify_salts`; salts are deleted once
their day is over. `registry.verify_count` now counts distinct client-days from here on (the
counts of earlier requests are kept as they were).

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "verify_clients",
        sa.Column("serial", sa.String(40), primary_key=True),
        sa.Column("day", sa.Date, primary_key=True),
        sa.Column("client", sa.String(32), primary_key=True),
    )
    op.create_table(
        "verify_salts",
        sa.Column("day", sa.Date, primary_key=True),
        sa.Column("salt", sa.String(64), nullable=False),
    )


def downgrade() -> None:
    raise NotImplementedError("downgrades are not supported; restore the backup taken before")
