"""Real processes: a restored line PC, a revoked one, and the reconcile after a catch-up."""

import json
import shutil
import signal
import subprocess
import urllib.request

import pytest

from tests.procs import cli, edge, env_with, json_lines, wait_for, write_edge_toml

pytestmark = pytest.mark.slow


def verify(central_url, serial):
    with urllib.request.urlopen(
        f"{central_url}/api/public/serial/verify/{serial}", timeout=10
    ) as resp:
        return json.loads(resp.read())["verdict"]


def enroll(central, home, **settings):
    write_edge_toml(home, lease_block=100, pool_target=300, low_water=150, **settings)
    edge(home, "enroll", "--central", central.url, "--code", central.enroll_code(home.name))


def issue(home, work_order, count):
    out = edge(home, "issue", "--work-order", work_order, "--count", str(count)).stdout
    return json_lines(out)


def test_a_restored_line_pc_never_hands_out_a_number_twice(central, tmp_path):
    home = tmp_path / "L1"
    enroll(central, home)
    first = issue(home, "WO-HAT-1", 5)
    edge(home, "sync")
    backup = tmp_path / "backup"
    shutil.copytree(home, backup)  # no process has the database open: a consistent copy
    synced = issue(home, "WO-HAT-1", 20)
    edge(home, "sync")
    reported = issue(home, "WO-HAT-1", 10)  # labels printed; only the mark reached central
    shutil.rmtree(home)
    shutil.copytree(backup, home)
    result = edge(home, "issue", "--work-order", "WO-HAT-1", "--count", "5")
    assert "RESTORED FROM AN OLDER COPY" in result.stderr
    after = json_lines(result.stdout)
    assert [a["seq"] for a in after] == [36, 37, 38, 39, 40]
    every = [s["serial"] for s in first + synced + reported + after]
    assert len(every) == len(set(every))
    summary = json.loads(edge(home, "sync").stdout)
    assert summary["results"] == {"accepted": 5}
    assert {verify(central.url, a["serial"]) for a in after} == {"genuine"}
    status = json.loads(edge(home, "status").stdout)
    rollback = [a for a in status["alerts"] if a["kind"] == "rollback"]
    assert rollback and rollback[0]["details"]["skipped"] == [6, 35]


def _service(home):
    proc = subprocess.Popen(
        [cli("lineledger-edge"), "--home", str(home), "run"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env_with(),
    )
    assert proc.stdout is not None
    started = json.loads(proc.stdout.readline())
    return proc, started["operator_page"]


def _stop(proc):
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0
    proc.stdout.close()
    proc.stderr.close()


def _page(page, path="status.json"):
    with urllib.request.urlopen(page + path, timeout=10) as resp:
        body = resp.read()
    return json.loads(body) if path.endswith(".json") else body.decode()


def test_a_revoked_service_says_so_keeps_its_events_and_resumes(central, tmp_path):
    home = tmp_path / "L1"
    enroll(central, home, sync_interval=0.3, backoff_base=0.2, backoff_max=1.0, operator_port=0)
    proc, page = _service(home)
    try:
        agent_id = _page(page)["agent"]["agent_id"]
        central.run("agent", "revoke", "--agent", agent_id, "--reason", "PC stolen")
        out = edge(home, "issue", "--work-order", "WO-OEM-1", check=False)
        assert out.returncode == 1 and "ERR_AGENT_REVOKED" in out.stderr
        wait_for(lambda: _page(page)["revoked"] is not None, timeout=60)
        html = _page(page, "")
        assert "REVOKED BY CENTRAL" in html and "PC stolen" in html
        assert "agent_revoked 1.0" in _page(page, "metrics")
        central.run("agent", "reinstate", "--agent", agent_id, "--reason", "found it")
        wait_for(lambda: _page(page)["revoked"] is None, timeout=60)
        assert "agent_revoked 0.0" in _page(page, "metrics")
        assert len(issue(home, "WO-OEM-1", 3)) == 3  # fresh leases: the old ones were closed
        wait_for(lambda: _page(page)["outbox"]["pending"] == 0, timeout=60)
    finally:
        _stop(proc)


def test_the_service_reconciles_after_a_catch_up(central, tmp_path):
    home = tmp_path / "L1"
    enroll(central, home, sync_interval=0.3, backoff_base=0.2, backoff_max=1.0, operator_port=0)
    proc, page = _service(home)
    try:
        wait_for(lambda: (_page(page)["reconcile"]["last_full"] or {}).get("at"), timeout=60)
        central.stop()
        serials = issue(home, "WO-OEM-1", 40)
        wait_for(lambda: _page(page)["central"]["reachable"] is False, timeout=60)
        central.start()
        wait_for(lambda: _page(page)["outbox"]["pending"] == 0, timeout=90)

        def confirmed_all():
            last = _page(page)["reconcile"]["last_full"] or {}
            return last.get("confirmed_events", 0) >= 1 and last.get("resent") == 0

        wait_for(confirmed_all, timeout=90)
        assert {verify(central.url, s["serial"]) for s in serials[::10]} == {"genuine"}
    finally:
        _stop(proc)
