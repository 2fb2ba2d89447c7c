"""A line keeps issuing and printing while central is down, then catches up by itself."""

import json
import signal
import subprocess
import urllib.request

import pytest

from printers.simulator import PrinterSimulator
from tests.procs import cli, edge, env_with, json_lines, wait_for, write_edge_toml

pytestmark = pytest.mark.slow


def verify(central_url, serial):
    with urllib.request.urlopen(
        f"{central_url}/api/public/serial/verify/{serial}", timeout=10
    ) as resp:
        return json.loads(resp.read())["verdict"]


def test_offline_issue_and_print_then_sync(central, tmp_path):
    home = tmp_path / "agent"
    write_edge_toml(home, lease_block=100, pool_target=300, low_water=150)
    edge(home, "enroll", "--central", central.url, "--code", central.enroll_code("L1"))
    with PrinterSimulator() as printer:
        assert central.stop() == 0
        out = edge(
            home,
            "issue",
            "--work-order",
            "WO-HAT-1",
            "--count",
            "200",
            "--print",
            "--printer",
            printer.url,
        )
        serials = [r["serial"] for r in json_lines(out.stdout)]
        assert len(serials) == 200
        assert len(printer.printed) == 200
        down = edge(home, "sync", check=False)
        assert down.returncode == 2
        status = json.loads(edge(home, "status").stdout)
        assert status["central"]["reachable"] is False
        assert status["outbox"]["pending"] == 400
        # the pool ran below its low-water mark offline; the operator sees the warning
        assert any(v["warning"] for v in status["pool"].values())
        central.start()
        assert verify(central.url, serials[0]) == "pending"  # valid MAC, not synced yet
        summary = json.loads(edge(home, "sync").stdout)
        assert summary["results"] == {"accepted": 400}
        assert {verify(central.url, s) for s in serials[::20]} == {"genuine"}


def test_the_service_catches_up_when_central_returns(central, tmp_path):
    home = tmp_path / "agent"
    write_edge_toml(
        home,
        lease_block=100,
        pool_target=300,
        low_water=150,
        sync_interval=0.3,
        backoff_max=2.0,
        operator_port=0,
    )
    edge(home, "enroll", "--central", central.url, "--code", central.enroll_code("L1"))
    service = subprocess.Popen(
        [cli("lineledger-edge"), "--home", str(home), "run"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env_with(),
    )
    try:
        started = json.loads(service.stdout.readline())
        page = started["operator_page"]
        central.stop()
        serials = [
            r["serial"]
            for r in json_lines(
                edge(home, "issue", "--work-order", "WO-OEM-1", "--count", "50").stdout
            )
        ]

        def page_status():
            with urllib.request.urlopen(page + "status.json", timeout=5) as resp:
                return json.loads(resp.read())

        wait_for(lambda: page_status()["central"]["reachable"] is False, timeout=30)
        assert page_status()["outbox"]["pending"] == 50
        central.start()
        wait_for(lambda: page_status()["outbox"]["pending"] == 0, timeout=60)
        assert {verify(central.url, s) for s in serials} == {"genuine"}
    finally:
        service.send_signal(signal.SIGTERM)
        assert service.wait(timeout=30) == 0
        service.stdout.close()
        service.stderr.close()
