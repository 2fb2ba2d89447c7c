"""The fault proxy itself: framing, keep-alive and each fault, against a real HTTP server."""

from __future__ import annotations

import hashlib
import http.client
import json
import socket
import threading
from collections.abc import Iterator

import pytest
import requests
from flask import Flask, Response, request

from edge_agent.web import BackgroundServer
from tests.faults.proxy import FaultProxy, Message, _Stream, read_request, read_response
from tests.procs import wait_for

pytestmark = pytest.mark.slow


class Upstream:
    """A waitress server that counts and echoes what it receives."""

    def __init__(self) -> None:
        self.hits: list[tuple[str, str, bytes]] = []
        self.lock = threading.Lock()
        app = Flask("upstream")

        @app.route("/echo", methods=["GET", "POST", "HEAD"])
        def echo() -> dict[str, object]:
            body = request.get_data()
            with self.lock:
                self.hits.append((request.method, request.path, body))
                n = len(self.hits)
            return {"hit": n, "length": len(body), "sha": hashlib.sha256(body).hexdigest()}

        @app.route("/stream")
        def stream() -> Response:
            with self.lock:
                self.hits.append(("GET", "/stream", b""))
            return Response((f"part{i};" for i in range(50)), mimetype="text/plain")

        @app.route("/empty", methods=["POST"])
        def empty() -> tuple[str, int]:
            with self.lock:
                self.hits.append(("POST", "/empty", request.get_data()))
            return "", 204

        self.server = BackgroundServer(app, "127.0.0.1", 0, threads=4).start()
        self.url = self.server.url

    def count(self, path: str) -> int:
        with self.lock:
            return sum(1 for _, p, _ in self.hits if p == path)


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    server = Upstream()
    yield server
    server.server.stop()


@pytest.fixture
def proxy(upstream: Upstream) -> Iterator[FaultProxy]:
    with FaultProxy(upstream.url) as p:
        yield p


def _conn(proxy: FaultProxy, timeout: float = 30) -> http.client.HTTPConnection:
    return http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=timeout)


def test_keep_alive_requests_share_one_connection(proxy, upstream):
    conn = _conn(proxy)
    bodies = [b"", b"x" * 10, b"y" * 200_000]
    socks = []
    for body in bodies:
        conn.request("POST", "/echo", body=body)
        resp = conn.getresponse()
        data = json.loads(resp.read())
        assert resp.status == 200 and data["length"] == len(body)
        assert resp.getheader("Connection") is None  # kept alive
        socks.append(conn.sock)
    assert socks[0] is socks[1] is socks[2]  # no reconnect between requests
    conn.close()
    assert upstream.count("/echo") == 3


def test_chunked_request_and_chunked_answer_are_framed(proxy, upstream):
    conn = _conn(proxy)
    parts = [b"a" * 1000, b"b" * 7, b"c" * 70_000]
    conn.request("POST", "/echo", body=iter(parts), encode_chunked=True)
    resp = conn.getresponse()
    assert json.loads(resp.read())["sha"] == hashlib.sha256(b"".join(parts)).hexdigest()
    conn.request("GET", "/stream")
    resp = conn.getresponse()
    assert resp.getheader("Transfer-Encoding") == "chunked"
    assert resp.read() == "".join(f"part{i};" for i in range(50)).encode()
    sock = conn.sock
    conn.request("HEAD", "/echo")  # no body although Content-Length is set
    resp = conn.getresponse()
    assert resp.status == 200 and resp.read() == b""
    conn.request("POST", "/empty", body=b"z")  # 204: no body
    resp = conn.getresponse()
    assert resp.status == 204 and resp.read() == b""
    conn.request("POST", "/echo", body=b"after")
    assert json.loads(conn.getresponse().read())["length"] == 5
    assert conn.sock is sock
    conn.close()


def test_an_answer_ended_by_eof_closes_the_client_connection():
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        sock, _ = listener.accept()
        read_request(_Stream(sock))
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end")
        sock.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    with FaultProxy(f"http://127.0.0.1:{port}") as proxy:
        conn = _conn(proxy)
        conn.request("GET", "/x")
        resp = conn.getresponse()
        assert resp.getheader("Connection") == "close"
        assert resp.read() == b"until the end"
        conn.close()
    thread.join(10)
    listener.close()


def test_drop_forwards_the_request_but_loses_the_answer(proxy, upstream):
    proxy.fault("drop", path="^/echo$", times=1)
    session = requests.Session()
    with pytest.raises(requests.ConnectionError):
        session.post(proxy.url + "/echo", data=b"lost", timeout=30)
    assert upstream.count("/echo") == 1  # it took effect
    assert session.post(proxy.url + "/echo", data=b"again", timeout=30).json()["hit"] == 2
    assert proxy.count("drop") == 1 and proxy.count("pass") == 1
    assert proxy.forwarded("/echo") == {200: 2}
    assert [(e.body, e.delivered) for e in proxy.log] == [(b"lost", False), (b"again", True)]
    session.close()


def test_delay_holds_the_answer_until_the_client_gives_up(proxy, upstream):
    proxy.fault("delay", path="/echo", times=1, delay=120)
    conn = _conn(proxy, timeout=0.5)
    conn.request("POST", "/echo", body=b"slow")
    with pytest.raises(TimeoutError):
        conn.getresponse()
    conn.close()
    wait_for(lambda: upstream.count("/echo") == 1, timeout=30)  # it was delivered all the same
    # the proxy notices the client left and gives up the answer, well before `delay`
    wait_for(lambda: len(proxy.log) == 1 and not proxy.log[0].delivered, timeout=30)
    assert requests.post(proxy.url + "/echo", data=b"x", timeout=30).json()["hit"] == 2


@pytest.mark.parametrize("concurrent", [False, True])
def test_duplicate_delivers_twice_and_answers_once(proxy, upstream, concurrent):
    proxy.fault("duplicate", answer="second", concurrent=concurrent)
    session = requests.Session()
    data = session.post(proxy.url + "/echo", data=b"twice", timeout=30).json()
    assert data["length"] == 5
    assert upstream.count("/echo") == 2
    assert [b for _, _, b in upstream.hits] == [b"twice", b"twice"]
    if not concurrent:
        assert data["hit"] == 2  # the second delivery's answer
    # the connection is still usable after a duplicated request
    again = session.post(proxy.url + "/echo", data=b"", timeout=30).json()
    assert upstream.count("/echo") == 4
    assert again["hit"] in ((3, 4) if concurrent else (4,))  # both copies race when concurrent
    session.close()


def test_refuse_never_forwards(proxy, upstream):
    proxy.fault("refuse", path="/echo", method="POST")
    with pytest.raises(requests.ConnectionError):
        requests.post(proxy.url + "/echo", data=b"no", timeout=30)
    assert requests.get(proxy.url + "/echo", timeout=30).status_code == 200  # GET passes
    assert upstream.count("/echo") == 1
    proxy.clear()
    proxy.refuse_all()
    with pytest.raises(requests.ConnectionError):
        requests.get(proxy.url + "/echo", timeout=30)
    proxy.refuse_all(False)
    assert requests.get(proxy.url + "/echo", timeout=30).status_code == 200


def test_on_forward_runs_after_central_has_the_request(proxy, upstream):
    seen = []
    proxy.fault("pass", path="/echo", times=1, on_forward=lambda: seen.append(1))
    assert requests.post(proxy.url + "/echo", data=b"hook", timeout=30).status_code == 200
    assert seen == [1]


def test_upstream_down_closes_the_client_connection():
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()  # nothing listens there now
    with FaultProxy(f"http://127.0.0.1:{port}") as proxy:
        with pytest.raises(requests.ConnectionError):
            requests.get(proxy.url + "/x", timeout=30)
        assert proxy.forwarded() == {None: 1}


def test_message_framing_rejects_what_it_cannot_frame():
    a, b = socket.socketpair()
    try:
        a.sendall(b"POST /x HTTP/1.1\r\nContent-Length: 3, 4\r\n\r\nabcd")
        with pytest.raises(Exception, match="Content-Length"):
            read_request(_Stream(b))
        a.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")
        with pytest.raises(Exception, match="chunk size"):
            read_response(_Stream(b), "GET")
    finally:
        a.close()
        b.close()
    msg = Message("GET / HTTP/1.1", [("Connection", "keep-alive"), ("X", "1")])
    assert msg.with_header("connection", "close").header("Connection") == "close"
