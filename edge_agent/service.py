"""`lineledger-edge run`: the unattended service of a line PC.

An APScheduler scheduler runs the outbox sync, the lease pool top-up, the print queue and the
config refresh in the background; the operator page is served on a local port. Each job runs
in at most one instance at a time and logs, rather than raises, what goes wrong.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler

from edge_agent import pool, reconcile, rollback
from edge_agent.agent import Agent
from edge_agent.errors import CentralRefused, CentralUnreachable, EdgeError
from edge_agent.outbox import SyncWorker, prune
from edge_agent.printing import PrintQueue
from edge_agent.scanner import ScannerReader
from edge_agent.scanning import ScanDesk
from edge_agent.status import build_status
from edge_agent.store import disk_error
from edge_agent.web import BackgroundServer, create_operator_app, operator_server

log = logging.getLogger("lineledger.edge")
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


TRACEMALLOC_ENV = "LINELEDGER_EDGE_TRACEMALLOC"


def trace_memory() -> None:
    """With LINELEDGER_EDGE_TRACEMALLOC=FILE, trace the heap; SIGUSR1 writes its growth to FILE.

    For finding what grows in a service that runs for months (bench/bench_edge_rss.py):
    the top allocation sites by growth since this call, 25 frames deep.
    """
    target = os.environ.get(TRACEMALLOC_ENV)
    if not target:
        return
    import tracemalloc

    tracemalloc.start(25)
    baseline = tracemalloc.take_snapshot()

    def dump(*_: Any) -> None:
        snapshot = tracemalloc.take_snapshot().filter_traces(
            [tracemalloc.Filter(False, tracemalloc.__file__)]
        )
        stats = snapshot.compare_to(baseline, "traceback")
        lines = [f"traced now {tracemalloc.get_traced_memory()[0] / 2**20:.2f} MiB"]
        for stat in stats[:15]:
            lines.append(str(stat))
            lines.extend("    " + line for line in stat.traceback.format()[-8:])
        Path(target).write_text("\n".join(lines) + "\n")

    signal.signal(signal.SIGUSR1, dump)


def configure_logging(verbose: bool = False) -> None:
    """Log the agent at INFO; APScheduler's per-run lines only with `verbose` (DEBUG).

    Without it the scheduler says nothing about routine runs (two lines a second with the
    print queue's one-second interval) and still warns about missed or failing runs.
    """
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format=LOG_FORMAT)
    logging.getLogger("apscheduler").setLevel(logging.DEBUG if verbose else logging.WARNING)


class Service:
    """The scheduler, the workers and the operator page of one agent."""

    def __init__(
        self, agent: Agent, printer_url: str | None = None, scanner_url: str | None = None
    ) -> None:
        self.agent = agent
        self.printer_url = printer_url or agent.config.printer_url or None
        self.scanner_url = scanner_url or agent.config.scanner_url or None
        self.sync = SyncWorker(agent)
        self.queue = PrintQueue(agent)
        self.desk = ScanDesk(agent)
        self.scanner: ScannerReader | None = None
        self.scheduler = BackgroundScheduler(timezone=dt.UTC)
        self.last_errors: dict[str, str] = {}
        self._server: BackgroundServer | None = None
        self._last_marks = 0.0
        self._reconcile_wanted = threading.Event()
        self._reconcile_failed = False  # the last reconcile could not reach central
        self.operator_url = ""

    def _job(self, name: str, fn: Callable[[], Any]) -> Callable[[], None]:
        def run() -> None:
            log.debug("job %s runs", name)
            try:
                fn()
                self.last_errors.pop(name, None)
            except (CentralUnreachable, CentralRefused, EdgeError) as exc:
                self.last_errors[name] = f"{exc.code}: {exc.message}"
                log.warning("%s: %s", name, exc)
            except Exception as exc:  # a job must never take the service down
                coded = disk_error(exc, self.agent.store.path)
                if coded is not None:  # a full or read-only disk: one line, not a traceback
                    self.last_errors[name] = f"{coded.code}: {coded.message}"
                    log.warning("%s: %s", name, coded)
                    return
                log.exception("%s failed", name)
                self.last_errors[name] = "internal error; see the log"

        run.__name__ = run.__qualname__ = f"lineledger-edge {name}"
        return run

    def _sync(self) -> None:
        self.sync.run()
        if self.sync.take_caught_up():
            self._reconcile_soon()
        elif self._reconcile_failed and self.sync.last_error is None:
            # A reconcile that could not reach central is tried again as soon as a push
            # reaches it, not an hour later.
            self._reconcile_soon()

    def _reconcile_soon(self) -> None:
        """Run the full reconcile now (the outbox caught up after being behind).

        A reconcile running at this moment read its view before the catch-up ended, so it
        runs once more when it is done (the flag), rather than being skipped.
        """
        self._reconcile_wanted.set()
        job = self.scheduler.get_job("reconcile")
        if job is not None:
            job.modify(next_run_time=dt.datetime.now(dt.UTC))

    def _reconcile(self) -> None:
        while True:
            self._reconcile_wanted.clear()
            if self.agent.revoked() is not None:
                return
            try:
                report = reconcile.reconcile(self.agent)
            except CentralUnreachable:
                self._reconcile_failed = True
                raise
            self._reconcile_failed = False
            if report.resent or report.again:
                # Events go out again: once they are delivered, reconcile again to confirm.
                self.sync.behind = True
            log.info(
                "reconciled %d leases: %d confirmed, %d events sent again",
                report.leases,
                report.confirmed,
                report.resent,
            )
            if not self._reconcile_wanted.is_set():
                return

    def _marks(self) -> None:
        """Report high-water marks when numbers were used since (or once a minute)."""
        if self.agent.revoked() is not None or not self.agent.config.marks_report:
            return
        now = time.monotonic()
        if not rollback.unreported_marks(self.agent) and now - self._last_marks < 60.0:
            return
        rollback.exchange_marks(self.agent)
        self._last_marks = now

    def _pool(self) -> None:
        if self.agent.revoked() is not None:
            return  # central refuses every lease; the operator page says why
        report = pool.maintain(self.agent, self.agent.now())
        for scope, granted in report.granted.items():
            log.info("leased %d numbers of %s", granted, scope)

    def _prune(self) -> None:
        removed = prune(self.agent, time.time(), self.agent.config.retention_days)
        if removed:
            log.info("pruned %d delivered events and sent print jobs", removed)

    def status(self) -> dict[str, Any]:
        """Return the status for the operator page (no blocking probes)."""
        out = build_status(
            self.agent, probe=False, sync_state=self.sync.state(), printer_url=self.printer_url
        )
        out["jobs_errors"] = dict(self.last_errors)
        out["scans"] = self.desk.recent()
        out["scanner"] = {
            "url": self.scanner_url,
            "state": self.scanner.state if self.scanner else "none",
            "error": self.scanner.last_error.message
            if self.scanner and self.scanner.last_error
            else None,
        }
        return out

    def start(self) -> None:
        """Start the scheduler and the operator page."""
        cfg = self.agent.config
        now = dt.datetime.now(dt.UTC)
        jobs: list[tuple[str, Callable[[], Any], float]] = [
            ("reconcile", self._reconcile, cfg.reconcile_interval),  # first: the rollback guard
            ("sync", self._sync, cfg.sync_interval),
            ("pool", self._pool, cfg.pool_interval),
            ("print", self.queue.run_all, 1.0),
            ("config", self.agent.refresh_config, cfg.config_interval),
            ("marks", self._marks, cfg.marks_seconds),
            ("prune", self._prune, 3600.0),
        ]
        for name, fn, seconds in jobs:
            self.scheduler.add_job(
                self._job(name, fn),
                "interval",
                seconds=seconds,
                id=name,
                name=name,
                max_instances=1,
                coalesce=True,
                # A job that starts late on a busy PC still runs (APScheduler's default
                # grace of one second would drop it, e.g. the reconcile at start).
                misfire_grace_time=None,
                next_run_time=now,
            )
        self.scheduler.start()
        if self.scanner_url:
            self.scanner = ScannerReader(self.scanner_url, self.desk.on_scanner).start()
        # Served on every interface the page answers any Host; on one address only by it
        # (and by localhost), which keeps pages from other sites out (DNS rebinding).
        everywhere = cfg.operator_host in ("0.0.0.0", "::", "")
        hosts: set[str] | None = None if everywhere else set()
        app = create_operator_app(self.status, self.agent, self.desk, hosts)
        self._server = operator_server(app, cfg.operator_host, cfg.operator_port).start()
        port = self._server.port
        if hosts is not None:
            hosts.update({f"{cfg.operator_host}:{port}", f"localhost:{port}"})
            if cfg.operator_host == "127.0.0.1":
                hosts.add(f"127.0.0.1:{port}")
        self.operator_url = f"http://{cfg.operator_host}:{port}/"

    def stop(self) -> None:
        """Stop the jobs (waiting for running ones), the page, and release resources."""
        if self.scanner is not None:
            self.scanner.stop()
        self.scheduler.shutdown(wait=True)
        if self._server is not None:
            self._server.stop()
        self.queue.close()
