"""Reconcile, lease expiry, revoke, quarantine review, jobs and the audit record (issue #6).

Adds columns to agents, leases, events, registry, quarantine and work orders, and the tables
job_runs, job_locks and audit_log. Every event now names the lease central found for its
serial, so events recorded before this revision get theirs from the registry.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)

_COLUMNS: dict[str, list[sa.Column[object]]] = {
    "agents": [
        sa.Column("revoked_at", TS),
        sa.Column("revoked_reason", sa.String(500)),
        sa.Column("revoked_by", sa.String(128)),
        sa.Column("token_rotated_at", TS),
        sa.Column("last_report", sa.Text),
        sa.Column("last_reconcile_at", TS),
        sa.Column("clock_offset_ms", sa.BigInteger),
    ],
    "leases": [
        sa.Column("closed_at", TS),
        sa.Column("reported_hw", sa.Integer),
        sa.Column("reported_at", TS),
        sa.Column("reconciled_at", TS),
        sa.Column("reported_counts", sa.Text),
        sa.Column("digest_ok", sa.Boolean),
        sa.Column("resend_requested_at", TS),
    ],
    "events": [
        sa.Column("clock_flags", sa.String(64)),
        sa.Column("origin", sa.String(8), nullable=False, server_default="agent"),
    ],
    "registry": [
        sa.Column("job_ticket", sa.String(64)),
        sa.Column("token", sa.String(64)),
        sa.Column("linked_work_order", sa.String(64)),
        sa.Column("linked_at", TS),
    ],
    "quarantine": [
        sa.Column("resolution_kind", sa.String(16)),
        sa.Column("resolved_by", sa.String(128)),
        sa.Column("source", sa.String(16), nullable=False, server_default="ingest"),
    ],
    "work_orders": [
        sa.Column("updated_at", TS),
        sa.Column("recalled_at", TS),
        sa.Column("recall_reason", sa.String(500)),
    ],
}

_INDEXES = [
    ("ix_leases_status_expires_at", "leases", ["status", "expires_at"]),
    ("ix_leases_agent_id_status", "leases", ["agent_id", "status"]),
    ("ix_events_lease_id_agent_id", "events", ["lease_id", "agent_id"]),
    ("ix_registry_lease_id_seq", "registry", ["lease_id", "seq"]),
    ("ix_registry_tenant_id_work_order", "registry", ["tenant_id", "work_order"]),
    ("ix_registry_state_updated_at", "registry", ["state", "updated_at"]),
    ("ix_quarantine_resolved_at_tenant_id", "quarantine", ["resolved_at", "tenant_id"]),
]


def upgrade() -> None:
    for table, columns in _COLUMNS.items():
        for column in columns:
            op.add_column(table, column)
    for name, table, columns in _INDEXES:
        op.create_index(name, table, columns)
    op.create_table(
        "job_runs",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("job", sa.String(64), nullable=False),
        sa.Column("trigger", sa.String(16), nullable=False),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("finished_at", TS),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("counts", sa.Text, nullable=False, server_default="{}"),
        sa.Column("errors", sa.Text),
        sa.Column("host", sa.String(128)),
        sa.Column("pid", sa.Integer),
        sa.PrimaryKeyConstraint("id", name="pk_job_runs"),
    )
    op.create_index("ix_job_runs_job_started_at", "job_runs", ["job", "started_at"])
    op.create_table(
        "job_locks",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("holder", sa.String(160), nullable=False),
        sa.Column("acquired_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_job_locks"),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("tenant_id", sa.Integer),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("target", sa.String(200), nullable=False),
        sa.Column("reason", sa.String(500)),
        sa.Column("details", sa.Text, nullable=False, server_default="{}"),
        sa.PrimaryKeyConstraint("id", name="pk_audit_log"),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name="fk_audit_log_tenant_id_tenants"
        ),
    )
    op.create_index("ix_audit_log_action_at", "audit_log", ["action", "at"])
    op.create_index("ix_audit_log_target", "audit_log", ["target"])
    # Events of release 0.2 name a lease only when they are `issued` events; every event now
    # names the lease of its serial, which the reconcile digests group by.
    op.execute(
        "UPDATE events SET lease_id = (SELECT r.lease_id FROM registry r "
        "WHERE r.serial = events.serial) WHERE lease_id IS NULL"
    )
    # A returned lease was closed when it was returned.
    op.execute("UPDATE leases SET closed_at = returned_at WHERE status = 'returned'")
    # Links recorded before this revision: take the targets from the accepted link events.
    conn = op.get_bind()
    rows = conn.execute(
        sa.text(
            "SELECT serial, data, occurred_at FROM events "
            "WHERE type = 'linked' AND outcome = 'accepted' ORDER BY event_id"
        )
    ).all()
    for row in rows:
        data = json.loads(row.data or "{}")
        conn.execute(
            sa.text(
                "UPDATE registry SET job_ticket = COALESCE(:jt, job_ticket), "
                "token = COALESCE(:tk, token), linked_work_order = COALESCE(:wo, "
                "linked_work_order), linked_at = :at WHERE serial = :serial"
            ),
            {
                "jt": data.get("job_ticket"),
                "tk": data.get("token"),
                "wo": data.get("work_order"),
                "at": row.occurred_at,
                "serial": row.serial,
            },
        )


def downgrade() -> None:
    raise NotImplementedError("downgrades are not supported; restore the backup taken before")
