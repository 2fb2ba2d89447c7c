"""Several edge agents, each its own process, lease and issue from one central at once."""

import datetime as dt
import subprocess
import sys
import zoneinfo

import pytest
import sqlalchemy as sa

from central import tables as T
from central.db import Store
from tests.procs import cli, edge, env_with, json_lines, write_edge_toml

pytestmark = pytest.mark.slow


def test_processes_hammering_leases_never_share_a_number(central, db_url, tmp_path):
    today = dt.datetime.now(zoneinfo.ZoneInfo("Europe/Paris")).date()
    scope = f"MA01-HAT-BAG-{today:%Y%m%d}"
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.e2e.lease_hammer",
                central.url,
                central.enroll_code(f"H{i}"),
                scope,
                "40",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env_with(),
        )
        for i in range(6)
    ]
    ranges = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        ranges += [(r["first"], r["last"]) for r in json_lines(out)]
    assert len(ranges) == 240
    numbers = [n for first, last in ranges for n in range(first, last + 1)]
    assert len(numbers) == len(set(numbers))
    assert sorted(numbers) == list(range(1, len(numbers) + 1))
    store = Store(db_url)
    try:
        with store.read() as conn:
            rows = conn.execute(
                sa.select(T.leases.c.first_seq, T.leases.c.last_seq).where(
                    T.leases.c.scope_key == scope
                )
            ).all()
    finally:
        store.dispose()
    assert sorted((r.first_seq, r.last_seq) for r in rows) == sorted(ranges)


def test_agents_issuing_at_once_make_no_duplicate(central, db_url, tmp_path):
    homes = []
    for i in range(4):
        home = tmp_path / f"agent-{i}"
        write_edge_toml(home, lease_block=37, pool_target=60, low_water=30)
        edge(home, "enroll", "--central", central.url, "--code", central.enroll_code(f"L{i}"))
        homes.append(home)
    procs = [
        subprocess.Popen(
            [
                cli("lineledger-edge"),
                "--home",
                str(h),
                "issue",
                "--work-order",
                "WO-HAT-1",
                "--count",
                "300",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env_with(),
        )
        for h in homes
    ]
    serials = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        serials += [r["serial"] for r in json_lines(out)]
    assert len(serials) == 1200 and len(set(serials)) == 1200
    for home in homes:
        edge(home, "sync")
    store = Store(db_url)
    try:
        with store.read() as conn:
            registered = set(conn.execute(sa.select(T.registry.c.serial)).scalars())
            quarantined = conn.execute(
                sa.select(sa.func.count()).select_from(T.quarantine)
            ).scalar()
    finally:
        store.dispose()
    assert registered == set(serials) and quarantined == 0
