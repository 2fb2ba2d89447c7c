"""HTTP load for the side-by-side benchmark: closed loop through wrk, open loop in asyncio.

Closed loop (`closed_loop`): wrk keeps C connections busy for D seconds, each sending its
next request as soon as the answer arrives; it measures how many requests a server answers
per second at most. wrk is Debian's `wrk` package (`apt-get install wrk`).

Open loop (`open_loop`): requests are sent on a fixed schedule (R per second) whatever the
server does, the way a crowd of phones arrives, and each answer's latency counts from the
moment its request was due, not from when a connection was free to send it (so a server
that falls behind shows its queue in the latency: no coordinated omission). Requests go over
keep-alive connections; a connection whose answer is late makes the next request due on it
later still, and that lateness is in the figures.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

WRK_LUA = """
paths = {}
for line in io.lines("%s") do paths[#paths + 1] = line end
counter = 0
request = function()
  counter = counter + 1
  return wrk.format("GET", paths[(counter %% #paths) + 1])
end
"""

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([0-9.]+)(us|ms|s|m)", text.strip())
    if not m:
        raise ValueError(f"wrk latency {text!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]


def need_wrk() -> str:
    """Return wrk's path, or stop with how to install it."""
    path = shutil.which("wrk")
    if path is None:
        raise SystemExit("this benchmark needs wrk: apt-get install wrk")
    return path


def closed_loop(
    base_url: str, paths: list[str], seconds: float, connections: int, threads: int = 2
) -> dict[str, Any]:
    """Run wrk against `paths` (in turn) and return requests/s, p50/p99 (ms) and errors."""
    wrk = need_wrk()
    with tempfile.TemporaryDirectory(prefix="ll-wrk-") as tmp:
        listing = Path(tmp) / "paths.txt"
        listing.write_text("\n".join(paths) + "\n")
        script = Path(tmp) / "paths.lua"
        script.write_text(WRK_LUA % listing)
        out = subprocess.run(
            [
                wrk,
                f"-t{threads}",
                f"-c{connections}",
                f"-d{max(1, round(seconds))}s",
                "--latency",
                "-s",
                str(script),
                base_url,
            ],
            capture_output=True,
            text=True,
            timeout=seconds + 60,
            check=True,
        ).stdout
    rps = float(re.search(r"Requests/sec:\s+([0-9.]+)", out).group(1))  # type: ignore[union-attr]
    lat = dict(re.findall(r"^\s+(50|75|90|99)%\s+(\S+)$", out, re.M))
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors:(.*)$", out, re.M)
    return {
        "rps": round(rps, 1),
        "p50_ms": round(_ms(lat["50"]), 2),
        "p99_ms": round(_ms(lat["99"]), 2),
        "non_2xx": int(non2xx.group(1)) if non2xx else 0,
        "socket_errors": errors.group(1).strip() if errors else "",
    }


class _Conn:
    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, raw: bytes) -> tuple[int, dict[str, str]]:
        for attempt in (1, 2):
            if self.writer is None:
                self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
            assert self.reader is not None
            try:
                self.writer.write(raw)
                head = await self.reader.readuntil(b"\r\n\r\n")
            except (ConnectionError, asyncio.IncompleteReadError):
                self.close()  # the server closed an idle keep-alive connection: reopen once
                if attempt == 2:
                    raise
                continue
            lines = head.decode("latin-1").split("\r\n")
            status = int(lines[0].split()[1])
            headers = {}
            for line in lines[1:]:
                if ":" in line:
                    k, v = line.split(":", 1)
                    headers[k.strip().lower()] = v.strip()
            await self.reader.readexactly(int(headers.get("content-length", "0")))
            if headers.get("connection", "").lower() == "close":
                self.close()
            return status, headers
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def _open_loop(
    base_url: str, paths: list[str], rate: float, seconds: float, connections: int
) -> dict[str, Any]:
    url = urlsplit(base_url)
    host, port = url.hostname or "127.0.0.1", url.port or 80
    total = int(rate * seconds)
    raws = [
        f"GET {p} HTTP/1.1\r\nHost: {url.netloc}\r\nUser-Agent: ll-loadgen\r\n\r\n".encode()
        for p in paths
    ]
    latencies: list[float] = []
    shed: list[float] = []
    statuses: Counter[int] = Counter()
    retry_after: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    start = time.perf_counter() + 0.2

    async def lane(j: int) -> None:
        conn = _Conn(host, port)
        try:
            for i in range(j, total, connections):
                due = start + i / rate
                delay = due - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                try:
                    status, headers = await conn.request(raws[i % len(raws)])
                except (OSError, asyncio.IncompleteReadError) as exc:
                    errors[type(exc).__name__] += 1
                    conn.close()
                    continue
                took = (time.perf_counter() - due) * 1000
                statuses[status] += 1
                if status == 503:
                    shed.append(took)
                    retry_after[headers.get("retry-after", "-")] += 1
                else:
                    latencies.append(took)
        finally:
            conn.close()

    await asyncio.gather(*(lane(j) for j in range(connections)))
    elapsed = time.perf_counter() - start
    return _summary(latencies, shed, statuses, retry_after, errors, total, elapsed, rate)


def _summary(
    latencies: list[float],
    shed: list[float],
    statuses: Counter[int],
    retry_after: Counter[str],
    errors: Counter[str],
    total: int,
    elapsed: float,
    rate: float,
) -> dict[str, Any]:
    def pct(values: list[float], p: float) -> float:
        if not values:
            return float("nan")
        ordered = sorted(values)
        return round(ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))], 2)

    ok = statuses.get(200, 0)
    return {
        "offered_rps": rate,
        "sent": total,
        "served_ok": ok,
        "ok_rps": round(ok / elapsed, 1),
        "p50_ms": pct(latencies, 50),
        "p99_ms": pct(latencies, 99),
        "max_ms": round(max(latencies), 1) if latencies else float("nan"),
        "shed_503": statuses.get(503, 0),
        "shed_p99_ms": pct(shed, 99),
        "retry_after": dict(retry_after),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "errors": dict(errors),
    }


def open_loop(
    base_url: str, paths: list[str], rate: float, seconds: float, connections: int = 64
) -> dict[str, Any]:
    """Offer `rate` requests/s for `seconds`; return what was served and how fast."""
    return asyncio.run(_open_loop(base_url, paths, rate, seconds, connections))
