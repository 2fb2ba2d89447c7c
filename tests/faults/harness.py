"""Real processes for the fault suite: a central that can be SIGKILLed, agents (CLI and
service, optionally under libfaketime), and a small tmpfs for an agent's home."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from central import admin, init_registry
from central.config import load_config
from central.db import Store
from tests.faults.invariants import Evidence
from tests.procs import CentralProcess, cli, env_with, json_lines, wait_for, write_edge_toml

# libfaketime must leave the monotonic clocks alone: Python computes the deadlines of its
# timed waits (Event.wait, Lock.acquire(timeout=...)) from CLOCK_MONOTONIC and hands them to
# the C library; with a faked monotonic clock they lie hours away and a 0.5 s wait never ends
# (tried with faketime 0.9.10: `threading.Event().wait(0.5)` hangs). With this variable the
# boot clock (CLOCK_BOOTTIME) stays real too, as on a PC whose wall clock was set wrong.
# FAKETIME_NO_CACHE is not needed: the offset comes from the command line, not a file.
FAKETIME_ENV = {"FAKETIME_DONT_FAKE_MONOTONIC": "1"}
TRACEBACK = "Traceback (most recent call last)"


class Central(CentralProcess):
    """A central process that the fault tests kill with SIGKILL and start again.

    The registry is seeded in this process (the same tenant, product and work orders as
    `CentralProcess.seed`): five CLI start-ups per test would cost more than the scenario.
    """

    def __init__(self, home: Path, db_url: str, **env: str) -> None:
        super().__init__(home, db_url, **env)
        self.db_url = db_url

    def _store(self) -> Store:
        return Store(load_config({"home": str(self.home), "db_url": self.db_url}).database_url)

    def seed(self, org: str = "MA01", timezone: str = "Europe/Paris") -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        config = load_config({"home": str(self.home), "db_url": self.db_url})
        now = dt.datetime.now(dt.UTC)
        init_registry(config, now)
        store = self._store()
        try:
            admin.add_tenant(store, org, "Maison Atelier", timezone, now)
            admin.add_product(store, org, "TOTE-01", "BAG", "Tote bag", None, now)
            for number, ptype in (("WO-HAT-1", "HAT"), ("WO-OEM-1", "OEM")):
                admin.add_work_order(store, org, number, "TOTE-01", ptype, 100_000, now)
        finally:
            store.dispose()

    def enroll_code(self, line: str, org: str = "MA01") -> str:
        store = self._store()
        try:
            return admin.create_enroll_code(store, org, line, 1, dt.datetime.now(dt.UTC)).code
        finally:
            store.dispose()

    def kill(self) -> None:
        """SIGKILL the server (if it runs) and reap it."""
        proc = self.proc
        if proc is None:
            return
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        assert proc.stdout is not None
        proc.stdout.close()
        self.proc = None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


def faketime_prefix(shift: str) -> list[str]:
    """Return the command prefix that runs a program with its clock shifted by `shift`."""
    found = shutil.which("faketime")
    if found is None:
        raise AssertionError(
            "faketime is not installed: run `bash scripts/ensure-services` (Debian package "
            "faketime), which the fault suite needs for its clock scenarios"
        )
    return [found, "-f", shift]


class EdgeAgent:
    """One agent home, driven through the real `lineledger-edge` CLI."""

    def __init__(
        self, home: Path, evidence: Evidence, clock: str | None = None, logs: Path | None = None
    ) -> None:
        self.home = home
        self.logs = logs or home.parent  # never on the agent's own (maybe full) disk
        self.evidence = evidence
        self.clock = clock  # a faketime offset such as "+5h", or None for the real clock
        self.enroll_failures: list[str] = []  # setup retries (see enroll)
        if home not in evidence.homes:
            evidence.homes.append(home)

    def command(self, *args: str) -> list[str]:
        base = [cli("lineledger-edge"), "--home", str(self.home), *args]
        return faketime_prefix(self.clock) + base if self.clock else base

    def env(self) -> dict[str, str]:
        return env_with(**FAKETIME_ENV) if self.clock else env_with()

    def configure(self, **settings: Any) -> EdgeAgent:
        write_edge_toml(self.home, **settings)
        return self

    def run(
        self, *args: str, check: bool = True, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        """Run one CLI command to completion; never a traceback on stderr."""
        out = subprocess.run(
            self.command(*args), text=True, capture_output=True, timeout=timeout, env=self.env()
        )
        assert TRACEBACK not in out.stderr, f"{args}: a traceback\n{out.stderr}"
        if check:
            assert out.returncode == 0, f"{args}: rc={out.returncode}\n{out.stdout}\n{out.stderr}"
        return out

    def enroll(self, central: CentralProcess, url: str, line: str) -> dict[str, Any]:
        # Enrollment is every scenario's setup. In about one full suite run in two on a busy
        # CI machine, one enroll of the disk scenarios has failed with ERR_CENTRAL_UNREACHABLE
        # ("ConnectionError") while central was alive, with a timeout of 120 s: not explained
        # yet (see docs/DECISIONS.md). The setup tries again with a fresh code (a failed
        # enroll leaves no home behind); each failure is kept in `enroll_failures`.
        for _attempt in range(3):
            code = central.enroll_code(line)
            out = self.run("enroll", "--central", url, "--code", code, check=False)
            unreachable = "ERR_CENTRAL_UNREACHABLE" in out.stderr
            if out.returncode == 0 or not unreachable or (self.home / "edge.db").exists():
                break
            self.enroll_failures.append(out.stderr)
        if out.returncode != 0:  # say what central was doing: a failure here is rare and odd
            alive = central.proc is not None and central.proc.poll() is None
            log = central.log.read_text(errors="replace")[-4000:] if central.log.exists() else ""
            raise AssertionError(
                f"enroll through {url} failed: rc={out.returncode}\n{out.stderr}\n"
                f"central running: {alive} (port {central.port})\ncentral log tail:\n{log}"
            )
        info: dict[str, Any] = json.loads(out.stdout)
        return info

    def issue(
        self, count: int, work_order: str = "WO-HAT-1", *extra: str, check: bool = True
    ) -> tuple[list[str], subprocess.CompletedProcess[str]]:
        """Issue serials; every one shown on stdout goes into the evidence."""
        out = self.run(
            "issue", "--work-order", work_order, "--count", str(count), *extra, check=check
        )
        serials = [r["serial"] for r in json_lines(out.stdout)]
        self.evidence.hand_out(self.home, serials)
        return serials, out

    def sync(self, check: bool = True) -> dict[str, Any]:
        out = self.run("sync", check=check)
        summary: dict[str, Any] = json.loads(out.stdout)
        return summary

    def sync_until_done(self, attempts: int = 20) -> dict[str, Any]:
        """Sync until the outbox has nothing pending (a fault may fail some attempts)."""
        summary: dict[str, Any] = {}
        for _ in range(attempts):
            summary = self.sync(check=False)
            if summary.get("ok") and summary["outbox"]["pending"] == 0:
                return summary
        raise AssertionError(f"the outbox did not drain: {summary}")

    def status(self) -> dict[str, Any]:
        status: dict[str, Any] = json.loads(self.run("status").stdout)
        return status

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        """Read the agent's database (read-only)."""
        db = sqlite3.connect(f"file:{self.home / 'edge.db'}?mode=ro", uri=True, timeout=30)
        db.row_factory = sqlite3.Row
        try:
            return list(db.execute(sql, params))
        finally:
            db.close()

    def pending(self) -> int:
        return int(self.query("SELECT COUNT(*) FROM outbox WHERE status = 'pending'")[0][0])

    @contextmanager
    def service(self, *args: str) -> Iterator[Service]:
        """Run `lineledger-edge run` for the duration of the block; stop it with SIGTERM.

        Its log goes to a file beside the home (a pipe nobody reads would fill up and block
        the service); a traceback in it fails the test.
        """
        log_path = self.logs / f"{self.home.name}-service.log"
        with log_path.open("a") as log:
            proc = subprocess.Popen(
                self.command("run", *args),
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                env=self.env(),
            )
        try:
            assert proc.stdout is not None
            first = proc.stdout.readline()
            if not first:
                proc.wait(timeout=60)
                raise AssertionError(f"the service did not start:\n{log_path.read_text()}")
            yield Service(proc, json.loads(first))
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            try:
                code = proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                code = proc.wait(timeout=30)
            if proc.stdout is not None:
                proc.stdout.close()
        err = log_path.read_text()
        # Reached only when the block succeeded: its own failure is never hidden by these.
        assert TRACEBACK not in err, f"the service logged a traceback:\n{err}"
        assert code == 0, f"the service exited with {code}:\n{err[-4000:]}"

    def copy_home(self, to: Path) -> Path:
        """Copy the (stopped) agent's home, database with its -wal and -shm files included."""
        shutil.copytree(self.home, to)
        return to

    def restore_home(self, backup: Path) -> None:
        """Put an older copy of the home back, as a restored backup or VM snapshot would."""
        for name in ("edge.db", "edge.db-wal", "edge.db-shm"):
            (self.home / name).unlink(missing_ok=True)
        for item in backup.iterdir():
            if item.is_file():
                shutil.copy2(item, self.home / item.name)


class Service:
    """A running `lineledger-edge run`."""

    def __init__(self, proc: subprocess.Popen[str], started: dict[str, Any]) -> None:
        self.proc = proc
        self.started = started
        self.page = started["operator_page"]

    def status(self) -> dict[str, Any]:
        with urllib.request.urlopen(self.page + "status.json", timeout=30) as resp:
            data: dict[str, Any] = json.loads(resp.read())
        return data


def wait_drained(agents: Sequence[EdgeAgent], timeout: float = 240) -> None:
    """Wait until no agent has an event pending in its outbox."""

    def drained() -> bool:
        return all(a.pending() == 0 for a in agents)

    try:
        wait_for(drained, timeout=timeout, interval=0.25)
    except AssertionError:
        left = {a.home.name: a.pending() for a in agents}
        raise AssertionError(f"outboxes not drained in {timeout}s: pending {left}") from None


def root_or_fail(what: str) -> None:
    """Fail (never skip) a test that needs root for `what`."""
    if os.geteuid() != 0:
        pytest.fail(
            f"this fault test needs root for {what} (mount a tmpfs, remount it read-only); "
            "run the fault suite as root, e.g. in the CI container (bash .ci/run)",
            pytrace=False,
        )


def _mount(*args: str) -> None:
    out = subprocess.run(["mount", *args], capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        raise AssertionError(f"mount {' '.join(args)} failed: {out.stderr.strip()}")


class SmallDisk:
    """A tmpfs of a few MiB mounted for one test."""

    def __init__(self, path: Path, size: str) -> None:
        root_or_fail("a small disk")
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        _mount("-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path))
        self.mounted = True
        self.filler = path / ".filler"

    def free(self) -> int:
        st = os.statvfs(self.path)
        return st.f_bavail * st.f_frsize

    def fill(self, leave: int = 0) -> None:
        """Fill the disk so at most `leave` bytes stay free."""
        with self.filler.open("ab") as fh:
            block = b"\0" * 65536
            while self.free() > leave:
                want = min(len(block), self.free() - leave)
                try:
                    fh.write(block[: max(want, 1)])
                    fh.flush()
                except OSError:
                    break

    def unfill(self) -> None:
        self.filler.unlink(missing_ok=True)

    def read_only(self, flag: bool = True) -> None:
        _mount("-o", f"remount,{'ro' if flag else 'rw'}", str(self.path))

    def close(self) -> None:
        if not self.mounted:
            return
        out = subprocess.run(["umount", str(self.path)], capture_output=True, timeout=60)
        if out.returncode != 0:  # a process still holds a file: detach now, free later
            subprocess.run(["umount", "-l", str(self.path)], capture_output=True, timeout=60)
        self.mounted = False


def python_child_time(shift: str) -> float:
    """Return time.time() as a Python child under faketime `shift` sees it, minus ours."""
    import time

    code = "import threading, time; threading.Event().wait(0.01); print(time.time())"
    out = subprocess.run(
        [*faketime_prefix(shift), sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env=env_with(**FAKETIME_ENV),
    )
    assert out.returncode == 0, out.stderr
    return float(out.stdout) - time.time()
