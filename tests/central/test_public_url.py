"""`serve` says when LINELEDGER_PUBLIC_BASE_URL (what QR codes point to) is not how it is
reached (#7): one line on stderr at start, and one log line for the first customer request
that arrived under another Host. A real `serve` process on 127.0.0.1."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest
import requests

from central.config import CentralConfig
from central.public_url import base_url_mismatch
from tests.procs import cli, env_with, wait_for

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _serve(tmp_path: Path, port: int, **env: str) -> tuple[subprocess.Popen[str], int, Path]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    home = tmp_path / "central"
    base = env_with(LINELEDGER_CENTRAL_HOME=str(home), **env)
    for var in ("LINELEDGER_CENTRAL_DB", "LINELEDGER_TRUSTED_PROXIES", "LINELEDGER_CENTRAL_CONFIG"):
        base.pop(var, None)
    base.update(env)
    out = subprocess.run(
        [cli("lineledger-central"), "init"], env=base, text=True, capture_output=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    errlog = tmp_path / "serve.err"
    with errlog.open("w") as err:
        proc = subprocess.Popen(
            [cli("lineledger-central"), "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=base,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
        )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert "listening on" in line, (line, errlog.read_text())
    return proc, int(line.rsplit(":", 1)[1]), errlog


def _stop(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    proc.wait(timeout=60)
    assert proc.stdout is not None
    proc.stdout.close()


def _warnings(errlog: Path, what: str) -> list[str]:
    return [line for line in errlog.read_text().splitlines() if what in line]


def test_serve_warns_at_start_and_once_for_a_customer_under_another_host(tmp_path):
    proc, port, errlog = _serve(
        tmp_path / "elsewhere", 0, LINELEDGER_PUBLIC_BASE_URL="https://verify.example.com"
    )
    try:
        # The start warning is written right after the "listening" line.
        start = wait_for(lambda: _warnings(errlog, "LINELEDGER_PUBLIC_BASE_URL="))
        assert len(start) == 1 and "lineledger-central: warning:" in start[0]
        assert "serve speaks http, not https" in start[0]
        assert f"is not the port serve listens on ({port})" in start[0]
        assert "no proxy is configured" in start[0]
        url = f"http://127.0.0.1:{port}/api/public/serial/verify/x"
        for _ in range(3):
            assert requests.get(url, timeout=30).status_code == 200
    finally:
        _stop(proc)
    noted = _warnings(errlog, "a customer reached central as")
    assert len(noted) == 1, noted
    assert f"http://127.0.0.1:{port}" in noted[0] and "https://verify.example.com" in noted[0]

    # Quiet when the base URL is how it is reached.
    port = _free_port()
    proc, bound, errlog = _serve(
        tmp_path / "here", port, LINELEDGER_PUBLIC_BASE_URL=f"http://127.0.0.1:{port}"
    )
    try:
        assert bound == port
        url = f"http://127.0.0.1:{port}/api/public/serial/verify/x"
        assert requests.get(url, timeout=30).status_code == 200
    finally:
        _stop(proc)
    text = errlog.read_text()
    assert "LINELEDGER_PUBLIC_BASE_URL" not in text, text


@pytest.mark.parametrize(
    ("settings", "host", "port", "warns"),
    [
        (
            {"public_base_url": "https://verify.example.com", "trusted_proxies": 1},
            "0.0.0.0",
            8080,
            False,
        ),
        ({"public_base_url": "http://registry.plant:8080"}, "0.0.0.0", 8080, False),
        ({"public_base_url": "http://registry.plant:8080"}, "127.0.0.1", 8080, True),
        ({"public_base_url": "http://10.0.0.5:8080"}, "10.0.0.6", 8080, True),
        ({"public_base_url": "http://10.0.0.5"}, "10.0.0.5", 8080, True),
        ({"public_base_url": "http://[::1]:8080"}, "::1", 8080, False),
    ],
)
def test_which_base_urls_match_the_bind_address(
    settings: dict[str, Any], host: str, port: int, warns: bool
) -> None:
    assert (base_url_mismatch(CentralConfig(**settings), host, port) is not None) is warns
