"""A line PC whose clock is hours off (libfaketime): the agent refuses to issue or corrects its
time, and central never takes a wrong production date for a genuine one."""

from __future__ import annotations

import datetime as dt
import json
import math
import sqlite3
import urllib.request
import zoneinfo

import pytest
import sqlalchemy as sa

from central import tables as T
from central.db import Store
from protocol.serials import parse
from protocol.timefmt import parse_ts
from tests.faults.harness import Central, EdgeAgent, python_child_time
from tests.faults.invariants import check
from tests.faults.test_disk import _error_code
from tests.procs import json_lines

pytestmark = pytest.mark.slow
PLANT = zoneinfo.ZoneInfo("Europe/Paris")


def hours_off() -> str:
    """Return a faketime offset of at least 5 hours that moves the plant's date forward."""
    now = dt.datetime.now(PLANT)
    midnight = dt.datetime.combine(now.date() + dt.timedelta(days=1), dt.time(0), tzinfo=PLANT)
    return f"+{max(5, math.ceil((midnight - now).total_seconds() / 3600) + 1)}h"


def plant_dates() -> set[dt.date]:
    """Return the plant's real date (both, if the test runs across midnight)."""
    return {dt.datetime.now(PLANT).date()}


def verdict(central: Central, serial: str) -> str:
    url = f"{central.url}/api/public/serial/verify/{serial}?format=json"
    with urllib.request.urlopen(url, timeout=30) as resp:
        return str(json.loads(resp.read())["verdict"])


def quarantine_reasons(db_url: str) -> dict[str, set[str]]:
    store = Store(db_url)
    try:
        with store.read() as conn:
            rows = conn.execute(sa.select(T.quarantine.c.serial, T.quarantine.c.reason)).all()
    finally:
        store.dispose()
    out: dict[str, set[str]] = {}
    for serial, reason in rows:
        out.setdefault(serial, set()).add(reason)
    return out


def _forget_clock_readings(agent: EdgeAgent) -> None:
    """Drop what the agent measured of central's clock (none on a PC that never met it)."""
    db = sqlite3.connect(agent.home / "edge.db")
    try:
        db.execute("DELETE FROM meta WHERE key LIKE 'clock%'")
        db.commit()
    finally:
        db.close()


def test_faketime_shifts_a_child_clock():
    """The clock scenarios test something: a Python child under faketime lives 5 h ahead,
    and its timed waits still end (libfaketime with FAKETIME_DONT_FAKE_MONOTONIC)."""
    ahead = python_child_time("+5h")
    assert abs(ahead - 5 * 3600) < 600, ahead


def test_what_a_wrong_clock_issued_offline_never_verifies_genuine(
    central, proxy, make_agent, evidence, db_url
):
    # While online the line leases today's and tomorrow's numbers (midnight offline).
    agent: EdgeAgent = make_agent(lookahead_hours=30)
    dates = {r["prod_date"] for r in agent.query("SELECT prod_date FROM leases")}
    assert len(dates) == 2, dates
    # Then its clock jumps hours ahead while central is out of reach, with no reading of
    # central's clock on record (as on a PC that never met central since): nothing can
    # correct it, so what it issues carries a wrong time and tomorrow's production date.
    proxy.refuse_all()
    _forget_clock_readings(agent)
    agent.clock = hours_off()
    serials, out = agent.issue(20, check=False)
    if out.returncode != 0:  # an agent may also refuse to issue with an unknown offset
        assert _error_code(out.stderr) == "ERR_CLOCK_SKEW" and serials == []
    assert serials or out.returncode != 0
    proxy.refuse_all(False)
    agent.sync_until_done()
    held = quarantine_reasons(db_url)
    wrong = [s for s in serials if parse(s).scope.prod_date not in plant_dates()]
    for serial in wrong:
        answer = verdict(central, serial)
        assert answer != "genuine", f"{serial} has a wrong production date yet verifies genuine"
        assert "ERR_CLOCK_SKEW" in held.get(serial, set()), (serial, held.get(serial))
    check(db_url, evidence)


def test_an_agent_with_a_clock_hours_off_refuses_or_corrects_it(
    central, proxy, make_agent, evidence, db_url
):
    """Needs the edge's clock offset (edge-6): measured at every contact with central."""
    agent: EdgeAgent = make_agent()
    agent.clock = hours_off()
    serials, out = agent.issue(20, check=False)
    real_now = dt.datetime.now(dt.UTC)
    if out.returncode != 0:
        assert _error_code(out.stderr) == "ERR_CLOCK_SKEW", out.stderr
        assert serials == []
    else:
        for row in json_lines(out.stdout):
            date = parse(row["serial"]).scope.prod_date
            assert date in plant_dates(), (
                f"the agent issued {row['serial']} with its wrong clock ({agent.clock}): "
                f"production date {date}, the plant's is {sorted(plant_dates())}; it must "
                "refuse (ERR_CLOCK_SKEW) or use central's time"
            )
            skew = abs((parse_ts(row["issued_at"]) - real_now).total_seconds())
            assert skew < 600, f"issued_at {row['issued_at']} is {skew:.0f} s off"
    status = json.dumps(agent.status()).lower()
    assert "clock" in status and ("skew" in status or "offset" in status), (
        "`status` does not tell the operator the clock is off"
    )
    agent.sync_until_done()
    for serial in serials:
        assert verdict(central, serial) == "genuine"
    check(db_url, evidence)
