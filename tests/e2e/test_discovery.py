"""Agents find printers and the central registry with zeroconf, on loopback."""

import signal
import subprocess

import pytest
from zeroconf import Zeroconf

from printers.discovery import PRINTER_TYPE, advertise
from tests.procs import cli, edge, json_lines

pytestmark = pytest.mark.slow


def test_the_agent_finds_a_printer_and_an_advertised_central(tmp_path):
    from tests.procs import CentralProcess

    central = CentralProcess(tmp_path / "central", f"sqlite:///{tmp_path / 'central.db'}")
    central.seed()
    server = subprocess.Popen(
        [cli("lineledger-central"), "serve", "--host", "127.0.0.1", "--port", "0", "--advertise"],
        env=central.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    zc = Zeroconf(interfaces=["127.0.0.1"])
    try:
        port = int(server.stdout.readline().rsplit(":", 1)[1])
        assert "advertised as" in server.stdout.readline()
        info = advertise(
            zc, PRINTER_TYPE, "Zebra ZT411 line 3", 9100, {"ty": "ZT411"}, ["127.0.0.1"]
        )
        out = edge(tmp_path / "agent", "printers", "--timeout", "4", "--interface", "127.0.0.1")
        found = {row["kind"]: row for row in json_lines(out.stdout)}
        assert found["printer"]["url"] == "tcp://127.0.0.1:9100"
        assert found["printer"]["name"].startswith("Zebra ZT411 line 3")
        assert found["central"]["url"] == f"http://127.0.0.1:{port}"
        zc.unregister_service(info)
    finally:
        zc.close()
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=30) == 0
        server.stdout.close()
        server.stderr.close()
