"""The operator page: a small local web page showing what `lineledger-edge status` shows,
plus `/metrics` for Prometheus with the reference's outbox gauges."""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from flask import Flask, Response, jsonify, render_template, request
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from waitress import wasyncore

from edge_agent.agent import Agent
from edge_agent.errors import EdgeError
from edge_agent.labels import preview_for
from edge_agent.scanning import ScanDesk
from printers import PrinterError
from printers.render import render_label


class _StatusGauges(Collector):
    """Turn the agent's status into gauges at scrape time."""

    def __init__(self, status: Callable[[], dict[str, Any]]) -> None:
        self.status = status

    def collect(self) -> Iterator[GaugeMetricFamily]:
        s = self.status()
        box = s.get("outbox", {})
        for name, key, doc in (
            ("link_outbox_pending_count", "pending", "Outbox events waiting for delivery"),
            ("link_outbox_dead_count", "dead", "Outbox events that went dead after retries"),
            ("link_outbox_refused_count", "rejected", "Outbox events central rejected"),
        ):
            g = GaugeMetricFamily(name, doc)
            g.add_metric([], box.get(key, 0))
            yield g
        age = GaugeMetricFamily("outbox_pending_age_seconds", "Age of the oldest pending event")
        age.add_metric([], box.get("oldest_pending_age_s") or 0.0)
        yield age
        pool = GaugeMetricFamily(
            "lease_pool_remaining", "Serial numbers on hand per scope", labels=["scope"]
        )
        for scope, level in s.get("pool", {}).items():
            pool.add_metric([scope], level["remaining"])
        yield pool
        printer = s.get("printer", {})
        ready = GaugeMetricFamily("printer_ready", "1 when the printer reported ready")
        ready.add_metric([], 1 if printer.get("state") == "ready" else 0)
        yield ready
        odo = printer.get("odometer") or {}
        hold = GaugeMetricFamily(
            "printer_odometer_hold", "1 while the printer's label odometer holds printing"
        )
        hold.add_metric([], 1 if odo.get("held") else 0)
        yield hold
        unknown = GaugeMetricFamily(
            "printer_odometer_unknown_labels",
            "Labels the printer counted that this agent has no record of",
        )
        unknown.add_metric([], odo.get("unknown") or 0)
        yield unknown
        jobs = GaugeMetricFamily("print_jobs", "Print jobs by status", labels=["status"])
        for status, n in printer.get("jobs", {}).items():
            jobs.add_metric([status], n)
        yield jobs
        central = GaugeMetricFamily("central_reachable", "1 when the last sync reached central")
        central.add_metric([], 1 if s.get("central", {}).get("reachable") else 0)
        yield central


def create_operator_app(
    status: Callable[[], dict[str, Any]],
    agent: Agent | None = None,
    desk: ScanDesk | None = None,
    allowed_hosts: set[str] | None = None,
    scans_per_second: int = 20,
) -> Flask:
    """Build the operator page app around a function that returns the current status.

    `allowed_hosts` (host:port values) defeats DNS rebinding: a page served from another
    name cannot reach this one even though it resolves to 127.0.0.1. None allows any Host,
    for a page deliberately served on the plant network.
    """
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = 16 * 1024
    registry = CollectorRegistry()
    registry.register(_StatusGauges(status))
    recent_scans: collections.deque[float] = collections.deque(maxlen=scans_per_second)

    @app.before_request
    def check_host() -> Any:
        if allowed_hosts is not None and request.host.lower() not in allowed_hosts:
            return jsonify(
                ok=False,
                error={"code": "ERR_FORBIDDEN", "message": "open this page by its own address"},
            ), 403
        return None

    @app.get("/")
    def page() -> str:
        return render_template("operator.html", status=status())

    @app.get("/status.json")
    def status_json() -> Any:
        response = jsonify(status())
        response.headers["Cache-Control"] = "no-store"
        return response

    @app.get("/metrics")
    def metrics() -> Response:
        return Response(
            generate_latest(registry), mimetype="text/plain; version=0.0.4; charset=utf-8"
        )

    @app.post("/scan")
    def scan() -> Any:
        """Answer what a keyboard-wedge scanner typed into the page."""
        # JSON only: a foreign web page cannot send it without a CORS preflight we refuse.
        body = request.get_json(silent=True) if request.is_json else None
        code = body.get("code") if isinstance(body, dict) else None
        now = time.monotonic()
        if len(recent_scans) == recent_scans.maxlen and now - recent_scans[0] < 1.0:
            return jsonify(
                ok=False, error={"code": "ERR_RATE_LIMITED", "message": "too many scans at once"}
            ), 429
        recent_scans.append(now)
        if desk is None or not isinstance(code, str) or not 0 < len(code) <= 4096:
            return jsonify(
                ok=False,
                error={"code": "ERR_SCAN_EMPTY", "message": 'send {"code": "..."} as JSON'},
            ), 400
        return jsonify(ok=True, **desk.answer_text(code).to_dict())

    @app.get("/preview.<fmt>")
    def preview(fmt: str) -> Any:
        """Show what the next label of a work order looks like (PNG or PDF)."""
        if agent is None or fmt not in ("png", "pdf"):
            return jsonify(ok=False, error={"code": "ERR_NOT_FOUND", "message": "no preview"}), 404
        try:
            label, template = preview_for(agent, request.args.get("work_order", "")[:64])
            data = render_label(label, template, fmt)
        except (EdgeError, PrinterError) as exc:
            return jsonify(ok=False, error=exc.to_dict()), 404
        response = Response(data, mimetype="image/png" if fmt == "png" else "application/pdf")
        response.headers["Cache-Control"] = "no-store"
        return response

    return app


class BackgroundServer:
    """A waitress server running in a thread of its own, stoppable from any other thread.

    The serving thread runs waitress's loop one poll at a time and does all the closing
    itself when asked to stop: no descriptor is ever closed under a poll in another thread.
    """

    def __init__(self, app: Any, host: str, port: int, threads: int = 4, **options: Any) -> None:
        from waitress import create_server

        self.server: Any = create_server(app, host=host, port=port, threads=threads, **options)
        self.port = int(self.server.effective_port)
        self.url = f"http://{host}:{self.port}"
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="http-server", daemon=True)

    def start(self) -> BackgroundServer:
        """Start serving."""
        self._thread.start()
        return self

    def _serve(self) -> None:
        server, map_ = self.server, self.server._map
        while not self._stopping.is_set():
            wasyncore.loop(timeout=0.1, map=map_, count=1)
        wasyncore.dispatcher.close(server)  # stop accepting; answer what is under way
        dispatcher = server.task_dispatcher
        deadline = time.monotonic() + 5.0
        while (dispatcher.queue or dispatcher.active_count) and time.monotonic() < deadline:
            wasyncore.loop(timeout=0.05, map=map_, count=1)
        dispatcher.shutdown(cancel_pending=True, timeout=5.0)
        for channel in list(map_.values()):
            channel.close()

    def stop(self, timeout: float = 15.0) -> None:
        """Stop serving and wait for the serving thread to finish."""
        self._stopping.set()
        self._thread.join(timeout)
