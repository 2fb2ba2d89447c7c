"""The operator page: a small local web page showing what `lineledger-edge status` shows,
plus `/metrics` for Prometheus with the reference's outbox gauges."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from flask import Flask, Response, jsonify, render_template, request
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

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
        jobs = GaugeMetricFamily("print_jobs", "Print jobs by status", labels=["status"])
        for status, n in printer.get("jobs", {}).items():
            jobs.add_metric([status], n)
        yield jobs
        central = GaugeMetricFamily("central_reachable", "1 when the last sync reached central")
        central.add_metric([], 1 if s.get("central", {}).get("reachable") else 0)
        yield central


def create_operator_app(
    status: Callable[[], dict[str, Any]], agent: Agent | None = None, desk: ScanDesk | None = None
) -> Flask:
    """Build the operator page app around a function that returns the current status."""
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = 16 * 1024
    registry = CollectorRegistry()
    registry.register(_StatusGauges(status))

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
