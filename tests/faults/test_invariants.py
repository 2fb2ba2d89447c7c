"""The invariant checker finds each kind of violation and says exactly what is wrong."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from central import tables as T
from edge_agent.store import EdgeStore
from tests.central.helpers import event, grant, push, serial_of
from tests.conftest import runtime
from tests.faults import invariants
from tests.faults.invariants import Evidence, Violations, check, serials_in_labels

pytestmark = pytest.mark.slow


def _agent_home(tmp_path: Path, rows: list[tuple[str, str, str, str]]) -> Path:
    """Make an agent home whose outbox holds `rows` (event_id, serial, type, status)."""
    home = tmp_path / "agent"
    store = EdgeStore(home)
    store.init_schema()
    with store.write() as conn:
        for i, (event_id, serial, etype, status) in enumerate(rows):
            conn.execute(
                "INSERT INTO outbox(event_id, serial, type, body, created_at, status) "
                "VALUES (?, ?, ?, '{}', '', ?)",
                (event_id, serial, etype, status),
            )
            if etype == "issued":
                conn.execute(
                    "INSERT INTO serials(serial, scope_key, seq, lease_id, event_id, state) "
                    "VALUES (?, '', ?, '', ?, 'issued')",
                    (serial, i, event_id),
                )
    store.close()
    return home


@pytest.fixture
def world(tenant, client, tmp_path):
    """A lease of 10 with serials 1-5 registered; the agent's outbox says so too."""
    headers = tenant.enroll()
    scope = f"MA01-HAT-BAG-{tenant.today:%Y%m%d}"
    g = grant(client, headers, scope, 10)
    events = [event("issued", serial_of(g, n), g.lease_id, "WO-HAT-1") for n in range(1, 6)]
    assert {r["status"] for r in push(client, headers, events)} == {"accepted"}
    home = _agent_home(tmp_path, [(e.event_id, e.serial, "issued", "done") for e in events])
    db_url = runtime(tenant.app).config.database_url
    return SimpleNamespace(grant=g, events=events, home=home, db_url=db_url, headers=headers)


def test_a_consistent_world_passes(world):
    ev = Evidence()
    ev.hand_out(world.home, [e.serial for e in world.events])
    ev.printed = [e.serial for e in world.events[:3]]
    counts = check(world.db_url, ev)
    assert counts["registered"] == 5 and counts["handed_out"] == 5 and counts["leases"] == 1


def test_each_violation_is_named(world, client):
    g = world.grant
    unsent, foreign = serial_of(g, 6), serial_of(g, 7)
    ev = Evidence()
    ev.hand_out(world.home, [e.serial for e in world.events] + [world.events[0].serial, unsent])
    ev.printed = [foreign]
    with pytest.raises(AssertionError) as info:
        check(world.db_url, ev)
    text = str(info.value)
    twice = "serials handed out twice (two physical labels, one number) (1):\n      "
    assert f"{twice}{world.events[0].serial} x2" in text
    assert f"labels printed that no issue handed out (1):\n      {foreign}" in text
    assert "in neither registry nor quarantine (2)" in text and unsent in text
    assert f"agent: {unsent}" in text  # handed out but missing from the agent's outbox
    assert re.match(r"\d invariant\(s\) violated:", text)


def test_done_events_central_never_got_are_named(world, tmp_path):
    home = _agent_home(tmp_path / "other", [("0190-nope", "MA01-XYZ", "printed", "done")])
    ev = Evidence(homes=[world.home, home])
    with pytest.raises(AssertionError, match=r"central does not know \(1\):\n      agent: printed"):
        check(world.db_url, ev)


def test_an_unbalanced_lease_report_is_named(world, tenant):
    rt = runtime(tenant.app)
    with rt.store.write() as conn:  # closed at 3 although numbers 4 and 5 were registered
        conn.execute(
            T.leases.update()
            .where(T.leases.c.id == world.grant.lease_id)
            .values(status="returned", high_water=3)
        )
    with pytest.raises(AssertionError, match=r"do not balance \(1\):\n      lease .* above mark 2"):
        check(world.db_url, Evidence())


def test_lost_serials_must_lie_at_or_below_centrals_mark(world, client):
    g = world.grant
    ev = Evidence(lost={serial_of(g, 5), serial_of(g, 8)})
    ev.printed = sorted(ev.lost)
    with pytest.raises(AssertionError) as info:
        check(world.db_url, ev)
    text = str(info.value)
    assert f"{serial_of(g, 5)}: declared lost, yet in the registry" in text
    assert f"{serial_of(g, 8)}: lost, and central does not know its number was used" in text


def test_quarantined_serials_count_as_accounted(world, client):
    g = world.grant
    again = event("issued", serial_of(g, 2), g.lease_id, "WO-HAT-1")  # a second label of #2
    assert push(client, world.headers, [again])[0]["status"] == "quarantined"
    ev = Evidence()
    ev.printed = [serial_of(g, 2)]
    check(world.db_url, ev)


def test_overlapping_leases_and_doubled_numbers_are_named():
    lease = SimpleNamespace
    c = {
        "leases": [
            lease(id="a", scope_key="S", first_seq=1, last_seq=10, agent_id="x"),
            lease(id="b", scope_key="S", first_seq=10, last_seq=20, agent_id="y"),
        ],
        "registry": {
            "s1": SimpleNamespace(serial="s1", scope_key="S", seq=3, lease_id="a"),
            "s2": SimpleNamespace(serial="s2", scope_key="S", seq=3, lease_id="a"),
            "s3": SimpleNamespace(serial="s3", scope_key="S", seq=30, lease_id="b"),
        },
        "gaps": [SimpleNamespace(lease_id="a", scope_key="S", first_seq=2, last_seq=4)],
        "reports": [],
    }
    v = Violations()
    invariants._check_leases(v, c)
    text = "\n".join(v.items)
    assert (
        "numbers in two leases (1):\n      S: lease a [1, 10] (agent x) and lease b [10, 20]"
        in text
    )
    assert "registry (scope, seq) not unique (1):\n      S #3 x2" in text
    assert "s3: #30 outside lease [10, 20]" in text
    assert "gap [2, 4] of S holds ['s1', 's2']" in text


def test_labels_must_carry_one_serial():
    good = b"^XA^FDMA01-HAT-BAG-20261201-00001-ABCD-E^FS^FDMA01-HAT-BAG-20261201-00001-ABCD-E^XZ"
    assert serials_in_labels([good]) == ["MA01-HAT-BAG-20261201-00001-ABCD-E"]
    with pytest.raises(AssertionError, match="carries no serial"):
        serials_in_labels([b"^XA^XZ"])
