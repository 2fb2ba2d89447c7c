from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.procs import CentralProcess


@pytest.fixture
def central(db_url: str, tmp_path: Path) -> Iterator[CentralProcess]:
    """A seeded central registry serving from a child process."""
    proc = CentralProcess(tmp_path / "central", db_url)
    proc.seed()
    proc.start()
    yield proc
    if proc.proc is not None:
        proc.stop()
