"""Measure whether public verify's answer time tells "not ours" codes apart (#7).

A registry with one tenant, one GTIN product, one lease and an issued serial is served by a
real HTTP server (waitress) on 127.0.0.1; the codes below are asked in interleaved rounds
(one of each per round, so drift hits every path alike) over one keep-alive connection.
Printed: the median answer time per path, its verdict, and the gap of each "not ours" path
to the slowest of them, plus the spread of the medians among the "not ours" paths.

No thresholds: an attacker measures medians over many requests, so the gaps are the figure
to read; the issue saw ~1.3 ms between an unknown org and a known one.

    python bench/bench_verify_oracle.py [--rounds 2000] [--db-url postgresql+psycopg://...]
"""

from __future__ import annotations

import argparse
import datetime as dt
import platform
import statistics
import sys
import tempfile
import time
import zoneinfo
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from central import admin, create_app, init_registry  # noqa: E402
from central.config import load_config  # noqa: E402
from central.verify import verify_code, verify_gs1  # noqa: E402
from edge_agent.web import BackgroundServer  # noqa: E402
from protocol.gs1 import ai21_from_standard  # noqa: E402
from protocol.serials import Scope, render  # noqa: E402
from tests.central.helpers import event, forged, grant, push, serial_of  # noqa: E402

GTIN = "04006381333931"
OTHER_GTIN = "09506000134352"  # valid, registered by nobody
# Who asks knows which kind of address they used, so gaps matter within each group only.
GROUPS = {
    "serial codes": ("unknown org", "bad MAC", "unknown lease"),
    "GS1 Digital Links": ("GTIN registered, serial foreign", "GTIN unregistered"),
}


DIRECT: dict[str, tuple[str, ...]] = {}


def seed(app: object, tmp: Path) -> dict[str, str]:
    """Fill the registry; return the URL path of each case."""
    rt = app.extensions["lineledger"]  # type: ignore[attr-defined]
    now = dt.datetime.now(dt.UTC)
    admin.add_tenant(rt.store, "MA01", "Maison Atelier", "Europe/Paris", now)
    admin.add_product(rt.store, "MA01", "TOTE-01", "BAG", "Tote bag", GTIN, now)
    admin.add_work_order(rt.store, "MA01", "WO-HAT-1", "TOTE-01", "HAT", 100_000, now)
    code = admin.create_enroll_code(rt.store, "MA01", "L1", 1, now)
    token = admin.enroll_agent(rt.store, code.code, "bench", "bench", now).token
    h = {"Authorization": f"Bearer {token}"}
    c = app.test_client()  # type: ignore[attr-defined]
    today = dt.datetime.now(zoneinfo.ZoneInfo("Europe/Paris")).date()
    g = grant(c, h, f"MA01-HAT-BAG-{today:%Y%m%d}", 100)
    push(c, h, [event("issued", serial_of(g, 1), g.lease_id, "WO-HAT-1")])
    genuine = serial_of(g, 1)
    foreign = ai21_from_standard(render(Scope("ZZ99", "HAT", "CUP", today), 3, b"k" * 32))
    api = "/api/public/serial/verify/"
    typo = genuine[:-1] + ("A" if genuine[-1] != "A" else "B")
    direct = {
        "genuine": ("code", genuine),
        "unknown org": ("code", render(Scope("ZZ99", "HAT", "BAG", today), 1, b"k" * 32)),
        "bad MAC": ("code", forged(g.scope, 5)),
        "unknown lease": ("code", render(g.scope, 9000, g.key)),
        "GTIN registered, serial foreign": ("gs1", GTIN, foreign),
        "GTIN unregistered": ("gs1", OTHER_GTIN, foreign),
        "malformed (check character)": ("code", typo),
    }
    DIRECT.update(direct)
    return {
        "genuine": api + genuine,
        "unknown org": api + render(Scope("ZZ99", "HAT", "BAG", today), 1, b"k" * 32),
        "bad MAC": api + forged(g.scope, 5),
        "unknown lease": api + render(g.scope, 9000, g.key),
        "GTIN registered, serial foreign": f"/01/{GTIN}/21/{foreign}?format=json",
        "GTIN unregistered": f"/01/{OTHER_GTIN}/21/{foreign}?format=json",
        "malformed (check character)": api + typo,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--db-url", default="", help="default: SQLite in a temporary folder")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-verify-") as tmp_s:
        tmp = Path(tmp_s)
        cfg = {
            "home": str(tmp / "central"),
            "verify_rate_limit": "100000000/hour",
            "verify_flush_seconds": 0.5,
        }
        if args.db_url:
            cfg["db_url"] = args.db_url
        init_registry(load_config(cfg), dt.datetime.now(dt.UTC))
        app = create_app(cfg)
        cases = seed(app, tmp)
        server = BackgroundServer(app, "127.0.0.1", 0, threads=4).start()
        times: dict[str, list[float]] = {name: [] for name in cases}
        verdicts: dict[str, set[str]] = {name: set() for name in cases}
        try:
            with requests.Session() as http:
                for i in range(args.warmup + args.rounds):
                    for name, path in cases.items():
                        t0 = time.perf_counter()
                        resp = http.get(server.url + path, timeout=30)
                        elapsed = time.perf_counter() - t0
                        if i >= args.warmup:
                            times[name].append(elapsed * 1000)
                            verdicts[name].add(resp.json().get("verdict", str(resp.status_code)))
            direct_t, direct_v = run_direct(app, args.rounds, args.warmup)
        finally:
            server.stop()
            app.extensions["lineledger"].close()
    db = "PostgreSQL" if args.db_url else "SQLite"
    print(f"verify oracle: {args.rounds} rounds, Python {platform.python_version()}, {db}")
    report("over HTTP on 127.0.0.1 (waitress, one keep-alive connection)", times, verdicts)
    report("in process (verify_code / verify_gs1 called directly)", direct_t, direct_v)


def run_direct(app: object, rounds: int, warmup: int) -> tuple[dict[str, list[float]], dict]:
    """Time the verify functions themselves, without HTTP, in interleaved rounds."""
    rt = app.extensions["lineledger"]  # type: ignore[attr-defined]
    times: dict[str, list[float]] = {name: [] for name in DIRECT}
    verdicts: dict[str, set[str]] = {name: set() for name in DIRECT}
    for i in range(warmup + rounds):
        for name, case in DIRECT.items():
            t0 = time.perf_counter()
            if case[0] == "code":
                result = verify_code(rt.store, rt.keyring, case[1])
            else:
                result = verify_gs1(rt.store, rt.keyring, case[1], case[2])
            elapsed = time.perf_counter() - t0
            if i >= warmup:
                times[name].append(elapsed * 1000)
                verdicts[name].add(result.verdict)
    return times, verdicts


def report(title: str, times: dict[str, list[float]], verdicts: dict[str, set[str]]) -> None:
    """Print the medians per path and the gaps within each group of "not ours" paths."""
    medians = {name: statistics.median(v) for name, v in times.items()}
    print(f"\n{title}")
    print(f"  {'path':34} {'verdict':10} {'median ms':>10} {'p90 ms':>8}")
    for name, values in times.items():
        p90 = sorted(values)[int(0.9 * (len(values) - 1))]
        shown = ",".join(sorted(verdicts[name]))
        print(f"  {name:34} {shown:10} {medians[name]:10.3f} {p90:8.3f}")
    for group, names in GROUPS.items():
        slowest = max(medians[n] for n in names)
        gaps = ", ".join(f"{n} {1000 * (slowest - medians[n]):.1f}" for n in names)
        print(f"  {group}: 'not ours' gaps to the slowest (us): {gaps}")
    code_slowest = max(medians[n] for n in GROUPS["serial codes"])
    print(
        f"  genuine minus slowest 'not ours' serial code: "
        f"{1000 * (medians['genuine'] - code_slowest):.1f} us"
    )


if __name__ == "__main__":
    main()
