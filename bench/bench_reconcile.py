"""Time from central's return to every outbox drained and reconciled, and print the figures.

The scenario of issue #6: ten line PCs keep issuing while central is down, then central
comes back. Everything runs as real processes:

1. a central (`lineledger-central serve`, SQLite by default or a fresh PostgreSQL database)
   with one work order per line, each of a product category of its own (a day's scope holds
   99,999 numbers, so ten lines of 10,000 cannot share one);
2. N agents enrolled (`lineledger-edge enroll`), each leasing a pool that covers its events;
3. central stopped with SIGTERM; every agent issues its events offline
   (`lineledger-edge issue --count E`, two at a time), so each outbox holds E pending events;
4. central started again on the same port and, at once, the N agent services
   (`lineledger-edge run`). The clock starts when central listens again.

It stops when every agent's outbox has no pending event (drained) and a full reconcile has
confirmed every delivered event (reconciled: the confirmation `prune` waits for). The edge
databases are read read-only while the services run: pending events from the outbox index,
and the confirmation count each time the agent records a new full reconcile. Afterwards
central's registry, events and lease digests are checked against what the agents issued.

Figures: events in total, seconds to drained (all agents), seconds to reconciled, events/s,
and per agent the spread. The services' own start (ten Python processes on the machine's
cores) is inside the window and reported apart. Each run notes the CPU that other work on
the machine used during the window (all CPUs' busy time less the benchmark's processes), the
load average and the busiest other processes, since the machine may be shared. A run whose
agents are not all reconciled `--timeout` seconds after central's return is reported as
incomplete, with each late agent's outbox and its warnings (an agent whose catch-up reconcile
failed waits for its hourly reconcile), and the script exits 1.

Settings are the agents' defaults except the pool sizes (pool_target and the work orders'
quantities cover the events; the quantities are twice the events, so each line refills its
pool on return, as a real one would) and a free operator port per service.

    python bench/bench_reconcile.py                        # 10 agents x 10,000 events, SQLite
    python bench/bench_reconcile.py --db postgresql --runs 3
    python bench/bench_reconcile.py --agents 3 --events 1000   # a quick run
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

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
    run,
    spread,
    write_edge_toml,
)

from central.db import normalise_url  # noqa: E402

ORG = "MA01"
POLL = 0.2  # seconds between two looks at the edge databases


@dataclass
class Line:
    """One agent of the benchmark: its home and what was seen of it."""

    index: int
    home: Path
    work_order: str
    proc: subprocess.Popen[bytes] | None = None
    up_s: float | None = None
    drained_s: float | None = None
    reconciled_s: float | None = None
    checked_stamp: str | None = None
    checked_at: float = 0.0
    conn: sqlite3.Connection | None = None
    last: dict[str, Any] = field(default_factory=dict)

    @property
    def line(self) -> str:
        return f"L{self.index:02d}"

    def db(self) -> sqlite3.Connection:
        if self.conn is None:
            self.conn = sqlite3.connect(
                f"file:{self.home / 'edge.db'}?mode=ro",
                uri=True,
                timeout=30,
                check_same_thread=False,
            )
            self.conn.execute("PRAGMA busy_timeout=30000")
        return self.conn


def setup(central: Central, args: argparse.Namespace, workdir: Path) -> list[Line]:
    """Create the registry, enroll the agents and fill their pools (central running)."""
    central.admin("init")
    central.admin("tenant", "add", "--org", ORG, "--name", "Bench", "--timezone", "UTC")
    lines = []
    for i in range(1, args.agents + 1):
        line = Line(i, workdir / f"agent{i:02d}", f"WO-L{i:02d}")
        sku = f"SKU-{i:02d}"
        central.admin(
            "product", "add", "--org", ORG, "--sku", sku, "--category", category(i), "--name", sku
        )
        central.admin(
            "work-order",
            "add",
            "--org",
            ORG,
            "--number",
            line.work_order,
            "--sku",
            sku,
            "--type",
            "OEM",
            "--quantity",
            str(2 * args.events),
            "--line",
            line.line,
        )
        lines.append(line)
    central.start()
    for line in lines:
        code = central.admin("agent", "enroll-code", "--org", ORG, "--line", line.line).split()[-1]
        settings: dict[str, Any] = {
            "pool_target": args.events,
            "low_water": min(4000, args.events),
            "operator_port": 0,
        }
        if args.sync_batch:
            settings["sync_batch"] = args.sync_batch
        write_edge_toml(line.home, **settings)
        run(central.env, EDGE, "--home", str(line.home), "enroll", "--central", central.url,
            "--code", code)  # fmt: skip
        have = (
            line.db()
            .execute(
                "SELECT COALESCE(SUM(last_seq - next_seq + 1), 0) FROM leases WHERE status='active'"
            )
            .fetchone()[0]
        )
        if have < args.events:
            raise SystemExit(f"{line.line} leased only {have} numbers, not {args.events}")
    return lines


def issue_offline(central: Central, lines: list[Line], events: int, parallel: int) -> float:
    """Issue `events` serials on every line while central is down; return the seconds."""

    def one(line: Line) -> None:
        with (line.home / "issue.log").open("w") as err:
            out = subprocess.run(
                [
                    EDGE,
                    "--home",
                    str(line.home),
                    "issue",
                    "--work-order",
                    line.work_order,
                    "--count",
                    str(events),
                ],  # fmt: skip
                env=central.env,
                stdout=subprocess.DEVNULL,
                stderr=err,
                timeout=3600,
            )
        if out.returncode:
            raise SystemExit(f"{line.line}: issue failed, see {line.home / 'issue.log'}")
        pending = (
            line.db().execute("SELECT COUNT(*) FROM outbox WHERE status = 'pending'").fetchone()[0]
        )
        if pending != events:
            raise SystemExit(f"{line.line}: {pending} pending events after issue, not {events}")

    started = time.monotonic()
    with ThreadPoolExecutor(parallel) as pool:
        list(pool.map(one, lines))
    return time.monotonic() - started


def look(line: Line, now: float, events: int) -> None:
    """Read one agent's outbox (read-only) and note when it drained and was reconciled."""
    db = line.db()
    pending = db.execute("SELECT COUNT(*) FROM outbox WHERE status = 'pending'").fetchone()[0]
    line.last["pending"] = pending
    if pending:
        return
    if line.drained_s is None:
        line.drained_s = now
    row = db.execute("SELECT value FROM meta WHERE key = 'last_reconcile_at'").fetchone()
    stamp = row[0] if row else None
    # Confirmations are written by a reconcile, in the transaction that records its time: a
    # new time (or, as a safety net, two seconds) is the moment to count them again.
    if stamp == line.checked_stamp and now - line.checked_at < 2.0:
        return
    line.checked_stamp, line.checked_at = stamp, now
    total, unconfirmed, delivered = db.execute(
        "SELECT COUNT(*), SUM(confirmed_at IS NULL), SUM(status = 'done') FROM outbox"
    ).fetchone()
    line.last.update(total=total, unconfirmed=unconfirmed, delivered=delivered)
    if total >= events and delivered == total and unconfirmed == 0:
        line.reconciled_s = now


def service_up(line: Line) -> bool:
    out = line.home / "run.out"
    return out.exists() and out.read_text().endswith("\n")


def central_check(db_url: str, lines: list[Line], events: int) -> dict[str, Any]:
    """Return what central holds after the run: registry rows, events, leases confirmed."""
    engine = sa.create_engine(normalise_url(db_url))
    try:
        with engine.connect() as conn:
            registry = conn.exec_driver_sql("SELECT COUNT(*) FROM registry").scalar()
            issued = conn.exec_driver_sql(
                "SELECT COUNT(*) FROM events WHERE type = 'issued' AND outcome = 'accepted'"
            ).scalar()
            leases = conn.exec_driver_sql(
                "SELECT COUNT(*), SUM(CASE WHEN digest_ok THEN 1 ELSE 0 END) FROM leases l "
                "WHERE EXISTS (SELECT 1 FROM registry r WHERE r.lease_id = l.id)"
            ).one()
    finally:
        engine.dispose()
    expected = len(lines) * events
    return {
        "registry": registry,
        "issued_events": issued,
        "leases_used": leases[0],
        "leases_digest_ok": int(leases[1] or 0),
        "ok": registry == issued == expected and leases[0] == leases[1],
    }


def agent_warnings(lines: list[Line]) -> dict[str, int]:
    """Count the agents' own warnings and errors by kind, and the scheduler's missed runs.

    APScheduler drops a run that starts more than a second late ("was missed by"): on a
    loaded machine that can be the reconcile the service schedules at its start.
    """
    found: dict[str, int] = {}
    for ln in lines:
        log = ln.home / "run.log"
        if not log.exists():
            continue
        for text in log.read_text().splitlines():
            if " WARNING lineledger" in text or " ERROR " in text:
                kind = re.sub(r"\d+", "N", text.split(" ", 4)[-1])[:100]
            elif "was missed by" in text:
                every = re.search(r"interval\[([0-9:]+)\]", text)
                kind = f"scheduler missed a run of a job every {every[1] if every else '?'}"
            else:
                continue
            found[kind] = found.get(kind, 0) + 1
    return found


def measure(args: argparse.Namespace, run_no: int) -> dict[str, Any]:
    workdir = args.workdir / f"run{run_no}"
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    with database(args.db, workdir) as (kind, db_url):
        central = Central(
            workdir / "central",
            db_url,
            LINELEDGER_LEASE_MAX_SIZE=str(max(10_000, args.events)),
            LINELEDGER_LEASE_POOL_TARGET=str(args.events),
        )
        lines: list[Line] = []
        try:
            lines = setup(central, args, workdir)
            central.stop(signal.SIGTERM)
            offline_s = issue_offline(central, lines, args.events, args.issue_parallel)
            before = load_note()

            started = time.monotonic()
            window = CpuWindow(match=db_name(db_url))
            central.start()
            t0 = time.monotonic()
            for line in lines:
                with (
                    (line.home / "run.out").open("w") as out,
                    (line.home / "run.log").open("w") as err,
                ):
                    line.proc = subprocess.Popen(
                        [EDGE, "--home", str(line.home), "run"],
                        env=central.env,
                        stdout=out,
                        stderr=err,
                    )
            own = {p for p in [central.pid(), *(ln.proc.pid for ln in lines if ln.proc)] if p}
            deadline = t0 + args.timeout
            during = None
            while True:
                now = time.monotonic() - t0
                for line in lines:
                    if line.up_s is None and service_up(line):
                        line.up_s = now
                    if line.reconciled_s is None:
                        look(line, now, args.events)
                    assert line.proc is not None
                    if line.proc.poll() is not None:
                        raise SystemExit(f"{line.line}: service exited, see {line.home}/run.log")
                if during is None and now > 3.0:
                    during = load_note(own)
                if all(line.reconciled_s is not None for line in lines):
                    break
                if time.monotonic() > deadline:
                    break  # reported below: which agents, and what their logs say
                time.sleep(POLL)
            cpu = window.stop(sorted(own))
            central_start = t0 - started
            check = central_check(db_url, lines, args.events)
        finally:
            for line in lines:
                if line.proc is not None and line.proc.poll() is None:
                    line.proc.send_signal(signal.SIGTERM)
            for line in lines:
                if line.proc is not None:
                    try:
                        line.proc.wait(timeout=60)
                    except subprocess.TimeoutExpired:
                        line.proc.kill()
                if line.conn is not None:
                    line.conn.close()
            central.stop(signal.SIGTERM)
    total = len(lines) * args.events
    done = all(ln.reconciled_s is not None for ln in lines)
    drained = max((ln.drained_s for ln in lines if ln.drained_s is not None), default=None)
    reconciled = max(ln.reconciled_s or 0.0 for ln in lines) if done else None
    result: dict[str, Any] = {
        "run": run_no,
        "database": kind,
        "agents": len(lines),
        "events_per_agent": args.events,
        "events": total,
        "complete": done,
        "offline_issue_s": round(offline_s, 1),
        "central_start_s": round(central_start, 2),
        "services_up_s": round(max(ln.up_s or 0.0 for ln in lines), 2),
        "drained_s": round(drained, 2) if drained is not None else None,
        "reconciled_s": round(reconciled, 2) if reconciled is not None else None,
        "drain_events_per_s": round(total / drained) if drained else None,
        "events_per_s": round(total / reconciled) if reconciled else None,
        "per_agent_drained_s": spread([ln.drained_s for ln in lines if ln.drained_s is not None]),
        "per_agent_reconciled_s": spread(
            [ln.reconciled_s for ln in lines if ln.reconciled_s is not None]
        ),
        "agent_warnings": agent_warnings(lines),
        "central": check,
        "cpu": cpu,
        "load_before": before,
        "load_during": during,
    }
    if not done:
        result["not_reconciled"] = {
            ln.line: {**ln.last, "last_reconcile_at": ln.checked_stamp}
            for ln in lines
            if ln.reconciled_s is None
        }
        result["not_reconciled_after_s"] = args.timeout
    if not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description="LineLedger reconcile-after-outage benchmark")
    parser.add_argument("--agents", type=int, default=10)
    parser.add_argument("--events", type=int, default=10_000, help="events queued per agent")
    parser.add_argument(
        "--db",
        default="sqlite",
        help="sqlite, postgresql (the server of LINELEDGER_TEST_PG) or a postgresql:// URL of "
        "a server: a fresh database is created there and dropped afterwards",
    )
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument(
        "--sync-batch", type=int, default=0, help="events per push (default: the agent's)"
    )
    parser.add_argument("--issue-parallel", type=int, default=2, help="offline issue commands")
    parser.add_argument(
        "--timeout",
        type=float,
        default=300.0,
        help="seconds after central's return before a run is reported incomplete",
    )
    parser.add_argument("--workdir", type=Path, default=ROOT / "bench-run" / "reconcile")
    parser.add_argument("--keep", action="store_true", help="keep the agents' and central's files")
    args = parser.parse_args()
    if not 1 <= args.agents <= 99 or not 1 <= args.events <= 45_000:
        parser.error("1..99 agents and 1..45,000 events per agent (a day's scope holds 99,999)")
    print(f"LineLedger reconcile benchmark — {machine()}", flush=True)
    results = []
    for n in range(1, args.runs + 1):
        r = measure(args, n)
        results.append(r)
        print(json.dumps(r), flush=True)
        head = (
            f"run {n} ({r['database']}): {r['events']} events ({r['agents']} agents x "
            f"{r['events_per_agent']})   drained {r['drained_s']} s   "
        )
        if r["complete"]:
            head += f"reconciled {r['reconciled_s']} s   {r['events_per_s']} events/s"
        else:
            head += (
                f"NOT reconciled within {args.timeout:.0f} s: {sorted(r['not_reconciled'])} "
                f"(others by {r['per_agent_reconciled_s'].get('max')} s)"
            )
        print(
            f"{head}   (services up {r['services_up_s']} s; central check "
            f"{'ok' if r['central']['ok'] else 'FAILED'}; other work on the machine "
            f"{r['cpu'].get('other_cpu_pct')} % CPU)",
            flush=True,
        )
    complete = [r for r in results if r["complete"]]
    if len(results) > 1:
        summary = {
            key: spread([float(r[key]) for r in complete])
            for key in ("drained_s", "reconciled_s", "events_per_s", "services_up_s")
            if complete
        }
        drains = [float(r["drained_s"]) for r in results if r["drained_s"] is not None]
        summary["drained_s_all_runs"] = spread(drains) if drains else {}
        print(json.dumps({"summary": summary, "runs": len(results), "complete": len(complete)}))
        line = f"{len(complete)} of {len(results)} runs reconciled within {args.timeout:.0f} s"
        if drains:
            d = summary["drained_s_all_runs"]
            line += f"; drained (all runs) median {d['median']} s [{d['min']}..{d['max']}]"
        if complete:
            c = summary["reconciled_s"]
            line += (
                f"; reconciled median {c['median']} s [{c['min']}..{c['max']}], "
                f"{statistics.median(r['events_per_s'] for r in complete):.0f} events/s"
            )
        print(line)
    return 0 if all(r["central"]["ok"] and r["complete"] for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
