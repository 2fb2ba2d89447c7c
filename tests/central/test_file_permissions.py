"""The central home and its SQLite files are private to the service's user, like the keyring."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from tests.procs import CentralProcess
from tests.webservers import request


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def db_files(home: Path) -> dict[str, int]:
    return {p.name: mode(p) for p in home.iterdir() if p.name.startswith("central.db")}


@pytest.mark.slow
def test_init_and_serving_keep_the_home_and_database_private(tmp_path):
    home = tmp_path / "central"
    central = CentralProcess(home, f"sqlite:///{home / 'central.db'}")
    central.run("init")  # creates the home
    assert mode(home) == 0o700
    assert db_files(home) == {"central.db": 0o600}
    assert mode(home / "master_keys.json") == 0o600
    central.seed()  # the home made beforehand by mkdir (0755 under the usual umask)
    central.start()
    try:
        # A write while serving: an enrollment code's use would do, a verification tally too.
        code = central.enroll_code("L1")
        status, _, _ = request(central.port, "/api/public/serial/verify/" + code)
        assert status == 200
        files = db_files(home)
        assert {"central.db", "central.db-wal", "central.db-shm"} <= set(files)
        assert set(files.values()) == {0o600}, files
    finally:
        central.stop()
    assert mode(home) == 0o700
    assert set(db_files(home).values()) == {0o600}


def test_init_tightens_an_existing_home_and_database(tmp_path):
    home = tmp_path / "central"
    home.mkdir(mode=0o755)
    (home / "central.db").touch(mode=0o644)
    (home / "central.db").chmod(0o644)
    home.chmod(0o755)
    CentralProcess(home, f"sqlite:///{home / 'central.db'}").run("init")
    assert mode(home) == 0o700
    assert db_files(home) == {"central.db": 0o600}
