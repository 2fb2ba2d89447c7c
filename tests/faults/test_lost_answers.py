"""Central's answers lost, late or delivered twice: requests that took effect are repeated,
and repeating them changes nothing. A lost lease answer wastes and doubles no number."""

from __future__ import annotations

import json
from typing import Any

import pytest
import sqlalchemy as sa

from central import tables as T
from central.db import Store
from printers.simulator import PrinterSimulator
from tests.faults.harness import EdgeAgent
from tests.faults.invariants import check, serials_in_labels
from tests.faults.proxy import FaultProxy
from tests.procs import wait_for

pytestmark = pytest.mark.slow


def _central(db_url: str) -> dict[str, Any]:
    store = Store(db_url)
    try:
        with store.read() as conn:
            return {
                "events": conn.execute(
                    sa.select(sa.func.count()).select_from(T.events)
                ).scalar_one(),
                "quarantined": conn.execute(
                    sa.select(sa.func.count()).select_from(T.quarantine)
                ).scalar_one(),
                "leases": [
                    (r.id, r.agent_id, r.scope_key, r.first_seq, r.last_seq, r.request_id)
                    for r in conn.execute(sa.select(T.leases).order_by(T.leases.c.first_seq))
                ],
                "counters": dict(
                    conn.execute(
                        sa.select(T.scope_counters.c.scope_key, T.scope_counters.c.next_seq)
                    ).all()
                ),
            }
    finally:
        store.dispose()


def _outbox_total(agent: EdgeAgent) -> int:
    return int(agent.query("SELECT COUNT(*) FROM outbox")[0][0])


def _hat_scope(agent: EdgeAgent) -> str:
    rows = agent.query("SELECT scope_key FROM leases WHERE scope_key LIKE '%-HAT-%' LIMIT 1")
    return str(rows[0]["scope_key"])


def _check_leases_agree(agent: EdgeAgent, db_url: str, scope: str) -> list[tuple[int, int]]:
    """The agent holds exactly the leases central granted it, and no number was skipped."""
    c = _central(db_url)
    mine = sorted(
        (r["lease_id"], r["first_seq"], r["last_seq"])
        for r in agent.query("SELECT * FROM leases WHERE scope_key = ?", (scope,))
    )
    granted = sorted((i, first, last) for i, _, s, first, last, _ in c["leases"] if s == scope)
    assert mine == granted, f"agent {mine} != central {granted}"
    ranges = sorted((first, last) for _, first, last in granted)
    assert ranges[0][0] == 1
    assert all(b[0] == a[1] + 1 for a, b in zip(ranges, ranges[1:], strict=False)), ranges
    assert c["counters"][scope] == ranges[-1][1] + 1  # nothing granted beyond them
    return ranges


@pytest.mark.parametrize("fault", ["drop", "delay"])
def test_lost_or_late_events_answers_are_resent_and_counted_once(
    proxy: FaultProxy, make_agent, evidence, db_url, fault
):
    agent = make_agent(http_timeout=2.0)
    agent.issue(300)
    # The first batch is ingested twice without the agent hearing back.
    rule = proxy.fault(fault, path="/events$", times=2, delay=600)
    for _ in range(2):
        failed = agent.sync(check=False)
        assert failed["ok"] is False and failed["error"]["code"] == "ERR_CENTRAL_UNREACHABLE"
    assert rule.applied == 2
    # central took both deliveries (a late answer may still be on its way when the agent quit)
    wait_for(lambda: proxy.forwarded("/events$") == {200: 2}, timeout=120)
    summary = agent.sync_until_done()
    assert summary["results"].get("duplicate", 0) >= 100  # the batch central had already
    c = _central(db_url)
    assert c["events"] == _outbox_total(agent) == 300 and c["quarantined"] == 0
    check(db_url, evidence)


@pytest.mark.parametrize("fault", ["drop", "delay"])
def test_a_lost_lease_answer_gets_the_same_lease_again(
    proxy: FaultProxy, make_agent, evidence, db_url, fault
):
    # The repeated request must not time out under load: a delayed answer costs this long.
    agent = make_agent(http_timeout=5.0)
    scope = _hat_scope(agent)
    on_hand = _check_leases_agree(agent, db_url, scope)
    assert on_hand == [(1, 400)]
    # Issuing 600 needs a top-up; central grants it, the answer is lost or late; the agent
    # issues what it has, then asks again with the same request id and gets the same lease.
    rule = proxy.fault(fault, path="/leases$", times=1, delay=600)
    seen = len(proxy.log)
    serials, out = agent.issue(600)
    assert rule.applied == 1 and "central is unreachable" in out.stderr
    assert len(serials) == len(set(serials)) == 600
    lease_calls = [e for e in proxy.log[seen:] if e.path.endswith("/leases")]
    wait_for(lambda: lease_calls[0].statuses == [200], timeout=120)  # it was granted
    assert not lease_calls[0].delivered
    # The agent learnt the lease it was granted (by asking again with the same request id,
    # or from central's reconcile answer) and no second lease was granted for the request.
    request_ids = {json.loads(e.body)["request_id"] for e in lease_calls}
    assert len(request_ids) == 1, f"the lost request was not repeated as is: {request_ids}"
    ranges = _check_leases_agree(agent, db_url, scope)
    assert ranges == [(1, 400), (401, 600)]  # one grant for the one request: nothing wasted
    assert sorted(int(s.split("-")[4]) for s in serials) == list(range(1, 601))
    agent.sync_until_done()
    check(db_url, evidence)


def test_duplicated_deliveries_change_nothing(
    proxy: FaultProxy, make_agent, evidence, db_url, tmp_path
):
    agent = make_agent()
    scope = _hat_scope(agent)
    # From now on central gets every request twice, both at once, and one answer comes back.
    proxy.fault("duplicate", concurrent=True)
    seen = len(proxy.log)
    with PrinterSimulator(record_dir=tmp_path / "printed") as printer:
        agent.issue(250, "WO-HAT-1", "--print", "--printer", printer.url)
        agent.issue(450)  # needs a top-up: the lease request is delivered twice
        evidence.printed = serials_in_labels(printer.printed)
    agent.sync_until_done()
    assert proxy.count("duplicate", "/leases$") >= 1 and proxy.count("duplicate", "/events$") >= 7
    wait_for(lambda: all(len(e.statuses) == 2 for e in proxy.log[seen:]), timeout=120)
    ranges = _check_leases_agree(agent, db_url, scope)
    assert ranges[0] == (1, 400) and sum(b - a + 1 for a, b in ranges) >= 700
    c = _central(db_url)
    assert c["events"] == _outbox_total(agent) == 950 and c["quarantined"] == 0
    assert len(evidence.printed) == 250
    check(db_url, evidence)


def _reconciled(db_url: str, agent: EdgeAgent) -> bool:
    """Tell whether central confirmed the agent's account of every lease it issued from."""
    used = {
        r["lease_id"]: r["hw"]
        for r in agent.query("SELECT lease_id, MAX(seq) AS hw FROM serials GROUP BY lease_id")
    }
    store = Store(db_url)
    try:
        with store.read() as conn:
            rows = conn.execute(
                sa.select(T.leases.c.id, T.leases.c.reported_hw, T.leases.c.digest_ok).where(
                    T.leases.c.id.in_(sorted(used))
                )
            ).all()
    finally:
        store.dispose()
    return len(rows) == len(used) and all(r.digest_ok and r.reported_hw == used[r.id] for r in rows)


def test_lost_reconcile_answers_are_repeated_harmlessly(
    proxy: FaultProxy, make_agent, evidence, db_url
):
    """Needs the edge's reconcile client (edge-6): marks at the end of `issue`, a full
    reconcile at the service's start and after its catch-up."""
    agent = make_agent()
    rule = proxy.fault("drop", path="/reconcile$", times=2)
    first, _ = agent.issue(120)  # its high-water-mark report is answered into the void
    second, _ = agent.issue(30)
    assert rule.applied == 2, "the agent did not report its high-water marks after `issue`"
    assert proxy.forwarded("/reconcile$")[200] >= 2  # central did record them
    with agent.service():
        wait_for(lambda: agent.pending() == 0, timeout=120)
        wait_for(lambda: _reconciled(db_url, agent), timeout=120)
    c = _central(db_url)
    assert c["events"] == _outbox_total(agent) == 150 and c["quarantined"] == 0
    check(db_url, evidence)
