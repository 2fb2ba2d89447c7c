"""Release 0.2 schema (schema version 2): the registry as it was before Alembic.

Creates every table of release 0.2 that is missing and adds any column or index of it that an
older database lacks, so one upgrade path serves an empty database, a database made by
release 0.2 (which has every table already) and one made by release 0.1. The tables are a
frozen copy of `central/tables.py` at release 0.2.2: later changes belong in later revisions.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_SQLITE_NO_OVERLAP = """
CREATE TRIGGER IF NOT EXISTS leases_no_overlap_{when} BEFORE {event} ON leases
WHEN EXISTS (
    SELECT 1 FROM leases o
    WHERE o.scope_key = NEW.scope_key AND o.id != NEW.id
      AND o.first_seq <= NEW.last_seq AND o.last_seq >= NEW.first_seq
)
BEGIN SELECT RAISE(ABORT, 'lease ranges of one scope must never overlap'); END
"""

_PG_NO_OVERLAP = """
ALTER TABLE leases ADD CONSTRAINT leases_no_overlap EXCLUDE USING gist (
    scope_key WITH =, int4range(first_seq, last_seq, '[]') WITH &&
)
"""


def _release_0_2() -> sa.MetaData:
    metadata = sa.MetaData(
        naming_convention={
            "ix": "ix_%(table_name)s_%(column_0_N_name)s",
            "uq": "uq_%(table_name)s_%(column_0_N_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
        }
    )

    TS = sa.DateTime(timezone=True)
    ID = sa.String(36)  # UUIDv7 text for agents, leases and events

    sa.Table(
        "schema_info",
        metadata,
        sa.Column("key", sa.String(32), primary_key=True),
        sa.Column("value", sa.String(64), nullable=False),
    )

    sa.Table(
        "tenants",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("org_code", sa.String(6), nullable=False, unique=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False, server_default="UTC"),
        sa.Column("created_at", TS, nullable=False),
    )

    sa.Table(
        "feature_flags",
        metadata,
        sa.Column("tenant_id", sa.ForeignKey("tenants.id"), primary_key=True),
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.String(64), nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )

    sa.Table(
        "production_types",
        metadata,
        sa.Column("code", sa.String(3), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
    )

    sa.Table(
        "products",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("tenant_id", sa.ForeignKey("tenants.id"), nullable=False),
        sa.Column("sku", sa.String(64), nullable=False),
        sa.Column("category", sa.String(4), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("gtin", sa.String(14)),
        sa.Column("label_template", sa.String(64), nullable=False, server_default="default"),
        sa.Column("created_at", TS, nullable=False),
        sa.UniqueConstraint("tenant_id", "sku"),
        sa.Index(None, "gtin", unique=True),  # a GTIN names one product (NULLs allowed)
    )

    sa.Table(
        "label_templates",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("tenant_id", sa.ForeignKey("tenants.id"), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("body", sa.Text, nullable=False),  # JSON, validated by printers.LabelTemplate
        sa.Column("updated_at", TS, nullable=False),
        sa.UniqueConstraint("tenant_id", "name"),
    )

    sa.Table(
        "admin_tokens",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(64), nullable=False, unique=True),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("revoked_at", TS),
    )

    sa.Table(
        "work_orders",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("tenant_id", sa.ForeignKey("tenants.id"), nullable=False),
        sa.Column("number", sa.String(64), nullable=False),
        sa.Column("product_id", sa.ForeignKey("products.id"), nullable=False),
        sa.Column("production_type", sa.ForeignKey("production_types.code"), nullable=False),
        sa.Column("quantity", sa.Integer, nullable=False),
        sa.Column("overage_pct", sa.Float, nullable=False, server_default="0"),
        sa.Column("tolerance_pct", sa.Float, nullable=False, server_default="0"),
        sa.Column("line", sa.String(64)),  # NULL: any line of the tenant may produce it
        sa.Column("status", sa.String(16), nullable=False, server_default="open"),
        sa.Column("created_at", TS, nullable=False),
        sa.UniqueConstraint("tenant_id", "number"),
    )

    sa.Table(
        "enrollment_codes",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("tenant_id", sa.ForeignKey("tenants.id"), nullable=False),
        sa.Column("line", sa.String(64), nullable=False),
        sa.Column("code_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.Column("used_at", TS),
        sa.Column("agent_id", ID),
    )

    sa.Table(
        "agents",
        metadata,
        sa.Column("id", ID, primary_key=True),
        sa.Column("tenant_id", sa.ForeignKey("tenants.id"), nullable=False),
        sa.Column("line", sa.String(64), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("hostname", sa.String(128)),
        sa.Column("agent_version", sa.String(32)),
        sa.Column("status", sa.String(16), nullable=False, server_default="active"),
        sa.Column("enrolled_at", TS, nullable=False),
        sa.Column("last_seen_at", TS),
    )

    sa.Table(
        "key_versions",
        metadata,
        sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("fingerprint", sa.String(32), nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )

    sa.Table(
        "scope_counters",
        metadata,
        sa.Column("scope_key", sa.String(32), primary_key=True),
        sa.Column("tenant_id", sa.ForeignKey("tenants.id"), nullable=False),
        sa.Column("next_seq", sa.Integer, nullable=False),  # the next number never granted yet
        sa.Column("last_grant_first", sa.Integer, nullable=False, server_default="0"),
        sa.Column("updated_at", TS, nullable=False),
    )

    sa.Table(
        "leases",
        metadata,
        sa.Column("id", ID, primary_key=True),
        sa.Column("tenant_id", sa.ForeignKey("tenants.id"), nullable=False),
        sa.Column("agent_id", sa.ForeignKey("agents.id"), nullable=False),
        sa.Column("request_id", ID, nullable=False),
        sa.Column("scope_key", sa.String(32), nullable=False),
        sa.Column("first_seq", sa.Integer, nullable=False),
        sa.Column("last_seq", sa.Integer, nullable=False),
        sa.Column("key_version", sa.ForeignKey("key_versions.version"), nullable=False),
        sa.Column("granted_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.Column("status", sa.String(16), nullable=False, server_default="active"),
        sa.Column("high_water", sa.Integer),
        sa.Column("returned_at", TS),
        sa.UniqueConstraint("agent_id", "request_id"),
        sa.CheckConstraint("first_seq >= 1 AND last_seq >= first_seq", name="range"),
        sa.Index(None, "scope_key", "first_seq"),
    )

    sa.Table(
        "gaps",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("tenant_id", sa.ForeignKey("tenants.id"), nullable=False),
        sa.Column("scope_key", sa.String(32), nullable=False),
        sa.Column("first_seq", sa.Integer, nullable=False),
        sa.Column("last_seq", sa.Integer, nullable=False),
        sa.Column("reason", sa.String(16), nullable=False),
        sa.Column("lease_id", sa.ForeignKey("leases.id")),
        sa.Column("recorded_at", TS, nullable=False),
    )

    sa.Table(
        "events",
        metadata,
        sa.Column("event_id", ID, primary_key=True),
        sa.Column("tenant_id", sa.ForeignKey("tenants.id"), nullable=False),
        sa.Column("agent_id", sa.ForeignKey("agents.id"), nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("serial", sa.String(64), nullable=False),
        sa.Column("lease_id", sa.String(64)),
        sa.Column("work_order", sa.String(64)),
        sa.Column("occurred_at", TS, nullable=False),
        sa.Column("received_at", TS, nullable=False),
        sa.Column("data", sa.Text, nullable=False, server_default="{}"),
        sa.Column("outcome", sa.String(16), nullable=False),  # accepted | quarantined
        sa.Column("code", sa.String(40)),
        sa.Index(None, "serial"),
    )

    sa.Table(
        "registry",
        metadata,
        sa.Column("serial", sa.String(40), primary_key=True),
        sa.Column("tenant_id", sa.ForeignKey("tenants.id"), nullable=False),
        sa.Column("scope_key", sa.String(32), nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("lease_id", sa.ForeignKey("leases.id"), nullable=False),
        sa.Column("agent_id", sa.ForeignKey("agents.id"), nullable=False),
        sa.Column("work_order", sa.String(64)),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("issued_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("print_count", sa.Integer, nullable=False, server_default="0"),
        sa.Column("reprint_count", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_event_id", ID, nullable=False),
        sa.Column("verify_count", sa.Integer, nullable=False, server_default="0"),
        sa.Column("first_verified_at", TS),
        sa.UniqueConstraint("scope_key", "seq"),
    )

    sa.Table(
        "quarantine",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("tenant_id", sa.ForeignKey("tenants.id")),
        sa.Column("serial", sa.String(64), nullable=False),
        sa.Column("reason", sa.String(40), nullable=False),
        # True: the serial itself is held (verify says under_review, later events are held).
        # False: only the event is suspect, e.g. an agent that holds no lease of the serial.
        sa.Column("holds_serial", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("details", sa.Text, nullable=False, server_default="{}"),
        sa.Column("event_id", ID),
        sa.Column("agent_id", ID),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("resolved_at", TS),
        sa.Column("resolution", sa.String(200)),
        sa.Index(None, "serial"),
    )
    return metadata


def upgrade() -> None:
    conn = op.get_bind()
    sqlite = conn.dialect.name == "sqlite"
    if not sqlite:
        conn.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS btree_gist")
    metadata = _release_0_2()
    metadata.create_all(conn)  # only the missing tables
    inspector = sa.inspect(conn)
    for table in metadata.sorted_tables:
        present = {c["name"] for c in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name not in present:  # nullable or with a server default in 0.2
                ddl = sa.schema.CreateColumn(column).compile(dialect=conn.dialect)
                conn.exec_driver_sql(f"ALTER TABLE {table.name} ADD COLUMN {ddl}")
        indexes = {i["name"] for i in inspector.get_indexes(table.name)}
        for index in table.indexes:
            if index.name not in indexes:
                index.create(conn)
    if sqlite:
        conn.exec_driver_sql(_SQLITE_NO_OVERLAP.format(when="insert", event="INSERT"))
        conn.exec_driver_sql(
            _SQLITE_NO_OVERLAP.format(
                when="update", event="UPDATE OF scope_key, first_seq, last_seq"
            )
        )
    elif not conn.exec_driver_sql(
        "SELECT 1 FROM pg_constraint WHERE conname = 'leases_no_overlap'"
    ).first():
        conn.exec_driver_sql(_PG_NO_OVERLAP)
    types = metadata.tables["production_types"]
    for code, name in (
        ("HAT", "Handcraft (job tickets and tokens)"),
        ("OEM", "Manufacturing order"),
    ):
        if conn.execute(sa.select(types.c.code).where(types.c.code == code)).first() is None:
            conn.execute(types.insert().values(code=code, name=name))


def downgrade() -> None:
    raise NotImplementedError("the release 0.2 schema is the oldest this tool manages")
