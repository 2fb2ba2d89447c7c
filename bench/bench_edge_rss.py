"""Memory of the edge `run` service over many serials issued and synced: flat, or growing?

A real central (`lineledger-central serve`, SQLite by default) and a real agent service
(`lineledger-edge run`, its own process) run side by side. Serials are issued in batches
into the agent's store by another process, as `lineledger-edge issue` does on a line PC:

- `api` (default): a helper process issues each batch through the agent's issuing API
  (`Issuer.issue_many`, 500 serials per transaction: fast, so 200,000 serials fit in a
  sitting);
- `cli`: `lineledger-edge issue --count N` itself, one serial per transaction (slower).

The service syncs them to central by itself (its sync, reconcile, marks, pool, print and
config jobs all run as configured); the operator page is asked for its status a few times per
batch, as an open browser tab would. After every batch the benchmark waits until the
service's outbox is empty again, then samples the service's resident memory (VmRSS of
/proc/PID/status), its threads and open files. Printed: the series, and the slope of a least
squares line over the second half (MiB per 100,000 serials), which is what a leak would show.

With LINELEDGER_EDGE_TRACEMALLOC=FILE in the service's environment (`--tracemalloc`), the
service traces its allocations and writes the top growth since its start to FILE on SIGUSR1;
the benchmark asks for that at the end.

    python bench/bench_edge_rss.py                       # 20,000 serials, a sample every 2,000
    python bench/bench_edge_rss.py --serials 200000      # the full run (every 10,000)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchkit import EDGE, Central, machine, run, write_edge_toml  # noqa: E402

ORG = "MA01"
PER_WORK_ORDER = 50_000  # one scope (product category) per work order: at most 99,999 a day
BATCH_TX = 500  # serials per issuing transaction in `api` mode


def proc_figures(pid: int) -> dict[str, Any]:
    """Return the resident memory (MiB), threads and open files of a process."""
    status = Path(f"/proc/{pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    rss_kb = int(fields["VmRSS"].split()[0])
    hwm_kb = int(fields["VmHWM"].split()[0])
    return {
        "rss_mib": round(rss_kb / 1024, 2),
        "peak_mib": round(hwm_kb / 1024, 2),
        "threads": int(fields["Threads"]),
        "fds": len(os.listdir(f"/proc/{pid}/fd")),
    }


def slope(points: list[tuple[int, float]]) -> float:
    """Return the least squares slope of (serials, MiB) in MiB per 100,000 serials."""
    n = len(points)
    if n < 2:
        return 0.0
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    var = sum((x - mx) ** 2 for x, _ in points)
    cov = sum((x - mx) * (y - my) for x, y in points)
    return cov / var * 100_000 if var else 0.0


def issue_api(home: str, work_order: str, count: int) -> None:
    """Issue `count` serials of a work order through the agent's API (a process of its own)."""
    from edge_agent.agent import Agent
    from edge_agent.cli_support import know_work_order, prepare_pool
    from edge_agent.config import load_config
    from edge_agent.errors import ERR_POOL_EMPTY, EdgeError
    from edge_agent.issuing import Issuer

    agent = Agent(load_config(home))
    try:
        know_work_order(agent, work_order)
        issuer = Issuer(agent)
        done = 0
        while done < count:
            n = min(BATCH_TX, count - done)
            try:
                issuer.issue_many(work_order, n)
            except EdgeError as exc:
                if exc.code != ERR_POOL_EMPTY:
                    raise
                prepare_pool(agent, work_order, max(n, count - done))
                continue
            done += n
    finally:
        agent.close()


def pending(home: Path) -> int:
    """Return the events the agent has not delivered yet (read only)."""
    conn = sqlite3.connect(f"file:{home / 'edge.db'}?mode=ro", uri=True, timeout=30)
    try:
        row = conn.execute(
            "SELECT COUNT(*) FROM outbox WHERE status = 'pending' AND next_attempt_at = 0"
        ).fetchone()
        return int(row[0])
    finally:
        conn.close()


def poll_page(url: str) -> None:
    """Ask the operator page for its status, as an open browser tab does."""
    with urllib.request.urlopen(url + "status.json", timeout=30) as resp:
        resp.read()


class Service:
    """`lineledger-edge run` as a child process."""

    def __init__(self, env: dict[str, str], home: Path) -> None:
        self.log = (home / "service.log").open("w")
        self.proc = subprocess.Popen(
            [EDGE, "--home", str(home), "run", "--port", "0"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        try:
            self.url = json.loads(line)["operator_page"]
        except (ValueError, KeyError):
            raise SystemExit(
                f"the service did not start: {line!r}; see {home / 'service.log'}"
            ) from None
        self.pid = self.proc.pid

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=120)
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        self.log.close()
        return code


def main() -> int:
    parser = argparse.ArgumentParser(description="RSS of the edge run service over many serials")
    parser.add_argument("--serials", type=int, default=20_000, help="serials in all")
    parser.add_argument("--every", type=int, default=None, help="serials per batch (a sample "
                        "after each); default: a tenth of --serials, at most 10,000")  # fmt: skip
    parser.add_argument("--via", choices=["api", "cli"], default="api")
    parser.add_argument("--tracemalloc", action="store_true", help="trace the service's heap")
    parser.add_argument("--workdir", type=Path, default=ROOT / "bench-run" / "edge-rss")
    args = parser.parse_args()
    every = args.every or max(1, min(10_000, args.serials // 10))
    if args.workdir.exists():
        shutil.rmtree(args.workdir)
    args.workdir.mkdir(parents=True)
    orders = (args.serials + PER_WORK_ORDER - 1) // PER_WORK_ORDER
    print(f"LineLedger edge run service memory — {machine()}", flush=True)
    central = Central(
        args.workdir / "central",
        f"sqlite:///{args.workdir / 'central' / 'central.db'}",
        LINELEDGER_LEASE_MAX_SIZE="20000",
        LINELEDGER_LEASE_POOL_TARGET="20000",
    )
    (args.workdir / "central").mkdir(parents=True)
    central.admin("init")
    central.admin("tenant", "add", "--org", ORG, "--name", "Bench", "--timezone", "UTC")
    for i in range(orders):
        sku, cat = f"RSS-{i}", "R" + chr(65 + i // 26) + chr(65 + i % 26)
        central.admin("product", "add", "--org", ORG, "--sku", sku, "--category", cat,
                      "--name", sku)  # fmt: skip
        central.admin("work-order", "add", "--org", ORG, "--number", f"WO-R{i}", "--sku",
                      sku, "--type", "OEM", "--quantity", str(PER_WORK_ORDER),
                      "--line", "RSS")  # fmt: skip
    central.start()
    home = args.workdir / "agent"
    write_edge_toml(home, pool_target=10_000, low_water=4_000, lease_block=10_000,
                    sync_batch=1000, sync_interval=1.0)  # fmt: skip
    code = central.admin("agent", "enroll-code", "--org", ORG, "--line", "RSS").split()[-1]
    env = dict(central.env)
    env.pop("LINELEDGER_CENTRAL_HOME", None)
    trace_file = args.workdir / "tracemalloc.txt"
    if args.tracemalloc:
        env["LINELEDGER_EDGE_TRACEMALLOC"] = str(trace_file)
    run(env, EDGE, "--home", str(home), "enroll", "--central", central.url, "--code", code)
    service = Service(env, home)
    samples: list[dict[str, Any]] = []
    started = time.monotonic()
    try:
        time.sleep(3)  # the service's first runs of its jobs (reconcile, pool, config)
        samples.append({"serials": 0, **proc_figures(service.pid), "s": 0.0})
        print(json.dumps(samples[-1]), flush=True)
        issued = 0
        while issued < args.serials:
            n = min(every, args.serials - issued)
            work_order = f"WO-R{issued // PER_WORK_ORDER}"
            n = min(n, PER_WORK_ORDER - issued % PER_WORK_ORDER)
            if args.via == "cli":
                subprocess.run(
                    [EDGE, "--home", str(home), "issue", "--work-order", work_order,
                     "--count", str(n)],
                    env=env, stdout=subprocess.DEVNULL, check=True, timeout=7200,
                )  # fmt: skip
            else:
                subprocess.run(
                    [sys.executable, "-c", f"import sys; sys.path[:0] = {sys.path[:2]!r}; "
                     "import bench_edge_rss as b; "
                     f"b.issue_api({str(home)!r}, {work_order!r}, {n})"],
                    env=env, check=True, timeout=7200,
                )  # fmt: skip
            issued += n
            deadline = time.monotonic() + 600
            while pending(home):
                poll_page(service.url)
                if time.monotonic() > deadline:
                    raise SystemExit("the service did not sync the batch within 10 minutes")
                time.sleep(0.5)
            poll_page(service.url)
            sample = {
                "serials": issued,
                **proc_figures(service.pid),
                "s": round(time.monotonic() - started, 1),
            }
            samples.append(sample)
            print(json.dumps(sample), flush=True)
        if args.tracemalloc:
            service.proc.send_signal(signal.SIGUSR1)
            time.sleep(5)
    finally:
        code = service.stop()
        central.stop()
    half = [(s["serials"], s["rss_mib"]) for s in samples[len(samples) // 2 :]]
    summary = {
        "serials": args.serials,
        "via": args.via,
        "rss_mib": [s["rss_mib"] for s in samples],
        "at_serials": [s["serials"] for s in samples],
        "first_mib": samples[0]["rss_mib"],
        "last_mib": samples[-1]["rss_mib"],
        "slope_all_mib_per_100k": round(slope([(s["serials"], s["rss_mib"]) for s in samples]), 2),
        "slope_second_half_mib_per_100k": round(slope(half), 2),
        "threads": [samples[0]["threads"], samples[-1]["threads"]],
        "fds": [samples[0]["fds"], samples[-1]["fds"]],
        "service_exit": code,
    }
    print("\nserials  RSS MiB  threads  fds")
    for s in samples:
        print(f"{s['serials']:>7}  {s['rss_mib']:>7.2f}  {s['threads']:>7}  {s['fds']:>3}")
    print(
        f"slope over the second half: {summary['slope_second_half_mib_per_100k']} MiB per "
        f"100,000 serials (all samples: {summary['slope_all_mib_per_100k']})"
    )
    if args.tracemalloc and trace_file.exists():
        print(f"\nthe service's heap growth (tracemalloc, {trace_file}):")
        print("\n".join(trace_file.read_text().splitlines()[:25]))
    print(json.dumps({"summary": summary}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
