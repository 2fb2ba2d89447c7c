"""Job tickets, tokens and the dual link: the reference's validation scenarios on the edge."""

import json
import subprocess

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from central import tables as T
from edge_agent import links, outbox, reconcile
from edge_agent.cli import main
from edge_agent.errors import EdgeError
from edge_agent.issuing import Issuer
from edge_agent.status import build_status
from edge_agent.web import create_operator_app
from tests.conftest import runtime
from tests.procs import cli, env_with, json_lines


def edge(home, *args):
    return CliRunner().invoke(main, ["--home", str(home), *args])


def snapshot(agent):
    """Everything the agent has written about serials (to prove a refusal wrote nothing)."""
    conn = agent.store.conn()
    return (
        conn.execute("SELECT * FROM serials ORDER BY serial").fetchall(),
        conn.execute("SELECT event_id FROM outbox ORDER BY seq").fetchall(),
        conn.execute("SELECT * FROM work_orders ORDER BY number").fetchall(),
    )


def rows(snap):
    return [[tuple(r) for r in part] for part in snap]


def registry_links(tenant, serials):
    reg = T.registry.c
    with runtime(tenant.app).store.read() as conn:
        found = conn.execute(
            sa.select(reg.serial, reg.job_ticket, reg.token, reg.linked_work_order).where(
                reg.serial.in_(serials)
            )
        ).all()
    return {r.serial: (r.job_ticket, r.token, r.linked_work_order) for r in found}


def agent_links(agent, serials):
    conn = agent.store.conn()
    return {
        r["serial"]: (r["job_ticket"], r["token"], r["linked_work_order"])
        for r in conn.execute(
            f"SELECT serial, job_ticket, token, linked_work_order FROM serials "
            f"WHERE serial IN ({','.join('?' * len(serials))})",
            serials,
        )
    }


@pytest.mark.parametrize(
    "work_order, kind, value",
    [
        ("WO-HAT-1", "work_order", "WO-HAT-1"),  # 1. a HAT serial with a manufacturing order
        ("WO-OEM-1", "token", "TK-9"),  # 2. an OEM serial with a token
    ],
)
def test_context_mismatch_is_refused_and_writes_nothing(agents, work_order, kind, value):
    agent = agents.enroll()
    serial = Issuer(agent).issue(work_order).serial
    before = rows(snapshot(agent))
    option = "--" + kind.replace("_", "-")
    result = edge(agent.config.home_path, "link", serial, option, value)
    assert result.exit_code == 1 and "ERR_CONTEXT_MISMATCH" in result.output
    app = create_operator_app(lambda: {}, agent)
    resp = app.test_client().post("/link", json={"serial": serial, kind: value})
    assert resp.status_code == 409 and resp.json["error"]["code"] == "ERR_CONTEXT_MISMATCH"
    assert rows(snapshot(agent)) == before


def test_context_rules_per_production_type(agents):
    """3./4. HAT needs a job ticket or token; OEM a work order or job ticket; nothing else."""
    agent = agents.enroll()
    issuer = Issuer(agent)
    hat, oem = issuer.issue("WO-HAT-1").serial, issuer.issue("WO-OEM-1").serial
    before = rows(snapshot(agent))
    for serial, kind, value, code in (
        (hat, "work_order", "WO-HAT-1", "ERR_CONTEXT_MISMATCH"),
        (oem, "token", "TK-1", "ERR_CONTEXT_MISMATCH"),
        (oem, "work_order", "WO-HAT-1", "ERR_CONTEXT_MISMATCH"),  # not the serial's order
        (hat, "job_ticket", "bad ticket", "ERR_LINK_TARGET"),
        (hat, "token", "", "ERR_LINK_TARGET"),
        (hat, "token", "x" * 65, "ERR_LINK_TARGET"),
        (hat, "token", "TK\x00", "ERR_LINK_TARGET"),
        ("MA01-HAT-BAG-20250101-00001-AAAA-A", "token", "TK-1", "ERR_NOT_OURS"),
        (hat, "colour", "red", "ERR_LINK_TARGET"),
    ):
        with pytest.raises(EdgeError) as exc:
            links.link(agent, serial, kind, value)
        assert exc.value.code == code, (serial, kind, value)
    assert rows(snapshot(agent)) == before
    with pytest.raises(EdgeError) as exc:  # pre-generating an OEM ticket is fine, spawning not
        links.pregenerate(agent, issuer, "WO-OEM-1", "JT-OEM", 2)
        links.spawn(agent, "JT-OEM", ["TK-1"])
    assert exc.value.code == "ERR_CONTEXT_MISMATCH"
    assert links.link(agent, hat, "token", "TK-1")["state"] == "linked"
    assert links.link(agent, oem, "work_order", "WO-OEM-1")["state"] == "linked"
    with pytest.raises(EdgeError) as exc:  # a serial is linked once
        links.link(agent, hat, "job_ticket", "JT-1")
    assert exc.value.code == "ERR_ILLEGAL_TRANSITION"
    other = issuer.issue("WO-HAT-1").serial
    with pytest.raises(EdgeError) as exc:  # one piece, one serial
        links.link(agent, other, "token", "TK-1")
    assert exc.value.code == "ERR_TOKEN_LINKED"


def test_partial_spawn_never_reuses_a_serial(agents, tenant):
    """10 pre-generated, 6 spawned, then 4 more: the remaining 4, no duplicates."""
    agent = agents.enroll()
    home = agent.config.home_path
    result = edge(home, "pregenerate", "--work-order", "WO-HAT-1", "--job-ticket", "JT-7")
    assert result.exit_code == 2  # --count is required
    result = edge(
        home, "pregenerate", "--work-order", "WO-HAT-1", "--job-ticket", "JT-7", "--count", "10"
    )
    assert result.exit_code == 0, result.output
    reserved = [r["serial"] for r in json_lines(result.stdout)]
    assert len(reserved) == 10 and all(r["job_ticket"] == "JT-7" for r in json_lines(result.stdout))
    first = [f"TK-{i}" for i in range(1, 7)]
    result = edge(
        home, "spawn", "--job-ticket", "JT-7", *[a for t in first for a in ("--token", t)]
    )
    assert result.exit_code == 0, result.output
    spawned = json_lines(result.stdout)
    assert [s["token"] for s in spawned] == first and all(s["new"] for s in spawned)
    assert [s["serial"] for s in spawned] == reserved[:6]  # in order
    conn = agent.store.conn()
    unspawned = conn.execute(
        "SELECT serial FROM serials WHERE job_ticket = 'JT-7' AND spawned_at IS NULL ORDER BY rowid"
    ).fetchall()
    assert [r["serial"] for r in unspawned] == reserved[6:]
    # Asking for more than is left spawns nothing at all.
    before = rows(snapshot(agent))
    with pytest.raises(EdgeError) as exc:
        links.spawn(agent, "JT-7", [f"TK-{i}" for i in range(7, 12)])
    assert exc.value.code == "ERR_SPAWN_SHORT" and "4 unspawned" in exc.value.message
    assert rows(snapshot(agent)) == before
    # A token spawned before gets its own serial back; the 4 new ones get the other 4.
    again = links.spawn(agent, "JT-7", ["TK-2", "TK-7", "TK-8", "TK-9", "TK-10", "TK-7"])
    assert [(s.token, s.new) for s in again] == [
        ("TK-2", False),
        ("TK-7", True),
        ("TK-8", True),
        ("TK-9", True),
        ("TK-10", True),
    ]
    assert again[0].serial == reserved[1]
    assert [s.serial for s in again[1:]] == reserved[6:]
    with pytest.raises(EdgeError) as exc:
        links.spawn(agent, "JT-7", ["TK-11"])
    assert exc.value.code == "ERR_SPAWN_SHORT"
    with pytest.raises(EdgeError) as exc:
        links.spawn(agent, "JT-NONE", ["TK-11"])
    assert exc.value.code == "ERR_JOB_TICKET_UNKNOWN"
    counts = build_status(agent, probe=False)["links"]
    assert counts == {"pre_generated": 10, "spawned": 10}
    # The dual link: central's registry holds the same targets as the agent.
    assert json.loads(edge(home, "sync").stdout)["ok"] is True
    assert registry_links(tenant, reserved) == agent_links(agent, reserved)
    assert registry_links(tenant, reserved)[reserved[0]] == ("JT-7", "TK-1", None)
    report = reconcile.reconcile(agent)
    assert report.links_mismatch == [] and report.confirmed == report.leases


def test_a_job_ticket_belongs_to_one_work_order(agents):
    agent = agents.enroll()
    issuer = Issuer(agent)
    links.pregenerate(agent, issuer, "WO-HAT-1", "JT-1", 2)
    before = rows(snapshot(agent))
    with pytest.raises(EdgeError) as exc:
        links.pregenerate(agent, issuer, "WO-OEM-1", "JT-1", 2)
    assert exc.value.code == "ERR_CONTEXT_MISMATCH"
    with pytest.raises(EdgeError) as exc:  # all or nothing: more than the pool holds
        links.pregenerate(agent, issuer, "WO-HAT-1", "JT-1", 500)
    assert exc.value.code == "ERR_POOL_EMPTY"
    assert rows(snapshot(agent)) == before
    serial = issuer.issue("WO-HAT-1").serial
    reserved = agent.store.conn().execute("SELECT serial FROM serials WHERE job_ticket = 'JT-1'")
    with pytest.raises(EdgeError) as exc:
        links.link(agent, reserved.fetchone()[0], "job_ticket", "JT-2")
    assert exc.value.code == "ERR_CONTEXT_MISMATCH"
    assert links.link(agent, serial, "job_ticket", "JT-2")["job_ticket"] == "JT-2"


def test_the_operator_page_links_and_spawns_and_refuses_hostile_input(agents):
    agent = agents.enroll()
    issuer = Issuer(agent)
    links.pregenerate(agent, issuer, "WO-HAT-1", "JT-P", 3)
    serial = issuer.issue("WO-OEM-1").serial
    page = create_operator_app(lambda: {}, agent, allowed_hosts={"127.0.0.1:8765"})
    client = page.test_client()
    host = {"Host": "127.0.0.1:8765"}
    before = rows(snapshot(agent))
    for body, code, status in (
        ({"serial": serial}, "ERR_LINK_TARGET", 400),
        ({"serial": serial, "token": "a", "work_order": "b"}, "ERR_LINK_TARGET", 400),
        ({"serial": 7, "work_order": "WO-OEM-1"}, "ERR_NOT_OURS", 404),
        ({"serial": serial, "work_order": ["WO-OEM-1"]}, "ERR_LINK_TARGET", 400),
        ({"serial": serial, "work_order": None}, "ERR_LINK_TARGET", 400),
        ({"serial": "x" * 5000, "job_ticket": "JT"}, "ERR_NOT_OURS", 404),
        ({"serial": serial, "token": "TK-1"}, "ERR_CONTEXT_MISMATCH", 409),
        ([1, 2], "ERR_LINK_TARGET", 400),
    ):
        resp = client.post("/link", json=body, headers=host)
        assert (resp.status_code, resp.json["error"]["code"]) == (status, code), body
    for raw, ctype in (
        (b"serial=x&token=y", "application/x-www-form-urlencoded"),
        (b"{", "application/json"),
    ):
        resp = client.post("/link", data=raw, headers={**host, "Content-Type": ctype})
        assert resp.status_code == 400 and resp.json["ok"] is False
    for body, code in (
        ({"job_ticket": "JT-P"}, "ERR_LINK_TARGET"),
        ({"job_ticket": "JT-P", "tokens": "TK-1"}, "ERR_LINK_TARGET"),
        ({"job_ticket": "JT-P", "tokens": []}, "ERR_LINK_TARGET"),
        ({"job_ticket": "JT-P", "tokens": [{"a": 1}]}, "ERR_LINK_TARGET"),
        ({"job_ticket": 5, "tokens": ["TK-1"]}, "ERR_LINK_TARGET"),
        ({"job_ticket": "JT-P", "tokens": ["T"] * 1001}, "ERR_LINK_TARGET"),
        ({"job_ticket": "JT-P", "tokens": ["A", "B", "C", "D"]}, "ERR_SPAWN_SHORT"),
    ):
        resp = client.post("/spawn", json=body, headers=host)
        assert resp.status_code in (400, 409) and resp.json["error"]["code"] == code, body
    resp = client.post(
        "/spawn", data=b"x" * 20_000, headers={**host, "Content-Type": "application/json"}
    )
    assert resp.status_code == 413 and resp.json["error"]["code"] == "ERR_TOO_LARGE"
    resp = client.get("/link", headers=host)
    assert resp.status_code == 405 and resp.json["error"]["code"] == "ERR_METHOD_NOT_ALLOWED"
    resp = client.post(
        "/link",
        json={"serial": serial, "work_order": "WO-OEM-1"},
        headers={"Host": "evil.example:8765"},
    )
    assert resp.status_code == 403
    assert rows(snapshot(agent)) == before
    resp = client.post(
        "/link", json={"serial": serial.lower(), "work_order": "WO-OEM-1"}, headers=host
    )
    assert resp.status_code == 200 and resp.json["state"] == "linked"
    resp = client.post("/spawn", json={"job_ticket": "JT-P", "tokens": ["A", "B"]}, headers=host)
    assert resp.status_code == 200 and [s["token"] for s in resp.json["spawned"]] == ["A", "B"]
    assert outbox.counts(agent)["pending"] == len(before[1]) + 3


@pytest.mark.slow
def test_no_duplicates_under_concurrent_generation_and_spawn(agents, tenant):
    agent = agents.enroll(marks_report=False, lease_block=100, pool_target=200, low_water=100)
    home = agent.config.home_path

    def run_all(commands):
        procs = [
            subprocess.Popen(
                [cli("lineledger-edge"), "--home", str(home), *args],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=env_with(),
            )
            for args in commands
        ]
        outs = []
        for p in procs:
            out, err = p.communicate(timeout=180)
            assert p.returncode == 0, err
            outs += json_lines(out)
        return outs

    pre = ["pregenerate", "--work-order", "WO-HAT-1", "--job-ticket", "JT-C", "--count", "10"]
    reserved = run_all([pre] * 4)
    assert len({r["serial"] for r in reserved}) == 40
    batches = [
        ["spawn", "--job-ticket", "JT-C", *[a for i in range(10) for a in ("--token", f"P{b}-{i}")]]
        for b in range(4)
    ]
    spawned = run_all(batches)
    assert len(spawned) == 40 and all(s["new"] for s in spawned)
    assert len({s["serial"] for s in spawned}) == 40  # no serial went to two pieces
    assert {s["serial"] for s in spawned} == {r["serial"] for r in reserved}
    conn = agent.store.conn()
    assert conn.execute(
        "SELECT COUNT(DISTINCT token), COUNT(*) FROM serials WHERE job_ticket = 'JT-C'"
    ).fetchone()[:] == (40, 40)
    assert json.loads(edge(home, "sync").stdout)["ok"] is True
    serials = [s["serial"] for s in spawned]
    assert registry_links(tenant, serials) == agent_links(agent, serials)
