"""`make demo`: the whole line, end to end, on this machine.

A central registry on SQLite, two edge agents (separate homes, separate processes), each
with its own printer simulator on loopback. Each agent issues and prints serials for a work
order; the central is stopped for part of the run and the lines keep going from their
leased pools; then the central comes back, the agents' services sync by themselves, every
serial is verified through the public API and the demo reports what happened.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Demo:
    def __init__(self, workdir: Path, per_agent: int, offline_share: float) -> None:
        self.workdir = workdir
        self.per_agent = per_agent
        self.offline_share = offline_share
        self.procs: list[subprocess.Popen[str]] = []
        self.central: subprocess.Popen[str] | None = None
        self.port = free_port()
        self.central_url = f"http://127.0.0.1:{self.port}"
        self.env = {
            "PATH": f"{BIN}:/usr/bin:/bin",
            "LINELEDGER_CENTRAL_HOME": str(workdir / "central"),
            # The QR codes point at this central; the demo verifies all its serials from one
            # address, so it raises the public limit (60/hour by default) for this run.
            "LINELEDGER_PUBLIC_BASE_URL": self.central_url,
            "LINELEDGER_VERIFY_RATE_LIMIT": "100000/hour",
            "PYTHONUNBUFFERED": "1",
        }
        self.started = time.monotonic()

    def say(self, text: str) -> None:
        print(f"[{time.monotonic() - self.started:5.1f}s] {text}", flush=True)

    def run(self, *args: str) -> str:
        out = subprocess.run(list(args), env=self.env, text=True, capture_output=True, timeout=120)
        if out.returncode not in (0,):
            raise SystemExit(f"{' '.join(args[:3])} failed ({out.returncode}):\n{out.stderr}")
        return out.stdout

    def central_cli(self, *args: str) -> str:
        return self.run(str(BIN / "lineledger-central"), *args)

    def edge_cli(self, home: Path, *args: str) -> str:
        return self.run(str(BIN / "lineledger-edge"), "--home", str(home), *args)

    def spawn(self, *args: str) -> subprocess.Popen[str]:
        log = (self.workdir / "logs" / f"{Path(args[0]).name}-{len(self.procs)}.log").open("w")
        proc = subprocess.Popen(
            list(args), env=self.env, text=True, stdout=subprocess.PIPE, stderr=log
        )
        log.close()
        self.procs.append(proc)
        return proc

    def start_central(self) -> None:
        self.central = self.spawn(
            str(BIN / "lineledger-central"), "serve", "--port", str(self.port)
        )
        assert self.central.stdout is not None
        line = self.central.stdout.readline()
        if "listening" not in line:
            raise SystemExit(f"central did not start; see {self.workdir / 'logs'}")

    def stop(self, proc: subprocess.Popen[str]) -> None:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stdout:
            proc.stdout.close()

    def cleanup(self) -> None:
        for proc in reversed(self.procs):
            self.stop(proc)

    def status(self, page: str) -> Any:
        with urllib.request.urlopen(page + "status.json", timeout=5) as resp:
            return json.loads(resp.read())

    def main(self) -> int:
        w = self.workdir
        (w / "logs").mkdir(parents=True)
        self.say(f"central registry on SQLite in {w / 'central'}")
        self.central_cli("init")
        self.central_cli(
            "tenant",
            "add",
            "--org",
            "MA01",
            "--name",
            "Maison Atelier",
            "--timezone",
            "Europe/Paris",
        )
        self.central_cli(
            "product",
            "add",
            "--org",
            "MA01",
            "--sku",
            "TOTE-01",
            "--category",
            "BAG",
            "--name",
            "Tote bag",
            "--gtin",
            "04006381333931",
        )
        lines = {"A": ("WO-HAT-1001", "HAT"), "B": ("WO-OEM-2001", "OEM")}
        for line, (wo, ptype) in lines.items():
            self.central_cli(
                "work-order",
                "add",
                "--org",
                "MA01",
                "--number",
                wo,
                "--sku",
                "TOTE-01",
                "--type",
                ptype,
                "--quantity",
                str(self.per_agent),
                "--line",
                f"LINE-{line}",
            )
        self.start_central()
        self.say(f"central serving on {self.central_url}")

        agents: dict[str, dict[str, Any]] = {}
        for line in lines:
            labels = w / f"labels-{line}"
            sim = self.spawn(
                sys.executable,
                "-m",
                "printers.simulator",
                "--port",
                "0",
                "--record-dir",
                str(labels),
            )
            assert sim.stdout is not None
            printer = sim.stdout.readline().split()[-1]
            home = w / f"agent-{line}"
            home.mkdir()
            (home / "edge.toml").write_text(
                "[edge]\nsync_interval = 0.5\nbackoff_max = 3.0\noperator_port = 0\n"
                f'printer_url = "{printer}"\n'
            )
            code = self.central_cli(
                "agent", "enroll-code", "--org", "MA01", "--line", f"LINE-{line}"
            ).split()[-1]
            enrolled = json.loads(
                self.edge_cli(home, "enroll", "--central", self.central_url, "--code", code)
            )
            service = self.spawn(str(BIN / "lineledger-edge"), "--home", str(home), "run")
            assert service.stdout is not None
            page = json.loads(service.stdout.readline())["operator_page"]
            agents[line] = {
                "home": home,
                "printer": printer,
                "labels": labels,
                "page": page,
                "wo": lines[line][0],
                "serials": [],
            }
            self.say(
                f"line {line}: agent {enrolled['agent_id'][:13]}… enrolled, leased "
                f"{sum(enrolled['leased'].values())} numbers, printer {printer}, "
                f"operator page {page}"
            )

        online = self.per_agent - int(self.per_agent * self.offline_share)
        self.issue_all(agents, online, "central up")
        self.wait_synced(agents, 15)
        for line, a in agents.items():
            s = self.status(a["page"])
            self.say(
                f"line {line}: central online, {s['outbox']['delivered']} events delivered, "
                f"outbox pending {s['outbox']['pending']}"
            )
        self.stop(self.central)
        self.say("central registry STOPPED: the lines keep working from their pools")
        self.issue_all(agents, self.per_agent - online, "central down")
        for line, a in agents.items():
            s = self.status(a["page"])
            self.say(
                f"line {line}: central {'online' if s['central']['reachable'] else 'offline'}"
                f", outbox pending {s['outbox']['pending']}, printer {s['printer']['state']}"
            )
        self.start_central()
        self.say("central registry back: the agents' services sync by themselves")
        self.wait_synced(agents, 40)
        self.say("all outboxes delivered")
        return self.report(agents)

    def wait_synced(self, agents: dict[str, dict[str, Any]], seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            states = [self.status(a["page"]) for a in agents.values()]
            if all(
                s["outbox"]["pending"] == 0
                and s["printer"]["jobs"]["queued"] + s["printer"]["jobs"]["failed"] == 0
                for s in states
            ):
                return
            time.sleep(0.2)

    def issue_all(self, agents: dict[str, dict[str, Any]], count: int, phase: str) -> None:
        procs = {
            line: subprocess.Popen(
                [
                    str(BIN / "lineledger-edge"),
                    "--home",
                    str(a["home"]),
                    "issue",
                    "--work-order",
                    a["wo"],
                    "--count",
                    str(count),
                    "--print",
                ],
                env=self.env,
                text=True,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            for line, a in agents.items()
        }
        for line, proc in procs.items():
            out, err = proc.communicate(timeout=120)
            if proc.returncode != 0:
                raise SystemExit(f"issue on line {line} failed:\n{err}")
            serials = [json.loads(x)["serial"] for x in out.splitlines()]
            agents[line]["serials"] += serials
            self.say(
                f"line {line} ({phase}): issued and printed {len(serials)} serials, "
                f"{serials[0]} … {serials[-1]}"
            )

    def report(self, agents: dict[str, dict[str, Any]]) -> int:
        issued = [s for a in agents.values() for s in a["serials"]]
        label_files = [p for a in agents.values() for p in sorted(a["labels"].glob("*.zpl"))]
        printed_serials = []
        for path in label_files:
            text = path.read_text(errors="replace")
            printed_serials += [s for s in issued if s in text][:1]
        stats = json.loads(self.central_cli("stats"))
        synced = sum(stats["serials"].values())
        verdicts: dict[str, int] = {}
        for serial in issued:
            url = f"{self.central_url}/api/public/serial/verify/{serial}"
            with urllib.request.urlopen(url, timeout=10) as resp:
                verdict = json.loads(resp.read())["verdict"]
            verdicts[verdict] = verdicts.get(verdict, 0) + 1
        duplicates = (len(issued) - len(set(issued))) + (
            len(printed_serials) - len(set(printed_serials))
        )
        genuine = verdicts.get("genuine", 0)
        ok = (
            duplicates == 0
            and genuine == len(issued) == synced == len(label_files)
            and not stats["quarantine_open"]
        )
        print()
        print("LineLedger demo report")
        print("----------------------")
        per_line = ", ".join(f"line {k}: {len(a['serials'])}" for k, a in agents.items())
        print(f"serials issued          {len(issued)}  ({per_line})")
        print(f"labels printed          {len(label_files)}")
        print(f"serials synced          {synced}  (central registry: {stats['serials']})")
        print(
            f"verified genuine        {genuine} of {len(issued)} through "
            f"{self.central_url}/api/public/serial/verify/<serial>"
        )
        print(f"duplicates found        {duplicates}")
        print(f"quarantined             {sum(stats['quarantine_open'].values())}")
        for line, a in agents.items():
            print(f"label files (line {line})   {a['labels']}/")
        print(f"took                    {time.monotonic() - self.started:.1f} s")
        print("result                  " + ("OK" if ok else "FAILED"))
        return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=ROOT / "demo-run")
    parser.add_argument("--count", type=int, default=200, help="serials per agent")
    parser.add_argument(
        "--offline-share",
        type=float,
        default=0.5,
        help="share of each agent's serials issued while central is down",
    )
    args = parser.parse_args()
    if args.workdir.exists():
        shutil.rmtree(args.workdir)
    demo = Demo(args.workdir, args.count, args.offline_share)
    try:
        return demo.main()
    finally:
        demo.cleanup()


if __name__ == "__main__":
    raise SystemExit(main())
