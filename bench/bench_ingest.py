"""Measure central's event ingest on registries of growing size and print the figures.

For each database and registry size N:

1. a fresh central database (SQLite file, or a throw-away PostgreSQL database) is pre-filled
   with a consistent registry of N serials written straight into the tables, the shapes
   ingest writes (`bench_checker.build`: leases of 10,000 numbers on past days, a registry
   row and an `issued`, a `printed` and, for half of them, a `linked` event per serial; the
   consistency checker finds nothing in it). Ingesting 1M serials through the API first
   would take longer than the measurement it prepares; what is measured below is the API;
2. a second agent is enrolled and leases today's numbers through `POST /api/edge/v1/leases`;
3. batches of `--batch` fresh events (default 1,000: `issued` then `printed` of each serial,
   in the order an agent's outbox sends them) are posted to `POST /api/edge/v1/events`
   through the real Flask app (its test client, in this process: authentication, body
   decoding, `ingest_batch` and its transaction, metrics and the JSON answer; no socket).
   The bodies are encoded before the clock starts. Every result must be `accepted`.

Figures per database and size: events/s per batch (median, min, max over `--batches`
batches, after one warm-up batch that is not counted) and ms per batch. Since the machine
may be shared, each line also notes the load average before the batches and, over the timed
batches, the CPU this process and the database's backends used (`events_per_cpu_s`: events
per CPU-second of both together; it does not count fsync waits) and what everything else on
the machine used (`cpu.other_cpu_pct`, 100 = one core).

    python bench/bench_ingest.py                                   # 10k and 100k, both dbs
    python bench/bench_ingest.py --sizes 1000000 --db postgresql   # the 1M registry
    python bench/bench_ingest.py --sizes 10000 --db sqlite --batches 5 --mix issued
    python bench/bench_ingest.py --sizes 100000 --db postgresql --profile 2> profile.txt

Pre-filling is most of the run: on our shared 2-CPU machine (load average 5-9) 100k serials
took 40-115 s on SQLite and 80-165 s on PostgreSQL, 1M serials 4.5 minutes on SQLite and
14 minutes on PostgreSQL (rendering serials and writing 2.5M events); the default sizes take
about 3-6 minutes for both databases. Run the 1M size alone, one database at a time if the
machine is busy.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_checker import build  # noqa: E402
from benchkit import CpuWindow, database, db_name, load_note, machine  # noqa: E402

from central import admin, create_app, init_registry  # noqa: E402
from central.config import load_config  # noqa: E402
from central.db import Store  # noqa: E402
from central.keyring import Keyring  # noqa: E402
from protocol.events import Event  # noqa: E402
from protocol.ids import uuid7  # noqa: E402
from protocol.messages import LeaseGrant  # noqa: E402
from protocol.serials import Scope, render  # noqa: E402
from protocol.timefmt import format_ts  # noqa: E402

ORG = "MA01"


def _bodies(grants: list[LeaseGrant], batches: int, size: int, mix: str) -> list[bytes]:
    """Encode `batches` event batches of fresh serials from the leases, as an agent would."""
    per_serial = 2 if mix == "pairs" else 1
    serials = [render(g.scope, seq, g.key) for g in grants for seq in range(g.first, g.last + 1)]
    ms = int(time.time() * 1000)
    at = format_ts(dt.datetime.now(dt.UTC))
    bodies = []
    it = iter(serials)
    for _ in range(batches):
        events = []
        for _ in range(size // per_serial):
            serial = next(it)
            for etype in ("issued", "printed")[:per_serial]:
                ms += 1
                eid = uuid7(ms, ms.to_bytes(10, "big"))
                events.append(Event(eid, etype, serial, at, None, "WO-HAT", {}).to_dict())
        bodies.append(json.dumps({"v": 1, "events": events}).encode())
    return bodies


def measure(url: str, n: int, home: Path, args: argparse.Namespace) -> dict[str, Any]:
    cfg = {"home": str(home), "db_url": url}
    now = dt.datetime.now(dt.UTC)
    init_registry(load_config(cfg), now)
    store = Store(load_config(cfg).database_url)
    started = time.perf_counter()
    try:
        build(store, Keyring.load(load_config(cfg).keyring_file), n, now)
    finally:
        store.dispose()
    built = time.perf_counter() - started
    app = create_app(cfg)
    rt = app.extensions["lineledger"]
    try:
        client = app.test_client()
        code = admin.create_enroll_code(rt.store, ORG, "L2", 1, now)
        token = admin.enroll_agent(rt.store, code.code, "bench", "bench", now).token
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        per_serial = 2 if args.mix == "pairs" else 1
        need = (args.batches + 1) * (args.batch // per_serial)
        scope = Scope(ORG, "HAT", "BAG", now.date()).key
        grants: list[LeaseGrant] = []
        while need > 0:
            size = min(need, 10_000)
            resp = client.post(
                "/api/edge/v1/leases",
                headers=headers,
                json={
                    "v": 1,
                    "request_id": uuid7(int(time.time() * 1000) + len(grants), bytes(10)),
                    "scope": scope,
                    "size": size,
                },  # fmt: skip
            )
            assert resp.status_code == 200, resp.json
            grants.extend(LeaseGrant.from_dict(g) for g in resp.json["leases"])
            need -= sum(g.last - g.first + 1 for g in grants[-len(resp.json["leases"]) :])
        bodies = _bodies(grants, args.batches + 1, args.batch, args.mix)
        note = load_note(seconds=0.5)
        rates, ms = [], []
        profiler = None
        if args.profile:
            from pyinstrument import Profiler  # optional: pip install pyinstrument

            profiler = Profiler(interval=0.0005)
        window = None
        for i, body in enumerate(bodies):
            if i == 1:
                window = CpuWindow(match=db_name(url))
                if profiler is not None:
                    profiler.start()
            t0 = time.perf_counter()
            resp = client.post("/api/edge/v1/events", headers=headers, data=body)
            elapsed = time.perf_counter() - t0
            assert resp.status_code == 200, resp.json
            statuses = {r["status"] for r in resp.json["results"]}
            assert statuses == {"accepted"}, (statuses, resp.json["results"][:3])
            if i == 0:
                continue  # warm-up: connections, caches, first-use imports
            rates.append(args.batch / elapsed)
            ms.append(elapsed * 1000)
        assert window is not None
        cpu = window.stop()
        if profiler is not None:
            profiler.stop()
            print(profiler.output_text(unicode=False, color=False, show_all=False), file=sys.stderr)
    finally:
        rt.close()
    return {
        "database": rt.store.dialect,
        "serials": n,
        "mix": args.mix,
        "batch": args.batch,
        "batches": args.batches,
        "events_per_s": {
            "median": round(statistics.median(rates)),
            "min": round(min(rates)),
            "max": round(max(rates)),
        },
        "ms_per_batch_median": round(statistics.median(ms), 1),
        # CPU used by this process and the database's own backends over the timed batches:
        # what the events cost whatever else the machine was doing (wall figures above are
        # the ones the goal is about; on a busy machine they are slowed by others' work)
        "events_per_cpu_s": round(
            args.batches * args.batch / (cpu["bench_cpu_pct"] / 100 * cpu["window_s"])
        )
        if cpu.get("bench_cpu_pct")
        else None,
        "cpu": cpu,
        "prefill_s": round(built, 1),
        "loadavg_before": note["loadavg"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description="LineLedger central ingest benchmark")
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--batches", type=int, default=7, help="timed batches per size")
    parser.add_argument("--batch", type=int, default=1000, help="events per batch (<= 1000)")
    parser.add_argument(
        "--mix",
        choices=["pairs", "issued"],
        default="pairs",
        help="pairs: issued + printed of each serial (an agent's outbox); issued: issued only",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="print a pyinstrument profile of the timed batches to stderr (pip install it)",
    )
    args = parser.parse_args()
    kinds = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    print(json.dumps({"machine": machine()}))
    for kind in kinds:
        for n in args.sizes:
            with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
                home = Path(tmp)
                with database(kind, home) as (_label, url):
                    print(json.dumps(measure(url, n, home, args)))
            sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
