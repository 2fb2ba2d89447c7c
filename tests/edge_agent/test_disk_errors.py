"""A full or read-only disk under the agent: a coded error, never a traceback, nothing lost.

SQLite's `max_page_count` makes the database file "full" at a chosen size, the way a full
disk does (SQLITE_FULL); tests/faults/test_disk.py does it with a real tmpfs as root.
"""

import sqlite3

import pytest
from click.testing import CliRunner

from edge_agent.cli import main
from edge_agent.errors import ERR_DISK_FULL, ERR_STORE_READ_ONLY, EdgeError
from edge_agent.issuing import Issuer
from edge_agent.store import EdgeStore, disk_error
from tests.procs import json_lines


def _cap(conn: sqlite3.Connection, spare_pages: int) -> None:
    """Let the database grow by `spare_pages` pages at most."""
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages + spare_pages}")


def test_a_full_disk_while_issuing_raises_a_coded_error_and_loses_nothing(agents):
    agent = agents.enroll()
    issuer = Issuer(agent)
    conn = agent.store.conn()
    _cap(conn, 2)
    issued = []
    with pytest.raises(EdgeError) as info:
        for _ in range(200):
            issued.append(issuer.issue("WO-HAT-1").serial)
    assert info.value.code == ERR_DISK_FULL and "is full" in info.value.message
    assert not conn.in_transaction
    recorded = {r[0] for r in conn.execute("SELECT serial FROM serials")}
    in_outbox = {r[0] for r in conn.execute("SELECT serial FROM outbox WHERE type = 'issued'")}
    assert recorded == in_outbox == set(issued)
    used = conn.execute("SELECT SUM(next_seq - first_seq) FROM leases").fetchone()[0]
    assert used == len(issued)  # the failed serial's number was not consumed
    conn.execute("PRAGMA max_page_count = 1073741823")  # space again: issuing goes on
    assert issuer.issue("WO-HAT-1").serial not in issued


def test_the_issue_command_says_err_disk_full_and_prints_only_recorded_serials(agents, monkeypatch):
    agent = agents.enroll()
    home = agent.config.home
    agent.close()
    opened = EdgeStore.conn

    def capped(self: EdgeStore) -> sqlite3.Connection:
        conn = opened(self)
        if conn.execute("PRAGMA max_page_count").fetchone()[0] > 10**6:
            _cap(conn, 3)
        return conn

    monkeypatch.setattr(EdgeStore, "conn", capped)
    result = CliRunner().invoke(
        main, ["--home", home, "issue", "--work-order", "WO-HAT-1", "--count", "150"]
    )
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit)  # not an unhandled exception
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("Error: ERR_DISK_FULL: the disk holding"), last
    shown = [r["serial"] for r in json_lines(result.stdout) if "serial" in r]
    monkeypatch.undo()
    db = sqlite3.connect(f"{home}/edge.db")
    try:
        recorded = {r[0] for r in db.execute("SELECT serial FROM outbox WHERE type = 'issued'")}
    finally:
        db.close()
    assert shown and set(shown) == recorded


def test_a_read_only_database_is_err_store_read_only(tmp_path):
    store = EdgeStore(tmp_path)
    store.init_schema()
    store.close()
    ro = sqlite3.connect(f"file:{tmp_path / 'edge.db'}?mode=ro", uri=True)
    try:
        with pytest.raises(sqlite3.OperationalError) as info:
            ro.execute("INSERT INTO meta(key, value) VALUES ('a', 'b')")
    finally:
        ro.close()
    coded = disk_error(info.value, tmp_path / "edge.db")
    assert coded is not None and coded.code == ERR_STORE_READ_ONLY
    assert str(tmp_path / "edge.db") in coded.message
    assert disk_error(sqlite3.IntegrityError("UNIQUE constraint failed")) is None
    assert disk_error(ValueError("x")) is None
