"""A work order consumes at most its allowance across all lines; the edge refuses beyond it."""

import datetime as dt
import json
import subprocess
import urllib.request

import pytest
from click.testing import CliRunner

from central import admin
from central.workorders import update_work_order
from edge_agent import outbox
from edge_agent.cli import main
from edge_agent.errors import EdgeError
from edge_agent.issuing import Issuer
from edge_agent.status import build_status
from edge_agent.web import create_operator_app
from tests.conftest import LiveServer, runtime
from tests.procs import cli, env_with, json_lines

NOW = dt.datetime.now(dt.UTC)


def edge(home, *args):
    return CliRunner().invoke(main, ["--home", str(home), *args])


@pytest.fixture
def small_order(tenant):
    """WO-SMALL: 10 bags + 20 % overage = 12 serials on all lines."""
    admin.add_work_order(
        runtime(tenant.app).store, "MA01", "WO-SMALL", "TOTE-01", "OEM", 10, NOW, overage_pct=20
    )
    return "WO-SMALL"


def test_the_edge_refuses_beyond_the_allowance_with_a_clear_message(agents, small_order):
    agent = agents.enroll()
    home = agent.config.home_path
    assert build_status(agent, probe=False)["allowance"][small_order] == {
        "allowed": 12,
        "issued_here": 0,
        "consumed_elsewhere": 0,
        "remaining": 12,
        "complete": False,
    }
    result = edge(home, "issue", "--work-order", small_order, "--count", "12")
    assert result.exit_code == 0, result.output
    pending = outbox.counts(agent)["pending"]
    result = edge(home, "issue", "--work-order", small_order)
    assert result.exit_code == 1
    assert "ERR_WORK_ORDER_COMPLETE" in result.output
    assert "may use 12 serials" in result.output and "0 left" in result.output
    assert "raise its quantity" in result.output
    assert outbox.counts(agent)["pending"] == pending  # nothing written
    status = build_status(agent, probe=False)
    assert status["allowance"][small_order]["remaining"] == 0
    assert status["allowance"][small_order]["complete"] is True
    assert status["allowance"]["WO-OEM-1"]["remaining"] == 200_000


def test_other_lines_count_and_a_supervisor_can_raise_the_quantity(agents, small_order, tenant):
    one, two = agents.enroll("L1"), agents.enroll("L2")
    Issuer(two).issue_many(small_order, 5)
    outbox.flush(two)  # central now holds 5 serials of WO-SMALL from line L2
    one.refresh_config()
    allowance = build_status(one, probe=False)["allowance"][small_order]
    assert (allowance["consumed_elsewhere"], allowance["remaining"]) == (5, 7)
    issuer = Issuer(one)
    with pytest.raises(EdgeError) as exc:
        issuer.issue_many(small_order, 8)  # all or nothing
    assert exc.value.code == "ERR_WORK_ORDER_COMPLETE" and "7 left, not 8 more" in exc.value.message
    assert len(issuer.issue_many(small_order, 7)) == 7
    with pytest.raises(EdgeError):
        issuer.issue(small_order)
    update_work_order(
        runtime(tenant.app).store, "MA01", small_order, "cli:bob", NOW, "more bags", quantity=20
    )
    one.refresh_config()  # 24 allowed now, 12 used
    assert build_status(one, probe=False)["allowance"][small_order]["remaining"] == 12
    issuer.issue(small_order)
    counted = (
        one.store.conn()
        .execute(
            "SELECT issued_local, (SELECT COUNT(*) FROM serials WHERE work_order = ?) AS n "
            "FROM work_orders WHERE number = ?",
            (small_order, small_order),
        )
        .fetchone()
    )
    assert tuple(counted) == (8, 8)


def test_the_operator_page_shows_what_each_work_order_may_still_issue(agents, small_order):
    agent = agents.enroll()
    Issuer(agent).issue_many(small_order, 12)
    server = LiveServer(create_operator_app(lambda: build_status(agent, probe=False), agent))
    try:
        with urllib.request.urlopen(server.url + "/", timeout=10) as resp:
            page = resp.read().decode()
        with urllib.request.urlopen(server.url + "/metrics", timeout=10) as resp:
            metrics = resp.read().decode()
    finally:
        server.close()
    assert "WO-SMALL" in page and "COMPLETE" in page
    assert 'work_order_remaining{work_order="WO-SMALL"} 0.0' in metrics
    assert 'work_order_remaining{work_order="WO-OEM-1"} 200000.0' in metrics


@pytest.mark.slow
def test_the_count_is_exact_under_concurrent_issue_processes(agents, small_order):
    agent = agents.enroll(marks_report=False)
    home = agent.config.home_path
    procs = [
        subprocess.Popen(
            [cli("lineledger-edge"), "--home", str(home), "issue", "--work-order", small_order]
            + ["--count", "5"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env_with(),
        )
        for _ in range(5)
    ]
    serials, refused = [], 0
    for p in procs:
        out, err = p.communicate(timeout=180)
        serials += [r["serial"] for r in json_lines(out)]
        if p.returncode:
            assert "ERR_WORK_ORDER_COMPLETE" in err, err
            assert "Traceback" not in err
            refused += 1
    assert len(serials) == 12 == len(set(serials))  # 25 asked for, exactly the allowance given
    assert refused >= 3
    conn = agent.store.conn()
    assert (
        conn.execute(
            "SELECT issued_local FROM work_orders WHERE number = ?", (small_order,)
        ).fetchone()[0]
        == 12
    )
    assert (
        conn.execute(
            "SELECT COUNT(*) FROM serials WHERE work_order = ?", (small_order,)
        ).fetchone()[0]
        == 12
    )
    assert json.loads(edge(home, "sync").stdout)["results"] == {"accepted": 12}


def test_an_older_home_counts_what_it_issued_when_it_gains_the_counter(agents, small_order):
    agent = agents.enroll()
    Issuer(agent).issue_many(small_order, 3)
    conn = agent.store.conn()
    conn.execute("ALTER TABLE work_orders DROP COLUMN issued_local")  # as release 0.2 made it
    agent.store.init_schema()
    assert (
        conn.execute(
            "SELECT issued_local FROM work_orders WHERE number = ?", (small_order,)
        ).fetchone()[0]
        == 3
    )
