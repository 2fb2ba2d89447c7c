"""A revoked line PC stops issuing and pushing but keeps its events; a rotated token is stored."""

import datetime as dt
import json
import urllib.request

import pytest
from click.testing import CliRunner

from central import agents as central_agents
from edge_agent import outbox
from edge_agent.cli import main
from edge_agent.errors import EdgeError
from edge_agent.issuing import Issuer
from edge_agent.service import Service
from tests.conftest import runtime
from tests.procs import wait_for

NOW = dt.datetime.now(dt.UTC)


def edge(home, *args, stdin=None):
    return CliRunner().invoke(main, ["--home", str(home), *args], input=stdin)


def revoke(tenant, agent, reason="PC stolen from line 1"):
    central_agents.revoke_agent(
        runtime(tenant.app).store, agent.identity().agent_id, reason, "cli:alice", NOW
    )


def reinstate(tenant, agent):
    central_agents.reinstate_agent(
        runtime(tenant.app).store, agent.identity().agent_id, "found it", "cli:alice", NOW
    )


def get_json(url):
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.loads(resp.read())


def test_a_revoked_agent_refuses_to_issue_and_keeps_its_events(agents, tenant):
    agent = agents.enroll()
    home = agent.config.home_path
    assert edge(home, "issue", "--work-order", "WO-HAT-1", "--count", "3").exit_code == 0
    revoke(tenant, agent)
    result = edge(home, "sync")
    assert result.exit_code == 2
    summary = json.loads(result.stdout)
    assert summary["error"]["code"] == "ERR_AGENT_REVOKED"
    assert summary["outbox"]["pending"] == 3  # every unsynced event is kept
    result = edge(home, "issue", "--work-order", "WO-HAT-1")
    assert result.exit_code == 1
    assert "ERR_AGENT_REVOKED" in result.output and "PC stolen from line 1" in result.output
    assert "reinstate" in result.output  # it says what to do
    assert result.output.count("ERR_") == 1  # one clear line, no noise before it
    status = json.loads(edge(home, "status").stdout)
    assert "PC stolen from line 1" in status["revoked"]["central_said"]
    assert "revoked by central" in status["revoked"]["message"]
    assert status["revoked"]["unsynced_events"] == 3
    assert [a["kind"] for a in status["alerts"]] == ["agent_revoked"]
    # Issuing in-process is refused inside the transaction, with nothing written.
    with pytest.raises(EdgeError) as exc:
        Issuer(agent).issue("WO-HAT-1")
    assert exc.value.code == "ERR_AGENT_REVOKED"
    assert outbox.counts(agent)["pending"] == 3
    # Pushing stops: the worker sends nothing (central would refuse) and loses nothing.
    worker = outbox.SyncWorker(agent)
    worker.run()
    assert worker.last_error["code"] == "ERR_AGENT_REVOKED"
    assert outbox.counts(agent)["pending"] == 3


def test_a_reinstated_agent_clears_the_mark_at_its_next_good_call(agents, tenant):
    agent = agents.enroll()
    home = agent.config.home_path
    # `issue` reports its high-water mark when it ends; one more serial is not reported.
    assert edge(home, "issue", "--work-order", "WO-OEM-1", "--count", "2").exit_code == 0
    Issuer(agent).issue("WO-OEM-1")
    revoke(tenant, agent)
    assert edge(home, "sync").exit_code == 2
    reinstate(tenant, agent)
    status = json.loads(edge(home, "status").stdout)  # its ping succeeds
    assert status["revoked"] is None and status["alerts"] == []
    summary = json.loads(edge(home, "sync").stdout)
    # The lease was closed at the highest number central had seen (the reported mark, 2): the
    # third serial goes to review, where a supervisor releases it if the PC was not stolen.
    assert summary["results"] == {"accepted": 2, "quarantined": 1}
    result = edge(home, "issue", "--work-order", "WO-OEM-1")
    assert result.exit_code == 0, result.output  # the old leases are closed; it leased anew
    issued = json.loads(result.stdout)
    assert issued["lease_id"] not in {
        r["lease_id"]
        for r in agent.store.conn().execute("SELECT lease_id FROM leases")
        if r["lease_id"] != issued["lease_id"]
    }
    closed = (
        agent.store.conn()
        .execute("SELECT status, central_status FROM leases WHERE central_status = 'revoked'")
        .fetchall()
    )
    assert closed and {r["status"] for r in closed} == {"closed"}


def test_the_service_stops_pushing_shows_it_and_resumes_after_reinstatement(agents, tenant):
    agent = agents.enroll(
        operator_port=0, sync_interval=0.2, pool_interval=0.5, backoff_base=0.1, backoff_max=0.5
    )
    svc = Service(agent)
    svc.start()
    try:
        Issuer(agent).issue("WO-HAT-1")
        wait_for(lambda: outbox.counts(agent)["done"] == 1)
        revoke(tenant, agent, "line retired")
        Issuer(agent).issue("WO-HAT-1")  # issued before the agent learned it was revoked
        page = svc.operator_url
        wait_for(lambda: get_json(page + "status.json")["revoked"] is not None)
        assert outbox.counts(agent)["pending"] == 1
        with urllib.request.urlopen(page, timeout=10) as resp:
            html = resp.read().decode()
        assert "REVOKED BY CENTRAL" in html and "line retired" in html
        with urllib.request.urlopen(page + "metrics", timeout=10) as resp:
            metrics = resp.read().decode()
        assert "agent_revoked 1.0" in metrics
        assert 'alerts_open{kind="agent_revoked"} 1.0' in metrics
        reinstate(tenant, agent)
        wait_for(lambda: get_json(page + "status.json")["revoked"] is None)
        wait_for(lambda: outbox.counts(agent)["pending"] == 0)
        assert outbox.counts(agent)["quarantined"] == 1  # above the mark: held for review
    finally:
        svc.stop()


def test_a_rotated_token_is_read_from_stdin_and_checked(agents, tenant):
    agent = agents.enroll()
    home = agent.config.home_path
    old = agent.identity().token
    token = central_agents.rotate_token(
        runtime(tenant.app).store, agent.identity().agent_id, "cli:alice", NOW
    )
    result = edge(home, "sync")
    status = json.loads(edge(home, "status").stdout)
    assert status["central"]["error"]["code"] == "ERR_UNAUTHORIZED"
    assert [a["kind"] for a in status["alerts"]] == ["token_rejected"]
    assert "set-token" in status["alerts"][0]["message"]
    for bad, code in (("", "ERR_TOKEN"), ("two words", "ERR_TOKEN"), ("x" * 200, "ERR_TOKEN")):
        result = edge(home, "set-token", stdin=bad)
        assert result.exit_code == 1 and code in result.output
    result = edge(home, "set-token", stdin="llt_not-a-token-central-knows\n")
    assert result.exit_code == 1 and "does not know this token" in result.output
    assert agents.open(home).identity().token == old  # kept
    result = edge(home, "set-token", stdin=token + "\n")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"ok": True, "revoked": False, "verified": True}
    assert token not in result.output
    status = json.loads(edge(home, "status").stdout)
    assert status["central"]["reachable"] is True and status["alerts"] == []
    result = CliRunner().invoke(main, ["--home", str(home), "set-token", "--token", token])
    assert result.exit_code == 2  # there is no way to pass it on the command line


def test_set_token_while_central_is_down_stores_it_unchecked(agents):
    agent = agents.enroll()
    with agent.store.write() as conn:
        agent.store.set_meta(conn, "central_url", "http://127.0.0.1:9")
    result = edge(agent.config.home_path, "set-token", stdin="llt_new\n")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["verified"] is None
    assert agents.open(agent.config.home_path).identity().token == "llt_new"
