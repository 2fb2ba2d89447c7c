"""Shed public load past saturation: a 503 with Retry-After instead of a queue into seconds.

A crowd of phones (a marketing campaign, a recall) can ask more than the web workers answer.
Queued requests then wait longer and longer, and every customer gets a slow answer or a
timeout. Instead, a public request that waited longer than `shed_after_ms` for a worker
thread is answered at once with 503 and `Retry-After`, which costs almost nothing, so the
requests that are served stay fast and the queue cannot grow.

The wait is measured by `QueueTimingWorker`, gunicorn's gthread worker that notes when each
request was handed to the thread pool (the production setting in deploy/gunicorn.conf.py).
Under another server (`serve`, the embedded waitress, or the Flask test client) no wait is
known and nothing is shed. Only the public verify endpoints are shed: agents' calls, admin
calls and health checks are always answered.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from flask import Flask, request

from central.errors import Unavailable

ERR_OVERLOADED = "ERR_OVERLOADED"
RETRY_AFTER_SECONDS = 1
SHED_ENDPOINTS = frozenset(
    {"public.verify_api", "public.verify_page", "public.verify_form", "public.digital_link"}
)

_waits = threading.local()


def queue_wait() -> float | None:
    """Return how long the current request waited for a worker thread (s), if known."""
    return getattr(_waits, "seconds", None)


def _note_wait(seconds: float | None) -> None:
    _waits.seconds = seconds


try:  # gunicorn is the production server, not a dependency of the package itself
    from gunicorn.workers.gthread import ThreadWorker
except ImportError:  # pragma: no cover - without gunicorn the worker is never asked for
    ThreadWorker = object


class QueueTimingWorker(ThreadWorker):  # type: ignore[misc, valid-type]
    """gunicorn's gthread worker, noting how long each request waited for a thread."""

    def enqueue_req(self, conn: Any) -> None:
        conn.lineledger_enqueued = time.monotonic()
        super().enqueue_req(conn)

    def handle(self, conn: Any) -> Any:
        enqueued = getattr(conn, "lineledger_enqueued", None)
        _note_wait(None if enqueued is None else time.monotonic() - enqueued)
        try:
            return super().handle(conn)
        finally:
            _note_wait(None)


def register(app: Flask, shed_after_ms: int) -> None:
    """Answer 503 to public requests that waited longer than `shed_after_ms` (0: never)."""
    if shed_after_ms <= 0:
        return
    limit = shed_after_ms / 1000

    @app.before_request
    def shed_when_queued() -> None:
        waited = queue_wait()
        if waited is not None and waited > limit and request.endpoint in SHED_ENDPOINTS:
            raise Unavailable(
                ERR_OVERLOADED,
                f"too many requests right now; retry in {RETRY_AFTER_SECONDS} s",
            )
