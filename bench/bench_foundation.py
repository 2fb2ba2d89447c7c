"""Measure the foundation's speed on this machine and print the figures.

1. Edge issue throughput (serials/s into the outbox, no printing) and per-serial latency.
2. Central ingest throughput on SQLite: events/s accepted from batched pushes over HTTP.
3. Public verify latency (p50/p99) under a steady open-loop load on loopback.

4. Issue + print end to end (issue #3): ZPL through the printer simulator, PDF to a spool.

The central runs as its own process (`lineledger-central serve`, waitress), the agent and
the load generator in this one. Aims: issue >= 2,000/s with p99 < 5 ms; ingest >= 5,000
events/s; verify p99 < 20 ms at 200 requests/s (#2); >= 50 labels/s end to end with ZPL and
>= 20/s with PDF (#3).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from edge_agent import outbox, pool  # noqa: E402
from edge_agent.agent import Agent  # noqa: E402
from edge_agent.config import load_config  # noqa: E402
from edge_agent.issuing import Issuer  # noqa: E402
from edge_agent.printing import PrintQueue  # noqa: E402
from edge_agent.scanning import ScanDesk  # noqa: E402
from printers.simulator import PrinterSimulator  # noqa: E402

BIN = Path(sys.executable).parent


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def run(env: dict[str, str], *args: str) -> str:
    out = subprocess.run(list(args), env=env, text=True, capture_output=True, timeout=300)
    if out.returncode:
        raise SystemExit(out.stderr)
    return out.stdout


def main() -> int:
    parser = argparse.ArgumentParser(description="LineLedger foundation benchmark")
    parser.add_argument("--serials", type=int, default=20_000)
    parser.add_argument("--rate", type=float, default=200.0, help="verify requests per second")
    parser.add_argument("--seconds", type=float, default=15.0, help="verify load duration")
    parser.add_argument("--workdir", type=Path, default=ROOT / "bench-run")
    parser.add_argument("--print-zpl", type=int, default=2000, help="labels printed via ZPL")
    parser.add_argument("--print-pdf", type=int, default=300, help="labels spooled as PDF")
    args = parser.parse_args()
    if args.workdir.exists():
        shutil.rmtree(args.workdir)
    args.workdir.mkdir(parents=True)
    env = dict(
        os.environ,
        LINELEDGER_CENTRAL_HOME=str(args.workdir / "central"),
        LINELEDGER_VERIFY_RATE_LIMIT="1000000/hour",
        LINELEDGER_LEASE_MAX_SIZE="99999",
        # The per-agent cap (#6: pool target plus one block per scope) must let one agent
        # hold the whole run's numbers.
        LINELEDGER_LEASE_POOL_TARGET="90000",
    )
    central = str(BIN / "lineledger-central")
    run(env, central, "init")
    run(env, central, "tenant", "add", "--org", "MA01", "--name", "Bench", "--timezone", "UTC")
    run(
        env,
        central,
        "product",
        "add",
        "--org",
        "MA01",
        "--sku",
        "S1",
        "--category",
        "BAG",
        "--name",
        "Bag",
    )
    run(
        env,
        central,
        "work-order",
        "add",
        "--org",
        "MA01",
        "--number",
        "WO-1",
        "--sku",
        "S1",
        "--type",
        "OEM",
        "--quantity",
        "1000000",
    )
    code = run(env, central, "agent", "enroll-code", "--org", "MA01", "--line", "B1").split()[-1]
    server = subprocess.Popen(
        [central, "serve", "--port", "0", "--threads", "16"],
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert server.stdout is not None
    url = "http://127.0.0.1:" + server.stdout.readline().rsplit(":", 1)[1].strip()
    results: dict[str, object] = {
        "machine": f"{platform.node()} {platform.processor() or ''} "
        f"{os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}"
    }
    try:
        home = args.workdir / "agent"
        run(
            env,
            str(BIN / "lineledger-edge"),
            "--home",
            str(home),
            "enroll",
            "--central",
            url,
            "--code",
            code,
        )
        agent = Agent(load_config(home, {"sync_batch": 1000}))
        wo = agent.work_order("WO-1")
        ident = agent.identity()
        scope = pool.scope_for(ident, wo, pool.production_date(ident, agent.now()))
        pool.top_up(agent, scope, need=args.serials)

        # 1. issue
        issuer = Issuer(agent)
        latencies = []
        started = time.perf_counter()
        for _ in range(args.serials):
            t = time.perf_counter()
            issuer.issue("WO-1")
            latencies.append(time.perf_counter() - t)
        elapsed = time.perf_counter() - started
        results["issue"] = {
            "serials": args.serials,
            "per_s": round(args.serials / elapsed),
            "p50_ms": round(pct(latencies, 50) * 1000, 3),
            "p99_ms": round(pct(latencies, 99) * 1000, 3),
            "max_ms": round(max(latencies) * 1000, 3),
        }

        # 2. ingest (batches of 1000 over HTTP, results recorded in the outbox)
        started = time.perf_counter()
        summary = outbox.flush(agent)
        elapsed = time.perf_counter() - started
        assert summary.error is None and summary.results == {"accepted": args.serials}, summary
        results["ingest"] = {
            "events": summary.sent,
            "batches": summary.batches,
            "per_s": round(summary.sent / elapsed),
        }
        serials = [
            r["serial"]
            for r in agent.store.conn().execute("SELECT serial FROM serials ORDER BY seq")
        ]

        # scan answers on the line (the operator page's and the scanner's path)
        desk = ScanDesk(agent)
        scan_latency = []
        for serial in serials[:2000]:
            t = time.perf_counter()
            desk.answer_text("]C0" + serial)
            scan_latency.append(time.perf_counter() - t)
        results["scan"] = {
            "scans": len(scan_latency),
            "p50_ms": round(pct(scan_latency, 50) * 1000, 3),
            "p99_ms": round(pct(scan_latency, 99) * 1000, 3),
        }

        # 3. issue + print end to end: ZPL to the printer simulator, PDF to a spool folder
        pool.top_up(agent, scope, need=args.print_zpl + args.print_pdf)
        results["print_zpl"] = issue_and_print(agent, None, args.print_zpl)
        results["print_pdf"] = issue_and_print(
            agent, f"pdf://{args.workdir / 'pdf'}?create=1", args.print_pdf
        )
        agent.close()

        # 4. verify under a steady open-loop load
        # The load comes from a fresh process of its own, so this process's heap (and its
        # garbage collector) does not stretch the latencies it measures.
        with multiprocessing.get_context("spawn").Pool(1) as load:
            results["verify"] = load.apply(verify_load, (url, serials, args.rate, args.seconds))
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
        server.stdout.close()
    print_report(results)
    (args.workdir / "results.json").write_text(json.dumps(results, indent=2))
    return 0


def issue_and_print(agent: Agent, url: str | None, count: int) -> dict[str, object]:
    """Issue `count` serials with a label each and print them; return labels per second."""
    with PrinterSimulator() as sim:
        printer = url or sim.url
        issuer = Issuer(agent)
        queue = PrintQueue(agent)
        started = time.perf_counter()
        jobs = [issuer.issue("WO-1", printer_url=printer).print_job for _ in range(count)]
        sent = 0
        for i in range(0, len(jobs), 500):
            sent += len(queue.run(printer, [j for j in jobs[i : i + 500] if j is not None]).sent)
        elapsed = time.perf_counter() - started
        queue.close()
        printed = len(sim.printed) if url is None else sent
    assert sent == printed == count, (sent, printed, count)
    return {"labels": count, "per_s": round(count / elapsed, 1), "printer": printer.split(":")[0]}


def verify_load(url: str, serials: list[str], rate: float, seconds: float) -> dict[str, object]:
    total = int(rate * seconds)
    latencies: list[float] = []
    lateness: list[float] = []
    verdicts: dict[str, int] = {}
    lock = threading.Lock()
    next_index = [0]
    t0 = time.perf_counter() + 0.5

    def worker() -> None:
        with requests.Session() as session:
            while True:
                with lock:
                    i = next_index[0]
                    next_index[0] += 1
                if i >= total:
                    return
                due = t0 + i / rate
                wait = due - time.perf_counter()
                if wait > 0:
                    time.sleep(wait)
                start = time.perf_counter()
                resp = session.get(
                    f"{url}/api/public/serial/verify/{serials[i % len(serials)]}", timeout=10
                )
                done = time.perf_counter()
                verdict = (
                    resp.json()["verdict"] if resp.status_code == 200 else str(resp.status_code)
                )
                with lock:
                    latencies.append(done - start)
                    lateness.append(max(0.0, start - due))
                    verdicts[verdict] = verdicts.get(verdict, 0) + 1

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    achieved = total / (time.perf_counter() - t0)
    return {
        "requests": total,
        "target_rate": rate,
        "achieved_rate": round(achieved, 1),
        "p50_ms": round(pct(latencies, 50) * 1000, 2),
        "p99_ms": round(pct(latencies, 99) * 1000, 2),
        "max_ms": round(max(latencies) * 1000, 2),
        "mean_ms": round(statistics.fmean(latencies) * 1000, 2),
        "sender_late_p99_ms": round(pct(lateness, 99) * 1000, 2),
        "verdicts": verdicts,
    }


def print_report(r: dict[str, object]) -> None:
    issue, ingest, verify = r["issue"], r["ingest"], r["verify"]
    zpl, pdf, scan = r["print_zpl"], r["print_pdf"], r["scan"]
    assert isinstance(issue, dict) and isinstance(ingest, dict) and isinstance(verify, dict)
    assert isinstance(zpl, dict) and isinstance(pdf, dict) and isinstance(scan, dict)
    print(f"LineLedger foundation benchmark — {r['machine']}")
    print(
        f"edge issue    {issue['per_s']:>8} serials/s   p50 {issue['p50_ms']} ms   "
        f"p99 {issue['p99_ms']} ms   max {issue['max_ms']} ms   ({issue['serials']} serials, "
        "WAL + synchronous=FULL, one transaction each)   aim >= 2000/s, p99 < 5 ms"
    )
    print(
        f"central ingest {ingest['per_s']:>7} events/s    ({ingest['events']} events in "
        f"{ingest['batches']} batches of <= 1000 over HTTP, SQLite)   aim >= 5000/s"
    )
    print(
        f"issue + print {zpl['per_s']:>8} labels/s   (ZPL over TCP to the printer simulator, "
        f"{zpl['labels']} labels with GS1 DataMatrix + QR + Code 128)   aim >= 50/s"
    )
    print(
        f"issue + print {pdf['per_s']:>8} labels/s   (PDF files spooled with fsync, "
        f"{pdf['labels']} labels)   aim >= 20/s"
    )
    print(
        f"scan answer    p50 {scan['p50_ms']} ms   p99 {scan['p99_ms']} ms   ({scan['scans']} "
        "scans answered from the agent's store and recorded as events)   aim < 200 ms"
    )
    print(
        f"public verify  p50 {verify['p50_ms']} ms   p99 {verify['p99_ms']} ms   max "
        f"{verify['max_ms']} ms   at {verify['achieved_rate']}/s of {verify['target_rate']}/s "
        f"target ({verify['requests']} requests, verdicts {verify['verdicts']})   "
        "aim p99 < 20 ms at 200/s"
    )


if __name__ == "__main__":
    raise SystemExit(main())
