"""Measure the consistency checker on registries of growing size and print the figures.

A registry of N serials is written straight into the database (the shapes ingest writes:
leases of 10,000 numbers, a registry row, an `issued` and a `printed` event per serial,
half HAT and linked to a token, half OEM, every lease reconciled in full), then the checker
runs live once and as a dry run once. Its cost should grow linearly with N: the figures say
how long a check of a plant's registry takes and whether an hourly schedule is safe.

    python bench/bench_checker.py --sizes 100000 1000000 --db sqlite postgresql
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from central import admin, init_registry  # noqa: E402
from central import tables as T  # noqa: E402
from central.config import load_config  # noqa: E402
from central.db import Store  # noqa: E402
from central.jobs.checker import run_check  # noqa: E402
from central.keyring import Keyring  # noqa: E402
from protocol.ids import uuid7  # noqa: E402
from protocol.reconcile import Digest  # noqa: E402
from protocol.serials import Scope, render  # noqa: E402

LEASE = 10_000
PER_SCOPE = 90_000  # leave room below the scope's 99,999 numbers
CHUNK = 20_000


def _id(ms: int) -> str:
    return uuid7(ms, os.urandom(10))


def build(store: Store, keyring: Keyring, n: int, now: dt.datetime) -> None:
    """Write a consistent registry of `n` serials for one tenant and one agent."""
    admin.add_tenant(store, "MA01", "Maison Atelier", "UTC", now)
    admin.add_product(store, "MA01", "TOTE-01", "BAG", "Tote bag", None, now)
    admin.add_work_order(store, "MA01", "WO-HAT", "TOTE-01", "HAT", 10_000_000, now)
    admin.add_work_order(store, "MA01", "WO-OEM", "TOTE-01", "OEM", 10_000_000, now)
    code = admin.create_enroll_code(store, "MA01", "L1", 1, now)
    agent = admin.enroll_agent(store, code.code, "bench", "bench", now).agent_id
    with store.read() as conn:
        tenant_id = conn.execute(sa.select(T.tenants.c.id)).scalar()
        version = admin.active_key_version(conn)
    ms = int(now.timestamp() * 1000) - n  # event ids in time order, all in the past
    made = 0
    day = now.date() - dt.timedelta(days=1)
    while made < n:
        ptype = "HAT" if (made // LEASE) % 2 == 0 else "OEM"
        offset = made % PER_SCOPE
        if offset == 0 and made:
            day -= dt.timedelta(days=1)
        scope = Scope("MA01", ptype, "BAG", day)
        size = min(LEASE, n - made)
        first = offset + 1
        lease_id = str(uuid.uuid4())
        key = keyring.lease_key(version, lease_id)
        registry, events, digest = [], [], Digest()
        for seq in range(first, first + size):
            serial = render(scope, seq, key)
            issued, printed = _id(ms), _id(ms + 1)
            ms += 1
            token = f"TK-{made + seq}" if ptype == "HAT" else None
            registry.append(
                {
                    "serial": serial,
                    "tenant_id": tenant_id,
                    "scope_key": scope.key,
                    "seq": seq,
                    "lease_id": lease_id,
                    "agent_id": agent,
                    "work_order": f"WO-{ptype}",
                    "state": "linked" if token else "printed",
                    "issued_at": now - dt.timedelta(hours=1),
                    "updated_at": now - dt.timedelta(hours=1),
                    "print_count": 1,
                    "reprint_count": 0,
                    "last_event_id": printed,
                    "token": token,
                }
            )
            for event_id, etype, data in (
                (issued, "issued", "{}"),
                (printed, "printed", "{}"),
            ):
                events.append(
                    {
                        "event_id": event_id,
                        "tenant_id": tenant_id,
                        "agent_id": agent,
                        "type": etype,
                        "serial": serial,
                        "lease_id": lease_id,
                        "occurred_at": now - dt.timedelta(hours=1),
                        "received_at": now - dt.timedelta(hours=1),
                        "data": data,
                        "outcome": "accepted",
                    }
                )
                digest.add(event_id)
            if token:
                linked = _id(ms)
                events.append(
                    {
                        **events[-1],
                        "event_id": linked,
                        "type": "linked",
                        "data": json.dumps({"token": token}),
                    }
                )
                digest.add(linked)
        counts = {"issued": size, "printed": size}
        if ptype == "HAT":
            counts["linked"] = size
        with store.write() as conn:
            if offset == 0:
                conn.execute(
                    T.scope_counters.insert().values(
                        scope_key=scope.key,
                        tenant_id=tenant_id,
                        next_seq=first + size,
                        updated_at=now,
                    )
                )
            else:
                conn.execute(
                    T.scope_counters.update()
                    .where(T.scope_counters.c.scope_key == scope.key)
                    .values(next_seq=first + size)
                )
            conn.execute(
                T.leases.insert().values(
                    id=lease_id,
                    tenant_id=tenant_id,
                    agent_id=agent,
                    request_id=str(uuid.uuid4()),
                    scope_key=scope.key,
                    first_seq=first,
                    last_seq=first + size - 1,
                    key_version=version,
                    granted_at=now - dt.timedelta(hours=2),
                    expires_at=now + dt.timedelta(days=2),
                    status="active",
                    reported_hw=first + size - 1,
                    reported_at=now - dt.timedelta(hours=1),
                    reconciled_at=now - dt.timedelta(minutes=30),
                    reported_counts=json.dumps(counts),
                    digest_ok=True,
                    links_ok=True,
                )
            )
            for i in range(0, len(registry), CHUNK):
                conn.execute(T.registry.insert(), registry[i : i + CHUNK])
            for i in range(0, len(events), CHUNK):
                conn.execute(T.events.insert(), events[i : i + CHUNK])
        made += size
    with store.write() as conn:
        conn.execute(
            T.agents.update().values(
                last_seen_at=now, last_reconcile_at=now - dt.timedelta(minutes=30)
            )
        )
    if store.dialect == "postgresql":
        with store.engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("ANALYZE")


def measure(url: str, n: int, home: Path) -> dict[str, object]:
    config = load_config({"home": str(home), "db_url": url})
    now = dt.datetime.now(dt.UTC)
    init_registry(config, now)
    store = Store(config.database_url)
    keyring = Keyring.load(config.keyring_file)
    try:
        started = time.perf_counter()
        build(store, keyring, n, now)
        built = time.perf_counter() - started
        timings = {}
        for mode in ("live", "dry_run"):
            started = time.perf_counter()
            report = run_check(store, keyring, config, now, dry_run=mode == "dry_run")
            timings[mode] = time.perf_counter() - started
            assert report.findings == [] and not report.errors, report.to_text()
    finally:
        store.dispose()
    return {
        "database": store.dialect,
        "serials": n,
        "build_s": round(built, 1),
        "check_s": round(timings["live"], 2),
        "dry_run_s": round(timings["dry_run"], 2),
        "us_per_serial": round(timings["live"] / n * 1e6, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description="LineLedger consistency checker benchmark")
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--db", nargs="+", choices=["sqlite", "postgresql"], default=["sqlite"])
    parser.add_argument(
        "--pg-admin",
        default=os.environ.get(
            "LINELEDGER_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
        help="PostgreSQL server where throw-away databases are made.",
    )
    args = parser.parse_args()
    for kind in args.db:
        for n in args.sizes:
            with tempfile.TemporaryDirectory(prefix="bench-checker-") as tmp:
                home = Path(tmp)
                if kind == "sqlite":
                    print(json.dumps(measure(f"sqlite:///{home / 'central.db'}", n, home)))
                    continue
                name = f"llbench_{uuid.uuid4().hex[:10]}"
                server = sa.create_engine(
                    args.pg_admin.replace("postgresql://", "postgresql+psycopg://", 1),
                    isolation_level="AUTOCOMMIT",
                )
                with server.connect() as conn:
                    conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
                try:
                    url = sa.engine.make_url(args.pg_admin).set(database=name)
                    print(json.dumps(measure(url.render_as_string(hide_password=False), n, home)))
                finally:
                    with server.connect() as conn:
                        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                    server.dispose()
            sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
