"""The line PC's clock against central's: readings, corrected time, warnings, the limit."""

import datetime as dt
import json
import re
import time

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from central import tables as T
from edge_agent import alerts, clock, outbox
from edge_agent.cli import main
from edge_agent.clock import Clock, ClockReading, ClockSources, Instant, measure, state_of
from edge_agent.errors import EdgeError
from edge_agent.issuing import Issuer
from protocol.timefmt import format_ts, parse_ts
from tests.conftest import runtime


class FakeClock:
    """A PC whose wall clock is `off` seconds from the truth and can be set right later."""

    def __init__(self, off: float, boot_id: str = "boot-1") -> None:
        self.off = off
        self.boot = boot_id
        self.sources = ClockSources(
            wall=lambda: time.time() + self.off,
            since_boot=time.monotonic,
            boot_id=lambda: self.boot,
        )


@pytest.fixture
def pc_clock(monkeypatch):
    """Put this process's line PC clock off (the CLI and agents opened from now on see it)."""

    def put_off(seconds: float) -> FakeClock:
        fake = FakeClock(seconds)
        monkeypatch.setattr(clock, "SYSTEM", fake.sources)
        return fake

    return put_off


def edge(home, *args, stdin=None):
    return CliRunner().invoke(main, ["--home", str(home), *args], input=stdin)


@pytest.mark.parametrize(
    "stamp",
    [
        None,
        "",
        "yesterday",
        "2025-11-09T10:00:00",  # no offset: naive
        "2025-13-01T00:00:00Z",
        "2025-11-09T10:00:00Z" + "0" * 100,
        "\x00" * 20,
        "0001-01-01T00:00:00Z",
        12345,
        ["2025-11-09T10:00:00Z"],
    ],
)
def test_a_bad_time_header_is_no_reading(stamp):
    sent, received = Instant(1000.0, 5.0), Instant(1000.2, 5.2)
    assert measure(stamp, sent, received, "b") is None


def test_a_reading_takes_the_midpoint_and_refuses_a_slow_round_trip():
    stamp = format_ts(dt.datetime.fromtimestamp(1_700_000_900, dt.UTC))
    reading = measure(stamp, Instant(1_700_000_000.0, 10.0), Instant(1_700_000_002.0, 12.0), "b")
    assert reading is not None
    assert reading.offset == pytest.approx(899.0) and reading.rtt == pytest.approx(2.0)
    assert (reading.boot_at, reading.boot_id) == (11.0, "b")
    assert ClockReading.from_json(reading.to_json()) == reading
    slow = measure(stamp, Instant(1_700_000_000.0, 10.0), Instant(1_700_000_060.0, 70.0), "b")
    assert slow is None
    backwards = measure(stamp, Instant(1_700_000_000.0, 10.0), Instant(1_700_000_000.0, 9.0), "b")
    assert backwards is None
    assert ClockReading.from_json('{"offset": "x"}') is None
    assert ClockReading.from_json("not json") is None


def test_corrected_time_follows_the_boot_clock_not_a_stepped_wall_clock():
    wall, boot = [5_000.0], [100.0]
    sources = ClockSources(wall=lambda: wall[0], since_boot=lambda: boot[0], boot_id=lambda: "b1")
    assert Clock(None, sources).offset() is None
    assert Clock(None, sources).timestamp() == 5_000.0  # nothing measured: the wall clock
    reading = ClockReading(
        offset=7200.0, rtt=0.1, central_at=12_200.0, wall_at=5_000.0, boot_at=100.0, boot_id="b1"
    )
    c = Clock(reading, sources)
    wall[0], boot[0] = 5_010.0, 110.0
    assert c.timestamp() == 12_210.0 and c.offset() == pytest.approx(7200.0)
    wall[0] = 12_215.0  # someone sets the wall clock right (a step): the offset follows at once
    boot[0] = 115.0
    assert c.timestamp() == 12_215.0 and c.offset() == pytest.approx(0.0)
    other_boot = ClockSources(wall=lambda: 20_000.0, since_boot=lambda: 3.0, boot_id=lambda: "b2")
    after_reboot = Clock(reading, other_boot)  # the boot clock restarted: wall + last offset
    assert after_reboot.timestamp() == 27_200.0
    assert state_of(None, 120, 3600) == "unknown"
    assert [state_of(x, 120, 3600) for x in (0, -119, 121, -3600, 3601)] == [
        "ok",
        "ok",
        "warn",
        "warn",
        "refuse",
    ]


def _issued_events(agent):
    rows = agent.store.conn().execute("SELECT body FROM outbox WHERE type = 'issued'").fetchall()
    return [json.loads(r["body"]) for r in rows]


def test_a_clock_hours_off_refuses_to_issue_until_a_supervisor_overrides(agents, pc_clock, tenant):
    pc_clock(-2 * 3600)  # the PC's clock is two hours behind
    agent = agents.enroll()
    home = agent.config.home_path
    status = json.loads(edge(home, "status").stdout)
    assert status["clock"]["state"] == "refuse"
    assert status["clock"]["offset_s"] == pytest.approx(7200, abs=15)
    assert re.search(r"\b[12] h \d+ min behind central", status["clock"]["message"])
    assert [a["kind"] for a in status["alerts"]] == ["clock_skew"]
    result = edge(home, "issue", "--work-order", "WO-HAT-1")
    assert result.exit_code == 1 and "ERR_CLOCK_SKEW" in result.output
    assert "clock override" in result.output
    assert outbox.counts(agent)["pending"] == 0  # nothing was written
    assert edge(home, "clock", "clear-override").exit_code == 0
    result = edge(home, "clock", "override", "--reason", "")
    assert result.exit_code == 1 and "ERR_REASON" in result.output
    result = edge(home, "clock", "override", "--reason", "BIOS battery dead; NTP ticket 42")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["override"]["reason"] == "BIOS battery dead; NTP ticket 42"
    before = time.time()
    result = edge(home, "issue", "--work-order", "WO-HAT-1", "--count", "2")
    after = time.time()
    assert result.exit_code == 0, result.output
    # The serials carry central's time, not the PC's: production date and event time are right.
    for event in _issued_events(agent):
        occurred = parse_ts(event["occurred_at"]).timestamp()
        assert before - 10 <= occurred <= after + 10
    today = tenant.today.strftime("%Y%m%d")
    assert all(f"-{today}-" in e["serial"] for e in _issued_events(agent))
    assert json.loads(edge(home, "sync").stdout)["results"] == {"accepted": 2}
    with runtime(tenant.app).store.read() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(T.quarantine)).scalar() == 0
    kinds = {a["kind"] for a in json.loads(edge(home, "status").stdout)["alerts"]}
    assert kinds == {"clock_skew", "clock_override"}
    assert json.loads(edge(home, "clock", "clear-override").stdout)["cleared"] is True
    result = edge(home, "issue", "--work-order", "WO-HAT-1")
    assert result.exit_code == 1 and "ERR_CLOCK_SKEW" in result.output


def test_a_clock_minutes_off_warns_and_issues_with_corrected_time(agents, pc_clock):
    fake = pc_clock(5 * 60)  # five minutes ahead
    agent = agents.enroll()
    home = agent.config.home_path
    status = json.loads(edge(home, "status").stdout)
    assert status["clock"]["state"] == "warn" and "ahead of central" in status["clock"]["message"]
    assert [a["kind"] for a in status["alerts"]] == ["clock_skew"]
    result = edge(home, "clock", "override", "--reason", "not needed")
    assert result.exit_code == 1 and "ERR_CLOCK_OK" in result.output
    assert edge(home, "issue", "--work-order", "WO-OEM-1").exit_code == 0
    assert json.loads(edge(home, "sync").stdout)["results"] == {"accepted": 1}
    fake.off = 0  # NTP sets the clock right; the next contact clears the alert
    status = json.loads(edge(home, "status").stdout)
    assert status["clock"]["state"] == "ok" and status["alerts"] == []
    cleared = alerts.list_alerts(agent.store.conn(), everything=True)
    assert cleared[0]["cleared_reason"] == "the clock is within tolerance"


def test_setting_the_clock_right_lifts_the_limit_without_a_contact(agents, pc_clock):
    fake = pc_clock(-3 * 3600)
    agent = agents.enroll()
    home = agent.config.home_path
    assert json.loads(edge(home, "clock", "status").stdout)["state"] == "refuse"
    with agent.store.write() as conn:  # central is gone from now on
        agent.store.set_meta(conn, "central_url", "http://127.0.0.1:9")
    result = edge(home, "issue", "--work-order", "WO-HAT-1")
    assert result.exit_code == 1 and "ERR_CLOCK_SKEW" in result.output
    fake.off = 0  # the clock is set right while offline: the boot clock shows the step
    status = json.loads(edge(home, "clock", "status").stdout)
    assert status["state"] == "ok" and status["central"]["reachable"] is False
    result = edge(home, "issue", "--work-order", "WO-HAT-1")
    assert result.exit_code == 0, result.output


def test_a_reading_is_kept_across_processes_and_reboots(agents, pc_clock):
    fake = pc_clock(-2 * 3600)
    agent = agents.enroll()
    assert edge(agent.config.home_path, "status").exit_code == 0
    reopened = agents.open(agent.config.home_path)  # a new process: the reading is in meta
    assert reopened.clock.offset() == pytest.approx(7200, abs=15)
    with pytest.raises(EdgeError) as exc:
        Issuer(reopened).issue("WO-HAT-1")
    assert exc.value.code == "ERR_CLOCK_SKEW"
    fake.boot = "boot-2"  # after a reboot the boot clock restarted: wall clock + last offset
    rebooted = agents.open(agent.config.home_path)
    assert rebooted.clock.offset() == pytest.approx(7200, abs=15)
    assert rebooted.now().timestamp() == pytest.approx(time.time(), abs=15)


def test_the_override_ends_when_the_clock_is_fixed(agents, pc_clock):
    fake = pc_clock(-2 * 3600)
    agent = agents.enroll()
    home = agent.config.home_path
    assert edge(home, "status").exit_code == 0
    assert edge(home, "clock", "override", "--reason", "waiting for IT").exit_code == 0
    fake.off = 0
    assert edge(home, "status").exit_code == 0  # a reading within the limit
    assert agents.open(home).clock_override() is None
    assert alerts.open_counts(agent.store.conn()) == {}


def test_readings_are_written_only_when_they_change(agents):
    agent = agents.enroll()
    base = agent.clock.reading
    assert base is not None  # enrolling measured it

    def reading(offset, later=0.0):
        return ClockReading(
            offset, 0.01, base.central_at + later, base.wall_at + later, None, base.boot_id
        )

    def saved():
        return ClockReading.from_json(agent.store.get_meta("clock"))

    agent.on_clock_reading(reading(base.offset + 0.5, later=1))
    assert saved() == base  # the same offset within a minute: no write
    assert agent.clock.reading == reading(base.offset + 0.5, later=1)  # but it is used
    agent.on_clock_reading(reading(base.offset + 2.0, later=2))
    assert saved() == reading(base.offset + 2.0, later=2)  # it moved: written
    agent.on_clock_reading(reading(base.offset + 2.0, later=70))
    assert saved() == reading(base.offset + 2.0, later=70)  # a minute later: written again
    agent.on_clock_reading(reading(base.offset + 200, later=71))  # now beyond the tolerance
    assert saved().offset == base.offset + 200
    assert alerts.open_counts(agent.store.conn()) == {"clock_skew": 1}


def test_central_records_the_offset_the_agent_reports(agents, pc_clock, tenant):
    pc_clock(-300)
    agent = agents.enroll()
    assert edge(agent.config.home_path, "reconcile", "--marks").exit_code == 0
    with runtime(tenant.app).store.read() as conn:
        offset = conn.execute(sa.select(T.agents.c.clock_offset_ms)).scalar()
    assert offset == pytest.approx(300_000, abs=15_000)
