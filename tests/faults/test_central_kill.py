"""Central SIGKILLed while it ingests: the agents' services push large outboxes, central dies
with a batch in its hands three times and comes back; every fact ends up exactly once."""

from __future__ import annotations

import random
import threading
import time
from typing import Any

import pytest
import sqlalchemy as sa

from central import tables as T
from central.db import Store
from tests.faults.invariants import check, serials_in_spool
from tests.procs import wait_for

pytestmark = pytest.mark.slow

KILLS = 3


def _central_counts(db_url: str) -> tuple[int, int, int]:
    store = Store(db_url)
    try:
        with store.read() as conn:
            return (
                conn.execute(sa.select(sa.func.count()).select_from(T.events)).scalar_one(),
                conn.execute(sa.select(sa.func.count()).select_from(T.registry)).scalar_one(),
                conn.execute(sa.select(sa.func.count()).select_from(T.quarantine)).scalar_one(),
            )
    finally:
        store.dispose()


class Killer:
    """SIGKILL central when the armed batch of events has reached it (an `on_forward` hook:
    called once the request was delivered, so batches refused while central is down do not
    count). `delay` lets the kill land before, in or after the batch's transaction."""

    def __init__(self, central: Any) -> None:
        self.central = central
        self.delivered = 0
        self.target: int | None = None
        self.delay = 0.0
        self.fired = threading.Event()
        self._lock = threading.Lock()

    def arm(self, after: int, delay: float) -> None:
        with self._lock:
            self.target = self.delivered + after
            self.delay = delay
            self.fired.clear()

    def __call__(self) -> None:
        with self._lock:
            self.delivered += 1
            fire = self.target is not None and self.delivered >= self.target
            if fire:
                self.target = None
        if fire:
            time.sleep(self.delay)
            self.central.proc.kill()
            self.fired.set()


def test_central_sigkilled_mid_ingest_loses_and_doubles_nothing(
    central, proxy, make_agent, evidence, db_url, tmp_path
):
    rng = random.Random(20261201)
    spool = tmp_path / "labels"
    agents = [make_agent(sync_batch=20), make_agent(sync_batch=20)]
    # Outboxes large enough for many batches, written while the services are not running:
    # 400 issued events each, and 200 printed events for the first agent's labels.
    agents[0].issue(200, "WO-HAT-1", "--print", "--printer", f"file://{spool}?create=1")
    agents[0].issue(200, "WO-OEM-1")
    agents[1].issue(400, "WO-OEM-1")
    evidence.printed = serials_in_spool(spool)
    total = sum(int(a.query("SELECT COUNT(*) FROM outbox")[0][0]) for a in agents)
    assert total == 1000 and len(evidence.printed) == 200

    # Every batch of events that reaches central is counted; the armed one is its last.
    killer = Killer(central)
    proxy.fault("pass", path="/events$", on_forward=killer)
    killer.arm(after=3, delay=0.0)  # two batches go through first
    with agents[0].service() as s0, agents[1].service() as s1:
        for kill in range(KILLS):
            assert killer.fired.wait(timeout=240), "no batch of events reached central"
            central.kill()  # reap it
            # the batch it died with got no answer
            wait_for(lambda kill=kill: proxy.forwarded("/events$")[None] > kill, timeout=60)
            if kill + 1 < KILLS:
                # armed before central is back, so no speed can let the outboxes drain first:
                # after the restart, the second batch that reaches central is its last
                killer.arm(after=2, delay=rng.choice([0.0, 0.02, 0.1]))
            central.start()
        wait_for(lambda: agents[0].pending() + agents[1].pending() == 0, timeout=300)
        for service in (s0, s1):
            status = service.status()
            assert status["outbox"]["pending"] == 0 and status["outbox"]["dead"] == 0

    events, registered, quarantined = _central_counts(db_url)
    assert (events, registered, quarantined) == (total, 800, 0)
    for agent, n in zip(agents, (600, 400), strict=True):
        rows = agent.query("SELECT status, COUNT(*) AS n FROM outbox GROUP BY status")
        assert {r["status"]: r["n"] for r in rows} == {"done": n}
    counts = check(db_url, evidence)
    assert counts["registered"] == 800 and counts["printed"] == 200
