"""Seconds to pull 10,000 work orders from an ERP, and to pull the same feed again.

Issue #9's target: an ERP sync of 10,000 work orders under 30 s. A fake ERP on 127.0.0.1
(`tests/fake_erp.py`, a real HTTP server in a thread) serves the work orders in pages of
500 linked by `next`; `central.erp_pull.pull` fetches and syncs them into a fresh central
database (SQLite file or a throw-away PostgreSQL database). The first pull creates every
work order (with its history rows); the second finds every one unchanged and writes nothing.
Figures are wall-clock seconds on a shared machine: noisy, compare medians.

    python bench/bench_erp.py                       # SQLite and PostgreSQL, 10,000 orders
    python bench/bench_erp.py --db sqlite --orders 2000 --runs 3
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.benchkit import database, load_note, machine, spread  # noqa: E402
from central import admin, erp, erp_pull, init_registry  # noqa: E402
from central.config import load_config  # noqa: E402
from central.db import Store  # noqa: E402
from tests.fake_erp import FakeErp  # noqa: E402


def one_run(kind: str, orders: int, page: int) -> dict[str, float]:
    """Pull `orders` work orders twice into a fresh database; return both times."""
    now = dt.datetime.now(dt.UTC)
    with tempfile.TemporaryDirectory() as tmp, database(kind, Path(tmp)) as (_label, url):
        init_registry(load_config({"home": tmp, "db_url": url}), now)
        store = Store(url)
        fake = FakeErp().start()
        try:
            admin.add_tenant(store, "MA01", "Maison Atelier", "Europe/Paris", now)
            for i in range(10):
                admin.add_product(store, "MA01", f"SKU-{i}", "BAG", f"Product {i}", None, now)
            records = [
                {
                    "number": f"WO-{n:06d}",
                    "name": f"Batch {n}",
                    "sku": f"SKU-{n % 10}",
                    "production_type": "OEM" if n % 2 else "HAT",
                    "quantity": 100 + n % 900,
                    "requested_sscc": n % 7,
                    "overage_pct": 2.5,
                    "line": f"L{n % 4 + 1}",
                }
                for n in range(orders)
            ]
            erp.set_erp_settings(store, "MA01", fake.pages(records, page), "tok", 3600, "b", now)
            times = {}
            for label in ("first_sync_s", "resync_s"):
                start = time.perf_counter()
                report = erp_pull.pull(store, "MA01", "bench", dt.datetime.now(dt.UTC))
                times[label] = round(time.perf_counter() - start, 2)
                expected = (orders, 0) if label == "first_sync_s" else (0, orders)
                got = (report.created, report.unchanged)
                if report.status != "success" or got != expected:
                    raise SystemExit(f"{label}: {report.status} {got} != {expected}")
            return times
        finally:
            fake.close()
            store.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--orders", type=int, default=10_000)
    parser.add_argument("--page", type=int, default=500)
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    kinds = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    out = {"machine": machine(), "orders": args.orders, "page": args.page, "results": {}}
    for kind in kinds:
        runs = [one_run(kind, args.orders, args.page) for _ in range(args.runs)]
        out["results"][kind] = {
            key: spread([r[key] for r in runs]) for key in ("first_sync_s", "resync_s")
        }
    out["load"] = load_note()
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
