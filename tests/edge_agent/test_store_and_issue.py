import os
import sqlite3
import stat

import pytest

from edge_agent import pool
from edge_agent.errors import EdgeError
from edge_agent.issuing import Issuer
from edge_agent.store import WAL_AUTOCHECKPOINT
from protocol.events import Event
from protocol.serials import parse_authentic


def test_store_is_wal_full_sync_and_private(agents):
    agent = agents.enroll()
    conn = agent.store.conn()
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    # Checkpoints are rarer than SQLite's default (one in ~900 serials, not ~90).
    assert conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == WAL_AUTOCHECKPOINT
    assert stat.S_IMODE(os.stat(agent.store.path).st_mode) == 0o600
    agent.store.init_schema()  # again: nothing breaks


def test_enrollment_fills_the_pool_and_caches_config(agents):
    agent = agents.enroll()
    ident = agent.identity()
    assert ident.org == "MA01" and ident.line == "L1" and ident.timezone == "Europe/Paris"
    assert agent.work_order_numbers() == ["WO-HAT-1", "WO-OEM-1"]
    levels = pool.levels(agent.store.conn())
    assert {v["remaining"] for v in levels.values()} == {200}
    assert len(levels) == 2  # one scope per production type


def test_issue_claims_the_next_number_and_records_the_event(agents):
    agent = agents.enroll()
    issuer = Issuer(agent)
    first, second = issuer.issue("WO-HAT-1"), issuer.issue("WO-HAT-1")
    assert second.seq == first.seq + 1
    conn = agent.store.conn()
    lease = conn.execute(
        "SELECT key_hex FROM leases WHERE lease_id = ?", (first.lease_id,)
    ).fetchone()
    parse_authentic(first.serial, bytes.fromhex(lease["key_hex"]))
    rows = conn.execute("SELECT event_id, serial, body, status FROM outbox ORDER BY seq").fetchall()
    assert [(r["event_id"], r["serial"], r["status"]) for r in rows] == [
        (first.event_id, first.serial, "pending"),
        (second.event_id, second.serial, "pending"),
    ]
    event = Event.from_json(rows[0]["body"])
    assert (event.type, event.lease_id, event.work_order) == ("issued", first.lease_id, "WO-HAT-1")
    assert pool.remaining(conn, first.scope) == 198


def test_issuing_is_all_or_nothing(agents):
    """If any part of the issuing transaction fails, the number is not consumed."""
    agent = agents.enroll()
    issuer = Issuer(agent)
    issued = issuer.issue("WO-HAT-1")
    conn = agent.store.conn()
    # Make the outbox insert fail for the next serial with a real constraint: occupy its
    # event id. (Event ids are fresh UUIDv7s, so we hand the issuer the id already used.)
    agent.new_event_id = lambda: issued.event_id  # type: ignore[method-assign]
    before = conn.execute(
        "SELECT next_seq FROM leases WHERE lease_id = ?", (issued.lease_id,)
    ).fetchone()[0]
    with pytest.raises(sqlite3.IntegrityError):
        issuer.issue("WO-HAT-1")
    after = conn.execute(
        "SELECT next_seq FROM leases WHERE lease_id = ?", (issued.lease_id,)
    ).fetchone()[0]
    assert after == before
    assert conn.execute("SELECT COUNT(*) FROM serials").fetchone()[0] == 1
    assert conn.execute("SELECT COUNT(*) FROM outbox").fetchone()[0] == 1


def test_pool_empty_and_unknown_work_order(agents):
    agent = agents.enroll()
    issuer = Issuer(agent)
    with pytest.raises(EdgeError) as exc:
        issuer.issue("WO-NOPE")
    assert exc.value.code == "ERR_UNKNOWN_WORK_ORDER"
    with agent.store.write() as conn:
        conn.execute("UPDATE leases SET next_seq = last_seq + 1")
    with pytest.raises(EdgeError) as exc:
        issuer.issue("WO-OEM-1")
    assert exc.value.code == "ERR_POOL_EMPTY"
