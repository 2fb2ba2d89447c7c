"""A line PC restored from an older copy of its database (backup, VM snapshot) never hands
out a number central knows was used: neither when its later work reached central, nor when
central only heard its high-water mark. Needs the edge's rollback guard (edge-6)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from protocol.serials import parse
from tests.faults.harness import EdgeAgent
from tests.faults.invariants import check, serials_in_labels
from tests.faults.proxy import FaultProxy

pytestmark = pytest.mark.slow


def _seqs(serials: list[str]) -> list[int]:
    return [parse(s).seq for s in serials]


def _assert_never_again(again: list[str], used: list[str]) -> None:
    """The restored agent handed out none of the numbers used after the copy was taken."""
    twice = sorted(set(again) & set(used))
    assert not twice, (
        f"the restored agent handed out {len(twice)} serials a second time "
        f"(two physical labels, one number), e.g. {twice[:3]}"
    )
    assert min(_seqs(again)) > max(_seqs(used)), (
        f"the restored agent issued numbers {min(_seqs(again))}.. although central knew "
        f"numbers up to {max(_seqs(used))} were used"
    )


def _assert_rollback_alert(agent: EdgeAgent) -> None:
    status = json.dumps(agent.status()).lower()
    assert "restored from an older copy" in status, (
        "`status` does not say the agent was restored from an older copy"
    )


def test_restored_after_its_later_work_reached_central(
    proxy: FaultProxy, make_agent, evidence, db_url, tmp_path: Path
):
    agent: EdgeAgent = make_agent()
    first, _ = agent.issue(100)
    agent.sync_until_done()
    backup = agent.copy_home(tmp_path / "backup")  # the agent is stopped: a clean copy
    # Later work crosses into a lease granted after the copy, and reaches central.
    later, _ = agent.issue(450)
    agent.sync_until_done()
    assert len({r["lease_id"] for r in agent.query("SELECT lease_id FROM serials")}) == 2

    agent.restore_home(backup)
    again, _ = agent.issue(100)
    _assert_never_again(again, later)
    _assert_rollback_alert(agent)
    agent.sync_until_done()
    evidence.forgotten = set(later)  # the restored database no longer holds them
    counts = check(db_url, evidence)
    assert counts["registered"] == len(first) + len(later) + len(again)
    assert counts["quarantined"] == 0


def test_restored_after_it_only_reported_its_high_water_mark(
    proxy: FaultProxy, make_agent, evidence, db_url, tmp_path: Path
):
    agent: EdgeAgent = make_agent()
    first, _ = agent.issue(100)
    agent.sync_until_done()
    backup = agent.copy_home(tmp_path / "backup")
    # Central's ingest never receives the later events; the agent's high-water-mark reports
    # (at the end of every `issue`) do get through.
    proxy.fault("refuse", path="/events$")
    seen = len(proxy.log)
    later, _ = agent.issue(150)
    reports = [e for e in proxy.log[seen:] if e.path.endswith("/reconcile")]
    assert any(e.delivered for e in reports), "the agent did not report its high-water mark"
    proxy.clear()

    agent.restore_home(backup)  # the later events are gone for good with the old copy
    again, _ = agent.issue(100)
    _assert_never_again(again, later)
    _assert_rollback_alert(agent)
    agent.sync_until_done()
    evidence.forgotten = evidence.lost = set(later)
    counts = check(db_url, evidence)
    assert counts["registered"] == len(first) + len(again)


def test_restored_while_central_is_down_the_printer_odometer_holds_it(
    proxy: FaultProxy, make_agent, evidence, db_url, tmp_path: Path
):
    """Needs the label odometer check (odometer-6): with central out of reach the rollback
    guard has no marks to compare with, and the printer's odometer is the only witness."""
    from printers.simulator import PrinterSimulator

    agent: EdgeAgent = make_agent()
    with PrinterSimulator(record_dir=tmp_path / "printed", odometer_start=7000) as printer:
        first, _ = agent.issue(5, "WO-HAT-1", "--print", "--printer", printer.url)
        agent.sync_until_done()
        backup = agent.copy_home(tmp_path / "backup")
        proxy.refuse_all()  # central is out of reach from now on
        later, _ = agent.issue(20, "WO-HAT-1", "--print", "--printer", printer.url)
        agent.restore_home(backup)

        refused, out = agent.issue(3, "WO-HAT-1", "--print", "--printer", printer.url, check=False)
        assert out.returncode == 1 and refused == [], out.stdout
        last = out.stderr.strip().splitlines()[-1]
        assert last.startswith("Error: ERR_PRINTER_ODOMETER: "), last
        agent.run(
            "printer", "confirm-odometer", "--printer", printer.url,
            "--reason", "restored from last night's copy; 20 labels found on the line",
            "--by", "fault suite",
        )  # fmt: skip
        again, _ = agent.issue(3, "WO-HAT-1", "--print", "--printer", printer.url)
        _assert_never_again(again, later)
        proxy.refuse_all(False)
        more, _ = agent.issue(2, "WO-HAT-1", "--print", "--printer", printer.url)
        evidence.printed = serials_in_labels(printer.printed)
    assert evidence.printed == first + later + again + more
    agent.sync_until_done()
    evidence.forgotten = evidence.lost = set(later)
    counts = check(db_url, evidence)
    assert counts["registered"] == len(first) + len(again) + len(more)
