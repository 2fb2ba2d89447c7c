"""Every table of the central registry, defined in one place for SQLite and PostgreSQL."""

from __future__ import annotations

import sqlalchemy as sa

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

schema_info = sa.Table(
    "schema_info",
    metadata,
    sa.Column("key", sa.String(32), primary_key=True),
    sa.Column("value", sa.String(64), nullable=False),
)

tenants = sa.Table(
    "tenants",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("org_code", sa.String(6), nullable=False, unique=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("timezone", sa.String(64), nullable=False, server_default="UTC"),
    sa.Column("created_at", TS, nullable=False),
)

feature_flags = sa.Table(
    "feature_flags",
    metadata,
    sa.Column("tenant_id", sa.ForeignKey("tenants.id"), primary_key=True),
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.String(64), nullable=False),
    sa.Column("updated_at", TS, nullable=False),
)

production_types = sa.Table(
    "production_types",
    metadata,
    sa.Column("code", sa.String(3), primary_key=True),
    sa.Column("name", sa.String(100), nullable=False),
)

products = sa.Table(
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
    sa.Column("brand", sa.String(100)),  # shown by public verify in every mode (NULL: none)
    # issue #9: standard (LineLedger's, with its MAC) | sgtin-seq | sgtin-random
    sa.Column("serial_format", sa.String(16), nullable=False, server_default="standard"),
    sa.Column("serial_alphabet", sa.String(100)),  # sgtin-random: the characters drawn
    sa.Column("serial_length", sa.Integer),  # sgtin-random: 1..20
    sa.UniqueConstraint("tenant_id", "sku"),
    sa.Index(None, "gtin", unique=True),  # a GTIN names one product (NULLs allowed)
)

label_templates = sa.Table(
    "label_templates",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("tenant_id", sa.ForeignKey("tenants.id"), nullable=False),
    sa.Column("name", sa.String(64), nullable=False),
    sa.Column("body", sa.Text, nullable=False),  # JSON, validated by printers.LabelTemplate
    sa.Column("updated_at", TS, nullable=False),
    sa.UniqueConstraint("tenant_id", "name"),
)

admin_tokens = sa.Table(
    "admin_tokens",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(64), nullable=False, unique=True),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("revoked_at", TS),
)

work_orders = sa.Table(
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
    sa.Column("updated_at", TS),
    sa.Column("recalled_at", TS),
    sa.Column("recall_reason", sa.String(500)),
    # issue #9: the reference's workorder_serial_generation, folded into the work order
    sa.Column("name", sa.String(200)),  # NULL: shown as the number
    sa.Column("source", sa.String(8), nullable=False, server_default="manual"),  # erp | manual
    sa.Column("requested_sscc", sa.Integer, nullable=False, server_default="0"),
    sa.Column("generated_serials", sa.Integer, nullable=False, server_default="0"),
    sa.Column("generated_sscc", sa.Integer, nullable=False, server_default="0"),
    # pending | in_progress | completed | failed (follow the generation tasks)
    sa.Column("serial_status", sa.String(16), nullable=False, server_default="pending"),
    sa.Column("sscc_status", sa.String(16), nullable=False, server_default="pending"),
    sa.Column("last_serial_generation_at", TS),
    sa.Column("last_sscc_generation_at", TS),
    sa.Column("error_message", sa.Text),
    sa.Column("closed_at", TS),
    # ERP: when the ERP last wrote the order, and the fields a supervisor changed by hand
    # since (JSON list); an ERP sync never overwrites those silently
    sa.Column("erp_synced_at", TS),
    sa.Column("manual_fields", sa.Text, nullable=False, server_default="[]"),
    sa.UniqueConstraint("tenant_id", "number"),
    sa.Index(None, "tenant_id", "status", "created_at"),
    sa.Index(None, "tenant_id", "source"),
    sa.Index(None, "updated_at"),
)

# issue #9: the reference's serial_generation_config, one row per tenant
generation_config = sa.Table(
    "generation_config",
    metadata,
    sa.Column("tenant_id", sa.ForeignKey("tenants.id"), primary_key=True),
    sa.Column("serial_sources", sa.Text, nullable=False, server_default="[]"),  # JSON
    sa.Column("sscc_sources", sa.Text, nullable=False, server_default="[]"),  # JSON
    sa.Column("manufacturing_percentage", sa.Float, nullable=False, server_default="0"),
    sa.Column("discrepancy_tolerance", sa.Float, nullable=False, server_default="0"),
    sa.Column("aggregation_rules", sa.Text, nullable=False, server_default="{}"),  # JSON
    sa.Column("erp_url", sa.String(500)),
    sa.Column("erp_token", sa.String(500)),  # a secret: never shown, exported or logged
    sa.Column("erp_interval_s", sa.Integer),  # NULL: no scheduled pull
    sa.Column("updated_at", TS, nullable=False),
    sa.Column("updated_by", sa.String(128), nullable=False),
)

# issue #9: the reference's serial_generation_history: every generation and configuration
# change, with who did it and how long it took
generation_history = sa.Table(
    "generation_history",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("tenant_id", sa.ForeignKey("tenants.id"), nullable=False),
    sa.Column("work_order_id", sa.ForeignKey("work_orders.id")),  # NULL: tenant config
    # serial_generation | sscc_generation | config_update | work_order_update | erp_sync ...
    sa.Column("action", sa.String(30), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # started | completed | failed ...
    sa.Column("requested_quantity", sa.Integer),
    sa.Column("generated_quantity", sa.Integer),
    sa.Column("details", sa.Text, nullable=False, server_default="{}"),  # JSON: before/after
    sa.Column("error_details", sa.Text),  # JSON
    sa.Column("execution_ms", sa.Integer),
    sa.Column("task_id", sa.String(36)),
    sa.Column("actor", sa.String(128), nullable=False),
    sa.Column("created_at", TS, nullable=False),
    sa.Index(None, "work_order_id", "id"),
    sa.Index(None, "tenant_id", "created_at"),
)

# issue #9: background generation for a work order, run by the jobs process
generation_tasks = sa.Table(
    "generation_tasks",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),  # UUIDv7 text
    sa.Column("tenant_id", sa.ForeignKey("tenants.id"), nullable=False),
    sa.Column("work_order_id", sa.ForeignKey("work_orders.id"), nullable=False),
    sa.Column("kind", sa.String(8), nullable=False),  # serials | sscc
    sa.Column("requested", sa.Integer, nullable=False),
    sa.Column("done", sa.Integer, nullable=False, server_default="0"),
    sa.Column("force", sa.Boolean, nullable=False, server_default=sa.false()),
    # queued | running | completed | failed | cancelled
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("params", sa.Text, nullable=False, server_default="{}"),  # JSON
    sa.Column("error", sa.Text),
    sa.Column("actor", sa.String(128), nullable=False),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("started_at", TS),
    sa.Column("finished_at", TS),
    sa.Column("cancel_requested_at", TS),
    sa.Column("heartbeat_at", TS),
    sa.Index(None, "status", "created_at"),
    sa.Index(None, "work_order_id", "kind", "status"),
)

# issue #9: counters that are not lease scopes (SSCC serial references per company prefix and
# extension digit, ...); 64-bit because a GS1 serial reference can exceed 2^31
number_counters = sa.Table(
    "number_counters",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("tenant_id", sa.ForeignKey("tenants.id"), nullable=False),
    sa.Column("next_value", sa.BigInteger, nullable=False),
    sa.Column("updated_at", TS, nullable=False),
)

# issue #9: SSCCs generated for a work order's cases and pallets
ssccs = sa.Table(
    "ssccs",
    metadata,
    sa.Column("sscc", sa.String(18), primary_key=True),
    sa.Column("tenant_id", sa.ForeignKey("tenants.id"), nullable=False),
    sa.Column("work_order_id", sa.ForeignKey("work_orders.id"), nullable=False),
    sa.Column("level", sa.String(4)),  # l2 | l3 | l4 (aggregation level), NULL: unassigned
    sa.Column("task_id", sa.String(36)),
    sa.Column("created_at", TS, nullable=False),
    sa.Index(None, "work_order_id", "sscc"),
)

# issue #9: each ERP sync (file import or scheduled pull): what came, what was kept, why not
erp_syncs = sa.Table(
    "erp_syncs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("tenant_id", sa.ForeignKey("tenants.id"), nullable=False),
    sa.Column("trigger", sa.String(16), nullable=False),  # file | schedule | cli | api
    sa.Column("source", sa.String(500), nullable=False),  # file name or URL (no secrets)
    sa.Column("started_at", TS, nullable=False),
    sa.Column("finished_at", TS),
    sa.Column("status", sa.String(16), nullable=False),  # running | success | partial | failed
    sa.Column("received", sa.Integer, nullable=False, server_default="0"),
    sa.Column("synced", sa.Integer, nullable=False, server_default="0"),
    sa.Column("failed", sa.Integer, nullable=False, server_default="0"),
    sa.Column("errors", sa.Text, nullable=False, server_default="[]"),  # JSON, bounded
    sa.Index(None, "tenant_id", "started_at"),
)

enrollment_codes = sa.Table(
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

agents = sa.Table(
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
    # revoke: the agent's calls are refused and its leases closed (`agent revoke`)
    sa.Column("revoked_at", TS),
    sa.Column("revoked_reason", sa.String(500)),
    sa.Column("revoked_by", sa.String(128)),
    sa.Column("token_rotated_at", TS),
    # what the agent last said about itself in a reconcile (JSON: outbox, clock, version)
    sa.Column("last_report", sa.Text),
    sa.Column("last_reconcile_at", TS),
    sa.Column("clock_offset_ms", sa.BigInteger),
)

key_versions = sa.Table(
    "key_versions",
    metadata,
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("fingerprint", sa.String(32), nullable=False),
    sa.Column("active", sa.Boolean, nullable=False),
    sa.Column("created_at", TS, nullable=False),
)

scope_counters = sa.Table(
    "scope_counters",
    metadata,
    sa.Column("scope_key", sa.String(32), primary_key=True),
    sa.Column("tenant_id", sa.ForeignKey("tenants.id"), nullable=False),
    sa.Column("next_seq", sa.Integer, nullable=False),  # the next number never granted yet
    sa.Column("last_grant_first", sa.Integer, nullable=False, server_default="0"),
    sa.Column("updated_at", TS, nullable=False),
)

leases = sa.Table(
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
    # active | returned (by the agent) | expired (lease-expiry job) | revoked (agent revoked)
    sa.Column("status", sa.String(16), nullable=False, server_default="active"),
    sa.Column("high_water", sa.Integer),  # final mark of a closed lease; the tail is a gap
    sa.Column("returned_at", TS),
    sa.Column("closed_at", TS),
    # the agent's own high-water mark, reported often while it is online (rollback guard)
    sa.Column("reported_hw", sa.Integer),
    sa.Column("reported_at", TS),
    # the last full reconcile of the lease: the agent's counts per event type (JSON)
    sa.Column("reconciled_at", TS),
    sa.Column("reported_counts", sa.Text),
    sa.Column("digest_ok", sa.Boolean),
    sa.Column("links_ok", sa.Boolean),  # the agent's link records matched the registry's
    sa.Column("resend_requested_at", TS),  # the checker asks the agent to re-send
    sa.UniqueConstraint("agent_id", "request_id"),
    sa.CheckConstraint("first_seq >= 1 AND last_seq >= first_seq", name="range"),
    sa.Index(None, "scope_key", "first_seq"),
    sa.Index(None, "status", "expires_at"),
    sa.Index(None, "agent_id", "status"),
)

gaps = sa.Table(
    "gaps",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("tenant_id", sa.ForeignKey("tenants.id"), nullable=False),
    sa.Column("scope_key", sa.String(32), nullable=False),
    sa.Column("first_seq", sa.Integer, nullable=False),
    sa.Column("last_seq", sa.Integer, nullable=False),
    sa.Column("reason", sa.String(16), nullable=False),  # returned | expired | revoked
    sa.Column("lease_id", sa.ForeignKey("leases.id")),
    sa.Column("recorded_at", TS, nullable=False),
)

events = sa.Table(
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
    # accepted | quarantined | released (applied after review) | superseded (reviewed, not
    # applicable, e.g. the second `issued` of a serial)
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("code", sa.String(40)),
    # clock findings about occurred_at ("future", "before_lease"), comma-separated
    sa.Column("clock_flags", sa.String(64)),
    # agent: delivered by the agent (part of its reconcile digests); central: made by central
    # itself after a review (e.g. the `issued` fact of a number whose facts were lost)
    sa.Column("origin", sa.String(8), nullable=False, server_default="agent"),
    sa.Index(None, "serial"),
    sa.Index(None, "lease_id", "agent_id"),
)

registry = sa.Table(
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
    # link targets (the registry's half of the reference's "dual link")
    sa.Column("job_ticket", sa.String(64)),
    sa.Column("token", sa.String(64)),
    sa.Column("linked_work_order", sa.String(64)),
    sa.Column("linked_at", TS),
    sa.UniqueConstraint("scope_key", "seq"),
    sa.Index(None, "lease_id", "seq"),
    sa.Index(None, "tenant_id", "work_order"),
    sa.Index(None, "state", "updated_at"),
)

quarantine = sa.Table(
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
    sa.Column("resolution", sa.String(200)),  # the reviewer's reason
    sa.Column("resolution_kind", sa.String(16)),  # released | confirmed
    sa.Column("resolved_by", sa.String(128)),
    sa.Column("source", sa.String(16), nullable=False, server_default="ingest"),  # or checker
    sa.Index(None, "serial"),
    sa.Index(None, "resolved_at", "tenant_id"),
)

job_runs = sa.Table(
    "job_runs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("job", sa.String(64), nullable=False),
    sa.Column("trigger", sa.String(16), nullable=False),  # schedule | cli | api
    sa.Column("started_at", TS, nullable=False),
    sa.Column("finished_at", TS),
    sa.Column("status", sa.String(16), nullable=False),  # running | ok | failed | skipped
    sa.Column("counts", sa.Text, nullable=False, server_default="{}"),  # JSON
    sa.Column("errors", sa.Text),
    sa.Column("host", sa.String(128)),
    sa.Column("pid", sa.Integer),
    sa.Index(None, "job", "started_at"),
)

job_locks = sa.Table(
    "job_locks",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("holder", sa.String(160), nullable=False),
    sa.Column("acquired_at", TS, nullable=False),
    sa.Column("expires_at", TS, nullable=False),
)

audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("at", TS, nullable=False),
    sa.Column("actor", sa.String(128), nullable=False),
    sa.Column("tenant_id", sa.ForeignKey("tenants.id")),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("target", sa.String(200), nullable=False),
    sa.Column("reason", sa.String(500)),
    sa.Column("details", sa.Text, nullable=False, server_default="{}"),  # JSON
    sa.Index(None, "action", "at"),
    sa.Index(None, "target"),
)

# Public verify (#7): who checked a serial, as distinct clients per day. A client is a keyed
# hash of its IPv4 address or IPv6 /64 under that day's salt; salts are deleted once their
# day is over, so nobody (not even with the database) can tell which address a hash was.
verify_clients = sa.Table(
    "verify_clients",
    metadata,
    sa.Column("serial", sa.String(40), primary_key=True),
    sa.Column("day", sa.Date, primary_key=True),  # UTC day
    sa.Column("client", sa.String(32), primary_key=True),  # hex of 16 bytes of HMAC-SHA256
)

verify_salts = sa.Table(
    "verify_salts",
    metadata,
    sa.Column("day", sa.Date, primary_key=True),  # UTC day
    sa.Column("salt", sa.String(64), nullable=False),  # hex of 32 random bytes
)

# issue #9, ERP: what one ERP sync did beyond received/synced/failed, and why it stopped
for _name in ("created", "updated", "unchanged", "conflicts"):
    erp_syncs.append_column(sa.Column(_name, sa.Integer, nullable=False, server_default="0"))
erp_syncs.append_column(sa.Column("reason", sa.Text))  # the feed could not be read (whole)
# issue #9: the sort orders of work-order lists, each with the id that breaks
# ties, so a page walks an index and stops (keyset paging; see central/workorders.py)
sa.Index(None, work_orders.c.tenant_id, work_orders.c.created_at, work_orders.c.id)
sa.Index(None, work_orders.c.tenant_id, work_orders.c.quantity, work_orders.c.id)
# ... and what makes the count of a page cheap: by product (a SKU filter), and a narrow
# covering index for a text search, which must read every number and name of the tenant
sa.Index(None, work_orders.c.tenant_id, work_orders.c.product_id)
sa.Index(None, work_orders.c.tenant_id, work_orders.c.name, work_orders.c.number)
# issue #9, generation (issue #9): pre-generated randomised serials (sgtin-random), unique per GTIN,
# made for a work order by a generation task and later handed to lines as list leases
# (OPEN-SCS style: request, use, return unused). A serial is never deleted and never handed
# out twice: free -> leased -> used | returned (returned-unused serials stay retired).
serial_pool = sa.Table(
    "serial_pool",
    metadata,
    sa.Column("gtin", sa.String(14), primary_key=True),
    sa.Column("serial", sa.String(20), primary_key=True),
    sa.Column("tenant_id", sa.ForeignKey("tenants.id"), nullable=False),
    sa.Column("work_order_id", sa.ForeignKey("work_orders.id"), nullable=False),
    sa.Column("task_id", sa.String(36)),
    sa.Column("lease_id", sa.String(36)),  # the list lease that holds it (NULL: free)
    sa.Column("state", sa.String(10), nullable=False, server_default="free"),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("updated_at", TS),
    sa.Index(None, "work_order_id", "state"),
    sa.Index(None, "lease_id"),
)
