"""Public verify (issue #7): a product's optional brand, shown to customers in every mode.

`products.brand` is NULL for every existing product; `product add --brand` and
`product brand` set it.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("products", sa.Column("brand", sa.String(100)))


def downgrade() -> None:
    raise NotImplementedError("downgrades are not supported; restore the backup taken before")
