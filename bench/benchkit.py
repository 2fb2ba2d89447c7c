"""What the process-driving benchmarks share: a central server process, throw-away PostgreSQL
databases, edge homes, percentiles, and a note of what else loaded the machine.

Not a benchmark itself; `bench_reconcile.py` and `bench_issue_marks.py` import it.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa

BIN = Path(sys.executable).parent
CENTRAL = str(BIN / "lineledger-central")
EDGE = str(BIN / "lineledger-edge")
PG_DEFAULT = os.environ.get("LINELEDGER_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def pct(values: list[float], p: float) -> float:
    """Return the p-th percentile (nearest rank) of `values`."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def spread(values: list[float]) -> dict[str, float]:
    """Return the median, the smallest and the largest of several runs' figures."""
    if not values:
        return {}
    return {
        "median": round(statistics.median(values), 3),
        "min": round(min(values), 3),
        "max": round(max(values), 3),
    }


def machine() -> str:
    """Describe this machine in one line."""
    return (
        f"{platform.node()} {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}"
    )


def _cpu_ticks() -> dict[int, tuple[int, str]]:
    """Return the CPU ticks used so far and the command line of every process."""
    found: dict[int, tuple[int, str]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, ValueError):
            continue
        found[int(entry.name)] = (int(fields[11]) + int(fields[12]), cmd.strip())
    return found


def load_note(own: set[int] | None = None, seconds: float = 1.0) -> dict[str, Any]:
    """Return the load average and the other processes busy on the CPUs right now.

    The benchmarks run on shared machines: each run's figures carry this note (CPU % over
    `seconds`, 100 % = one core), so a slow run can be told apart from a busy machine.
    Processes in `own` (and this one) count as the benchmark's own and are left out.
    """
    try:
        load = [round(float(x), 2) for x in Path("/proc/loadavg").read_text().split()[:3]]
    except OSError:
        load = []
    if not Path("/proc/self/stat").exists():
        return {"loadavg": load, "busy": []}
    hz = os.sysconf("SC_CLK_TCK")
    first = _cpu_ticks()
    time.sleep(seconds)
    second = _cpu_ticks()
    skip = (own or set()) | {os.getpid()}
    busy = []
    for pid, (ticks, cmd) in second.items():
        if pid in skip or pid not in first:
            continue
        cpu = (ticks - first[pid][0]) / hz / seconds * 100
        if cpu >= 5.0:
            busy.append((cpu, cmd))
    busy.sort(reverse=True)
    return {
        "loadavg": load,
        "other_cpu_pct": round(sum(c for c, _ in busy)),
        "busy": [f"{cpu:.0f}% {cmd[:100]}" for cpu, cmd in busy[:5]],
    }


def _busy_ticks() -> int:
    """Return the CPU ticks all CPUs spent busy since boot (idle and I/O wait left out)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return user + nice + system + irq + softirq + steal


def _pid_ticks(pid: int) -> int:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[11]) + int(fields[12])


def children(pid: int) -> list[int]:
    """Return the processes whose parent is `pid` (a server's workers)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat[stat.rindex(")") + 2 :].split()[1]) == pid:
                found.append(int(entry.name))
    return found


_PG_SHARED = ("checkpointer", "walwriter", "background writer", "autovacuum", "logical rep")


class CpuWindow:
    """How much CPU everything else on the machine used while one measurement ran.

    All CPUs' busy time (/proc/stat) over the window, less the benchmark's own: this
    process, its children that finished and were waited for, and the processes named at
    `stop` (still running: central, agent services). 100 % is one core.
    """

    def __init__(self, pids: list[int] | None = None, match: str | None = None) -> None:
        self.available = Path("/proc/stat").exists()
        self.started = time.monotonic()
        self.times = os.times()
        self.busy = _busy_ticks() if self.available else 0
        self.pids = {pid: _pid_ticks(pid) for pid in pids or []}
        self.match = match
        self.matched = self._matching()

    def _matching(self) -> dict[int, int]:
        """Return the ticks of the processes whose command line names `match` (the database
        server's backends of the benchmark's own database), and of the server's own shared
        processes (WAL writer, checkpointer, ...) under negative ids."""
        if not self.match or not self.available:
            return {}
        found = {}
        for pid, (ticks, cmd) in _cpu_ticks().items():
            if self.match in cmd:
                found[pid] = ticks
            elif cmd.startswith("postgres: ") and any(k in cmd for k in _PG_SHARED):
                found[-pid] = ticks
        return found

    def stop(self, pids: list[int] | None = None) -> dict[str, float]:
        """Return the window's seconds, the benchmark's CPU % and everything else's."""
        elapsed = time.monotonic() - self.started
        if not self.available or elapsed <= 0:
            return {}
        hz = os.sysconf("SC_CLK_TCK")
        busy = (_busy_ticks() - self.busy) / hz
        t = os.times()
        own = (t.user - self.times.user) + (t.system - self.times.system)
        own += (t.children_user - self.times.children_user) + (
            t.children_system - self.times.children_system
        )
        for pid in set(pids or []) | set(self.pids):
            own += (_pid_ticks(pid) - self.pids.get(pid, 0)) / hz
        now = self._matching()
        db = sum(t - self.matched.get(pid, 0) for pid, t in now.items() if pid > 0) / hz
        shared = sum(t - self.matched.get(pid, t) for pid, t in now.items() if pid < 0) / hz
        out = {
            "window_s": round(elapsed, 2),
            "bench_cpu_pct": round((own + db) / elapsed * 100),
            "other_cpu_pct": round(max(0.0, busy - own - db) / elapsed * 100),
        }
        if self.match:
            # The benchmark's own database backends count as its CPU; the server's shared
            # processes work for every database on it, so they stay in `other` (said apart).
            out["db_backends_cpu_pct"] = round(db / elapsed * 100)
            out["db_server_shared_cpu_pct"] = round(shared / elapsed * 100)
        return out


def run(env: dict[str, str], *args: str, timeout: float = 600) -> str:
    """Run a command to completion; stop the benchmark with its stderr if it fails."""
    out = subprocess.run(list(args), env=env, text=True, capture_output=True, timeout=timeout)
    if out.returncode:
        raise SystemExit(f"{' '.join(args[:4])}...: rc={out.returncode}\n{out.stderr}")
    return out.stdout


def write_edge_toml(home: Path, **settings: Any) -> None:
    """Write an agent's edge.toml."""
    home.mkdir(parents=True, exist_ok=True)
    lines = ["[edge]"] + [f"{k} = {json.dumps(v)}" for k, v in settings.items()]
    (home / "edge.toml").write_text("\n".join(lines) + "\n")


def category(i: int) -> str:
    """Return the i-th product category code (letters only): a scope of its own per index."""
    return "C" + chr(65 + (i // 26) % 26) + chr(65 + i % 26)


class Central:
    """`lineledger-central serve` as a child process, stopped and started on one port."""

    def __init__(self, home: Path, db_url: str, **env: str) -> None:
        self.home = home
        self.env = dict(
            os.environ,
            LINELEDGER_CENTRAL_HOME=str(home),
            LINELEDGER_CENTRAL_DB=db_url,
            PYTHONUNBUFFERED="1",
            **env,
        )
        self.port = 0
        self.proc: subprocess.Popen[str] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def admin(self, *args: str) -> str:
        """Run a `lineledger-central` admin command."""
        return run(self.env, CENTRAL, *args)

    def start(self, threads: int = 16) -> Central:
        """Start serving and return once it listens (on the same port after a restart)."""
        self.home.mkdir(parents=True, exist_ok=True)
        with (self.home / "central.log").open("a") as log:
            self.proc = subprocess.Popen(
                [CENTRAL, "serve", "--port", str(self.port), "--threads", str(threads)],
                env=self.env,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
            )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if "listening on" not in line:
            raise SystemExit(f"central did not start: {line!r}; see {self.home / 'central.log'}")
        self.port = int(line.rsplit(":", 1)[1])
        return self

    def stop(self, sig: int = signal.SIGTERM) -> int:
        """Stop the server with a real signal and return its exit code."""
        if self.proc is None:
            return 0
        self.proc.send_signal(sig)
        code = self.proc.wait(timeout=60)
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        self.proc = None
        return code

    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None


def db_name(db_url: str) -> str | None:
    """Return the name its server processes carry when the database is PostgreSQL's."""
    url = sa.engine.make_url(db_url)
    return f" {url.database} " if url.get_backend_name() == "postgresql" else None


@contextlib.contextmanager
def database(kind: str, home: Path) -> Iterator[tuple[str, str]]:
    """Yield (label, SQLAlchemy URL) of a fresh central database, dropped afterwards.

    `kind` is `sqlite`, `postgresql` (the server of LINELEDGER_TEST_PG) or a
    `postgresql://...` URL of a server where a throw-away database is created and dropped.
    """
    if kind == "sqlite":
        yield "sqlite", f"sqlite:///{home / 'central.db'}"
        return
    server_url = PG_DEFAULT if kind == "postgresql" else kind
    name = f"llbench_{uuid.uuid4().hex[:10]}"
    server = sa.create_engine(
        sa.engine.make_url(server_url).set(drivername="postgresql+psycopg"),
        isolation_level="AUTOCOMMIT",
    )
    with server.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        url = sa.engine.make_url(server_url).set(database=name)
        yield "postgresql", url.render_as_string(hide_password=False)
    finally:
        with server.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        server.dispose()
