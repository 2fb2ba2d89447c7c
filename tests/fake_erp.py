"""A fake ERP on 127.0.0.1 (port 0) for the ERP sync tests and benchmark.

Each path answers as told by a `Route`: JSON pages with a `next` link, a status code, a
wrong content type, an oversized body, a redirect, or an answer held back until the test
releases an Event (a "slow" ERP, without any sleep racing the client's timeout).
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Route:
    """How one path answers."""

    body: Any = None  # JSON-able, or bytes sent as is
    status: int = 200
    content_type: str = "application/json"
    location: str | None = None  # a redirect target
    hold: threading.Event | None = None  # answer only after this is set
    fail_times: int = 0  # answer 500 this many times first
    hits: int = 0


@dataclass
class FakeErp:
    """The server, its routes, and what it saw."""

    routes: dict[str, Route] = field(default_factory=dict)
    seen_auth: list[str | None] = field(default_factory=list)

    def start(self) -> FakeErp:
        erp = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                erp.seen_auth.append(self.headers.get("Authorization"))
                route = erp.routes.get(self.path)
                if route is None:
                    self.send_error(404)
                    return
                route.hits += 1
                if route.hold is not None:
                    route.hold.wait(30)
                if route.fail_times >= route.hits:
                    self._send(500, b'{"error": "boom"}', "application/json")
                    return
                if route.location is not None:
                    self.send_response(route.status)
                    self.send_header("Location", route.location)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = route.body
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self._send(route.status, data, route.content_type)

            def _send(self, status: int, data: bytes, ctype: str) -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", ctype)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def pages(self, records: list[dict[str, Any]], size: int, prefix: str = "/wo") -> str:
        """Serve records in pages of `size` linked by `next`; return the first page's URL."""
        chunks = [records[i : i + size] for i in range(0, len(records), size)] or [[]]
        for n, chunk in enumerate(chunks):
            nxt = f"{self.url}{prefix}?page={n + 2}" if n + 1 < len(chunks) else None
            self.routes[f"{prefix}?page={n + 1}"] = Route({"results": chunk, "next": nxt})
        return f"{self.url}{prefix}?page=1"

    def close(self) -> None:
        for route in self.routes.values():
            if route.hold is not None:
                route.hold.set()
        self.server.shutdown()
        self.server.server_close()
