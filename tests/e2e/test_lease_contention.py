"""Fifty agents ask a real central (gunicorn, two worker processes) for leases at once.

Whatever order the writers are served in, no number is granted twice, every granted range is
the one central recorded, and the numbers of each scope are handed out without a hole.
"""

from __future__ import annotations

import datetime as dt
import os
import threading
import time
import zoneinfo

import pytest
import sqlalchemy as sa

from central import tables as T
from central.admin import create_enroll_code
from central.db import Store
from edge_agent.client import CentralClient
from protocol.ids import uuid7
from protocol.messages import EnrollRequest, LeaseRequest
from protocol.serials import Scope
from tests.procs import CentralProcess
from tests.webservers import Gunicorn

pytestmark = pytest.mark.slow

AGENTS = 50
ROUNDS = 3


def test_fifty_agents_leasing_at_once_through_gunicorn_never_share_a_number(db_url, tmp_path):
    home = tmp_path / "central"
    CentralProcess(home, db_url).seed()
    store = Store(db_url)
    try:
        now = dt.datetime.now(dt.UTC)
        codes = [create_enroll_code(store, "MA01", f"C{i}", 1, now).code for i in range(AGENTS)]
    finally:
        store.dispose()
    server = Gunicorn(
        home, workers=2, LINELEDGER_CENTRAL_DB=db_url, LINELEDGER_ENROLL_RATE_LIMIT="1000/minute"
    ).start()
    today = dt.datetime.now(zoneinfo.ZoneInfo("Europe/Paris")).date()
    # Two scopes every agent shares (the work orders of both production types), so the
    # grants contend on the same counters; tomorrow's date as the edge leases ahead.
    scopes = [
        Scope("MA01", "HAT", "BAG", today),
        Scope("MA01", "OEM", "BAG", today),
        Scope("MA01", "HAT", "BAG", today + dt.timedelta(days=1)),
    ]
    barrier = threading.Barrier(AGENTS)
    granted: list[tuple[str, int, int, str]] = []
    failures: list[BaseException] = []
    lock = threading.Lock()

    def agent(i: int) -> None:
        client = CentralClient(server_url, None, 120)
        try:
            client.token = client.enroll(EnrollRequest(codes[i])).token
            for r in range(ROUNDS):
                barrier.wait(timeout=300)
                scope = scopes[(i + r) % len(scopes)]
                rid = uuid7(time.time_ns() // 1_000_000, os.urandom(10))
                resp = client.lease(LeaseRequest(rid, scope, 1 + (i * 37 + r) % 50))
                with lock:
                    granted.extend((g.scope.key, g.first, g.last, g.lease_id) for g in resp.leases)
        except BaseException as exc:  # noqa: BLE001 - reported by the test thread
            with lock:
                failures.append(exc)
            barrier.abort()
        finally:
            client.close()

    server_url = f"http://127.0.0.1:{server.port}"
    try:
        threads = [threading.Thread(target=agent, args=(i,)) for i in range(AGENTS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        server.stop()
    assert not failures, failures[:3]
    assert len(granted) == AGENTS * ROUNDS
    by_scope: dict[str, list[int]] = {}
    for key, first, last, _ in granted:
        by_scope.setdefault(key, []).extend(range(first, last + 1))
    for key, numbers in by_scope.items():
        assert len(numbers) == len(set(numbers)), f"a number of {key} was granted twice"
        assert sorted(numbers) == list(range(1, len(numbers) + 1)), f"a hole in {key}"
    store = Store(db_url)
    try:
        with store.read() as conn:
            rows = conn.execute(
                sa.select(
                    T.leases.c.scope_key, T.leases.c.first_seq, T.leases.c.last_seq, T.leases.c.id
                )
            ).all()
            counters = {
                r.scope_key: r.next_seq
                for r in conn.execute(
                    sa.select(T.scope_counters.c.scope_key, T.scope_counters.c.next_seq)
                )
            }
    finally:
        store.dispose()
    assert sorted(tuple(r) for r in rows) == sorted(granted)
    assert counters == {key: len(numbers) + 1 for key, numbers in by_scope.items()}
