"""Printed labels read back: what the barcodes say is what the registry holds."""

import json
import subprocess
import sys
import urllib.request

import pytest
import sqlalchemy as sa

from central import tables as T
from central.db import Store
from protocol.gs1 import sgtin_fields
from tests.printers.decoding import decode_png
from tests.procs import edge, env_with, json_lines, write_edge_toml

pytestmark = pytest.mark.slow
GTIN = "04006381333931"


def test_labels_through_the_simulator_decode_to_the_registry(central, db_url, tmp_path):
    central.run(
        "product",
        "add",
        "--org",
        "MA01",
        "--sku",
        "GS1-TOTE",
        "--category",
        "BAG",
        "--name",
        "Tote bag GS1",
        "--gtin",
        GTIN,
    )
    central.run(
        "work-order",
        "add",
        "--org",
        "MA01",
        "--number",
        "WO-GS1",
        "--sku",
        "GS1-TOTE",
        "--type",
        "OEM",
        "--quantity",
        "100",
    )
    renders = tmp_path / "rendered"
    sim = subprocess.Popen(
        [sys.executable, "-m", "printers.simulator", "--port", "0", "--render-dir", str(renders)],
        stdout=subprocess.PIPE,
        text=True,
        env=env_with(),
    )
    try:
        printer = sim.stdout.readline().split()[-1]
        home = tmp_path / "agent"
        write_edge_toml(home, lease_block=50, pool_target=100, low_water=50)
        edge(home, "enroll", "--central", central.url, "--code", central.enroll_code("L1"))
        out = edge(
            home, "issue", "--work-order", "WO-GS1", "--count", "6", "--print", "--printer", printer
        )
        serials = [r["serial"] for r in json_lines(out.stdout)]
        edge(home, "sync")
    finally:
        sim.terminate()
        sim.wait(timeout=30)
        sim.stdout.close()
    store = Store(db_url)
    try:
        with store.read() as conn:
            registry = {r.serial: r for r in conn.execute(sa.select(T.registry))}
    finally:
        store.dispose()
    pngs = sorted(renders.glob("*.png"))
    assert len(pngs) == len(serials) == 6
    for png, serial in zip(pngs, serials, strict=True):
        found = {d.symbology: d for d in decode_png(png.read_bytes())}
        code128 = found["]C0"].text
        assert code128 == serial and registry[code128].state == "printed"
        assert found["]d2"].gs1_fields() == sgtin_fields(GTIN, code128)
        link = found["]Q1"].text
        with urllib.request.urlopen(
            link.replace("http://127.0.0.1:8080", central.url) + "?format=json", timeout=10
        ) as resp:
            answer = json.loads(resp.read())
        assert (answer["verdict"], answer["serial"]) == ("genuine", serial)
