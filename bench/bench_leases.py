"""Lease latency with many agents asking at once, on SQLite and PostgreSQL (issue #8).

Everything goes through a real central process and the edge's own HTTP client:

1. a central registry (`lineledger-central init`, one tenant, one product per category, one
   work order per line plus one work order every line may serve) served by gunicorn in the
   production setting (`-w 2 -k gthread --threads 4`) or by `lineledger-central serve`
   (waitress, the embedded default);
2. N agents enrolled with one-time codes through `POST /api/edge/v1/enroll`, each reading its
   work orders from `GET /api/edge/v1/config` as the edge does, and so the scopes it leases
   from: (org, type, category, date) of each work order, today and tomorrow (the edge leases
   ahead near midnight). Several lines share a category, and every line shares the common
   work order's scope, so grants contend on the same scope rows;
3. rounds: all N agents wait at a barrier, then each asks for one lease at once
   (`POST /api/edge/v1/leases`, a fresh request id, the edge's client), one thread per agent.

Figures per database: p50/p95/p99/max of the lease round trip as the agent sees it, grants/s
over the rounds, and a check that no two granted ranges of a scope share a number (the
bench stops if they do). The client threads share the machine's CPUs with the server, so
the latencies include some client time; the note of the machine's load says how busy it was.

    python bench/bench_leases.py                          # 50 agents, SQLite and PostgreSQL
    python bench/bench_leases.py --agents 10 --runs 3 --server serve
    python bench/bench_leases.py --db sqlite --rounds 10

`measure_leases(db, agents, rounds, workdir)` is the measurement, importable by other
benchmarks (`bench_side_by_side.py`).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zoneinfo
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchkit import (  # noqa: E402
    BIN,
    CENTRAL,
    Central,
    CpuWindow,
    category,
    children,
    database,
    db_name,
    load_note,
    machine,
    pct,
    run,
    spread,
)

from central.admin import add_product, add_work_order, create_enroll_code  # noqa: E402
from central.db import Store  # noqa: E402
from edge_agent.client import CentralClient  # noqa: E402
from edge_agent.errors import CentralRefused, CentralUnreachable  # noqa: E402
from protocol.ids import uuid7  # noqa: E402
from protocol.messages import EnrollRequest, LeaseRequest  # noqa: E402
from protocol.serials import Scope  # noqa: E402

ORG = "MA01"
TZ = "Europe/Paris"
SHARED_WO = "WO-ALL"
ENROLL_LIMIT = "1000/minute"  # fifty lines enroll within seconds (the default is 20/minute)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Gunicorn:
    """central under gunicorn in the production setting, as a child process."""

    def __init__(self, home: Path, db_url: str, workers: int = 2, threads: int = 4) -> None:
        self.home = home
        self.env = dict(
            os.environ,
            LINELEDGER_CENTRAL_HOME=str(home),
            LINELEDGER_CENTRAL_DB=db_url,
            PYTHONUNBUFFERED="1",
            LINELEDGER_ENROLL_RATE_LIMIT=ENROLL_LIMIT,
        )
        self.workers, self.threads = workers, threads
        self.port = _free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Gunicorn:
        log = (self.home / "gunicorn.log").open("ab")
        self.proc = subprocess.Popen(
            [
                str(BIN / "gunicorn"),
                "-w",
                str(self.workers),
                "-k",
                "gthread",
                "--threads",
                str(self.threads),
                "-b",
                f"127.0.0.1:{self.port}",
                "--timeout",
                "60",
                "central:create_app()",
            ],
            env=self.env,
            stdout=log,
            stderr=log,
            cwd=str(ROOT),
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"gunicorn exited; see {self.home / 'gunicorn.log'}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    pass
            except OSError:
                time.sleep(0.2)
                continue
            # Both workers import the app on their own; wait until a request is answered.
            client = CentralClient(self.url, "x", 30)
            try:
                client.ping()
            except CentralRefused:
                return self
            except Exception:  # noqa: BLE001 - still starting
                time.sleep(0.2)
                continue
            finally:
                client.close()
        raise SystemExit("gunicorn did not answer within 60 s")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=60)
            self.proc = None

    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None


def _seed(db_url: str, home: Path, agents: int, scopes: int) -> list[str]:
    """Create the registry: a tenant, `scopes` categories, one work order per line and one
    for every line; return one enrollment code per line."""
    env = dict(os.environ, LINELEDGER_CENTRAL_HOME=str(home), LINELEDGER_CENTRAL_DB=db_url)
    home.mkdir(parents=True, exist_ok=True)
    run(env, CENTRAL, "init")
    run(env, CENTRAL, "tenant", "add", "--org", ORG, "--name", "Bench", "--timezone", TZ)
    store = Store(db_url)
    now = dt.datetime.now(dt.UTC)
    try:
        for c in range(scopes):
            add_product(store, ORG, f"SKU-{c}", category(c), f"Product {c}", None, now)
        for i in range(agents):
            add_work_order(
                store, ORG, f"WO-{i}", f"SKU-{i % scopes}", "HAT", 5_000_000, now, line=f"L{i}"
            )
        add_work_order(store, ORG, SHARED_WO, "SKU-0", "OEM", 5_000_000, now)
        codes = [create_enroll_code(store, ORG, f"L{i}", 24, now).code for i in range(agents)]
    finally:
        store.dispose()
    return codes


class _Agent:
    """One line's client: enrolled, with the scopes its work orders lease from."""

    def __init__(self, url: str, code: str, index: int) -> None:
        self.client = CentralClient(url, None, 120)
        resp = self.client.enroll(EnrollRequest(code, hostname=f"bench-{index}"))
        self.client.token = resp.token
        cfg = self.client.config()
        today = dt.datetime.now(zoneinfo.ZoneInfo(cfg.timezone)).date()
        self.scopes = [
            Scope(ORG, wo.ptype, wo.category, day)
            for wo in cfg.work_orders
            for day in (today, today + dt.timedelta(days=1))
        ]
        self.index = index
        self.latencies: list[float] = []
        self.grants: list[tuple[str, int, int]] = []
        self.errors: list[str] = []
        self.retries = 0

    def lease(self, round_no: int, size: int) -> None:
        scope = self.scopes[(round_no + self.index) % len(self.scopes)]
        rid = uuid7(time.time_ns() // 1_000_000, os.urandom(10))
        started = time.perf_counter()
        try:
            try:
                resp = self.client.lease(LeaseRequest(rid, scope, size))
            except CentralUnreachable as exc:
                if "ConnectionError" not in exc.message:
                    raise
                # A kept-alive connection the server had just closed: the edge repeats the
                # request with the same id (the same lease comes back); the time counts.
                self.retries += 1
                resp = self.client.lease(LeaseRequest(rid, scope, size))
        except CentralRefused as exc:
            self.errors.append(f"{exc.code}: {exc.message}")
            return
        except CentralUnreachable as exc:  # HTTP 5xx, a timeout: counted, the round goes on
            self.errors.append(f"{exc.code}: {exc.message}")
            return
        self.latencies.append(time.perf_counter() - started)
        self.grants += [(g.scope.key, g.first, g.last) for g in resp.leases]


def _check_no_overlap(grants: list[tuple[str, int, int]]) -> None:
    by_scope: dict[str, list[tuple[int, int]]] = {}
    for key, first, last in grants:
        by_scope.setdefault(key, []).append((first, last))
    for key, ranges in by_scope.items():
        ranges.sort()
        for (_, a_last), (b_first, _) in zip(ranges, ranges[1:], strict=False):
            if b_first <= a_last:
                raise SystemExit(f"OVERLAP in {key}: {ranges}")


def measure_leases(
    db: str,
    agents: int,
    rounds: int,
    workdir: Path,
    server: str = "gunicorn",
    size: int = 100,
    scopes: int = 5,
) -> dict[str, Any]:
    """Start a central on `db` (sqlite, postgresql or a PostgreSQL URL), enroll `agents`
    agents and have them all ask for a lease at once, `rounds` times; return the figures.

    `server` is `gunicorn` (2 workers x 4 threads, gthread) or `serve` (waitress, 8 threads).
    Latencies are in milliseconds, as the agent sees the round trip.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    home = Path(tempfile.mkdtemp(prefix=f"leases-{db[:10]}-", dir=workdir))
    try:
        with database(db, home) as (label, url):
            codes = _seed(url, home / "central", agents, scopes)
            proc: Gunicorn | Central
            if server == "gunicorn":
                proc = Gunicorn(home / "central", url).start()
            else:
                proc = Central(
                    home / "central", url, LINELEDGER_ENROLL_RATE_LIMIT=ENROLL_LIMIT
                ).start(threads=8)
            try:
                with _pool(agents) as pool:
                    clients = pool(lambda i: _Agent(proc.url, codes[i], i), range(agents))
                    own = [p for p in [proc.pid()] if p] + children(proc.pid() or -1)
                    window = CpuWindow(own, match=db_name(url))
                    barrier = threading.Barrier(agents)

                    def agent_rounds(a: _Agent) -> None:
                        for r in range(rounds):
                            barrier.wait(timeout=600)
                            a.lease(r, size)

                    started = time.perf_counter()
                    pool(agent_rounds, clients)
                    elapsed = time.perf_counter() - started
                    cpu = window.stop(own)
                for c in clients:
                    c.client.close()
            finally:
                proc.stop()
    finally:
        shutil.rmtree(home, ignore_errors=True)
    latencies = [x * 1000 for c in clients for x in c.latencies]
    grants = [g for c in clients for g in c.grants]
    errors = [e for c in clients for e in c.errors]
    _check_no_overlap(grants)
    if not latencies:
        raise SystemExit(f"no lease granted: {errors[:3]}")
    return {
        "db": label,
        "server": server,
        "agents": agents,
        "rounds": rounds,
        "requests": agents * rounds,
        "grants": len(grants),
        "refused": len(errors),
        "retried": sum(c.retries for c in clients),
        "refusals": sorted(set(e[:120] for e in errors))[:5],
        "p50_ms": round(pct(latencies, 50), 1),
        "p95_ms": round(pct(latencies, 95), 1),
        "p99_ms": round(pct(latencies, 99), 1),
        "max_ms": round(max(latencies), 1),
        "mean_ms": round(statistics.fmean(latencies), 1),
        "grants_per_s": round(len(grants) / elapsed, 1),
        "seconds": round(elapsed, 2),
        "cpu": cpu,
    }


class _pool:
    """Run a function once per item, one thread each, and return the results in order."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __enter__(self) -> Any:
        def call(fn: Any, items: Any) -> list[Any]:
            items = list(items)
            out: list[Any] = [None] * len(items)
            failures: list[BaseException] = []

            def one(k: int) -> None:
                try:
                    out[k] = fn(items[k])
                except BaseException as exc:  # noqa: BLE001 - reported below
                    failures.append(exc)

            threads = [threading.Thread(target=one, args=(k,)) for k in range(len(items))]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            if failures:
                raise failures[0]
            return out

        return call

    def __exit__(self, *exc: object) -> None:
        return None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--db", action="append", help="sqlite, postgresql or a URL (repeatable)")
    ap.add_argument("--agents", type=int, action="append", help="default 50 (repeatable)")
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--size", type=int, default=100, help="numbers per request")
    ap.add_argument("--runs", type=int, default=1, help="runs per setting; medians printed")
    ap.add_argument("--server", choices=["gunicorn", "serve"], action="append")
    ap.add_argument("--workdir", type=Path, default=ROOT / "bench-run" / "leases")
    ap.add_argument("--json", action="store_true", help="print every run as JSON too")
    args = ap.parse_args()
    print(f"# {machine()}")
    print(f"# load before: {json.dumps(load_note())}")
    keys = ("p50_ms", "p95_ms", "p99_ms", "max_ms", "grants_per_s")
    for server in args.server or ["gunicorn"]:
        for db in args.db or ["sqlite", "postgresql"]:
            for agents in args.agents or [50]:
                runs = [
                    measure_leases(
                        db, agents, args.rounds, args.workdir, server=server, size=args.size
                    )
                    for _ in range(args.runs)
                ]
                if args.json:
                    for r in runs:
                        print(json.dumps(r))
                line = "  ".join(f"{k}={spread([r[k] for r in runs])['median']}" for k in keys)
                refused = sum(r["refused"] for r in runs)
                other = [r["cpu"].get("other_cpu_pct") for r in runs if r["cpu"]]
                print(
                    f"{server:8} {runs[0]['db']:10} agents={agents:3} rounds={args.rounds} "
                    f"runs={len(runs)}  {line}  refused={refused}  other_cpu%={other}",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
