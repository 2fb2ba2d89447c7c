"""A full or read-only disk under an agent that is issuing: a clear `ERR_…` line on stderr,
exit status 1, never a traceback, and nothing handed out unrecorded; once the disk is fixed
the agent syncs and every invariant holds.

The disks are real tmpfs mounts (root only; the test fails, never skips, without it). Linux
refuses to remount a file system read-only while a process has a file open for writing on it
(EBUSY), so the read-only disk appears between two `issue` runs of a line, not under a running
one; the full disk runs out in the middle of one.
"""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa

from central import tables as T
from central.db import Store
from tests.faults.harness import wait_drained
from tests.faults.invariants import check

pytestmark = pytest.mark.slow

ERROR_LINE = re.compile(r"^Error: (ERR_[A-Z_]+): .+$")


def _error_code(stderr: str) -> str:
    """Return the code of the one-line error the CLI ended with (and nothing else wrong)."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert lines, "no error message on stderr"
    match = ERROR_LINE.match(lines[-1])
    assert match, f"the last stderr line is not a coded error: {lines[-1]!r}"
    return match[1]


def _central_events(db_url: str) -> int:
    store = Store(db_url)
    try:
        with store.read() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(T.events)).scalar_one())
    finally:
        store.dispose()


def test_a_disk_that_fills_up_while_issuing(small_disk, make_agent, evidence, db_url):
    disk = small_disk("8m")
    agent = make_agent(home=disk.path / "agent")
    before, _ = agent.issue(20)
    with agent.service():  # the line's service syncs all along, on the same disk
        wait_drained([agent])
        disk.fill(leave=1_000_000)
        serials, out = agent.issue(5000, check=False)
        assert out.returncode == 1, out.stderr
        assert _error_code(out.stderr) == "ERR_DISK_FULL"
        assert "free space there" in out.stderr
        assert 0 < len(serials) < 5000  # it ran out in the middle of the run
        # What was shown is recorded: the serials and their `issued` events are in the outbox.
        issued = agent.query("SELECT serial FROM outbox WHERE type = 'issued'")
        recorded = {r["serial"] for r in issued}
        assert set(serials) <= recorded and len(recorded) == len(before) + len(serials)
        # A sync on the full disk either works or fails the same clear way.
        synced = agent.run("sync", check=False)
        if synced.returncode != 0:
            assert synced.returncode in (1, 2) and _error_code(synced.stderr).startswith("ERR_")

        disk.unfill()  # the service catches up by itself
        wait_drained([agent])
        more, _ = agent.issue(30)
        wait_drained([agent])
    # (the service stopped cleanly, and logged no traceback while the disk was full)
    assert _central_events(db_url) == int(agent.query("SELECT COUNT(*) FROM outbox")[0][0])
    counts = check(db_url, evidence)
    assert counts["registered"] == len(before) + len(serials) + len(more)


def test_a_disk_that_turns_read_only_between_runs(small_disk, make_agent, evidence, db_url):
    disk = small_disk("16m")
    agent = make_agent(home=disk.path / "agent")
    first, _ = agent.issue(50)
    disk.read_only()
    serials, out = agent.issue(20, check=False)
    assert out.returncode == 1 and serials == [], out.stdout + out.stderr
    assert _error_code(out.stderr) == "ERR_STORE_READ_ONLY"
    assert "read-only" in out.stderr
    synced = agent.run("sync", check=False)
    assert synced.returncode == 1 and _error_code(synced.stderr) == "ERR_STORE_READ_ONLY"

    disk.read_only(False)
    agent.sync_until_done()
    more, _ = agent.issue(20)
    agent.sync_until_done()
    counts = check(db_url, evidence)
    assert counts["registered"] == len(first) + len(more) == 70
