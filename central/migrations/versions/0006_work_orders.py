"""Work orders and GS1-native serials (issue #9): the serial-generation module's tables.

- `work_orders` gains the reference's `workorder_serial_generation` fields (name, source,
  requested SSCCs, generated counts, generation statuses and times, error message), a
  `closed_at`, and what the ERP sync needs (`erp_synced_at`, `manual_fields`).
- `products` gains its serial format (`standard` for every existing product).
- New: `generation_config` (per tenant), `generation_history`, `generation_tasks`,
  `number_counters`, `ssccs`, `erp_syncs`, and `serial_pool` (pre-generated randomised
  serials, unique per GTIN, handed to lines as list leases).

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("work_orders") as batch:
        batch.add_column(sa.Column("name", sa.String(200)))
        batch.add_column(sa.Column("source", sa.String(8), nullable=False, server_default="manual"))
        for name in ("requested_sscc", "generated_serials", "generated_sscc"):
            batch.add_column(sa.Column(name, sa.Integer, nullable=False, server_default="0"))
        for name in ("serial_status", "sscc_status"):
            batch.add_column(
                sa.Column(name, sa.String(16), nullable=False, server_default="pending")
            )
        batch.add_column(sa.Column("last_serial_generation_at", TS))
        batch.add_column(sa.Column("last_sscc_generation_at", TS))
        batch.add_column(sa.Column("error_message", sa.Text))
        batch.add_column(sa.Column("closed_at", TS))
        batch.add_column(sa.Column("erp_synced_at", TS))
        batch.add_column(sa.Column("manual_fields", sa.Text, nullable=False, server_default="[]"))
        batch.create_index(
            "ix_work_orders_tenant_id_status_created_at", ["tenant_id", "status", "created_at"]
        )
        batch.create_index("ix_work_orders_tenant_id_source", ["tenant_id", "source"])
        batch.create_index("ix_work_orders_updated_at", ["updated_at"])
    with op.batch_alter_table("products") as batch:
        batch.add_column(
            sa.Column("serial_format", sa.String(16), nullable=False, server_default="standard")
        )
        batch.add_column(sa.Column("serial_alphabet", sa.String(100)))
        batch.add_column(sa.Column("serial_length", sa.Integer))
    op.create_table(
        "generation_config",
        sa.Column("tenant_id", sa.Integer, sa.ForeignKey("tenants.id"), primary_key=True),
        sa.Column("serial_sources", sa.Text, nullable=False, server_default="[]"),
        sa.Column("sscc_sources", sa.Text, nullable=False, server_default="[]"),
        sa.Column("manufacturing_percentage", sa.Float, nullable=False, server_default="0"),
        sa.Column("discrepancy_tolerance", sa.Float, nullable=False, server_default="0"),
        sa.Column("aggregation_rules", sa.Text, nullable=False, server_default="{}"),
        sa.Column("erp_url", sa.String(500)),
        sa.Column("erp_token", sa.String(500)),
        sa.Column("erp_interval_s", sa.Integer),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("updated_by", sa.String(128), nullable=False),
    )
    op.create_table(
        "generation_history",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("tenant_id", sa.Integer, sa.ForeignKey("tenants.id"), nullable=False),
        sa.Column("work_order_id", sa.Integer, sa.ForeignKey("work_orders.id")),
        sa.Column("action", sa.String(30), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("requested_quantity", sa.Integer),
        sa.Column("generated_quantity", sa.Integer),
        sa.Column("details", sa.Text, nullable=False, server_default="{}"),
        sa.Column("error_details", sa.Text),
        sa.Column("execution_ms", sa.Integer),
        sa.Column("task_id", sa.String(36)),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_index(
        "ix_generation_history_work_order_id_id", "generation_history", ["work_order_id", "id"]
    )
    op.create_index(
        "ix_generation_history_tenant_id_created_at",
        "generation_history",
        ["tenant_id", "created_at"],
    )
    op.create_table(
        "generation_tasks",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("tenant_id", sa.Integer, sa.ForeignKey("tenants.id"), nullable=False),
        sa.Column("work_order_id", sa.Integer, sa.ForeignKey("work_orders.id"), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("requested", sa.Integer, nullable=False),
        sa.Column("done", sa.Integer, nullable=False, server_default="0"),
        sa.Column("force", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("params", sa.Text, nullable=False, server_default="{}"),
        sa.Column("error", sa.Text),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("started_at", TS),
        sa.Column("finished_at", TS),
        sa.Column("cancel_requested_at", TS),
        sa.Column("heartbeat_at", TS),
    )
    op.create_index(
        "ix_generation_tasks_status_created_at", "generation_tasks", ["status", "created_at"]
    )
    op.create_index(
        "ix_generation_tasks_work_order_id_kind_status",
        "generation_tasks",
        ["work_order_id", "kind", "status"],
    )
    op.create_table(
        "number_counters",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("tenant_id", sa.Integer, sa.ForeignKey("tenants.id"), nullable=False),
        sa.Column("next_value", sa.BigInteger, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_table(
        "ssccs",
        sa.Column("sscc", sa.String(18), primary_key=True),
        sa.Column("tenant_id", sa.Integer, sa.ForeignKey("tenants.id"), nullable=False),
        sa.Column("work_order_id", sa.Integer, sa.ForeignKey("work_orders.id"), nullable=False),
        sa.Column("level", sa.String(4)),
        sa.Column("task_id", sa.String(36)),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_index("ix_ssccs_work_order_id_sscc", "ssccs", ["work_order_id", "sscc"])
    op.create_table(
        "erp_syncs",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("tenant_id", sa.Integer, sa.ForeignKey("tenants.id"), nullable=False),
        sa.Column("trigger", sa.String(16), nullable=False),
        sa.Column("source", sa.String(500), nullable=False),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("finished_at", TS),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("received", sa.Integer, nullable=False, server_default="0"),
        sa.Column("synced", sa.Integer, nullable=False, server_default="0"),
        sa.Column("failed", sa.Integer, nullable=False, server_default="0"),
        sa.Column("errors", sa.Text, nullable=False, server_default="[]"),
    )
    op.create_index("ix_erp_syncs_tenant_id_started_at", "erp_syncs", ["tenant_id", "started_at"])
    # issue #9, ERP: what one ERP sync did beyond received/synced/failed, and why it stopped
    with op.batch_alter_table("erp_syncs") as batch:
        for name in ("created", "updated", "unchanged", "conflicts"):
            batch.add_column(sa.Column(name, sa.Integer, nullable=False, server_default="0"))
        batch.add_column(sa.Column("reason", sa.Text))
    # issue #9: the sort orders of work-order lists, each with the id that breaks ties
    op.create_index(
        "ix_work_orders_tenant_id_created_at_id", "work_orders", ["tenant_id", "created_at", "id"]
    )
    op.create_index(
        "ix_work_orders_tenant_id_quantity_id", "work_orders", ["tenant_id", "quantity", "id"]
    )
    op.create_index(
        "ix_work_orders_tenant_id_product_id", "work_orders", ["tenant_id", "product_id"]
    )
    op.create_index(
        "ix_work_orders_tenant_id_name_number", "work_orders", ["tenant_id", "name", "number"]
    )
    # issue #9: the pool of pre-generated randomised serials (sgtin-random), unique per GTIN
    op.create_table(
        "serial_pool",
        sa.Column("gtin", sa.String(14), primary_key=True),
        sa.Column("serial", sa.String(20), primary_key=True),
        sa.Column("tenant_id", sa.Integer, sa.ForeignKey("tenants.id"), nullable=False),
        sa.Column("work_order_id", sa.Integer, sa.ForeignKey("work_orders.id"), nullable=False),
        sa.Column("task_id", sa.String(36)),
        sa.Column("lease_id", sa.String(36)),
        sa.Column("state", sa.String(10), nullable=False, server_default="free"),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS),
    )
    op.create_index("ix_serial_pool_work_order_id_state", "serial_pool", ["work_order_id", "state"])
    op.create_index("ix_serial_pool_lease_id", "serial_pool", ["lease_id"])


def downgrade() -> None:
    raise NotImplementedError("downgrades are not supported; restore the backup taken before")
