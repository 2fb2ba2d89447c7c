"""The operator page: a small local web page showing what `lineledger-edge status` shows,
plus `/metrics` for Prometheus with the reference's outbox gauges."""

from __future__ import annotations

import collections
import io
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from flask import Flask, Response, jsonify, render_template, request
from markupsafe import Markup, escape
from PIL import Image, ImageDraw, ImageFont
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from waitress import wasyncore
from waitress.channel import HTTPChannel
from waitress.task import ErrorTask
from werkzeug.exceptions import HTTPException

from edge_agent import alerts, links
from edge_agent.agent import Agent
from edge_agent.errors import (
    ERR_CONTEXT_MISMATCH,
    ERR_JOB_TICKET_UNKNOWN,
    ERR_LINK_TARGET,
    ERR_NOT_OURS,
    ERR_SPAWN_SHORT,
    ERR_TOKEN_LINKED,
    EdgeError,
)
from edge_agent.issuing import next_serial
from edge_agent.labels import preview_for
from edge_agent.scanning import ScanDesk
from printers import PrinterError
from printers.render import render_label
from protocol.errors import ERR_ILLEGAL_TRANSITION, CodedError

# HTTP status of each refusal of the link and spawn endpoints (anything else: 400).
_STATUS = {
    ERR_NOT_OURS: 404,
    ERR_JOB_TICKET_UNKNOWN: 404,
    ERR_CONTEXT_MISMATCH: 409,
    ERR_TOKEN_LINKED: 409,
    ERR_SPAWN_SHORT: 409,
    ERR_ILLEGAL_TRANSITION: 409,
    "ERR_UNKNOWN_WORK_ORDER": 404,
}
# Largest request body; the web server refuses more before reading it (chunked too).
MAX_BODY = 16 * 1024
# Refusals of the HTTP layer (the web server's and Flask's), in the app's one error shape.
_HTTP = {
    400: ("ERR_BAD_REQUEST", "the request could not be read"),
    404: ("ERR_NOT_FOUND", "there is no such page or API on the operator page"),
    405: ("ERR_METHOD_NOT_ALLOWED", "this address does not take that method"),
    413: ("ERR_TOO_LARGE", f"the request body is larger than {MAX_BODY} bytes"),
    431: ("ERR_HEADERS_TOO_LARGE", "the request headers are too large"),
    500: ("ERR_INTERNAL", "the agent failed to answer this request; its log says why"),
    501: ("ERR_NOT_IMPLEMENTED", "the request uses an HTTP feature the agent does not support"),
}

# What an operator reads for each printer state; the code stays on the page for support.
PRINTER_WORDS = {
    "ready": "Ready",
    "unknown": "Checking…",
    "paper_out": "Out of labels",
    "head_open": "Print head open",
    "ribbon_out": "Out of ribbon",
    "paused": "Printer paused",
    "buffer_full": "Printer busy",
    "busy": "Printing",
    "no_answer": "Printer not answering",
    "unreachable": "Printer not reachable",
    "error": "Printer error",
    "odometer_mismatch": "Printing held",
    "none": "No printer",
}
# A sentence where the agent recorded none (or only the state's code).
_PRINTER_SENTENCES = {
    "unknown": "Not checked yet: the printer is asked before the next labels print.",
    "ready": "The printer answered at its last check and is ready to print.",
}


def printer_words(state: str | None) -> str:
    """Return what the operator page says for a printer state."""
    if not state:
        return "—"
    return PRINTER_WORDS.get(state, state.replace("_", " ").capitalize())


def serial_html(text: str | None) -> Markup:
    """Return a serial (or scope) as HTML that a browser may break after hyphens only.

    The last two parts (a standard serial's MAC and check character) stay together, so a
    check character never stands alone on a line.
    """
    parts = [escape(part) for part in (text or "").split("-")]
    if len(parts) > 2:
        parts[-2:] = [Markup('<span class="nowrap">{}-{}</span>').format(*parts[-2:])]
    return Markup("-<wbr>").join(parts)


def _for_people(status: dict[str, Any]) -> dict[str, Any]:
    """Add the printer state in words (the page shows them; `state` keeps the code)."""
    printer = status.get("printer")
    if isinstance(printer, dict):
        state = printer.get("state")
        printer["label"] = printer_words(state)
        if state in _PRINTER_SENTENCES and printer.get("message") in (None, "", state):
            printer["message"] = _PRINTER_SENTENCES[state]
    return status


def _error(code: str, message: str, status: int) -> tuple[Response, int]:
    return jsonify(ok=False, error={"code": code, "message": message}), status


def _error_body(status: int) -> bytes:
    code, message = _HTTP.get(status, (f"ERR_HTTP_{status}", "the request was refused"))
    return json.dumps({"ok": False, "error": {"code": code, "message": message}}).encode()


class _JsonErrorTask(ErrorTask):  # type: ignore[misc]
    """Answer what the web server refuses itself (bad request line, too large) as JSON."""

    def execute(self) -> None:
        error = self.request.error
        body = _error_body(error.code)
        self.status = f"{error.code} {error.reason}"
        self.response_headers.append(("Content-Type", "application/json"))
        self.set_close_on_finish()
        self.content_length = len(body)
        self.write(body)


class _JsonErrorChannel(HTTPChannel):  # type: ignore[misc]
    error_task_class = _JsonErrorTask


def _sample_png(png: bytes) -> bytes:
    """Frame a label preview in red with a SAMPLE band above and below it.

    The bands lie outside the label, so its barcodes still read, and a printed copy of the
    picture says it is no label.
    """
    label = Image.open(io.BytesIO(png)).convert("RGB")
    band = max(24, label.height // 8)
    red = (176, 0, 32)
    out = Image.new("RGB", (label.width + 8, label.height + 2 * band + 8), red)
    out.paste(label, (4, band + 4))
    draw = ImageDraw.Draw(out)
    face = ImageFont.load_default(size=int(band * 0.7))
    text = "SAMPLE - NOT A LABEL"
    for y in (band // 2 + 2, out.height - band // 2 - 2):
        draw.text((out.width // 2, y), text, fill=(255, 255, 255), font=face, anchor="mm")
    buffer = io.BytesIO()
    out.save(buffer, "PNG")
    return buffer.getvalue()


class _StatusGauges(Collector):
    """Turn the agent's status into gauges at scrape time."""

    def __init__(self, status: Callable[[], dict[str, Any]]) -> None:
        self.status = status

    def collect(self) -> Iterator[Metric]:
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
        yield from self._integrity(s)

    def _integrity(self, s: dict[str, Any]) -> Iterator[Metric]:
        """Alerts, revocation, the clock, work-order allowances, job-ticket serials."""
        open_alerts = GaugeMetricFamily(
            "alerts_open", "Open alerts of the agent by kind", labels=["kind"]
        )
        by_kind = dict.fromkeys(alerts.KINDS, 0)
        for alert in s.get("alerts", []):
            by_kind[alert["kind"]] = by_kind.get(alert["kind"], 0) + 1
        for kind, n in sorted(by_kind.items()):
            open_alerts.add_metric([kind], n)
        yield open_alerts
        revoked = GaugeMetricFamily("agent_revoked", "1 when central revoked this agent")
        revoked.add_metric([], 1 if s.get("revoked") else 0)
        yield revoked
        clock = s.get("clock") or {}
        if clock.get("offset_s") is not None:
            offset = GaugeMetricFamily(
                "clock_offset_seconds", "Central's clock minus this PC's (positive: PC behind)"
            )
            offset.add_metric([], clock["offset_s"])
            yield offset
        left = GaugeMetricFamily(
            "work_order_remaining",
            "Serials a work order may still issue on this line",
            labels=["work_order"],
        )
        for number, allowance in (s.get("allowance") or {}).items():
            if allowance.get("remaining") is not None:
                left.add_metric([number], allowance["remaining"])
        yield left
        counts = s.get("links") or {}
        pre = CounterMetricFamily("serial_pre_generated", "Serials pre-generated for job tickets")
        pre.add_metric([], counts.get("pre_generated", 0))
        yield pre
        spawned = CounterMetricFamily("serial_spawn_used", "Pre-generated serials given to tokens")
        spawned.add_metric([], counts.get("spawned", 0))
        yield spawned


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
    registry = CollectorRegistry()
    registry.register(_StatusGauges(status))
    recent_scans: collections.deque[float] = collections.deque(maxlen=scans_per_second)
    recent_links: collections.deque[float] = collections.deque(maxlen=scans_per_second)

    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY
    app.jinja_env.filters["serial"] = serial_html

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Any:
        # Every refusal, 500 included (Flask wraps any exception in one), is JSON.
        status = exc.code or 500
        response = Response(_error_body(status), status, mimetype="application/json")
        for name, value in exc.get_headers():
            if name == "Allow":
                response.headers["Allow"] = value
        return response

    @app.errorhandler(sqlite3.Error)
    def store_error(exc: sqlite3.Error) -> Any:
        app.logger.warning("store error on %s: %s", request.path, exc)
        return _error("ERR_STORE", "the agent's database is busy or unavailable; retry", 503)

    def json_body() -> dict[str, Any] | None:
        # JSON only: a foreign web page cannot send it without a CORS preflight we refuse.
        body = request.get_json(silent=True) if request.is_json else None
        return body if isinstance(body, dict) else None

    def too_fast() -> bool:
        now = time.monotonic()
        if len(recent_links) == recent_links.maxlen and now - recent_links[0] < 1.0:
            return True
        recent_links.append(now)
        return False

    def refused(exc: CodedError) -> tuple[Response, int]:
        return _error(exc.code, exc.message, _STATUS.get(exc.code, 400))

    @app.before_request
    def check_host() -> Any:
        if allowed_hosts is not None and request.host.lower() not in allowed_hosts:
            return jsonify(
                ok=False,
                error={"code": "ERR_FORBIDDEN", "message": "open this page by its own address"},
            ), 403
        return None

    def next_for(work_order: str) -> dict[str, Any] | None:
        if agent is None or not work_order:
            return None
        try:
            return next_serial(agent, work_order[:64]).to_dict()
        except EdgeError:
            return None

    @app.get("/")
    def page() -> str:
        now = _for_people(status())
        numbers = now.get("work_orders") or []
        return render_template(
            "operator.html",
            status=now,
            next=next_for(numbers[0]) if numbers else None,
            printer_words=PRINTER_WORDS,
        )

    @app.get("/status.json")
    def status_json() -> Any:
        response = jsonify(_for_people(status()))
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

    @app.post("/link")
    def link_serial() -> Any:
        """Link a serial to a work order, a job ticket or a token (one of them)."""
        if too_fast():
            return _error("ERR_RATE_LIMITED", "too many requests at once", 429)
        body = json_body()
        if agent is None or body is None:
            return _error(
                ERR_LINK_TARGET,
                'send {"serial": "...", "token" | "job_ticket" | "work_order": "..."} as JSON',
                400,
            )
        named = [kind for kind in links.TARGETS if kind in body]
        if len(named) != 1:
            return _error(ERR_LINK_TARGET, "name exactly one of token, job_ticket, work_order", 400)
        try:
            serial = body.get("serial")
            if not isinstance(serial, str):
                raise EdgeError(ERR_NOT_OURS, "name a serial this line issued")
            return jsonify(links.link(agent, serial, named[0], body[named[0]]))
        except CodedError as exc:
            return refused(exc)

    @app.post("/spawn")
    def spawn_tokens() -> Any:
        """Give new tokens (pieces) of a job ticket their serials."""
        if too_fast():
            return _error("ERR_RATE_LIMITED", "too many requests at once", 429)
        body = json_body()
        tokens = body.get("tokens") if body is not None else None
        if agent is None or body is None or not isinstance(tokens, list):
            return _error(
                ERR_LINK_TARGET, 'send {"job_ticket": "...", "tokens": ["...", ...]} as JSON', 400
            )
        try:
            done = links.spawn(agent, body.get("job_ticket"), tokens)
        except CodedError as exc:
            return refused(exc)
        return jsonify(ok=True, spawned=[s.to_dict() for s in done])

    @app.get("/next.json")
    def next_json() -> Any:
        """Say which serial the next `issue` of a work order hands out (or why none)."""
        if agent is None:
            return _error("ERR_NOT_FOUND", "no agent behind this page", 404)
        try:
            found = next_serial(agent, request.args.get("work_order", "")[:64])
        except EdgeError as exc:
            return _error(exc.code, exc.message, 404)
        response = jsonify(ok=True, **found.to_dict())
        response.headers["Cache-Control"] = "no-store"
        return response

    @app.get("/preview.<fmt>")
    def preview(fmt: str) -> Any:
        """Show what the next label of a work order looks like (PNG or PDF).

        The PNG carries the serial the line hands out next, framed as a SAMPLE; the PDF,
        which an office printer could print as a label, keeps a sample serial.
        """
        if agent is None or fmt not in ("png", "pdf"):
            return _error("ERR_NOT_FOUND", "no preview", 404)
        work_order = request.args.get("work_order", "")[:64]
        try:
            serial = next_serial(agent, work_order).serial if fmt == "png" else None
            label, template = preview_for(agent, work_order, serial)
            data = render_label(label, template, fmt)
        except (EdgeError, PrinterError) as exc:
            return _error(exc.code, exc.message, 404)
        if fmt == "png":
            data = _sample_png(data)
        response = Response(data, mimetype="image/png" if fmt == "png" else "application/pdf")
        response.headers["Cache-Control"] = "no-store"
        return response

    return app


class BackgroundServer:
    """A waitress server running in a thread of its own, stoppable from any other thread.

    The serving thread runs waitress's loop one poll at a time and does all the closing
    itself when asked to stop: no descriptor is ever closed under a poll in another thread.
    """

    def __init__(
        self,
        app: Any,
        host: str,
        port: int,
        threads: int = 4,
        json_errors: bool = False,
        **options: Any,
    ) -> None:
        from waitress import create_server

        self.server: Any = create_server(app, host=host, port=port, threads=threads, **options)
        if json_errors:
            # What waitress refuses itself is answered in the app's error shape too.
            self.server.channel_class = _JsonErrorChannel
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


def operator_server(app: Any, host: str, port: int) -> BackgroundServer:
    """Serve the operator page: bodies over MAX_BODY refused unread, every error JSON."""
    return BackgroundServer(
        app,
        host,
        port,
        json_errors=True,
        ident="lineledger-edge",
        max_request_body_size=MAX_BODY,
    )
