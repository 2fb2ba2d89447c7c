"""The edge issue loop beside a bare sqlite3 INSERT + COMMIT loop, interleaved A/B/A/B.

(A) is the code path of `lineledger-edge issue`: the command's own steps (start guard, pool
preparation, `Issuer` and `MarksReporter` wired as edge_agent/cli.py wires them), one serial
per `BEGIN IMMEDIATE` transaction, committed with `synchronous=FULL` before its JSON line is
written (and flushed, to /dev/null here, as the CLI writes it to stdout).

(B) is a bare sqlite3 loop in the same folder at the same durability (WAL,
`synchronous=FULL`): one INSERT of a row of about the size of an issued serial's outbox row,
then COMMIT, per row.

Each run happens in a fresh Python process (so one run's heap and garbage collector do not
weigh on the next); runs alternate A B A B ... so drift of a shared machine falls on both
alike. Printed per run and as medians: serials (rows) per second, p50/p99 per serial, and the
A/B ratio (of the medians, and the median of the per-round ratios).

Importable: `measure_issue(workdir, serials, rounds)` starts a central of its own (SQLite),
enrolls one agent and returns the figures as a dict (bench/bench_side_by_side.py uses it).

    python bench/edge_issue_side_by_side.py                    # 5,000 serials, 5 rounds
    python bench/edge_issue_side_by_side.py --serials 10000 --rounds 7 --marks off
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import sqlite3
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchkit import EDGE, Central, CpuWindow, machine, pct, run, write_edge_toml  # noqa: E402

ORG = "MA01"
WORK_ORDER = "WO-SBS"
BARE_DB = "bare.db"
# About what one issued serial writes: the serial, its `issued` event as JSON, a timestamp.
_BARE_BODY = json.dumps(
    {
        "v": 1,
        "event_id": "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
        "type": "issued",
        "serial": "MA01-OEM-BAG-20251109-00027-A9K2-X",
        "occurred_at": "2025-11-09T10:00:00.123Z",
        "lease_id": "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5c",
        "work_order": WORK_ORDER,
    },
    separators=(",", ":"),
    sort_keys=True,
)


def _figures(latencies: list[float], elapsed: float, cpu: float) -> dict[str, Any]:
    return {
        "n": len(latencies),
        "per_s": round(len(latencies) / elapsed, 1),
        # CPU of the process (all threads) per serial: what the disk's fsync does not hide.
        "cpu_ms_per": round(cpu / len(latencies) * 1000, 4),
        "p50_ms": round(pct(latencies, 50) * 1000, 3),
        "p99_ms": round(pct(latencies, 99) * 1000, 3),
        "max_ms": round(max(latencies) * 1000, 2),
    }


def edge_run(home: str, count: int, marks: bool) -> dict[str, Any]:
    """(A) Issue `count` serials as `lineledger-edge issue` does, timing each one.

    Runs in a fresh process; the work order and a pool covering `count` are prepared by the
    same steps the command takes (untimed, as they happen once per command).
    """
    from edge_agent.agent import Agent
    from edge_agent.cli_support import know_work_order, prepare_pool, start_guard
    from edge_agent.config import load_config
    from edge_agent.errors import ERR_POOL_EMPTY, EdgeError
    from edge_agent.issuing import Issuer
    from edge_agent.marks import MarksReporter

    agent = Agent(load_config(home, {"marks_report": marks}))
    sink = open(os.devnull, "w")  # noqa: SIM115 - the CLI's stdout, sent nowhere
    try:
        know_work_order(agent, WORK_ORDER)
        start_guard(agent)
        prepare_pool(agent, WORK_ORDER, count)
        issuer = Issuer(agent)
        latencies: list[float] = []
        clock = time.perf_counter
        cpu = time.process_time()
        started = clock()
        with MarksReporter(agent) as reporter:
            reporter.ride_on(issuer)  # as edge_agent/cli.py wires them
            for done in range(count):
                t = clock()
                try:
                    issued = issuer.issue(WORK_ORDER)
                except EdgeError as exc:
                    if exc.code != ERR_POOL_EMPTY:
                        raise
                    prepare_pool(agent, WORK_ORDER, count - done)
                    issued = issuer.issue(WORK_ORDER)
                reporter.issued()
                # Shown only now: the serial was committed inside issue().
                sink.write(json.dumps(issued.to_dict(), sort_keys=True) + "\n")
                sink.flush()
                latencies.append(clock() - t)
        elapsed = clock() - started  # the final high-water report included
        out = _figures(latencies, elapsed, time.process_time() - cpu)
        out["reports"] = reporter.reports
        return out
    finally:
        sink.close()
        agent.close()


def bare_run(folder: str, count: int) -> dict[str, Any]:
    """(B) Insert `count` rows, one INSERT + COMMIT each, WAL and synchronous=FULL."""
    conn = sqlite3.connect(Path(folder) / BARE_DB)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute(
            "CREATE TABLE IF NOT EXISTS bare(id INTEGER PRIMARY KEY, serial TEXT NOT NULL "
            "UNIQUE, body TEXT NOT NULL, created_at TEXT NOT NULL)"
        )
        conn.commit()
        base = conn.execute("SELECT COALESCE(MAX(id), 0) FROM bare").fetchone()[0]
        latencies: list[float] = []
        clock = time.perf_counter
        cpu = time.process_time()
        started = clock()
        for i in range(base + 1, base + count + 1):
            t = clock()
            conn.execute(
                "INSERT INTO bare(serial, body, created_at) VALUES (?, ?, ?)",
                (f"BARE-{i:010d}", _BARE_BODY, "2025-11-09T10:00:00.123Z"),
            )
            conn.commit()
            latencies.append(clock() - t)
        return _figures(latencies, clock() - started, time.process_time() - cpu)
    finally:
        conn.close()


def _setup(workdir: Path, total: int) -> tuple[Central, Path]:
    """Start a central (SQLite) and enroll one agent whose work order covers `total`."""
    central = Central(
        workdir / "central",
        f"sqlite:///{workdir / 'central' / 'central.db'}",
        LINELEDGER_LEASE_MAX_SIZE=str(max(10_000, total)),
        LINELEDGER_LEASE_POOL_TARGET=str(total),
    )
    (workdir / "central").mkdir(parents=True, exist_ok=True)
    central.admin("init")
    central.admin("tenant", "add", "--org", ORG, "--name", "Bench", "--timezone", "UTC")
    central.admin("product", "add", "--org", ORG, "--sku", "SBS", "--category", "BAG",
                  "--name", "Side by side")  # fmt: skip
    central.admin("work-order", "add", "--org", ORG, "--number", WORK_ORDER, "--sku", "SBS",
                  "--type", "OEM", "--quantity", str(total), "--line", "SBS")  # fmt: skip
    central.start()
    home = workdir / "agent"
    write_edge_toml(home, pool_target=total, low_water=min(4000, total))
    code = central.admin("agent", "enroll-code", "--org", ORG, "--line", "SBS").split()[-1]
    run(central.env, EDGE, "--home", str(home), "enroll", "--central", central.url,
        "--code", code)  # fmt: skip
    return central, home


def measure_issue(
    workdir: Path, serials: int = 5000, rounds: int = 5, marks: bool = True, quiet: bool = False
) -> dict[str, Any]:
    """Run A/B/A/B `rounds` times, `serials` per run; return the runs and the medians.

    A central (SQLite) runs meanwhile, so the high-water-mark reports of (A) reach it (with
    `marks`, the command's default). `workdir` is emptied first. One scope holds 99,999
    numbers, so `serials * rounds` is at most that.
    """
    if serials < 1 or rounds < 1 or serials * rounds > 99_999:
        raise ValueError("serials * rounds must lie in 1..99,999 (one scope of one day)")
    workdir = Path(workdir)
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    bare = workdir / "bare"
    bare.mkdir()
    central, home = _setup(workdir, serials * rounds)
    spawn = multiprocessing.get_context("spawn")
    runs: list[dict[str, Any]] = []
    try:
        for rnd in range(1, rounds + 1):
            for side in ("edge", "bare"):
                window = CpuWindow([p for p in [central.pid()] if p])
                with spawn.Pool(1) as worker:
                    if side == "edge":
                        figures = worker.apply(edge_run, (str(home), serials, marks))
                    else:
                        figures = worker.apply(bare_run, (str(bare), serials))
                row = {"round": rnd, "side": side, **figures, "cpu": window.stop()}
                runs.append(row)
                if not quiet:
                    print(json.dumps(row), flush=True)
    finally:
        central.stop()
    return {"serials": serials, "rounds": rounds, "marks": marks, "runs": runs, **summarise(runs)}


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Return the medians per side and the edge/bare ratios."""
    side = {s: [r for r in runs if r["side"] == s] for s in ("edge", "bare")}
    med = {
        s: {
            k: statistics.median(float(r[k]) for r in rows)
            for k in ("per_s", "p50_ms", "p99_ms", "cpu_ms_per")
        }
        for s, rows in side.items()
    }
    pairs = [a["per_s"] / b["per_s"] for a, b in zip(side["edge"], side["bare"], strict=True)]
    return {
        "edge": {k: round(v, 3) for k, v in med["edge"].items()},
        "bare": {k: round(v, 3) for k, v in med["bare"].items()},
        "ratio_of_medians": round(med["edge"]["per_s"] / med["bare"]["per_s"], 3),
        "median_pair_ratio": round(statistics.median(pairs), 3),
        "pair_ratios": [round(p, 3) for p in pairs],
        "other_cpu_pct_median": statistics.median(
            float(r["cpu"].get("other_cpu_pct", 0)) for r in runs
        ),
    }


def report(result: dict[str, Any]) -> None:
    """Print the summary of `measure_issue`."""
    e, b = result["edge"], result["bare"]
    print(
        f"\nedge issue vs bare sqlite3 INSERT+COMMIT (WAL, synchronous=FULL), "
        f"{result['serials']} per run, {result['rounds']} rounds, marks "
        f"{'on' if result['marks'] else 'off'}; other work on the machine: "
        f"{result['other_cpu_pct_median']:g} % CPU (median)"
    )
    for name, f in (("edge", e), ("bare", b)):
        print(
            f"  {name}  {f['per_s']:>8.1f}/s  p50 {f['p50_ms']:.3f} ms  p99 {f['p99_ms']:.3f} ms"
            f"  CPU {f['cpu_ms_per']:.3f} ms/serial"
        )
    print(
        f"  edge/bare: {result['ratio_of_medians']} (medians), {result['median_pair_ratio']} "
        f"(median of per-round ratios {result['pair_ratios']})"
    )
    summary = {k: v for k, v in result.items() if k != "runs"}
    print(json.dumps({"summary": summary}))


def main() -> int:
    parser = argparse.ArgumentParser(description="Edge issue loop vs bare sqlite3, A/B/A/B")
    parser.add_argument("--serials", type=int, default=5000, help="serials (rows) per run")
    parser.add_argument("--rounds", type=int, default=5, help="A/B pairs")
    parser.add_argument(
        "--marks",
        choices=["on", "off"],
        default="on",
        help="high-water-mark reports while issuing (the command's default: on)",
    )
    parser.add_argument("--workdir", type=Path, default=ROOT / "bench-run" / "issue-side-by-side")
    args = parser.parse_args()
    print(f"LineLedger edge issue side by side — {machine()}", flush=True)
    try:
        result = measure_issue(args.workdir, args.serials, args.rounds, args.marks == "on")
    except ValueError as exc:
        parser.error(str(exc))
    report(result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
