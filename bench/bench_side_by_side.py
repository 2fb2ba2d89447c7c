"""LineLedger's hot paths beside their yardsticks, measured in one run; print the ratios (#8).

Verify: central under gunicorn (the production setting: `deploy/gunicorn.conf.py` with 2
workers, gthread, 4 threads, rate limiting on with a limit the load never reaches) beside a
hello-world Flask app under exactly the same gunicorn setting, on SQLite and PostgreSQL.
Measured in interleaved rounds (hello, API, page, hello, API, page, ...) so that whatever
else loads the machine hits every side alike:
  - closed loop (wrk, C connections): the most requests per second each answers;
  - open loop (asyncio, a fixed schedule of R requests/s, latency from when each request was
    due): p50/p99 at 500 requests/s offered, and past saturation, what is shed (503 with
    Retry-After) and how long the served requests took.
Issue (`--issue`): the edge's issue loop beside a bare sqlite3 INSERT+COMMIT loop at the same
durability, from `edge_issue_side_by_side.py`.
Leases (`--leases`): 50 agents asking at once, from `bench_leases.py`.

No thresholds: the figures are printed, with what else loaded the machine meanwhile.

    python bench/bench_side_by_side.py [--db sqlite|postgresql|both] [--rounds 3]
        [--seconds 5] [--registry 20000] [--limiter redis|memory] [--issue] [--leases]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import zoneinfo
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import benchkit  # noqa: E402
import loadgen  # noqa: E402

from central import admin, create_app, init_registry  # noqa: E402
from central.config import load_config  # noqa: E402
from protocol.events import Event  # noqa: E402
from protocol.timefmt import format_ts  # noqa: E402
from tests.central.helpers import grant, new_id, push, serial_of  # noqa: E402

GUNICORN = str(Path(sys.executable).parent / "gunicorn")
CONF = str(ROOT / "deploy" / "gunicorn.conf.py")
GTIN = "04006381333931"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


SHIM = """import os, sys
code = os.environ.get("LINELEDGER_BENCH_CODE")
if code:  # serve an older checkout's code, not the editable install's
    sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in repr(f).lower()]
    sys.path.insert(0, code)
"""


@contextlib.contextmanager
def baseline_code(ref: str, tmp: Path) -> Iterator[Path]:
    """Check out `ref` beside this tree (a detached git worktree); yield its folder."""
    folder = tmp / "baseline"
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", "-f", str(folder), ref],
        check=True,
        capture_output=True,
    )
    (tmp / "shim").mkdir()
    (tmp / "shim" / "sitecustomize.py").write_text(SHIM)
    try:
        yield folder
    finally:
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(folder)],
            capture_output=True,
        )


@contextlib.contextmanager
def gunicorn(
    app: str, env: dict[str, str], chdir: Path | None = None, code: Path | None = None
) -> Iterator[str]:
    """Serve `app` under the production gunicorn setting with 2 workers; yield its URL.

    `code`: serve that checkout's code with its own deploy/gunicorn.conf.py (`--baseline`).
    """
    port = free_port()
    env = dict(env, LINELEDGER_BIND=f"127.0.0.1:{port}", LINELEDGER_WORKERS="2")
    conf = CONF
    if code is not None:
        conf = str(code / "deploy" / "gunicorn.conf.py")
        env.update(LINELEDGER_BENCH_CODE=str(code), PYTHONPATH=str(code.parent / "shim"))
    cmd = [GUNICORN, "-c", conf]
    if chdir:
        cmd += ["--chdir", str(chdir)]
    proc = subprocess.Popen(
        [*cmd, app], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                requests.get(url + "/", timeout=30)
                break
            except (requests.ConnectionError, requests.Timeout):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"{app} did not start: {proc.stderr.read()}") from None
                time.sleep(0.1)
        time.sleep(1)  # every worker has booted
        _SERVERS[url] = [proc.pid, *benchkit.children(proc.pid)]
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        assert proc.stderr is not None
        proc.stderr.close()


def server_pids(url: str) -> list[int]:
    """Return the gunicorn master listening at `url` and its workers."""
    return _SERVERS[url]


_SERVERS: dict[str, list[int]] = {}


def cpu_seconds(pids: list[int]) -> float:
    """Return the CPU time (user + system) the processes used so far."""
    return sum(benchkit._pid_ticks(p) for p in pids) / os.sysconf("SC_CLK_TCK")


def measured(url: str, paths: list[str], seconds: int, connections: int) -> dict[str, Any]:
    """Run a closed loop and add the server's CPU milliseconds per answered request: a
    figure that another load on the machine disturbs much less than requests per second."""
    pids = server_pids(url)
    before = cpu_seconds(pids)
    r = loadgen.closed_loop(url, paths, seconds, connections)
    used = cpu_seconds(pids) - before
    r["server_cpu_ms_per_req"] = round(used * 1000 / max(1.0, r["rps"] * seconds), 3)
    return r


def seed(cfg: dict[str, Any], registry: int) -> list[str]:
    """Fill a registry with `registry` issued serials of one product; return their codes."""
    init_registry(load_config(cfg), dt.datetime.now(dt.UTC))
    app = create_app(cfg)
    rt = app.extensions["lineledger"]
    now = dt.datetime.now(dt.UTC)
    admin.add_tenant(rt.store, "MA01", "Maison Atelier", "Europe/Paris", now)
    admin.add_product(rt.store, "MA01", "TOTE-01", "BAG", "Tote bag", GTIN, now, brand="Atelier")
    admin.add_work_order(rt.store, "MA01", "WO-HAT-1", "TOTE-01", "HAT", 10 * registry, now)
    code = admin.create_enroll_code(rt.store, "MA01", "L1", 1, now)
    token = admin.enroll_agent(rt.store, code.code, "bench", "bench", now).token
    h = {"Authorization": f"Bearer {token}"}
    c = app.test_client()
    today = dt.datetime.now(zoneinfo.ZoneInfo("Europe/Paris")).date()
    g = grant(c, h, f"MA01-HAT-BAG-{today:%Y%m%d}", registry)
    codes = [serial_of(g, seq) for seq in range(1, registry + 1)]
    stamp = format_ts(dt.datetime.now(dt.UTC))
    for i in range(0, registry, 1000):
        push(
            c,
            h,
            [
                Event(new_id(), "issued", s, stamp, g.lease_id, "WO-HAT-1", {})
                for s in codes[i : i + 1000]
            ],
        )
    rt.close()
    return codes


def verify_side(db_kind: str, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """Measure verify against hello-world on one database; return the figures."""
    home = tmp / f"central-{db_kind}"
    with benchkit.database(db_kind, home) as (label, db_url):
        cfg = {
            "home": str(home),
            "db_url": db_url,
            "lease_max_size": max(10_000, args.registry),
            "lease_pool_target": max(10_000, args.registry),
        }
        t0 = time.perf_counter()
        codes = seed(cfg, args.registry)
        seeded = time.perf_counter() - t0
        sample = codes[:: max(1, len(codes) // 2000)]
        api = [f"/api/public/serial/verify/{c}" for c in sample]
        page = [f"/v/{c}" for c in sample]
        env = dict(
            os.environ,
            LINELEDGER_CENTRAL_HOME=str(home),
            LINELEDGER_CENTRAL_DB=db_url,
            LINELEDGER_VERIFY_RATE_LIMIT="100000000/hour",
            LINELEDGER_RATELIMIT_STORAGE=(
                "redis://127.0.0.1:6379" if args.limiter == "redis" else "memory://"
            ),
        )
        env.pop("LINELEDGER_CENTRAL_CONFIG", None)
        out: dict[str, Any] = {"db": label, "registry": args.registry, "seed_s": round(seeded, 1)}
        with contextlib.ExitStack() as stack:
            hello_url = stack.enter_context(gunicorn("hello_app:app", env, chdir=ROOT / "bench"))
            ll_url = stack.enter_context(gunicorn("central:create_app()", env))
            sides = {"hello": (hello_url, ["/"]), "api": (ll_url, api), "page": (ll_url, page)}
            if args.baseline:
                code = stack.enter_context(baseline_code(args.baseline, tmp / f"base-{db_kind}"))
                base_url = stack.enter_context(gunicorn("central:create_app()", env, code=code))
                sides.update({"api@base": (base_url, api), "page@base": (base_url, page)})
            for url, paths in sides.values():  # warm up: imports, pools, caches
                loadgen.closed_loop(url, paths, 2, args.connections)
            check = requests.get(ll_url + api[0], timeout=10).json()
            if check.get("verdict") != "genuine":
                raise SystemExit(f"the seeded serial does not verify: {check}")
            closed: dict[str, list[dict[str, Any]]] = {name: [] for name in sides}
            at_rate: dict[str, list[dict[str, Any]]] = {name: [] for name in sides}
            window = benchkit.CpuWindow(match=benchkit.db_name(db_url))
            for _ in range(args.rounds):
                for name, (url, paths) in sides.items():
                    closed[name].append(measured(url, paths, args.seconds, args.connections))
                for name, (url, paths) in sides.items():
                    at_rate[name].append(loadgen.open_loop(url, paths, args.rate, args.seconds))
            cpu = window.stop()
            capacity = statistics.median(r["rps"] for r in closed["api"])
            over = loadgen.open_loop(ll_url, api, args.overload * capacity, args.seconds)
            out["overload_base"] = None
            if args.baseline:  # the same offered rate, to the code before
                out["overload_base"] = loadgen.open_loop(
                    base_url, api, args.overload * capacity, args.seconds
                )
        out.update(closed=closed, at_rate=at_rate, overload=over, cpu=cpu)
        return out


def _med(rows: list[dict[str, Any]], key: str) -> float:
    return round(statistics.median(r[key] for r in rows), 2)


def report_verify(r: dict[str, Any], args: argparse.Namespace) -> None:
    closed, at_rate = r["closed"], r["at_rate"]
    hello = _med(closed["hello"], "rps")
    print(
        f"\n== verify on {r['db']} (registry {r['registry']} serials, seeded in "
        f"{r['seed_s']} s; gunicorn 2 workers x 4 threads; limiter {args.limiter}) =="
    )
    print(f"closed loop, wrk {args.connections} connections, {args.rounds} x {args.seconds} s:")
    for name in closed:
        rps = [x["rps"] for x in closed[name]]
        ratio = _med(closed[name], "rps") / hello if hello else float("nan")
        print(
            f"  {name:9s} {_med(closed[name], 'rps'):8.1f} req/s (runs {rps}) "
            f"p50 {_med(closed[name], 'p50_ms')} ms p99 {_med(closed[name], 'p99_ms')} ms "
            f"= {ratio:.0%} of hello; server CPU {_med(closed[name], 'server_cpu_ms_per_req')} "
            f"ms/req; non-2xx {sum(x['non_2xx'] for x in closed[name])}"
        )
    api = _med(closed["api"], "rps")
    page = _med(closed["page"], "rps")
    print(f"  page / api: {page / api:.0%}")
    print(f"open loop at {args.rate:g} req/s offered, {args.seconds} s each (median of runs):")
    for name in at_rate:
        rows = at_rate[name]
        print(
            f"  {name:9s} served {_med(rows, 'ok_rps'):7.1f}/s  p50 {_med(rows, 'p50_ms')} ms"
            f"  p99 {_med(rows, 'p99_ms')} ms  max {_med(rows, 'max_ms')} ms"
            f"  503s {sum(x['shed_503'] for x in rows)}  errors {[x['errors'] for x in rows]}"
        )
    for label, o in (("api", r["overload"]), ("api@base", r["overload_base"])):
        if o is None:
            continue
        print(
            f"past saturation ({label}): {o['offered_rps']:.0f} req/s offered to the API "
            f"({args.overload:g} x its closed-loop rate) for {args.seconds} s:\n"
            f"  served {o['ok_rps']}/s, p50 {o['p50_ms']} ms, p99 {o['p99_ms']} ms, "
            f"max {o['max_ms']} ms; shed {o['shed_503']} with 503 (p99 {o['shed_p99_ms']} ms,"
            f" Retry-After {o['retry_after']}); statuses {o['statuses']}; errors {o['errors']}"
        )
    print(f"  CPU during the rounds: {r['cpu']}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--rate", type=float, default=500.0, help="open-loop requests/s")
    parser.add_argument("--overload", type=float, default=2.0, help="x closed-loop capacity")
    parser.add_argument("--registry", type=int, default=20_000, help="serials (<= 99999)")
    parser.add_argument("--limiter", choices=["redis", "memory"], default="redis")
    parser.add_argument("--issue", action="store_true", help="also the edge issue loop")
    parser.add_argument("--issue-serials", type=int, default=3000)
    parser.add_argument("--leases", action="store_true", help="also 50 agents leasing")
    parser.add_argument("--json", action="store_true", help="also print the raw figures")
    parser.add_argument(
        "--baseline",
        default="",
        help="a git ref (e.g. 6c45747) whose central is measured beside this one, "
        "interleaved; its dependencies must be in this venv",
    )
    args = parser.parse_args()
    loadgen.need_wrk()
    print(f"side by side on {benchkit.machine()}")
    print(f"before: {benchkit.load_note()}")
    kinds = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="ll-side-") as tmp_s:
        tmp = Path(tmp_s)
        for kind in kinds:
            r = verify_side(kind, args, tmp)
            results.append(r)
            report_verify(r, args)
        if args.issue:
            import edge_issue_side_by_side as edge

            r = edge.measure_issue(tmp / "issue", args.issue_serials, args.rounds)
            results.append({"issue": r})
            print("\n== issue ==")
            print(json.dumps(r, indent=2, default=str))
        if args.leases:
            import bench_leases

            for kind in kinds:
                r = bench_leases.measure_leases(kind, 50, args.rounds, tmp / f"leases-{kind}")
                results.append({"leases": r})
                print(f"\n== leases on {kind}, 50 agents ==")
                print(json.dumps(r, indent=2, default=str))
    if args.json:
        print(json.dumps(results, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
