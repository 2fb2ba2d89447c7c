"""A full disk met outside a `store.write()` transaction: one coded line, never a traceback.

The disk fills through SQLite's `max_page_count` on the agent's real database file (the
tests run as root, for whom a chmod-ed read-only home is still writable; the tmpfs cases are
in tests/faults/test_disk.py).
"""

import logging
import sqlite3

import click
import pytest

from edge_agent.cli_support import friendly
from edge_agent.service import Service


def _fill_up(conn: sqlite3.Connection) -> None:
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages}")


def _write_raw(conn: sqlite3.Connection) -> None:
    conn.execute("INSERT INTO meta(key, value) VALUES ('filler', ?)", ("x" * 200_000,))


def test_a_service_job_on_a_full_disk_logs_one_coded_warning(agents, caplog):
    agent = agents.enroll()
    service = Service(agent)
    try:
        conn = agent.store.conn()
        _fill_up(conn)
        job = service._job("prune", lambda: _write_raw(conn))
        with caplog.at_level(logging.DEBUG, logger="lineledger.edge"):
            job()
    finally:
        service.queue.close()
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and warnings[0].exc_info is None  # no traceback in the log
    assert "prune: ERR_DISK_FULL: the disk holding" in warnings[0].getMessage()
    assert service.last_errors["prune"].startswith("ERR_DISK_FULL: ")


def test_a_command_on_a_full_disk_ends_with_one_coded_line(agents):
    agent = agents.enroll()
    conn = agent.store.conn()
    _fill_up(conn)

    @friendly
    def command() -> None:
        _write_raw(conn)

    with pytest.raises(click.ClickException) as caught:
        command()
    assert caught.value.message.startswith("ERR_DISK_FULL: the disk holding")
    assert "\n" not in caught.value.message
