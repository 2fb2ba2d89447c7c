"""Edge issue throughput with the high-water-mark reports on, against off; print the figures.

While central is reachable, `lineledger-edge issue` reports the agent's high-water marks in
a thread of its own (edge_agent.marks: after `marks_every` serials or `marks_seconds`
seconds, defaults 50 / 5 s, and once at the end), so a line PC restored from an older copy
loses at most that window. This measures what the reports cost the issuing loop, against a
real central process (`lineledger-central serve`, SQLite by default).

Two ways of issuing, both the code path of `lineledger-edge issue`:

- `api`: the command's own steps in a fresh Python process per run (start guard, pool
  preparation, `Issuer` and `MarksReporter` wired as edge_agent/cli.py wires them, each
  serial's JSON line written and flushed to /dev/null as the CLI writes it to stdout), which
  gives each serial's latency (issue + count for the reporter + the JSON line);
- `cli`: the `lineledger-edge issue --count N` process itself, stdout to /dev/null, timed
  from outside (process start and the final report included): serials/s only.

Runs alternate on and off (A B A B ...) so that drift of the machine (other work, thermal,
the page cache) falls on both alike; every run uses an agent of its own, enrolled up front
with a pool covering N in one lease (its own product category, so every run starts from the
same state). Each run notes the CPU other work on the machine used meanwhile, the load
average and the busiest other processes. Printed: per mode and setting the median and spread
of serials/s and of p50/p99 latency, and the on/off ratio (of the medians, and the median of
the per-round ratios).

In `api` mode the reports are also watched (not changed): how many ran, how long each took,
and the most serials issued but not yet acknowledged by central at any instant, in serials
and seconds: the window a copy of the database taken at that instant would lose, which
edge_agent.rollback bounds by `marks_every` serials or `marks_seconds` seconds.

    python bench/bench_issue_marks.py                       # 20,000 serials, 5 rounds
    python bench/bench_issue_marks.py --serials 5000 --rounds 3 --modes api
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchkit import (  # noqa: E402
    EDGE,
    Central,
    CpuWindow,
    category,
    database,
    db_name,
    load_note,
    machine,
    pct,
    run,
    spread,
    write_edge_toml,
)

ORG = "MA01"
SETTINGS = {"on": True, "off": False}


def issue_api(home: str, work_order: str, count: int, marks: bool) -> dict[str, Any]:
    """Do what `lineledger-edge issue` does, timing each serial (runs in a fresh process)."""
    from edge_agent import rollback
    from edge_agent.agent import Agent
    from edge_agent.cli_support import know_work_order, prepare_pool, start_guard
    from edge_agent.config import load_config
    from edge_agent.errors import ERR_POOL_EMPTY, EdgeError
    from edge_agent.issuing import Issuer
    from edge_agent.marks import MarksReporter

    agent = Agent(load_config(home, {"marks_report": marks}))
    # Watch the reports without changing them: when each one read the marks (how many
    # serials were issued then) and when central's answer came back. Between two answers
    # the serials issued since the earlier report read its marks are what a copy of the
    # database taken at that instant would lose (the rollback window of edge_agent.rollback).
    progress = [0]
    requested: list[tuple[float, int]] = []
    # (answered at, serials then, read at, serials it reported): reports run one at a time
    answered: list[tuple[float, int, float, int]] = []
    marks_request, answer_is_routine = rollback.marks_request, rollback.answer_is_routine

    def watched_request(a: Any) -> Any:
        requested.append((time.perf_counter(), progress[0]))
        return marks_request(a)

    def watched_answer(a: Any, resp: Any) -> Any:
        # Every answer is looked at here first (central has the marks from then on).
        answered.append((time.perf_counter(), progress[0], *requested[-1]))
        return answer_is_routine(a, resp)

    sink = open(os.devnull, "w")  # noqa: SIM115 - the CLI's stdout, sent nowhere
    try:
        began = time.perf_counter()
        know_work_order(agent, work_order)
        start_guard(agent)
        prepare_pool(agent, work_order, count)
        issuer = Issuer(agent)
        latencies: list[float] = []
        rollback.marks_request, rollback.answer_is_routine = watched_request, watched_answer
        started = time.perf_counter()
        with MarksReporter(agent) as reporter:
            reporter.ride_on(issuer)  # as edge_agent/cli.py wires them
            for done in range(count):
                t = time.perf_counter()
                try:
                    issued = issuer.issue(work_order)
                except EdgeError as exc:
                    if exc.code != ERR_POOL_EMPTY:
                        raise
                    prepare_pool(agent, work_order, count - done)
                    issued = issuer.issue(work_order)
                reporter.issued()
                sink.write(json.dumps(issued.to_dict(), sort_keys=True) + "\n")
                sink.flush()
                latencies.append(time.perf_counter() - t)
                progress[0] = done + 1
            looped = time.perf_counter()
        ended = time.perf_counter()
    finally:
        rollback.marks_request, rollback.answer_is_routine = marks_request, answer_is_routine
        sink.close()
        agent.close()
    # Exposure just before each answer: serials issued by then, less those the previous
    # answer acknowledged (none before the first); in time, since the previous ack's read.
    window_serials, window_s = [], []
    acked, acked_at = 0, started
    for when, issued_then, read_at, reported in answered:
        window_serials.append(issued_then - acked)
        window_s.append(when - acked_at)
        acked, acked_at = reported, read_at
    return {
        "serials": count,
        "per_s": round(count / (ended - started), 1),
        "p50_ms": round(pct(latencies, 50) * 1000, 3),
        "p99_ms": round(pct(latencies, 99) * 1000, 3),
        "max_ms": round(max(latencies) * 1000, 2),
        "final_report_ms": round((ended - looped) * 1000, 1),
        "setup_ms": round((started - began) * 1000, 1),
        "reports": reporter.reports,
        "serials_per_report": round(count / reporter.reports) if reporter.reports else None,
        "report_failures": reporter.failures,
        "report_ms_p50": round(pct([a[0] - a[2] for a in answered], 50) * 1000, 1)
        if answered
        else None,
        "max_unreported_serials": max(window_serials, default=None),
        "max_unreported_s": round(max(window_s), 2) if window_s else None,
    }


def issue_cli(env: dict[str, str], home: Path, work_order: str, count: int) -> dict[str, Any]:
    """Run `lineledger-edge issue --count N` and time it from outside."""
    started = time.perf_counter()
    out = subprocess.run(
        [EDGE, "--home", str(home), "issue", "--work-order", work_order, "--count", str(count)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        timeout=3600,
    )
    elapsed = time.perf_counter() - started
    if out.returncode:
        raise SystemExit(f"issue failed: {out.stderr}")
    return {"serials": count, "per_s": round(count / elapsed, 1), "wall_s": round(elapsed, 2)}


def edge_marks(home: Path) -> dict[str, int]:
    """Return the serials issued and the high-water mark central acknowledged (edge.db)."""
    import sqlite3

    conn = sqlite3.connect(f"file:{home / 'edge.db'}?mode=ro", uri=True)
    try:
        serials = conn.execute("SELECT COUNT(*) FROM serials").fetchone()[0]
        used, acked = conn.execute(
            "SELECT MAX(next_seq - 1), MAX(COALESCE(reported_hw, 0)) FROM leases"
        ).fetchone()
    finally:
        conn.close()
    return {"issued": serials, "high_water": used, "central_acked_hw": acked}


def plan(args: argparse.Namespace) -> list[tuple[int, str, str]]:
    """Return the runs in order: (round, mode, on|off), A B A B within every mode."""
    return [
        (r, mode, setting)
        for r in range(1, args.rounds + 1)
        for mode in args.modes
        for setting in ("on", "off")
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description="LineLedger issue throughput, marks on vs off")
    parser.add_argument("--serials", type=int, default=20_000, help="serials per run")
    parser.add_argument("--rounds", type=int, default=5, help="on/off pairs per mode")
    parser.add_argument("--modes", nargs="+", choices=["api", "cli"], default=["api", "cli"])
    parser.add_argument(
        "--db",
        default="sqlite",
        help="central's database: sqlite, postgresql (LINELEDGER_TEST_PG) or a postgresql:// "
        "URL of a server (a fresh database is created there and dropped)",
    )
    parser.add_argument("--workdir", type=Path, default=ROOT / "bench-run" / "issue-marks")
    args = parser.parse_args()
    if not 1 <= args.serials <= 99_999:
        parser.error("--serials is 1..99,999 (one lease of one day's scope)")
    if args.workdir.exists():
        shutil.rmtree(args.workdir)
    args.workdir.mkdir(parents=True)
    runs = plan(args)
    print(f"LineLedger issue benchmark, high-water reports on vs off — {machine()}", flush=True)
    results: list[dict[str, Any]] = []
    with database(args.db, args.workdir) as (kind, db_url):
        central = Central(
            args.workdir / "central",
            db_url,
            LINELEDGER_LEASE_MAX_SIZE=str(max(10_000, args.serials)),
            LINELEDGER_LEASE_POOL_TARGET=str(args.serials),
        )
        central.admin("init")
        central.admin("tenant", "add", "--org", ORG, "--name", "Bench", "--timezone", "UTC")
        for i, _ in enumerate(runs, 1):
            sku = f"SKU-{i:02d}"
            central.admin(
                "product", "add", "--org", ORG, "--sku", sku, "--category", category(i),
                "--name", sku,
            )  # fmt: skip
            central.admin(
                "work-order", "add", "--org", ORG, "--number", f"WO-{i:02d}", "--sku", sku,
                "--type", "OEM", "--quantity", str(args.serials), "--line", f"L{i:02d}",
            )  # fmt: skip
        central.start()
        spawn = multiprocessing.get_context("spawn")
        try:
            homes = []
            for i, (_, _, setting) in enumerate(runs, 1):
                home = args.workdir / f"agent{i:02d}"
                write_edge_toml(
                    home,
                    pool_target=args.serials,
                    low_water=min(4000, args.serials),
                    marks_report=SETTINGS[setting],
                )
                code = central.admin("agent", "enroll-code", "--org", ORG, "--line", f"L{i:02d}")
                run(central.env, EDGE, "--home", str(home), "enroll", "--central", central.url,
                    "--code", code.split()[-1])  # fmt: skip
                homes.append(home)
            for i, ((rnd, mode, setting), home) in enumerate(zip(runs, homes, strict=True), 1):
                note = load_note({p for p in [central.pid()] if p})
                window = CpuWindow([p for p in [central.pid()] if p], match=db_name(db_url))
                if mode == "api":
                    with spawn.Pool(1) as pool:
                        figures = pool.apply(
                            issue_api,
                            (str(home), f"WO-{i:02d}", args.serials, SETTINGS[setting]),
                        )
                else:
                    figures = issue_cli(central.env, home, f"WO-{i:02d}", args.serials)
                cpu = window.stop()
                marks = edge_marks(home)
                if marks["issued"] != args.serials:
                    raise SystemExit(f"run {i}: {marks['issued']} serials, not {args.serials}")
                row = {
                    "round": rnd,
                    "mode": mode,
                    "marks": setting,
                    "database": kind,
                    **figures,
                    **marks,
                    "cpu": cpu,
                    "load": note,
                }
                results.append(row)
                print(json.dumps(row), flush=True)
        finally:
            central.stop()
    report(results, args)
    return 0


def report(results: list[dict[str, Any]], args: argparse.Namespace) -> None:
    """Print medians, spread and on/off ratios per mode."""
    other = spread([float(r["cpu"].get("other_cpu_pct", 0)) for r in results])
    print(
        f"\n{args.serials} serials per run, {args.rounds} rounds (on, off alternating); other "
        f"work on the machine during the runs: {other} % CPU (100 = one core)"
    )
    for mode in args.modes:
        rows = {s: [r for r in results if r["mode"] == mode and r["marks"] == s] for s in SETTINGS}
        rates = {s: [float(r["per_s"]) for r in rows[s]] for s in SETTINGS}
        for s in SETTINGS:
            line = f"{mode:>3} marks {s:<3}  serials/s {spread(rates[s])}"
            if mode == "api":
                p50 = spread([float(r["p50_ms"]) for r in rows[s]])
                p99 = spread([float(r["p99_ms"]) for r in rows[s]])
                reports = statistics.median(r["reports"] for r in rows[s])
                line += f"   p50 ms {p50}   p99 ms {p99}   reports/run {reports:.0f}"
                if reports:
                    window = spread([float(r["max_unreported_serials"]) for r in rows[s]])
                    secs = spread([float(r["max_unreported_s"]) for r in rows[s]])
                    took = spread([float(r["report_ms_p50"]) for r in rows[s]])
                    line += (
                        f" (one per {args.serials / reports:.0f} serials; a report takes "
                        f"p50 {took} ms; most serials unreported at once {window}, "
                        f"for {secs} s)"
                    )
            print(line)
        pairs = [on / off for on, off in zip(rates["on"], rates["off"], strict=True)]
        ratio = statistics.median(rates["on"]) / statistics.median(rates["off"])
        summary = {
            "mode": mode,
            "ratio_of_medians": round(ratio, 3),
            "median_pair_ratio": round(statistics.median(pairs), 3),
            "pair_ratios": [round(p, 3) for p in pairs],
        }
        if mode == "api":
            p99 = {s: statistics.median(float(r["p99_ms"]) for r in rows[s]) for s in SETTINGS}
            p50 = {s: statistics.median(float(r["p50_ms"]) for r in rows[s]) for s in SETTINGS}
            summary["p50_ratio"] = round(p50["on"] / p50["off"], 3)
            summary["p99_ratio"] = round(p99["on"] / p99["off"], 3)
        print(
            f"{mode:>3} on/off serials/s: {summary['ratio_of_medians']} (medians), "
            f"{summary['median_pair_ratio']} (median of per-round ratios {summary['pair_ratios']})"
            + (
                f"; latency on/off p50 {summary['p50_ratio']}, p99 {summary['p99_ratio']}"
                if mode == "api"
                else ""
            )
        )
        print(json.dumps({"summary": summary}))


if __name__ == "__main__":
    raise SystemExit(main())
