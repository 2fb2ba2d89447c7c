"""`make demo` runs the real thing; here with fewer serials so the suite stays quick."""

import subprocess
import sys
from pathlib import Path

import pytest

from tests.procs import env_with

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


def test_demo_runs_end_to_end(tmp_path):
    out = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "demo.py"),
            "--workdir",
            str(tmp_path / "demo"),
            "--count",
            "40",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env_with(),
    )
    assert out.returncode == 0, out.stdout + out.stderr
    report = out.stdout
    assert "serials issued          80" in report
    assert "labels printed          80" in report
    assert "verified genuine        80 of 80" in report
    assert "duplicates found        0" in report
    assert "result                  OK" in report
    assert "central registry STOPPED" in report
    labels = list((tmp_path / "demo").glob("labels-*/*.zpl"))
    assert len(labels) == 80
