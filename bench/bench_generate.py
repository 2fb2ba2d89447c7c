"""Measure generating randomised SGTIN serials (sgtin-random) for one work order.

A fresh registry gets one product (34-character alphabet, 12 characters) and one work order;
`work-order generate --serials N` is asked through `central.gentasks` and run by the same
runner the jobs process uses (chunks of 5,000, one transaction each). Each run happens in a
child process, so its peak RSS is its own: the figures show the time per database and that
memory stays flat however many serials are made.

    python bench/bench_generate.py                      # 100,000 serials, SQLite + PostgreSQL
    python bench/bench_generate.py --serials 1000000    # the issue's 1,000,000

Figures are noisy on a shared machine: run it several times before comparing.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def _rss_mib() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def measure(url: str, home: Path, n: int) -> dict[str, object]:
    """Generate `n` serials for one work order in the database at `url`; return figures."""
    import sqlalchemy as sa

    from central import admin, gentasks, init_registry
    from central import tables as T
    from central.config import load_config
    from central.db import Store
    from central.serialformats import set_serial_format

    now = dt.datetime.now(dt.UTC)
    init_registry(load_config({"home": str(home), "db_url": url}), now)
    store = Store(url)
    admin.add_tenant(store, "MA01", "Maison Atelier", "UTC", now)
    admin.add_product(store, "MA01", "TOTE-01", "BAG", "Tote", "04006381333931", now)
    admin.add_work_order(store, "MA01", "WO-1", "TOTE-01", "OEM", n, now)
    set_serial_format(store, "MA01", "TOTE-01", "sgtin-random", "bench", now, planned=n)
    rss_before = _rss_mib()
    started = time.perf_counter()
    task, _ = gentasks.request_generation(
        store, "MA01", "WO-1", gentasks.SERIALS, n, False, "bench", now
    )
    assert task is not None
    counts = gentasks.run_pending(store, dt.timedelta(minutes=2))
    elapsed = time.perf_counter() - started
    with store.read() as conn:
        rows = conn.execute(sa.select(sa.func.count()).select_from(T.serial_pool)).scalar_one()
        distinct = conn.execute(
            sa.select(sa.func.count(sa.distinct(T.serial_pool.c.serial)))
        ).scalar_one()
        done = gentasks.get_task(conn, task.id)
    store.dispose()
    assert counts["completed"] == 1 and rows == distinct == n == done.done
    return {
        "db": store.dialect,
        "serials": n,
        "seconds": round(elapsed, 1),
        "serials_per_s": round(n / elapsed),
        "rss_before_mib": rss_before,
        "peak_rss_mib": _rss_mib(),
        "unique": rows == distinct,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description="sgtin-random generation benchmark")
    parser.add_argument("--serials", type=int, default=100_000)
    parser.add_argument("--db", nargs="+", choices=["sqlite", "postgresql"],
                        default=["sqlite", "postgresql"])  # fmt: skip
    parser.add_argument("--child", nargs=2, metavar=("URL", "HOME"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child[0], Path(args.child[1]), args.serials)))
        return 0
    from benchkit import database

    for kind in args.db:
        with tempfile.TemporaryDirectory(prefix="bench-generate-") as tmp:
            with database(kind, Path(tmp)) as (_label, url):
                out = subprocess.run(
                    [sys.executable, __file__, "--serials", str(args.serials), "--child", url, tmp],
                    capture_output=True,
                    text=True,
                )
                if out.returncode != 0:
                    sys.stderr.write(out.stderr)
                    return out.returncode
                sys.stdout.write(out.stdout)
                sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
