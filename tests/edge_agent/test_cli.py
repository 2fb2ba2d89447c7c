import json

import pytest
from click.testing import CliRunner

from edge_agent.cli import main
from tests.cli_help import check_help, command_paths
from tests.procs import json_lines


@pytest.mark.parametrize("path", sorted(command_paths(main)), ids=" ".join)
def test_every_command_has_help_with_an_example(path):
    check_help(main, path, "lineledger-edge")


def edge(home, *args):
    return CliRunner().invoke(main, ["--home", str(home), *args], catch_exceptions=False)


def test_issue_sync_status_through_the_cli(agents, tmp_path):
    agent = agents.enroll()
    home = agent.config.home_path
    result = edge(
        home,
        "issue",
        "--work-order",
        "WO-OEM-1",
        "--count",
        "5",
        "--print",
        "--printer",
        f"file://{tmp_path / 'labels'}?create=1",
    )
    assert result.exit_code == 0, result.output
    rows = json_lines(result.stdout)
    assert len(rows) == 5 and all({"serial", "event_id"} <= set(r) for r in rows)
    assert len({r["serial"] for r in rows}) == 5
    assert len(list((tmp_path / "labels").iterdir())) == 5
    status = json.loads(edge(home, "status").stdout)
    assert status["outbox"]["pending"] == 10  # 5 issued + 5 printed
    assert status["central"]["reachable"] is True
    assert status["pool"] and all("remaining" in v for v in status["pool"].values())
    summary = json.loads(edge(home, "sync").stdout)
    assert summary["ok"] is True and summary["results"] == {"accepted": 10}
    assert json.loads(edge(home, "status").stdout)["outbox"]["pending"] == 0


def test_clear_errors_with_codes(agents, tmp_path):
    agent = agents.enroll()
    home = agent.config.home_path
    for args, code in [
        (("issue", "--work-order", "NOPE"), "ERR_UNKNOWN_WORK_ORDER"),
        (("issue", "--work-order", "WO-HAT-1", "--print"), "ERR_NO_PRINTER"),
        (
            ("issue", "--work-order", "WO-HAT-1", "--print", "--printer", "ftp://x"),
            "ERR_PRINTER_URL",
        ),
        (("enroll", "--central", "http://127.0.0.1:9", "--code", "X"), "ERR_ALREADY_ENROLLED"),
        (("print-jobs", "release", "77"), "ERR_JOB_UNKNOWN"),
    ]:
        result = edge(home, *args)
        assert result.exit_code == 1, (args, result.output)
        assert f"Error: {code}:" in result.output, result.output
    fresh = tmp_path / "fresh"
    result = edge(fresh, "issue", "--work-order", "WO-HAT-1")
    assert result.exit_code == 1 and "ERR_NOT_ENROLLED" in result.output
    result = edge(fresh, "enroll", "--central", "http://127.0.0.1:9", "--code", "X")
    assert result.exit_code == 1 and "ERR_CENTRAL_UNREACHABLE" in result.output


def test_sync_says_when_central_is_down(agents):
    agent = agents.enroll()
    edge(agent.config.home_path, "issue", "--work-order", "WO-HAT-1")
    with agent.store.write() as conn:
        agent.store.set_meta(conn, "central_url", "http://127.0.0.1:9")
    result = edge(agent.config.home_path, "sync")
    assert result.exit_code == 2
    summary = json.loads(result.stdout)
    assert summary["ok"] is False and summary["error"]["code"] == "ERR_CENTRAL_UNREACHABLE"
    assert summary["outbox"]["pending"] == 1
    status = json.loads(edge(agent.config.home_path, "status").stdout)
    assert status["central"]["reachable"] is False


def test_printer_fault_exit_code_and_queue(agents, tmp_path):
    from printers.simulator import PrinterSimulator

    agent = agents.enroll()
    with PrinterSimulator() as sim:
        sim.set_fault("paper_out")
        result = edge(
            agent.config.home_path,
            "issue",
            "--work-order",
            "WO-HAT-1",
            "--count",
            "2",
            "--print",
            "--printer",
            sim.url,
        )
        assert result.exit_code == 3
        assert len(json_lines(result.stdout)) == 2
        assert "out of labels" in result.stderr
        jobs = json_lines(edge(agent.config.home_path, "print-jobs", "list").stdout)
        assert [j["status"] for j in jobs] == ["queued", "queued"]
        status = json.loads(edge(agent.config.home_path, "status", "--printer", sim.url).stdout)
        assert status["printer"]["state"] == "paper_out"
