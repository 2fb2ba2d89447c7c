"""A new user's path (#7): enroll safely, find edge.toml, print on the line's printer, get
clear errors for a missing home, a missing spool folder or a central that is down.

Real parts: central `serve` in a child process on 127.0.0.1 (SQLite), the edge CLI in child
processes, the printer simulator on a real socket, a real TLS server with a throw-away CA.
"""

from __future__ import annotations

import json
import re
import select
import signal
import socket
import sqlite3
import ssl
import subprocess
import threading
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from edge_agent.config import EdgeConfig, load_config
from printers.simulator import PrinterSimulator
from tests.procs import CentralProcess, cli, edge, env_with, json_lines, wait_for, write_edge_toml

pytestmark = pytest.mark.slow
ERROR_LINE = re.compile(r"^Error: (ERR_[A-Z_]+): .+$")


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    """The edge is under test here: central runs on SQLite only."""
    return f"sqlite:///{tmp_path / 'central.db'}"


def error_code(result: subprocess.CompletedProcess[str]) -> str:
    """Return the code of the one-line error a command ended with; no traceback allowed."""
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines, "no error on stderr"
    match = ERROR_LINE.match(lines[-1])
    assert match, f"not a coded error: {lines[-1]!r}"
    return match[1]


def enroll(central: CentralProcess, home: Path, line: str = "L1", *extra: str) -> dict:
    out = edge(
        home, "enroll", "--central", central.url, "--code", central.enroll_code(line), *extra
    )
    return json_lines(out.stdout)[-1]


# -- 1. no secrets over plain http to another machine ---------------------------------------


def test_plain_http_to_another_machine_is_refused_before_the_code_is_sent(tmp_path):
    home = tmp_path / "agent"
    out = edge(
        home, "enroll", "--central", "http://192.0.2.10:8080", "--code", "7KQ2-M9XD", check=False
    )
    assert out.returncode == 1
    assert error_code(out) == "ERR_INSECURE_CENTRAL"
    assert "https" in out.stderr and "--insecure" in out.stderr
    assert not home.exists()  # nothing made, nothing sent


def test_insecure_enroll_is_recorded_in_edge_toml(central, tmp_path):
    home = tmp_path / "agent"
    write_edge_toml(home, lease_block=50, pool_target=100, low_water=50)
    enroll(central, home, "L1", "--insecure")
    text = (home / "edge.toml").read_text()
    assert "lease_block = 50" in text  # the operator's file is kept ...
    assert load_config(home, environ={}).insecure is True  # ... and says insecure = true
    assert (home / "edge.toml").stat().st_mode & 0o777 == 0o600


class TlsFront:
    """A real TLS server on 127.0.0.1 that passes every connection on to central."""

    def __init__(self, backend_port: int, context: ssl.SSLContext) -> None:
        self.backend_port = backend_port
        self.context = context
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.stopping = False
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while not self.stopping:
            try:
                raw, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(raw,), daemon=True).start()

    def _serve(self, raw: socket.socket) -> None:
        try:
            tls = self.context.wrap_socket(raw, server_side=True)
        except (ssl.SSLError, OSError):
            raw.close()  # the client did not trust us: that is what one test wants
            return
        backend = socket.create_connection(("127.0.0.1", self.backend_port))
        try:
            while True:
                ready, _, _ = select.select([tls, backend], [], [])
                for source in ready:
                    target = backend if source is tls else tls
                    data = source.recv(65536)
                    if not data:
                        return
                    target.sendall(data)
        except OSError:
            return
        finally:
            tls.close()
            backend.close()

    def close(self) -> None:
        self.stopping = True
        self.sock.close()


@pytest.fixture
def plant_ca(tmp_path: Path) -> tuple[trustme.CA, Path]:
    ca = trustme.CA()
    pem = tmp_path / "plant-ca.pem"
    ca.cert_pem.write_to_path(str(pem))
    return ca, pem


@pytest.fixture
def https_central(central: CentralProcess, plant_ca) -> Iterator[str]:
    ca, _pem = plant_ca
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(context)
    front = TlsFront(central.port, context)
    yield f"https://localhost:{front.port}"
    front.close()


def test_https_with_the_plants_own_ca(central, https_central, plant_ca, tmp_path):
    _ca, pem = plant_ca
    home = tmp_path / "agent"
    code = central.enroll_code("L1")
    untrusted = edge(home, "enroll", "--central", https_central, "--code", code, check=False)
    assert untrusted.returncode == 1 and error_code(untrusted) == "ERR_CENTRAL_UNREACHABLE"
    assert "--ca-bundle" in untrusted.stderr
    assert not (home / "edge.db").exists()  # a failed enrollment leaves no half-made home
    out = edge(home, "enroll", "--central", https_central, "--code", code, "--ca-bundle", str(pem))
    assert json_lines(out.stdout)[-1]["ok"] is True
    assert load_config(home, environ={}).ca_bundle == str(pem.resolve())
    edge(home, "issue", "--work-order", "WO-HAT-1", "--count", "3")
    summary = json_lines(edge(home, "sync").stdout)[-1]  # the CA file from edge.toml is used
    assert summary["ok"] is True and summary["results"] == {"accepted": 3}


# -- 2. edge.toml ---------------------------------------------------------------------------


def test_enroll_writes_a_commented_edge_toml_private_to_its_owner(central, tmp_path):
    home = tmp_path / "agent"
    enroll(central, home)
    path = home / "edge.toml"
    assert path.stat().st_mode & 0o777 == 0o600
    text = path.read_text()
    for key in ("printer_url", "scanner_url", "pool_target", "low_water", "insecure", "ca_bundle"):
        assert f"# {key} = " in text
    assert load_config(home, environ={}) == EdgeConfig(home=str(home))
    # Every commented default is the code's default: uncommented, it changes nothing.
    path.write_text(re.sub(r"(?m)^# ([a-z_]+ = )", r"\1", text))
    assert tomllib.loads(path.read_text())["edge"]["pool_target"] == EdgeConfig().pool_target
    assert load_config(home, environ={}) == EdgeConfig(home=str(home))
    env = {"LINELEDGER_EDGE_PRINTER_URL": "tcp://10.0.0.7:9100"}
    assert load_config(home, environ=env).printer_url == "tcp://10.0.0.7:9100"


# -- 3. the line's printer serves `run` and `issue --print` ---------------------------------


class RunProcess:
    """`lineledger-edge run` in a child process; its log goes to a file."""

    def __init__(self, home: Path, log: Path, *args: str) -> None:
        self.log = log
        with log.open("w") as err:
            self.proc = subprocess.Popen(
                [cli("lineledger-edge"), "--home", str(home), "run", "--port", "0", *args],
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
                env=env_with(),
            )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line, f"run did not start: {log.read_text()}"
        self.started = json.loads(line)

    def stop(self) -> str:
        self.proc.send_signal(signal.SIGTERM)
        assert self.proc.wait(timeout=60) == 0, self.log.read_text()
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        return self.log.read_text()


def test_issue_print_uses_the_printer_run_serves_and_the_log_stays_quiet(central, tmp_path):
    home = tmp_path / "agent"
    write_edge_toml(home, lease_block=50, pool_target=100, low_water=50, sync_interval=0.2)
    enroll(central, home)
    with PrinterSimulator() as printer:
        run = RunProcess(home, tmp_path / "run.log", "--printer", printer.url)
        try:
            out = edge(home, "issue", "--work-order", "WO-HAT-1", "--count", "2", "--print")
            serials = [r["serial"] for r in json_lines(out.stdout)]
            assert len(serials) == 2 and f"printed 2 of 2 labels on {printer.url}" in out.stderr
            # The service ran its jobs meanwhile: wait until it delivered what was issued.
            wait_for(lambda: json.loads(edge(home, "status").stdout)["outbox"]["pending"] == 0)
        finally:
            log = run.stop()
    assert "Traceback" not in log
    assert "Service._job.<locals>.run" not in log
    assert not [line for line in log.splitlines() if " INFO apscheduler" in line]


def test_run_verbose_logs_each_job_by_its_name(central, tmp_path):
    home = tmp_path / "agent"
    write_edge_toml(home, lease_block=50, pool_target=100, low_water=50)
    enroll(central, home)
    log = tmp_path / "run.log"
    run = RunProcess(home, log, "--verbose")
    try:
        wait_for(lambda: 'Running job "print' in log.read_text())
    finally:
        text = run.stop()
    assert "Service._job.<locals>.run" not in text
    names = set(re.findall(r'Running job "([a-z]+) \(trigger', text))
    assert names and names <= {"reconcile", "sync", "pool", "print", "config", "marks", "prune"}


def test_printer_help_lists_every_kind_of_printer():
    out = subprocess.run(
        [cli("lineledger-edge"), "issue", "--help"], capture_output=True, text=True, check=True
    )
    text = " ".join(out.stdout.split())
    for scheme in ("tcp://", "/dev/tty", "COM3", "socket://", "rfc2217://", "loop://"):
        assert scheme in text
    for scheme in ("file:///DIR", "pdf:///DIR", "?create=1"):
        assert scheme in text


# -- 4. spool folders and printers that are gone --------------------------------------------


def test_a_missing_spool_folder_is_refused_unless_asked_to_create_it(central, tmp_path):
    home = tmp_path / "agent"
    enroll(central, home)
    missing = tmp_path / "nonexistent" / "dir"
    issue = edge(
        home,
        "issue",
        "--work-order",
        "WO-HAT-1",
        "--print",
        "--printer",
        f"file://{missing}",
        check=False,
    )
    assert issue.returncode == 1 and error_code(issue) == "ERR_PRINTER_NO_DIR"
    assert "?create=1" in issue.stderr and not (tmp_path / "nonexistent").exists()
    assert json_lines(issue.stdout) == []  # refused before any number was used
    spool = tmp_path / "spool"
    out = edge(
        home,
        "issue",
        "--work-order",
        "WO-HAT-1",
        "--print",
        "--printer",
        f"file://{spool}?create=1",
    )
    serial = json_lines(out.stdout)[0]["serial"]
    assert [p.name for p in spool.iterdir()] == [f"{serial}.zpl"]
    reprint = edge(
        home, "reprint", serial, "--reason", "smudged", "--printer", f"pdf://{missing}", check=False
    )
    assert reprint.returncode == 1 and error_code(reprint) == "ERR_PRINTER_NO_DIR"
    assert "printer ready" not in reprint.stderr and not (tmp_path / "nonexistent").exists()
    edge(home, "reprint", serial, "--reason", "smudged", "--printer", f"pdf://{missing}?create=1")
    assert [p.name for p in missing.iterdir()] == [f"{serial}.pdf"]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _serial_states(home: Path) -> dict[str, str]:
    db = sqlite3.connect(home / "edge.db")
    try:
        return dict(db.execute("SELECT serial, state FROM serials").fetchall())
    finally:
        db.close()


def test_print_jobs_for_a_printer_that_is_gone_can_be_cancelled(central, tmp_path):
    home = tmp_path / "agent"
    enroll(central, home)
    gone = f"tcp://127.0.0.1:{_closed_port()}"
    out = edge(
        home,
        "issue",
        "--work-order",
        "WO-HAT-1",
        "--count",
        "3",
        "--print",
        "--printer",
        gone,
        check=False,
    )
    assert out.returncode == 3  # the labels wait in the queue
    serials = [r["serial"] for r in json_lines(out.stdout)]
    queued = json_lines(edge(home, "print-jobs", "list", "--status", "queued").stdout)
    assert sorted(j["serial"] for j in queued) == sorted(serials)
    first = min(j["id"] for j in queued)
    voided = json_lines(
        edge(
            home, "print-jobs", "cancel", str(first), "--reason", "label never applied", "--void"
        ).stdout
    )[-1]
    assert voided["cancelled"] == [first] and len(voided["voided"]) == 1
    rest = json_lines(
        edge(
            home, "print-jobs", "cancel", "--all", "--printer", gone, "--reason", "printer scrapped"
        ).stdout
    )[-1]
    assert len(rest["cancelled"]) == 2 and rest["voided"] == []
    assert json_lines(edge(home, "print-jobs", "list", "--status", "queued").stdout) == []
    cancelled = json_lines(edge(home, "print-jobs", "list", "--status", "cancelled").stdout)
    assert all(
        "printer scrapped" in j["last_error"] or "label never applied" in j["last_error"]
        for j in cancelled
    )
    states = _serial_states(home)
    assert sorted(states.values()) == ["issued", "issued", "voided"]  # numbers stay used
    again = edge(home, "print-jobs", "cancel", str(first), "--reason", "x", check=False)
    assert again.returncode == 1 and error_code(again) == "ERR_JOB_UNKNOWN"


# -- 5. central down, new work orders, missing homes ----------------------------------------


def test_sync_with_central_down_and_nothing_to_send_exits_2(central, tmp_path):
    home = tmp_path / "agent"
    enroll(central, home)
    edge(home, "sync")
    assert central.stop() == 0
    out = edge(home, "sync", check=False)
    assert out.returncode == 2
    summary = json_lines(out.stdout)[-1]
    assert summary["ok"] is False and summary["error"]["code"] == "ERR_CENTRAL_UNREACHABLE"


def test_label_preview_of_a_work_order_added_after_the_last_refresh(central, tmp_path):
    home = tmp_path / "agent"
    enroll(central, home)
    central.run(
        "work-order",
        "add",
        "--org",
        "MA01",
        "--number",
        "WO-NEW",
        "--sku",
        "TOTE-01",
        "--type",
        "OEM",
        "--quantity",
        "10",
    )
    out = edge(
        home,
        "label",
        "--work-order",
        "WO-NEW",
        "--format",
        "zpl",
        "--output",
        str(tmp_path / "next.zpl"),
    )
    assert out.returncode == 0 and (tmp_path / "next.zpl").read_bytes().startswith(b"^XA")


@pytest.mark.parametrize(
    "args",
    [
        ("status",),
        ("sync",),
        ("issue", "--work-order", "WO-1"),
        ("label", "--work-order", "WO-1", "--output", "-"),
        ("print-jobs", "list"),
        ("alerts",),
        ("run", "--port", "0"),
    ],
    ids=lambda a: a[0],
)
def test_commands_on_a_home_without_an_agent_say_not_enrolled(args, tmp_path):
    home = tmp_path / "no-agent"
    out = edge(home, *args, check=False)
    assert out.returncode == 1 and error_code(out) == "ERR_NOT_ENROLLED"
    assert "enroll" in out.stderr
    assert not home.exists()  # never an empty database


def test_a_failed_enrollment_leaves_no_database(central, tmp_path):
    home = tmp_path / "agent"
    out = edge(home, "enroll", "--central", central.url, "--code", "WRONG-CODE", check=False)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert not (home / "edge.db").exists()
    status = edge(home, "status", check=False)
    assert status.returncode == 1 and error_code(status) == "ERR_NOT_ENROLLED"


@pytest.mark.parametrize("args", [("stats",), ("tenant", "list"), ("jobs", "status")])
def test_central_read_commands_on_a_missing_home_create_nothing(args, tmp_path):
    home = tmp_path / "no-registry"
    out = subprocess.run(
        [cli("lineledger-central"), "--home", str(home), *args],
        capture_output=True,
        text=True,
        env={k: v for k, v in env_with().items() if not k.startswith("LINELEDGER_CENTRAL")},
    )
    assert out.returncode == 1 and error_code(out) == "ERR_NOT_INITIALISED"
    assert "lineledger-central init" in out.stderr
    assert not home.exists()
