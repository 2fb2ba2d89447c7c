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
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from central import tables as T
from central.agent_metrics import AgentGauges
from central.db import Store
from central.jobs import catalog
from central.jobs.runs import STATUSES, job_status, last_complete, scheduler_status
from central.timeutil import utcnow
from protocol import errors as PE

# Quarantine reasons the reference's `quarantine.invalid_format` gauge counts.
FORMAT_REASONS = (
    PE.ERR_SERIAL_EMPTY,
    PE.ERR_SERIAL_LENGTH,
    PE.ERR_SERIAL_CHARS,
    PE.ERR_SERIAL_SYNTAX,
    PE.ERR_SERIAL_DATE,
    PE.ERR_SERIAL_SEQ,
    PE.ERR_SERIAL_CHECK,
    PE.ERR_SERIAL_MAC,
)
_FAST = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.15, 0.2, 0.5, 1.0, 2.5)


class _StoreGauges(Collector):
    """Read the registry's state gauges from the database at scrape time."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def collect(self) -> Iterator[Metric]:
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
            ever = conn.execute(sa.select(sa.func.count()).select_from(T.quarantine)).scalar()
        total = GaugeMetricFamily(
            "quarantine_total_quarantined", "Serials held in quarantine and not yet resolved"
        )
        total.add_metric([], sum(n for _, n in open_q))
        yield total
        created = CounterMetricFamily(
            "quarantine_entries", "Quarantine entries ever made (open or resolved)"
        )
        created.add_metric([], ever or 0)
        yield created
        invalid = GaugeMetricFamily(
            "quarantine_invalid_format", "Open quarantine entries for a serial's format or MAC"
        )
        invalid.add_metric([], sum(n for reason, n in open_q if reason in FORMAT_REASONS))
        yield invalid
        orphaned = GaugeMetricFamily(
            "quarantine_orphaned", "Open quarantine entries of orphaned serials"
        )
        orphaned.add_metric([], sum(n for reason, n in open_q if reason == "ERR_ORPHANED"))
        yield orphaned
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


class _JobGauges(Collector):
    """Read the central jobs' last runs from `job_runs` at scrape time ("job not running")."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def collect(self) -> Iterator[GaugeMetricFamily]:
        now = utcnow()
        with self.store.read() as conn:
            statuses = [job_status(conn, name) for name in catalog.JOBS]
            sched = scheduler_status(conn, now)
            check = last_complete(conn, catalog.CONSISTENCY_CHECK)
        success = GaugeMetricFamily(
            "lineledger_job_last_success_timestamp_seconds",
            "When the job last finished successfully over every tenant (Unix time)",
            labels=["job"],
        )
        started = GaugeMetricFamily(
            "lineledger_job_last_run_timestamp_seconds",
            "When the job's last run started (Unix time)",
            labels=["job"],
        )
        last_status = GaugeMetricFamily(
            "lineledger_job_last_run_status",
            "1 for the status of the job's last run (running, ok, failed, skipped)",
            labels=["job", "status"],
        )
        running = GaugeMetricFamily(
            "lineledger_job_running", "1 while a process holds the job's lock", labels=["job"]
        )
        for status in statuses:
            last, ok = status.last_run, status.last_success
            if ok is not None and ok.finished_at is not None:
                success.add_metric([status.job], ok.finished_at.timestamp())
            if last is not None:
                started.add_metric([status.job], last.started_at.timestamp())
                for name in STATUSES:
                    last_status.add_metric([status.job, name], 1 if last.status == name else 0)
            running.add_metric([status.job], 1 if status.running(now) else 0)
        yield success
        yield started
        yield last_status
        yield running
        alive = GaugeMetricFamily(
            "lineledger_jobs_scheduler_alive", "1 while a `lineledger-central jobs` process runs"
        )
        alive.add_metric([], 1 if sched["alive"] else 0)
        yield alive
        if check is not None and "failures" in check.counts:
            failures = GaugeMetricFamily(
                "consistency_check_failures",
                "Findings of the last complete consistency check that need a person "
                "(quarantined, already quarantined or reported), plus tenants it could not check",
            )
            failures.add_metric([], check.counts["failures"])
            yield failures
            findings = GaugeMetricFamily(
                "consistency_check_findings",
                "Findings of the last complete consistency check by kind",
                labels=["kind"],
            )
            for kind, n in sorted(check.counts.get("findings", {}).items()):
                findings.add_metric([kind], n)
            yield findings


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
        self.clone_signals = Counter(
            "serial_clone_signals",
            "Scans of a serial by another line than the one it was leased to",
            registry=r,
        )
        self.http_errors = Counter("http_errors", "Error answers by code", ["code"], registry=r)
        r.register(_StoreGauges(store))
        r.register(_JobGauges(store))
        r.register(AgentGauges(store))

    def record_ingest(self, counts: Any, codes: list[str | None]) -> None:
        """Count an ingested batch by type/result and the reference's error counters."""
        for (etype, result), n in counts.items():
            self.events.labels(etype, result).inc(n)
        for code in codes:
            if code == "CLONE_SIGNAL":
                self.clone_signals.inc()
            elif code == "ERR_CONTEXT_MISMATCH":
                self.context_mismatch.inc()
            elif code == "ERR_DUPLICATE_SERIAL":
                self.duplicate.inc()
            elif code and code.startswith("ERR_SERIAL_") and code != "ERR_SERIAL_MAC":
                self.invalid_format.inc()
