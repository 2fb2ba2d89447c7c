"""Per-line gauges from what the agents last reported: outbox health, clock offset, contact.

Read from the database at scrape time (one small query over the agents table), so every web
worker exports the same values and nothing is kept in memory between scrapes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from central import tables as T
from central.db import Store
from central.timeutil import as_utc


class AgentGauges(Collector):
    """Export each agent's last report as gauges labelled by org and line."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def collect(self) -> Iterator[GaugeMetricFamily]:
        with self.store.read() as conn:
            rows = conn.execute(
                sa.select(
                    T.agents.c.line,
                    T.agents.c.status,
                    T.agents.c.last_seen_at,
                    T.agents.c.last_report,
                    T.agents.c.clock_offset_ms,
                    T.tenants.c.org_code,
                ).join(T.tenants, T.tenants.c.id == T.agents.c.tenant_id)
            ).all()
        labels = ["org", "line"]
        pending = GaugeMetricFamily(
            "agent_outbox_pending",
            "Events waiting in a line's outbox (its last report)",
            labels=labels,
        )
        dead = GaugeMetricFamily(
            "agent_outbox_dead", "Dead events in a line's outbox (its last report)", labels=labels
        )
        age = GaugeMetricFamily(
            "agent_outbox_pending_age_seconds",
            "Age of the oldest pending event of a line when it last reported",
            labels=labels,
        )
        offset = GaugeMetricFamily(
            "agent_clock_offset_seconds", "Central time minus the line PC's clock", labels=labels
        )
        seen = GaugeMetricFamily(
            "agent_last_seen_timestamp_seconds",
            "When central last heard from a line",
            labels=labels,
        )
        revoked = GaugeMetricFamily(
            "agent_revoked", "1 when a line's agent is revoked", labels=labels
        )
        for row in rows:
            key = [row.org_code, row.line]
            report = _report(row.last_report)
            outbox = report.get("outbox") or {}
            pending.add_metric(key, float(outbox.get("pending", 0)))
            dead.add_metric(key, float(outbox.get("dead", 0)))
            age.add_metric(key, float(outbox.get("oldest_pending_age_s") or 0))
            if row.clock_offset_ms is not None:
                offset.add_metric(key, row.clock_offset_ms / 1000)
            last = as_utc(row.last_seen_at)
            if last is not None:
                seen.add_metric(key, last.timestamp())
            revoked.add_metric(key, 1.0 if row.status == "revoked" else 0.0)
        yield from (pending, dead, age, offset, seen, revoked)


def _report(text: str | None) -> dict[str, Any]:
    try:
        value = json.loads(text or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
