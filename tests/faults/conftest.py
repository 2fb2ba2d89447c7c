"""Fixtures of the fault suite: central in a child process, the fault proxy in front of it,
agents driven through their CLI, the scenario's evidence and small disks."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.faults.harness import Central, EdgeAgent, SmallDisk
from tests.faults.invariants import Evidence
from tests.faults.proxy import FaultProxy

# Agents of the fault suite keep small pools, so scenarios cross lease boundaries quickly.
AGENT_SETTINGS = {
    "lease_block": 200,
    "pool_target": 400,
    "low_water": 200,
    "http_timeout": 5.0,
    "sync_batch": 100,
    "sync_interval": 0.2,
    "backoff_base": 0.2,
    "backoff_max": 1.0,
    "pool_interval": 0.5,
    "operator_port": 0,
}


@pytest.fixture
def central(db_url: str, tmp_path: Path) -> Iterator[Central]:
    """A seeded central registry serving from a child process (verify not rate-limited, so
    a scenario can verify every serial it made)."""
    proc = Central(tmp_path / "central", db_url, LINELEDGER_VERIFY_RATE_LIMIT="100000/hour")
    proc.seed()
    proc.start()
    yield proc
    if proc.proc is not None:
        proc.kill() if proc.proc.poll() is not None else proc.stop()


@pytest.fixture
def proxy(central: Central) -> Iterator[FaultProxy]:
    """The fault proxy in front of central (passing everything until told otherwise)."""
    with FaultProxy(central.url) as p:
        yield p


@pytest.fixture
def evidence() -> Evidence:
    """What the scenario's agents handed out and printed, for the invariant checker."""
    return Evidence()


@pytest.fixture
def make_agent(
    central: Central, proxy: FaultProxy, evidence: Evidence, tmp_path: Path
) -> Callable[..., EdgeAgent]:
    """Return a factory of enrolled agents talking to central through the proxy."""
    count = [0]

    def make(
        line: str | None = None,
        home: Path | None = None,
        clock: str | None = None,
        direct: bool = False,
        **settings: object,
    ) -> EdgeAgent:
        count[0] += 1
        home = home or tmp_path / f"agent-{count[0]}"
        agent = EdgeAgent(home, evidence, clock, logs=tmp_path)
        # Enrollment is the scenario's setup, not its subject: it gets a generous timeout, so
        # a central slowed by a loaded CI machine (the enroll also leases the first pool)
        # does not fail a test about disks or networks before it starts. The scenario then
        # runs with the suite's short timeout.
        agent.configure(**{**AGENT_SETTINGS, **settings, "http_timeout": 120.0})
        agent.enroll(central, central.url if direct else proxy.url, line or f"L{count[0]}")
        agent.configure(**{**AGENT_SETTINGS, **settings})
        return agent

    return make


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Callable[[str], SmallDisk]]:
    """Mount small tmpfs disks for the test (root only: fails, never skips, otherwise);
    they are unmounted afterwards whatever happened."""
    disks: list[SmallDisk] = []

    def mount(size: str) -> SmallDisk:
        disk = SmallDisk(tmp_path / f"disk-{len(disks)}", size)
        disks.append(disk)
        return disk

    yield mount
    for disk in disks:
        disk.close()
