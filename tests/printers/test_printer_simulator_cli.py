"""Tests for `python -m printers.simulator` as a separate process."""

from __future__ import annotations

import selectors
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from printers.label import LabelTemplate, UnitLabel
from printers.tcp import TcpPrinter
from printers.urls import open_printer
from printers.zpl import render_zpl

GUARD = 30.0  # seconds; only against hangs


def start_simulator(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "printers.simulator", "--host", "127.0.0.1", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def read_url(process: subprocess.Popen[str]) -> str:
    """Return the URL from the simulator's single `listening` line."""
    assert process.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        assert selector.select(GUARD), "the simulator printed nothing"
    line = process.stdout.readline()
    assert line.startswith("listening tcp://127.0.0.1:"), line
    return line.split()[1]


@pytest.mark.slow
def test_the_simulator_process_prints_records_and_exits_cleanly(tmp_path: Path) -> None:
    zpl = render_zpl(UnitLabel("SER-1", "https://v.example/s/1"), LabelTemplate())
    with start_simulator("--record-dir", str(tmp_path)) as process:
        url = read_url(process)
        with open_printer(url) as printer:
            printer.send(zpl, "SER-1")
            assert printer.query_status().ready
        assert (tmp_path / "000001.zpl").read_bytes() == zpl
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=GUARD)
    assert process.returncode == 0, stderr
    assert stdout == "" and stderr == ""


@pytest.mark.slow
def test_the_simulator_process_starts_with_a_fault_and_stops_on_sigint() -> None:
    with start_simulator("--fault", "paper_out") as process:
        url = read_url(process)
        host, port = url.removeprefix("tcp://").rsplit(":", 1)
        with TcpPrinter(host, int(port)) as printer:
            assert printer.query_status().state == "paper_out"
        process.send_signal(signal.SIGINT)
        _stdout, stderr = process.communicate(timeout=GUARD)
    assert process.returncode == 0, stderr


@pytest.mark.slow
def test_help_shows_an_example() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "printers.simulator", "--help"],
        capture_output=True,
        text=True,
        timeout=GUARD,
        check=True,
    )
    assert "example:" in result.stdout and "--record-dir" in result.stdout


@pytest.mark.slow
def test_the_simulator_process_keeps_its_odometer_in_a_state_file(tmp_path: Path) -> None:
    state = tmp_path / "printer.json"
    for expected in (42, 43):
        with start_simulator("--odometer-start", "41", "--state-file", str(state)) as process:
            url = read_url(process)
            with open_printer(url) as printer:
                printer.send(b"^XA^FDx^FS^XZ", "x")
                assert printer.query_odometer().labels == expected  # the file wins on restart
            process.send_signal(signal.SIGTERM)
            _stdout, stderr = process.communicate(timeout=GUARD)
        assert process.returncode == 0, stderr


@pytest.mark.slow
def test_the_simulator_process_answers_like_a_printer_without_the_counter() -> None:
    with start_simulator("--odometer-fault", "unsupported") as process:
        with open_printer(read_url(process)) as printer:
            assert printer.query_odometer().why == "unsupported"
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=GUARD)


@pytest.mark.slow
@pytest.mark.parametrize("args", [["--odometer-start", "-1"], ["--odometer-start", "lots"]])
def test_the_simulator_process_refuses_a_bad_odometer_start(args: list[str]) -> None:
    with start_simulator(*args) as process:
        stdout, stderr = process.communicate(timeout=GUARD)
    assert process.returncode == 2 and stdout == ""
    assert "--odometer-start" in stderr and "Traceback" not in stderr


@pytest.mark.slow
def test_the_simulator_process_refuses_a_broken_state_file(tmp_path: Path) -> None:
    state = tmp_path / "printer.json"
    state.write_text("not json")
    with start_simulator("--state-file", str(state)) as process:
        _stdout, stderr = process.communicate(timeout=GUARD)
    assert process.returncode == 2
    assert "not a simulator state file" in stderr and "Traceback" not in stderr
