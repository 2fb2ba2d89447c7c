"""Prometheus metrics of the central registry, named after the reference's metrics.

Counters and histograms live in a registry of the app's own (several apps in one test
process must not share counters); gauges that describe stored state are read from the
database when Prometheus scrapes.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from central import tables as T
from central.agent_metrics import AgentGauges
from central.db import Store

_FAST = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.15, 0.2, 0.5, 1.0, 2.5)


class _StoreGauges(Collector):
    """Read the registry's state gauges from the database at scrape time."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def collect(self) -> Iterator[GaugeMetricFamily]:
        with self.store.read() as conn:
            open_q = conn.execute(
                sa.select(T.quarantine.c.reason, sa.func.count())
                .where(T.quarantine.c.resolved_at.is_(None))
                .group_by(T.quarantine.c.reason)
            ).all()
            states = conn.execute(
                sa.select(T.registry.c.state, sa.func.count()).group_by(T.registry.c.state)
            ).all()
            leases = conn.execute(
                sa.select(T.leases.c.status, sa.func.count()).group_by(T.leases.c.status)
            ).all()
        total = GaugeMetricFamily(
            "quarantine_total_quarantined", "Serials held in quarantine and not yet resolved"
        )
        total.add_metric([], sum(n for _, n in open_q))
        yield total
        by_reason = GaugeMetricFamily(
            "quarantine_open", "Open quarantine entries by reason", labels=["reason"]
        )
        for reason, n in open_q:
            by_reason.add_metric([reason], n)
        yield by_reason
        registry = GaugeMetricFamily(
            "registry_serials", "Serials in the registry by state", labels=["state"]
        )
        for state, n in states:
            registry.add_metric([state], n)
        yield registry
        lease_g = GaugeMetricFamily("leases", "Leases by status", labels=["status"])
        for status, n in leases:
            lease_g.add_metric([status], n)
        yield lease_g


class Metrics:
    """The counters and histograms the app updates as it works."""

    def __init__(self, store: Store) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.events = Counter(
            "events_ingested", "Edge events by type and result", ["type", "result"], registry=r
        )
        self.ingest_seconds = Histogram(
            "ingest_batch_seconds", "Time to ingest one batch", buckets=_FAST, registry=r
        )
        self.leases = Counter("leases_granted", "Leases granted", registry=r)
        self.lease_numbers = Counter(
            "serial_pre_generated", "Serial numbers granted in leases", registry=r
        )
        self.lease_seconds = Histogram(
            "assignment_resolution_seconds", "Time to grant a lease", buckets=_FAST, registry=r
        )
        self.verify = Counter(
            "verify_requests", "Public verifications by verdict", ["verdict"], registry=r
        )
        self.verify_seconds = Histogram(
            "verify_latency_seconds", "Public verify latency", buckets=_FAST, registry=r
        )
        self.context_mismatch = Counter(
            "error_context_mismatch", "Links refused for the wrong context", registry=r
        )
        self.duplicate = Counter("error_duplicate", "Serials reported issued twice", registry=r)
        self.invalid_format = Counter(
            "error_invalid_format", "Events whose serial failed the format", registry=r
        )
        self.http_errors = Counter("http_errors", "Error answers by code", ["code"], registry=r)
        r.register(_StoreGauges(store))
        r.register(AgentGauges(store))

    def record_ingest(self, counts: Any, codes: list[str | None]) -> None:
        """Count an ingested batch by type/result and the reference's error counters."""
        for (etype, result), n in counts.items():
            self.events.labels(etype, result).inc(n)
        for code in codes:
            if code == "ERR_CONTEXT_MISMATCH":
                self.context_mismatch.inc()
            elif code == "ERR_DUPLICATE_SERIAL":
                self.duplicate.inc()
            elif code and code.startswith("ERR_SERIAL_") and code != "ERR_SERIAL_MAC":
                self.invalid_format.inc()
