"""Past saturation central sheds public load: 503 + Retry-After, not a queue into seconds (#8).

Real gunicorn with deploy/gunicorn.conf.py, one worker with one thread, so a request that
holds the thread makes the next one wait for it. The holder is a client that sends half a
request header and stops: the thread blocks reading it until the client finishes. How long
the next request waited is then at least how long the test held the header back, which the
test chooses, so the outcome does not depend on the machine's speed.
"""

from __future__ import annotations

import datetime as dt
import http.client
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from central import create_app, init_registry
from central.config import load_config
from central.shedding import queue_wait
from tests.procs import CentralProcess
from tests.webservers import Gunicorn

SHED_AFTER_MS = 100
HOLD_SECONDS = 1.5  # fifteen times the limit: the queued request surely waited longer


def _serve(tmp_path: Path, shed_after_ms: int) -> Gunicorn:
    env = {
        "LINELEDGER_CENTRAL_DB": f"sqlite:///{tmp_path / 'central' / 'central.db'}",
        "LINELEDGER_THREADS": "1",
        "LINELEDGER_SHED_AFTER_MS": str(shed_after_ms),
        "LINELEDGER_VERIFY_RATE_LIMIT": "1000/hour",
    }
    server = Gunicorn(tmp_path / "central", workers=1, **env)
    server.home.mkdir(parents=True, exist_ok=True)
    CentralProcess(server.home, env["LINELEDGER_CENTRAL_DB"]).run("init")
    return server.start()


@pytest.fixture
def shedding(tmp_path: Path) -> Iterator[Gunicorn]:
    server = _serve(tmp_path, SHED_AFTER_MS)
    yield server
    server.stop()


def _queued_behind_a_held_thread(port: int, paths: list[str]) -> list[http.client.HTTPResponse]:
    """Hold the only thread with half a request, send `paths` meanwhile, then let go."""
    holder = socket.create_connection(("127.0.0.1", port), timeout=30)
    waiting: list[http.client.HTTPConnection] = []
    try:
        holder.sendall(b"GET /healthz HTTP/1.1\r\nHost: central\r\n")
        time.sleep(0.5)  # the thread takes the holder first and blocks reading its header
        for path in paths:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            conn.request("GET", path)
            waiting.append(conn)
        time.sleep(HOLD_SECONDS)
        holder.sendall(b"\r\n")
        assert holder.recv(4096).startswith(b"HTTP/1.1 200")
        answers = [conn.getresponse() for conn in waiting]
        for answer in answers:
            answer.body = answer.read()  # type: ignore[attr-defined]
        return answers
    finally:
        holder.close()
        for conn in waiting:
            conn.close()


@pytest.mark.slow
def test_a_verify_that_waited_past_the_limit_is_shed_with_retry_after(shedding):
    api, page = _queued_behind_a_held_thread(
        shedding.port, ["/api/public/serial/verify/MA01HAT", "/v/MA01HAT"]
    )
    assert api.status == 503
    assert api.getheader("Retry-After") == "1"
    assert api.getheader("Content-Type") == "application/json"
    assert page.status == 503 and page.getheader("Retry-After") == "1"
    assert page.getheader("Content-Type").startswith("text/html")
    assert b"Please try again in a few seconds" in page.body  # words for a person
    # Once the queue is gone, the same requests are answered.
    conn = http.client.HTTPConnection("127.0.0.1", shedding.port, timeout=30)
    conn.request("GET", "/api/public/serial/verify/MA01HAT")
    fresh = conn.getresponse()
    assert fresh.status == 200 and json.loads(fresh.read())["verdict"] == "malformed"
    conn.close()
    metrics = http.client.HTTPConnection("127.0.0.1", shedding.port, timeout=30)
    metrics.request("GET", "/metrics")
    text = metrics.getresponse().read().decode()
    metrics.close()
    assert 'code="ERR_OVERLOADED"} 2.0' in text


@pytest.mark.slow
def test_the_shed_answer_has_the_error_shape(shedding):
    holder = socket.create_connection(("127.0.0.1", shedding.port), timeout=30)
    try:
        holder.sendall(b"GET /healthz HTTP/1.1\r\nHost: central\r\n")
        time.sleep(0.5)
        conn = http.client.HTTPConnection("127.0.0.1", shedding.port, timeout=30)
        conn.request("GET", "/api/public/serial/verify/ABC")
        time.sleep(HOLD_SECONDS)
        holder.sendall(b"\r\n")
        answer = conn.getresponse()
        body = json.loads(answer.read())
        conn.close()
    finally:
        holder.close()
    assert answer.status == 503
    assert body["ok"] is False and body["error"]["code"] == "ERR_OVERLOADED"
    assert "retry" in body["error"]["message"]


@pytest.mark.slow
def test_health_checks_and_agents_are_never_shed(shedding):
    health, config = _queued_behind_a_held_thread(
        shedding.port, ["/healthz", "/api/edge/v1/config"]
    )
    assert health.status == 200
    assert config.status == 401  # answered (no token), not shed


@pytest.mark.slow
def test_shedding_can_be_switched_off(tmp_path):
    server = _serve(tmp_path, 0)
    try:
        (api,) = _queued_behind_a_held_thread(server.port, ["/api/public/serial/verify/X"])
        assert api.status == 200
    finally:
        server.stop()


def test_without_gunicorn_no_wait_is_known_and_nothing_is_shed(central_config):
    cfg = {**central_config, "shed_after_ms": 1}
    init_registry(load_config(cfg), dt.datetime.now(dt.UTC))
    app = create_app(cfg)
    try:
        c = app.test_client()
        assert queue_wait() is None
        assert c.get("/api/public/serial/verify/X").status_code == 200
    finally:
        app.extensions["lineledger"].close()
