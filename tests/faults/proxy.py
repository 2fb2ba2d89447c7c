"""A fault-injecting HTTP/1.1 proxy for the edge API, run in a thread on 127.0.0.1 port 0.

Agents talk to central through it; the test changes what it does at run time with rules:

- `pass`: forward the request and relay the answer.
- `drop`: forward the request, read central's whole answer, then close the client's
  connection without it (the request took effect; the agent never learns so).
- `delay`: forward the request, then hold the answer until the client gives up and closes
  its connection (or `delay` seconds pass): an answer later than the agent's timeout.
- `duplicate`: deliver the request to central twice (one after the other, or both at once
  with `concurrent=True`) and relay one of the two answers (`answer="first"|"second"`).
- `refuse`: read the request but never forward it; reset the client's connection.
- `refuse_all(True)` resets every new connection before reading anything.

A rule matches a method and a path (a regular expression searched in the request path) and
applies `times` times (None: until removed). `on_forward` is called once the request was
sent to central (e.g. to SIGKILL central while it works on it).

Framing: requests and answers are delimited by Content-Length or chunked transfer coding
(relayed byte for byte); an answer without either ends at EOF and closes the client's
connection. Client connections are kept alive between requests; each request gets a fresh
upstream connection with `Connection: close`, so one request's fault never leaks into the
next one's connection.
"""

from __future__ import annotations

import re
import select
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

PASS, DROP, DELAY, DUPLICATE, REFUSE = "pass", "drop", "delay", "duplicate", "refuse"
ACTIONS = (PASS, DROP, DELAY, DUPLICATE, REFUSE)
MAX_HEAD = 64 * 1024
MAX_BODY = 64 * 1024 * 1024
UPSTREAM_TIMEOUT = 300.0


class ProtocolViolation(Exception):
    """A peer sent something this proxy cannot frame."""


class Closed(Exception):
    """The peer closed the connection before a complete message."""


class _Stream:
    """A buffered reader over a socket."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = bytearray()

    def _fill(self) -> bool:
        data = self.sock.recv(65536)
        if not data:
            return False
        self.buf += data
        return True

    def read_until(self, marker: bytes, limit: int = MAX_HEAD) -> bytes:
        while True:
            at = self.buf.find(marker)
            if at >= 0:
                out = bytes(self.buf[: at + len(marker)])
                del self.buf[: at + len(marker)]
                return out
            if len(self.buf) > limit:
                raise ProtocolViolation(f"no {marker!r} within {limit} bytes")
            if not self._fill():
                raise Closed()

    def read_exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            if not self._fill():
                raise Closed()
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def read_to_eof(self, limit: int = MAX_BODY) -> bytes:
        while self._fill():
            if len(self.buf) > limit:
                raise ProtocolViolation("body too large")
        out = bytes(self.buf)
        self.buf.clear()
        return out

    def at_eof(self) -> bool:
        """Tell, without blocking, whether the peer closed its end (no data is lost)."""
        if self.buf:
            return False
        readable, _, _ = select.select([self.sock], [], [], 0)
        if not readable:
            return False
        try:
            return not self._fill()
        except OSError:
            return True


@dataclass
class Message:
    """One HTTP request or answer: its start line, headers and raw (still framed) body."""

    start: str
    headers: list[tuple[str, str]]
    body: bytes = b""

    def header(self, name: str) -> str | None:
        values = [v for k, v in self.headers if k.lower() == name.lower()]
        return ", ".join(values) if values else None

    def with_header(self, name: str, value: str | None) -> Message:
        headers = [(k, v) for k, v in self.headers if k.lower() != name.lower()]
        if value is not None:
            headers.append((name, value))
        return Message(self.start, headers, self.body)

    def to_bytes(self) -> bytes:
        head = self.start + "\r\n" + "".join(f"{k}: {v}\r\n" for k, v in self.headers) + "\r\n"
        return head.encode("latin-1") + self.body

    @property
    def chunked(self) -> bool:
        te = self.header("Transfer-Encoding")
        return te is not None and te.split(",")[-1].strip().lower() == "chunked"

    def content_length(self) -> int | None:
        value = self.header("Content-Length")
        if value is None:
            return None
        lengths = {v.strip() for v in value.split(",")}
        if len(lengths) != 1 or not next(iter(lengths)).isdigit():
            raise ProtocolViolation(f"bad Content-Length {value!r}")
        n = int(next(iter(lengths)))
        if n > MAX_BODY:
            raise ProtocolViolation("body too large")
        return n


def _read_head(stream: _Stream) -> Message:
    raw = stream.read_until(b"\r\n\r\n").decode("latin-1")
    lines = raw[:-4].split("\r\n")
    headers = []
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise ProtocolViolation(f"bad header line {line!r}")
        headers.append((name, value.strip()))
    return Message(lines[0], headers)


def _read_chunked(stream: _Stream) -> bytes:
    """Return a chunked body as sent, trailers included."""
    out = bytearray()
    while True:
        line = stream.read_until(b"\r\n", 1024)
        out += line
        size_text = line[:-2].split(b";")[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise ProtocolViolation(f"bad chunk size {size_text!r}") from None
        if size == 0:
            while True:  # trailers, then the empty line
                trailer = stream.read_until(b"\r\n")
                out += trailer
                if trailer == b"\r\n":
                    return bytes(out)
        if len(out) + size > MAX_BODY:
            raise ProtocolViolation("body too large")
        out += stream.read_exact(size + 2)


def read_request(stream: _Stream) -> Message:
    """Read one request with its body (Content-Length or chunked)."""
    msg = _read_head(stream)
    if len(msg.start.split(" ")) != 3:
        raise ProtocolViolation(f"bad request line {msg.start!r}")
    if msg.chunked:
        msg.body = _read_chunked(stream)
    elif msg.header("Transfer-Encoding") is not None:
        raise ProtocolViolation("a request body must be chunked or have a Content-Length")
    else:
        msg.body = stream.read_exact(msg.content_length() or 0)
    return msg


def read_response(stream: _Stream, method: str) -> tuple[Message, bool]:
    """Read one answer; return it and whether its end was marked by EOF (no framing)."""
    msg = _read_head(stream)
    parts = msg.start.split(" ", 2)
    if len(parts) < 2 or not parts[1].isdigit():
        raise ProtocolViolation(f"bad status line {msg.start!r}")
    status = int(parts[1])
    if method == "HEAD" or 100 <= status < 200 or status in (204, 304):
        return msg, False
    if msg.chunked:
        msg.body = _read_chunked(stream)
        return msg, False
    length = msg.content_length()
    if length is not None:
        msg.body = stream.read_exact(length)
        return msg, False
    msg.body = stream.read_to_eof()
    return msg, True


def _status(msg: Message) -> int:
    return int(msg.start.split(" ", 2)[1])


def _wants_keep_alive(req: Message) -> bool:
    tokens = {t.strip().lower() for t in (req.header("Connection") or "").split(",")}
    if req.start.endswith("HTTP/1.0"):
        return "keep-alive" in tokens
    return "close" not in tokens


def _reset(sock: socket.socket) -> None:
    """Close a socket with a TCP reset instead of an orderly FIN."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


@dataclass
class Rule:
    """What to do with the requests a method and path pattern match."""

    action: str
    path: str | None = None
    method: str | None = None
    times: int | None = None
    delay: float = 300.0
    concurrent: bool = False
    answer: str = "second"
    on_forward: Callable[[], None] | None = None
    applied: int = 0

    def matches(self, method: str, path: str) -> bool:
        if self.times is not None and self.applied >= self.times:
            return False
        if self.method is not None and self.method != method:
            return False
        return self.path is None or re.search(self.path, path) is not None


@dataclass
class Entry:
    """One request the proxy handled, for the test to inspect."""

    method: str
    path: str
    action: str
    body: bytes = b""  # the request body as framed (chunked bodies keep their chunking)
    statuses: list[int | None] = field(default_factory=list)  # central's answers (None: none)
    delivered: bool = False  # whether the client got an answer


class FaultProxy:
    """The proxy: `with FaultProxy(central_url) as proxy: ... proxy.url ...`."""

    def __init__(self, upstream: str) -> None:
        host, _, port = upstream.removeprefix("http://").rstrip("/").partition(":")
        self.upstream = (host, int(port or 80))
        self.rules: list[Rule] = []
        self.log: list[Entry] = []
        self._lock = threading.Lock()
        self._refuse_all = False
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._clients: set[socket.socket] = set()
        self._stopping = False
        self._thread = threading.Thread(target=self._accept_loop, name="fault-proxy", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- control --------------------------------------------------------------------------

    def fault(self, action: str, path: str | None = None, **options: object) -> Rule:
        """Add a rule (first match wins, so a newer rule goes first); return it."""
        if action not in ACTIONS:
            raise ValueError(f"unknown action {action!r}")
        rule = Rule(action, path, **options)  # type: ignore[arg-type]
        with self._lock:
            self.rules.insert(0, rule)
        return rule

    def clear(self) -> None:
        """Remove every rule: pass everything from now on."""
        with self._lock:
            self.rules.clear()
            self._refuse_all = False

    def refuse_all(self, flag: bool = True) -> None:
        """Reset every new connection at once (central looks down)."""
        with self._lock:
            self._refuse_all = flag

    def count(self, action: str | None = None, path: str | None = None) -> int:
        """Return how many requests got `action` (any) on paths matching `path` (any)."""
        with self._lock:
            return sum(
                1
                for e in self.log
                if (action is None or e.action == action)
                and (path is None or re.search(path, e.path))
            )

    def forwarded(self, path: str | None = None) -> Counter[int | None]:
        """Return central's answer statuses to the requests forwarded on matching paths."""
        with self._lock:
            return Counter(
                s for e in self.log if path is None or re.search(path, e.path) for s in e.statuses
            )

    def close(self) -> None:
        """Stop accepting, reset open connections and wait for the accept loop."""
        self._stopping = True
        try:
            self._listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._listener.close()
        with self._lock:
            clients = list(self._clients)
        for sock in clients:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._thread.join(timeout=30)

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- serving --------------------------------------------------------------------------

    def _accept_loop(self) -> None:
        while not self._stopping:
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                refuse = self._refuse_all
            if refuse:
                _reset(sock)
                continue
            with self._lock:
                self._clients.add(sock)
            threading.Thread(target=self._serve, args=(sock,), daemon=True).start()

    def _rule_for(self, method: str, path: str) -> Rule | None:
        with self._lock:
            for rule in self.rules:
                if rule.matches(method, path):
                    rule.applied += 1
                    return rule
        return None

    def _serve(self, client: socket.socket) -> None:
        stream = _Stream(client)
        try:
            while True:
                try:
                    req = read_request(stream)
                except (Closed, OSError, ProtocolViolation):
                    return
                if not self._handle(client, stream, req):
                    return
        finally:
            with self._lock:
                self._clients.discard(client)
            try:
                client.close()
            except OSError:
                pass

    def _forward(self, req: Message, on_forward: Callable[[], None] | None) -> tuple[Message, bool]:
        """Send a request to central on a fresh connection; return its answer and EOF flag."""
        method = req.start.split(" ", 1)[0]
        upstream = socket.create_connection(self.upstream, timeout=UPSTREAM_TIMEOUT)
        try:
            outgoing = req.with_header("Connection", "close").with_header("Keep-Alive", None)
            upstream.sendall(outgoing.to_bytes())
            if on_forward is not None:
                on_forward()
            ups = _Stream(upstream)
            while True:
                resp, eof = read_response(ups, method)
                if not 100 <= _status(resp) < 200:  # interim answers are not relayed
                    return resp, eof
        finally:
            upstream.close()

    def _try_forward(
        self, req: Message, entry: Entry, on_forward: Callable[[], None] | None = None
    ) -> tuple[Message, bool] | None:
        try:
            resp, eof = self._forward(req, on_forward)
        except (OSError, Closed, ProtocolViolation):
            with self._lock:
                entry.statuses.append(None)
            return None
        with self._lock:
            entry.statuses.append(_status(resp))
        return resp, eof

    def _handle(self, client: socket.socket, stream: _Stream, req: Message) -> bool:
        """Serve one request; return whether the client connection stays open."""
        method, target, _ = req.start.split(" ")
        path = target.split("?", 1)[0]
        rule = self._rule_for(method, path)
        action = rule.action if rule else PASS
        entry = Entry(method, path, action, req.body)
        with self._lock:
            self.log.append(entry)
        on_forward = rule.on_forward if rule else None
        if action == REFUSE:
            _reset(client)
            return False
        if action == DUPLICATE:
            assert rule is not None
            answers: list[tuple[Message, bool] | None] = []
            if rule.concurrent:
                results: list[tuple[Message, bool] | None] = [None, None]

                def send(i: int) -> None:
                    results[i] = self._try_forward(req, entry, on_forward)

                threads = [threading.Thread(target=send, args=(i,)) for i in range(2)]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
                answers = results
            else:
                answers = [self._try_forward(req, entry, on_forward) for _ in range(2)]
            answer = answers[1] if rule.answer == "second" else answers[0]
        else:
            answer = self._try_forward(req, entry, on_forward)
        if answer is None:  # central is down or died: the client sees its connection close
            return False
        if action == DROP:
            return False
        if action == DELAY:
            assert rule is not None
            deadline = time.monotonic() + rule.delay
            while time.monotonic() < deadline:
                if stream.at_eof():
                    return False  # the client gave up
                time.sleep(0.02)
        resp, eof = answer
        keep = _wants_keep_alive(req) and not eof and not self._stopping
        resp = resp.with_header("Connection", None if keep else "close")
        with self._lock:  # before sending: a client holding the answer sees it delivered
            entry.delivered = True
        try:
            client.sendall(resp.to_bytes())
        except OSError:
            with self._lock:
                entry.delivered = False
            return False
        return keep
