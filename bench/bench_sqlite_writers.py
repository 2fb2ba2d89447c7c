"""How long SQLite writers wait for the write lock: SQLite's busy handler vs the writer queue.

The root cause of issue #8's lease tail on SQLite, measured without HTTP: two processes of
eight threads each (gunicorn's production setting) run write transactions on one central
file (`BEGIN IMMEDIATE`, one INSERT, the lock held a few milliseconds, as a lease grant
does), and the time each transaction waited for the lock is recorded.

- `busy`: the transaction opens straight on the engine, so a waiter polls in SQLite's busy
  handler, which sleeps 1, 2, 5, ... up to 100 ms between tries: a newcomer often gets the
  lock at once while an old waiter sleeps, so the median is tiny and the tail is seconds.
- `queue`: `Store.write()`, where writers wait their turn (FIFO among a process's threads,
  `flock` among processes): everyone waits about the same, for about their place in line.

    python bench/bench_sqlite_writers.py            # 3 runs, A/B interleaved
    python bench/bench_sqlite_writers.py --runs 5 --hold-ms 2
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchkit import load_note, machine, pct, spread  # noqa: E402

from central import tables as T  # noqa: E402
from central.db import Store  # noqa: E402


def _worker(db: Path, mode: str, threads: int, n: int, hold: float, out: Any) -> None:
    store = Store(f"sqlite:///{db}")
    waits: list[float] = []
    lock = threading.Lock()

    @contextmanager
    def polling() -> Iterator[Any]:
        with store.engine.connect() as conn, conn.begin():
            yield conn

    def run(k: int) -> None:
        for i in range(n):
            asked = time.perf_counter()
            with store.write() if mode == "queue" else polling() as conn:
                waited = time.perf_counter() - asked
                key = f"{mp.current_process().pid}-{k}-{i}"
                conn.execute(T.schema_info.insert().values(key=key, value="x"))
                time.sleep(hold)
            with lock:
                waits.append(waited)

    pool = [threading.Thread(target=run, args=(k,)) for k in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    store.dispose()
    out.put(waits)


def measure(mode: str, procs: int, threads: int, n: int, hold: float) -> dict[str, Any]:
    """Run one mode and return the lock waits' percentiles (ms) and transactions/s."""
    folder = Path(tempfile.mkdtemp(prefix="writers-"))
    try:
        db = folder / "central.db"
        store = Store(f"sqlite:///{db}")
        store.init_schema()
        store.dispose()
        out: Any = mp.Queue()
        workers = [
            mp.Process(target=_worker, args=(db, mode, threads, n, hold, out)) for _ in range(procs)
        ]
        started = time.perf_counter()
        for w in workers:
            w.start()
        waits = [x * 1000 for _ in workers for x in out.get()]
        for w in workers:
            w.join()
        elapsed = time.perf_counter() - started
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return {
        "mode": mode,
        "tx": len(waits),
        "p50_ms": round(pct(waits, 50), 1),
        "p99_ms": round(pct(waits, 99), 1),
        "max_ms": round(max(waits), 1),
        "tx_per_s": round(len(waits) / elapsed, 1),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--procs", type=int, default=2)
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--tx", type=int, default=25, help="transactions per thread")
    ap.add_argument("--hold-ms", type=float, default=4.0, help="time the lock is held")
    args = ap.parse_args()
    print(f"# {machine()}")
    print(f"# load before: {json.dumps(load_note())}")
    runs: dict[str, list[dict[str, Any]]] = {"busy": [], "queue": []}
    for _ in range(args.runs):
        for mode in runs:  # A/B interleaved
            r = measure(mode, args.procs, args.threads, args.tx, args.hold_ms / 1000)
            runs[mode].append(r)
            print(json.dumps(r), flush=True)
    for mode, rs in runs.items():
        medians = {k: spread([r[k] for r in rs])["median"] for k in rs[0] if k not in ("mode",)}
        print(f"{mode:6} median of {len(rs)}: {json.dumps(medians)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
