"""A line PC restored from an older copy of its database meets the printer's label odometer.

Real processes: central, the printer simulator on a real socket (its odometer kept in a state
file), and `lineledger-edge` commands. The agent prints, its home is copied while no agent
process runs, it prints more, and the older copy is put back: the printer has printed labels
the restored agent has no record of, whose numbers it would hand out again.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from printers.zpl import extract_fields
from tests.procs import cli, edge, env_with, json_lines, write_edge_toml

pytestmark = pytest.mark.slow
START = 5000  # labels the printer printed before this line PC ever used it


@contextmanager
def simulator(tmp_path: Path) -> Iterator[str]:
    """Run `python -m printers.simulator` with a record directory and a state file."""
    sim = subprocess.Popen(
        [
            sys.executable, "-m", "printers.simulator", "--port", "0",
            "--record-dir", str(tmp_path / "printed"),
            "--state-file", str(tmp_path / "printer.json"),
            "--odometer-start", str(START),
        ],
        stdout=subprocess.PIPE,
        text=True,
        env=env_with(),
    )  # fmt: skip
    try:
        assert sim.stdout is not None
        yield sim.stdout.readline().split()[-1]
    finally:
        sim.terminate()
        sim.wait(timeout=30)
        assert sim.stdout is not None
        sim.stdout.close()


def printed_serials(tmp_path: Path) -> list[str]:
    """Return the serial on every label the printer printed, in print order."""
    return [
        next(f for f in extract_fields(path.read_bytes()) if f.startswith("MA01-"))
        for path in sorted((tmp_path / "printed").glob("*.zpl"))
    ]


def issue(home: Path, printer: str, count: int, check: bool = True) -> Any:
    return edge(
        home, "issue", "--work-order", "WO-HAT-1", "--count", str(count), "--print",
        "--printer", printer, check=check,
    )  # fmt: skip


def restored_line(central: Any, tmp_path: Path, printer: str) -> dict[str, Any]:
    """Print 5, copy the home, print 4, put the copy back; return what was printed when."""
    home = tmp_path / "agent"
    write_edge_toml(home, lease_block=50, pool_target=100, low_water=50, operator_port=0)
    edge(home, "enroll", "--central", central.url, "--code", central.enroll_code("L1"))
    before = [r["serial"] for r in json_lines(issue(home, printer, 5).stdout)]
    # No agent process runs now: the copy is what a backup or VM snapshot would hold,
    # with the write-ahead log if one is there.
    copy = tmp_path / "copy"
    shutil.copytree(home, copy)
    lost = [r["serial"] for r in json_lines(issue(home, printer, 4).stdout)]
    shutil.rmtree(home)
    shutil.copytree(copy, home)
    return {"home": home, "before": before, "lost": lost}


def test_a_restored_line_pc_is_held_until_a_supervisor_confirms(central, tmp_path):
    with simulator(tmp_path) as printer:
        line = restored_line(central, tmp_path, printer)
        home = line["home"]
        assert printed_serials(tmp_path) == line["before"] + line["lost"]

        refused = issue(home, printer, 3, check=False)
        assert refused.returncode == 1 and refused.stdout == ""  # not one number handed out
        assert "ERR_PRINTER_ODOMETER: The printer has printed 4 labels" in refused.stderr
        assert "confirm-odometer --printer " + printer in refused.stderr
        assert "Traceback" not in refused.stderr

        status = json.loads(edge(home, "status", "--printer", printer).stdout)
        assert status["printer"]["state"] == "odometer_mismatch"
        odo = status["printer"]["odometer"]
        assert odo["held"] and odo["unknown"] == 4 and odo["printer_count"] == START + 9
        assert odo["since_baseline"] == {"printed": 9, "sent": 5}

        confirmed = edge(
            home, "printer", "confirm-odometer", "--printer", printer,
            "--reason", "line PC restored from last night's copy; 4 labels found on the line",
            "--by", "supervisor A. Martin",
        )  # fmt: skip
        out = json.loads(confirmed.stdout)
        assert out["was_held"] and out["unknown_labels"] == 4 and out["state"] == "ready"

        after = [r["serial"] for r in json_lines(issue(home, printer, 3).stdout)]
        shown = json.loads(edge(home, "printer", "odometer", "--printer", printer).stdout)
        assert [e["event"] for e in reversed(shown["log"])] == [
            "baseline", "mismatch", "confirmed", "baseline",
        ]  # fmt: skip
        assert shown["state"] == "ok" and shown["printer_count"] == START + 12

    # Every label that came out carries its own serial: none lost, none printed twice.
    printed = printed_serials(tmp_path)
    assert printed == line["before"] + line["lost"] + after
    assert len(set(printed)) == len(printed) == 12
    assert json.loads((tmp_path / "printer.json").read_text()) == {"total_label_count": START + 12}


@pytest.mark.browser
def test_the_operator_page_shows_the_hold(central, tmp_path):
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.fail("headless Chromium is needed (bash .ci/run installs it)", pytrace=False)
    with simulator(tmp_path) as printer:
        home = restored_line(central, tmp_path, printer)["home"]
        issue(home, printer, 1, check=False)  # the first run after the restore is held
        log = (tmp_path / "service.log").open("w")
        service = subprocess.Popen(
            [cli("lineledger-edge"), "--home", str(home), "run", "--printer", printer],
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            env=env_with(),
        )
        try:
            assert service.stdout is not None
            page_url = json.loads(service.stdout.readline())["operator_page"]
            with sync_playwright() as p:
                browser = p.chromium.launch(
                    executable_path=chromium,
                    args=["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync"],
                )
                try:
                    page = browser.new_page(viewport={"width": 1280, "height": 900})
                    page.goto(page_url)
                    alert = page.locator("#odometer-alert")
                    alert.wait_for(state="visible", timeout=10_000)
                    assert "printed 4 label(s) this line has no record of" in alert.inner_text()
                    assert page.inner_text("#printer-state") == "Printing held"
                    state = page.get_attribute("#printer-state", "data-state")
                    assert state == "odometer_mismatch"
                    assert "confirm-odometer" in page.inner_text("#printer-message")
                    assert "hold" in (page.get_attribute("#printer", "class") or "")
                    shot = tmp_path / "operator-odometer-hold.png"
                    page.screenshot(path=str(shot), full_page=True)
                    edge(
                        home, "printer", "confirm-odometer", "--printer", printer,
                        "--reason", "restored copy; labels found",
                    )  # fmt: skip
                    # The page refreshes itself: the alert goes, the odometer is in step.
                    alert.wait_for(state="hidden", timeout=10_000)
                    page.wait_for_function(
                        "document.getElementById('odometer-summary').textContent"
                        ".includes('in step')",
                        timeout=10_000,
                    )
                    assert "hold" not in (page.get_attribute("#printer", "class") or "")
                    page.screenshot(path=str(tmp_path / "operator-odometer-confirmed.png"))
                finally:
                    browser.close()
        finally:
            service.send_signal(signal.SIGTERM)
            assert service.wait(timeout=30) == 0
            assert service.stdout is not None
            service.stdout.close()
            log.close()
    keep = os.environ.get("LINELEDGER_SCREENSHOT_DIR")
    if keep:  # for a person to look at
        for name in ("operator-odometer-hold.png", "operator-odometer-confirmed.png"):
            shutil.copy(tmp_path / name, Path(keep) / name)
