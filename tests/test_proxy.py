"""The deployment for real: central behind Debian's nginx, under waitress (`serve`) and gunicorn.

One verify budget per customer address through the proxy, no spoofing from a direct client,
the server's own body limit, and the documented setup answering while slow clients hang on.
"""

from __future__ import annotations

import json
import select
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from central import create_app
from central.config import load_config
from central.webserver import waitress_settings
from tests.central.helpers import new_id
from tests.procs import CentralProcess
from tests.webservers import Gunicorn, Nginx, loopback_addresses, request

LIMIT = 3
VERIFY = "/api/public/serial/verify/"
REDIS_URL = "redis://127.0.0.1:6379/0"


def verify_status(port: int, source: str, **headers: str) -> int:
    return request(port, VERIFY + new_id(), source, headers)[0]


def one_bucket_per_customer(port: int) -> None:
    """Client A spends its budget and is refused; client B behind the same proxy is not."""
    a, b = loopback_addresses(2)
    assert [verify_status(port, a) for _ in range(LIMIT)] == [200] * LIMIT
    assert verify_status(port, a) == 429
    # A forged X-Forwarded-For is kept by nginx in front of A's real address: still A.
    assert verify_status(port, a, **{"X-Forwarded-For": "203.0.113.9"}) == 429
    assert verify_status(port, b) == 200


def spoofing_is_ignored(port: int) -> None:
    """A client that reaches central directly cannot pick its bucket with X-Forwarded-For."""
    (direct,) = loopback_addresses(1)
    statuses = [
        verify_status(port, direct, **{"X-Forwarded-For": f"198.51.100.{i}"})
        for i in range(LIMIT + 1)
    ]
    assert statuses == [200] * LIMIT + [429]


@pytest.fixture
def served(tmp_path: Path) -> Iterator[CentralProcess]:
    central = CentralProcess(
        tmp_path / "central",
        f"sqlite:///{tmp_path / 'central' / 'central.db'}",
        LINELEDGER_TRUSTED_PROXIES="1",
        LINELEDGER_VERIFY_RATE_LIMIT=f"{LIMIT}/hour",
    )
    central.home.mkdir(parents=True)
    central.run("init")
    central.start()
    yield central
    central.stop()


@pytest.mark.slow
def test_serve_behind_nginx_keeps_one_bucket_per_customer(served, tmp_path):
    nginx = Nginx(tmp_path / "nginx", served.port).start()
    try:
        one_bucket_per_customer(nginx.port)
    finally:
        nginx.stop()


@pytest.mark.slow
def test_serve_ignores_forwarded_for_from_a_direct_client(served):
    spoofing_is_ignored(served.port)


@pytest.fixture
def gunicorn(tmp_path: Path, pg_databases) -> Iterator[Gunicorn]:
    env = {
        "LINELEDGER_CENTRAL_DB": pg_databases.create(),
        "LINELEDGER_TRUSTED_PROXIES": "1",
        "LINELEDGER_VERIFY_RATE_LIMIT": f"{LIMIT}/hour",
        "LINELEDGER_RATELIMIT_STORAGE": REDIS_URL,
    }
    server = Gunicorn(tmp_path / "central", workers=3, **env)
    CentralProcess(server.home, env["LINELEDGER_CENTRAL_DB"]).run("init")
    server.start()
    yield server
    server.stop()


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.redis
def test_gunicorn_workers_behind_nginx_keep_one_bucket_per_customer(gunicorn, tmp_path):
    nginx = Nginx(tmp_path / "nginx", gunicorn.port).start()
    try:
        one_bucket_per_customer(nginx.port)
    finally:
        nginx.stop()


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.redis
def test_gunicorn_ignores_forwarded_for_from_a_direct_client(gunicorn):
    spoofing_is_ignored(gunicorn.port)


SLOW_CLIENTS = 200


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.redis
def test_the_documented_setup_answers_while_slow_clients_hang_on(gunicorn, tmp_path):
    """nginx from deploy/nginx.conf.example in front of gunicorn: 200 clients that send half
    a request header and hold do not keep /healthz from answering."""
    # The shipped timeouts, lengthened only so the slow clients surely still hang on when
    # /healthz is asked, however long this takes on a loaded machine.
    nginx = Nginx(
        tmp_path / "nginx",
        gunicorn.port,
        {"client_header_timeout 10s;": "client_header_timeout 600s;"},
    ).start()
    slow_source, healthy_source = loopback_addresses(2)
    held: list[socket.socket] = []
    try:
        for _ in range(SLOW_CLIENTS):
            s = socket.create_connection(("127.0.0.1", nginx.port), 30, (slow_source, 0))
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: registry.example.com\r\nX-Slow: ")
            held.append(s)
        for _ in range(5):
            status, _headers, body = request(nginx.port, "/healthz", healthy_source, timeout=10)
            assert status == 200 and json.loads(body)["ok"] is True
        # The slow clients are all still connected: nginx holds them, central never saw them.
        readable, _, _ = select.select(held, [], [], 0)
        assert readable == []
    finally:
        for s in held:
            s.close()
        nginx.stop()


CHUNK = 64 * 1024
HOSTILE_BODY = 300 * 1024 * 1024


@pytest.mark.slow
def test_serve_refuses_a_huge_chunked_body_without_reading_it(served):
    """waitress stops a chunked body at the app's limit (4 MiB) instead of its own 1 GiB."""
    head = (
        b"POST /api/edge/v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    chunk = b"%x\r\n" % CHUNK + b"[" * CHUNK + b"\r\n"
    sent = 0
    answer = b""
    with socket.create_connection(("127.0.0.1", served.port), 60) as s:
        s.sendall(head)
        try:
            while sent < HOSTILE_BODY:
                readable, _, _ = select.select([s], [], [], 0)
                if readable:
                    answer = s.recv(65536)
                    break
                s.sendall(chunk)
                sent += CHUNK
        except (BrokenPipeError, ConnectionResetError):
            pass
    # Stopped after the limit plus what the sockets' buffers hold, far from 300 MB.
    assert sent < 64 * 1024 * 1024, f"the server read {sent} bytes of a chunked body"
    assert answer == b"" or answer.startswith(b"HTTP/1.1 413"), answer[:200]


def test_server_limits_come_from_the_configuration(tmp_path):
    env = {
        "LINELEDGER_MAX_BODY_BYTES": "1048576",
        "LINELEDGER_CONNECTION_LIMIT": "250",
        "LINELEDGER_CHANNEL_TIMEOUT": "20",
        "LINELEDGER_CLEANUP_INTERVAL": "5",
        "LINELEDGER_TRUSTED_PROXIES": "1",
        "LINELEDGER_TRUSTED_PROXY_ADDRESS": "10.0.0.2",
    }
    settings = waitress_settings(load_config(environ=env))
    assert settings["max_request_body_size"] == 1048576
    assert (settings["connection_limit"], settings["channel_timeout"]) == (250, 20)
    assert settings["cleanup_interval"] == 5
    assert (settings["trusted_proxy"], settings["trusted_proxy_count"]) == ("10.0.0.2", 1)
    assert settings["clear_untrusted_proxy_headers"] is True
    app = create_app({"home": str(tmp_path), "max_body_bytes": 1048576})
    try:
        assert app.config["MAX_CONTENT_LENGTH"] == settings["max_request_body_size"]
    finally:
        app.extensions["lineledger"].close()
