"""Real processes for end-to-end tests: a central server, edge CLIs and printer simulators."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

BIN = Path(sys.executable).parent


def cli(name: str) -> str:
    """Return the path of one of our console scripts in this virtualenv."""
    return str(BIN / name)


def env_with(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(extra)
    env["PYTHONUNBUFFERED"] = "1"
    return env


class CentralProcess:
    """`lineledger-central serve` in a child process."""

    def __init__(self, home: Path, db_url: str, **env: str) -> None:
        self.home = home
        self.env = env_with(LINELEDGER_CENTRAL_HOME=str(home), LINELEDGER_CENTRAL_DB=db_url, **env)
        self.port = 0
        self.proc: subprocess.Popen[str] | None = None
        self.log = home / "central.log"

    def run(self, *args: str) -> str:
        """Run an admin command and return its output."""
        out = subprocess.run(
            [cli("lineledger-central"), *args],
            env=self.env,
            text=True,
            capture_output=True,
            timeout=120,
        )
        assert out.returncode == 0, out.stderr
        return out.stdout

    def seed(self, org: str = "MA01", timezone: str = "Europe/Paris") -> None:
        """Create the registry with one tenant, one product and two work orders."""
        self.home.mkdir(parents=True, exist_ok=True)
        self.run("init")
        self.run("tenant", "add", "--org", org, "--name", "Maison Atelier", "--timezone", timezone)
        self.run(
            "product",
            "add",
            "--org",
            org,
            "--sku",
            "TOTE-01",
            "--category",
            "BAG",
            "--name",
            "Tote bag",
        )
        self.run(
            "work-order",
            "add",
            "--org",
            org,
            "--number",
            "WO-HAT-1",
            "--sku",
            "TOTE-01",
            "--type",
            "HAT",
            "--quantity",
            "100000",
        )
        self.run(
            "work-order",
            "add",
            "--org",
            org,
            "--number",
            "WO-OEM-1",
            "--sku",
            "TOTE-01",
            "--type",
            "OEM",
            "--quantity",
            "100000",
        )

    def enroll_code(self, line: str, org: str = "MA01") -> str:
        return self.run("agent", "enroll-code", "--org", org, "--line", line).split()[-1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> CentralProcess:
        """Start serving (on the same port as before after a restart)."""
        logfile = self.log.open("a")
        self.proc = subprocess.Popen(
            [cli("lineledger-central"), "serve", "--port", str(self.port), "--threads", "16"],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=logfile,
            text=True,
        )
        logfile.close()
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert "listening on" in line, f"central did not start: {line!r}; see {self.log}"
        self.port = int(line.rsplit(":", 1)[1])
        return self

    def stop(self, sig: int = signal.SIGTERM) -> int:
        """Stop the server with a real signal and return its exit code."""
        assert self.proc is not None
        self.proc.send_signal(sig)
        code = self.proc.wait(timeout=30)
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        self.proc = None
        return code


def edge(
    home: Path, *args: str, timeout: float = 180, check: bool = True, **env: str
) -> subprocess.CompletedProcess[str]:
    """Run `lineledger-edge --home HOME ...` to completion."""
    out = subprocess.run(
        [cli("lineledger-edge"), "--home", str(home), *args],
        text=True,
        capture_output=True,
        timeout=timeout,
        env=env_with(**env),
    )
    if check:
        assert out.returncode == 0, f"{args}: rc={out.returncode}\n{out.stdout}\n{out.stderr}"
    return out


def json_lines(text: str) -> list[dict[str, Any]]:
    """Parse complete JSON lines; a line cut short by a kill is dropped."""
    rows = []
    for line in text.splitlines(keepends=True):
        if line.endswith("\n"):
            rows.append(json.loads(line))
    return rows


def write_edge_toml(home: Path, **settings: Any) -> None:
    home.mkdir(parents=True, exist_ok=True)
    lines = ["[edge]"] + [f"{k} = {json.dumps(v)}" for k, v in settings.items()]
    (home / "edge.toml").write_text("\n".join(lines) + "\n")


# Waits are for conditions, never for the clock: a timeout only says "this hangs", so it is
# at least HANG_GUARD seconds however short a test asks for (a loaded CI machine can be ten
# times slower than a quiet one). pytest-timeout (300 s per test) is the last guard.
HANG_GUARD = float(os.environ.get("LINELEDGER_TEST_HANG_GUARD", "150"))


def wait_for(predicate: Any, timeout: float = 30.0, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + max(timeout, HANG_GUARD)
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(interval)
