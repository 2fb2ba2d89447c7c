"""Lease grants of one process share write transactions (group commit, issue #8).

The first request runs a batch; requests arriving meanwhile queue and are granted together
in the next batch, each in a savepoint. These tests hold the first batch open until the
others have queued (a condition, not a sleep), so the second batch's content is known.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import threading
import time
from typing import Any

import pytest
import sqlalchemy as sa

from central import leases as L
from central import tables as T
from central.admin import create_enroll_code, enroll_agent
from central.errors import CentralError
from protocol.ids import uuid7
from protocol.messages import LeaseRequest
from protocol.serials import Scope
from tests.conftest import runtime


def _agent(tenant: Any, line: str) -> L.AgentRef:
    rt = runtime(tenant.app)
    now = dt.datetime.now(dt.UTC)
    code = create_enroll_code(rt.store, tenant.org, line, 1, now)
    resp = enroll_agent(rt.store, code.code, "host", "test", now)
    return L.AgentRef(resp.agent_id, 1, tenant.org, line, tenant.timezone)


def _rid() -> str:
    return uuid7(time.time_ns() // 1_000_000, os.urandom(10))


def _run_batched(
    tenant: Any, monkeypatch: pytest.MonkeyPatch, requests: list[tuple[L.AgentRef, LeaseRequest]]
) -> tuple[list[Any], list[int]]:
    """Grant requests[0] in a first batch held open until all others queued; return the
    outcomes (grant or exception) in order and the size of each batch run."""
    rt = runtime(tenant.app)
    release = threading.Event()
    sizes: list[int] = []
    real = L._grant_batch

    def held(store: Any, batch: list[Any]) -> None:
        sizes.append(len(batch))
        if len(sizes) == 1:
            release.wait(60)
        real(store, batch)

    monkeypatch.setattr(L, "_grant_batch", held)
    outcomes: list[Any] = [None] * len(requests)

    def ask(i: int) -> None:
        agent, req = requests[i]
        try:
            resp = L.grant_lease(
                rt.store, rt.keyring, rt.config, agent, req, dt.datetime.now(dt.UTC)
            )
            outcomes[i] = resp.leases[0]
        except (CentralError, sa.exc.OperationalError) as exc:
            outcomes[i] = exc

    first = threading.Thread(target=ask, args=(0,))
    first.start()
    while not sizes:  # the first request runs its batch (and waits in it)
        time.sleep(0.001)
    others = [threading.Thread(target=ask, args=(i,)) for i in range(1, len(requests))]
    for t in others:
        t.start()
    batcher = L._GrantBatcher.of(rt.store)
    while len(batcher._queue) < len(requests) - 1:  # every other request has queued
        time.sleep(0.001)
    release.set()
    for t in [first, *others]:
        t.join(60)
    return outcomes, sizes


def test_queued_grants_share_one_transaction_and_never_overlap(tenant, monkeypatch):
    scope = Scope(tenant.org, "HAT", "BAG", tenant.today)
    agents = [_agent(tenant, f"L{i}") for i in range(12)]
    requests = [(a, LeaseRequest(_rid(), scope, 100 + i)) for i, a in enumerate(agents)]
    # The same agent repeating a request id inside the batch gets the same lease.
    requests.append((agents[3], requests[3][1]))
    outcomes, sizes = _run_batched(tenant, monkeypatch, requests)
    assert sizes == [1, len(requests) - 1]
    grants = [o for o in outcomes if isinstance(o, L.LeaseGrant)]
    assert len(grants) == len(requests), outcomes
    assert grants[3].lease_id == grants[-1].lease_id
    ranges = sorted({(g.first, g.last) for g in grants})
    assert len(ranges) == len(agents)
    for (_, last), (first, _) in zip(ranges, ranges[1:], strict=False):
        assert first == last + 1  # no overlap, no hole
    assert sum(last - first + 1 for first, last in ranges) == sum(100 + i for i in range(12))
    with runtime(tenant.app).store.read() as conn:
        rows = conn.execute(sa.select(T.leases.c.id, T.leases.c.first_seq)).all()
    assert {r.id for r in rows} == {g.lease_id for g in grants}


def test_a_refused_grant_rolls_back_alone(tenant, monkeypatch):
    rt = runtime(tenant.app)
    scope = Scope(tenant.org, "HAT", "BAG", tenant.today)
    agents = [_agent(tenant, f"L{i}") for i in range(4)]
    cap = rt.config.lease_pool_target + rt.config.lease_block
    # Agent 1 fills its cap first (in its own request), then asks again inside the batch.
    filled = L.grant_lease(
        rt.store,
        rt.keyring,
        rt.config,
        agents[1],
        LeaseRequest(_rid(), scope, min(cap, rt.config.lease_max_size)),
        dt.datetime.now(dt.UTC),
    ).leases[0]
    while filled.last - filled.first + 1 < cap:
        more = L.grant_lease(
            rt.store,
            rt.keyring,
            rt.config,
            agents[1],
            LeaseRequest(_rid(), scope, cap),
            dt.datetime.now(dt.UTC),
        ).leases[0]
        filled = L.LeaseGrant(
            filled.lease_id,
            scope,
            filled.first,
            more.last,
            filled.key,
            filled.key_version,
            filled.expires_at,
        )
    requests = [
        (agents[0], LeaseRequest(_rid(), scope, 10)),
        (agents[2], LeaseRequest(_rid(), scope, 20)),
        (agents[1], LeaseRequest(_rid(), scope, 30)),  # over its cap: refused
        (agents[3], LeaseRequest(_rid(), scope, 40)),
    ]
    outcomes, sizes = _run_batched(tenant, monkeypatch, requests)
    assert sizes == [1, 3]
    assert isinstance(outcomes[2], CentralError) and outcomes[2].code == "ERR_LEASE_CAP"
    sizes_granted = [o.last - o.first + 1 for i, o in enumerate(outcomes) if i != 2]
    assert sizes_granted == [10, 20, 40]
    # The refused request consumed nothing: the counter is exactly past the grants.
    with rt.store.read() as conn:
        next_seq = conn.execute(
            sa.select(T.scope_counters.c.next_seq).where(T.scope_counters.c.scope_key == scope.key)
        ).scalar_one()
    assert next_seq == max(o.last for i, o in enumerate(outcomes) if i != 2) + 1


def test_a_failed_commit_fails_every_grant_of_the_batch_and_a_retry_succeeds(tenant, monkeypatch):
    rt = runtime(tenant.app)
    scope = Scope(tenant.org, "HAT", "BAG", tenant.today)
    agents = [_agent(tenant, f"L{i}") for i in range(3)]
    requests = [(a, LeaseRequest(_rid(), scope, 50)) for a in agents]
    real_write = type(rt.store).write
    writes: list[int] = []

    @contextlib.contextmanager
    def failing_commit(store: Any) -> Any:
        writes.append(1)
        with real_write(store) as conn:
            yield conn
            if len(writes) == 2:  # the second batch: the commit fails (disk full, ...)
                raise sa.exc.OperationalError("COMMIT", {}, Exception("disk I/O error"))

    monkeypatch.setattr(type(rt.store), "write", failing_commit)
    outcomes, sizes = _run_batched(tenant, monkeypatch, requests)
    assert sizes == [1, 2]
    assert isinstance(outcomes[0], L.LeaseGrant)
    # The second batch rolled back: neither of its requests got a grant ...
    assert all(isinstance(o, sa.exc.OperationalError) for o in outcomes[1:]), outcomes
    with rt.store.read() as conn:
        granted = conn.execute(sa.select(T.leases.c.request_id)).scalars().all()
    assert granted == [requests[0][1].request_id]
    # ... and asking again with the same request ids grants them.
    monkeypatch.setattr(type(rt.store), "write", real_write)
    for agent, req in requests[1:]:
        L.grant_lease(rt.store, rt.keyring, rt.config, agent, req, dt.datetime.now(dt.UTC))
    with rt.store.read() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(T.leases)).scalar() == 3
