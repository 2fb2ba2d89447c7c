"""Real web servers for the deployment tests: nginx (Debian's) and gunicorn, as child processes.

nginx runs with a configuration generated in a temporary folder (its own pid, logs and temp
paths, `daemon off`), whose server block is deploy/nginx.conf.example with only the ports and
TLS substituted, so the shipped file is the one tested. Clients appear to nginx as different
customers by sending from different loopback addresses (127.0.0.0/8 is all local on Linux).
"""

from __future__ import annotations

import http.client
import os
import pwd
import random
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.procs import cli, env_with

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
START_TIMEOUT = 120.0  # a generous bound on starting a server, on a loaded machine


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def loopback_addresses(count: int) -> list[str]:
    """Return distinct loopback addresses other than 127.0.0.1, fresh for each test run
    (a rate-limit bucket kept in Redis from an earlier run never matches)."""
    a, b = random.randrange(1, 255), random.randrange(0, 255)
    return [f"127.{a}.{b}.{i}" for i in range(2, 2 + count)]


def wait_listening(port: int, proc: subprocess.Popen[bytes], what: str, log: Path) -> None:
    """Wait until something accepts connections on the port, or the process dies."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"{what} exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    pytest.fail(f"{what} does not listen on {port}:\n{log.read_text()[-3000:]}")


def request(
    port: int,
    path: str,
    source: str = "127.0.0.1",
    headers: dict[str, str] | None = None,
    timeout: float = 30.0,
) -> tuple[int, dict[str, str], bytes]:
    """GET a path on 127.0.0.1:port from a given local source address."""
    conn = http.client.HTTPConnection(
        "127.0.0.1", port, timeout=timeout, source_address=(source, 0)
    )
    try:
        conn.request("GET", path, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def nginx_binary() -> str:
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else "")
    if not found:
        pytest.fail("nginx is needed (Debian package nginx; `make services` installs it)")
    return found


def deploy_server_block(
    listen_port: int, upstream_port: int, changes: dict[str, str] | None = None
) -> str:
    """Return deploy/nginx.conf.example for loopback: plain HTTP on listen_port, upstream port."""
    text = (DEPLOY / "nginx.conf.example").read_text()
    replacements = {
        "listen 443 ssl http2;": f"listen 127.0.0.1:{listen_port};",
        "server 127.0.0.1:8080;": f"server 127.0.0.1:{upstream_port};",
        **(changes or {}),
    }
    for old, new in replacements.items():
        assert text.count(old) == 1, f"deploy/nginx.conf.example no longer has {old!r}"
        text = text.replace(old, new)
    kept = [line for line in text.splitlines() if not line.strip().startswith("ssl_")]
    return "\n".join(kept)


class Nginx:
    """nginx as a child process, in front of a server on 127.0.0.1:upstream_port."""

    def __init__(
        self, prefix: Path, upstream_port: int, changes: dict[str, str] | None = None
    ) -> None:
        self.changes = changes
        self.prefix = prefix
        self.prefix.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.upstream_port = upstream_port
        self.proc: subprocess.Popen[bytes] | None = None
        self.conf = prefix / "nginx.conf"
        self.log = prefix / "error.log"

    def write_config(self) -> None:
        p = self.prefix
        for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (p / name).mkdir(exist_ok=True)
        # As root, nginx's workers would run as nobody, who cannot write in pytest's folders.
        user = f"user {pwd.getpwuid(os.geteuid()).pw_name};" if os.geteuid() == 0 else ""
        self.conf.write_text(
            f"""{user}
worker_processes 1;
pid {p}/nginx.pid;
error_log {self.log} info;
events {{ worker_connections 2048; }}
http {{
    access_log {p}/access.log;
    client_body_temp_path {p}/client_body;
    proxy_temp_path {p}/proxy;
    fastcgi_temp_path {p}/fastcgi;
    uwsgi_temp_path {p}/uwsgi;
    scgi_temp_path {p}/scgi;
{deploy_server_block(self.port, self.upstream_port, self.changes)}
}}
"""
        )

    def start(self) -> Nginx:
        self.write_config()
        log = self.log.open("ab")
        self.proc = subprocess.Popen(
            [nginx_binary(), "-c", str(self.conf), "-p", str(self.prefix), "-g", "daemon off;"],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        wait_listening(self.port, self.proc, "nginx", self.log)
        return self

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=60)
            self.proc = None


class Gunicorn:
    """central under gunicorn with deploy/gunicorn.conf.py, several workers."""

    def __init__(self, home: Path, workers: int, **env: str) -> None:
        self.home = home
        self.port = free_port()
        self.env = env_with(
            LINELEDGER_CENTRAL_HOME=str(home),
            LINELEDGER_BIND=f"127.0.0.1:{self.port}",
            LINELEDGER_WORKERS=str(workers),
            **env,
        )
        self.log = home / "gunicorn.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Gunicorn:
        self.home.mkdir(parents=True, exist_ok=True)
        log = self.log.open("ab")
        self.proc = subprocess.Popen(
            [cli("gunicorn"), "-c", str(DEPLOY / "gunicorn.conf.py"), "central:create_app()"],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        wait_listening(self.port, self.proc, "gunicorn", self.log)
        # The master listens before any worker has loaded the app: wait for one to answer.
        deadline = time.monotonic() + START_TIMEOUT
        while request(self.port, "/healthz", timeout=START_TIMEOUT)[0] != 200:
            assert time.monotonic() < deadline, self.log.read_text()[-3000:]
            time.sleep(0.1)
        return self

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=60)
            self.proc = None
