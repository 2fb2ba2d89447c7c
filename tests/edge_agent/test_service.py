"""The unattended service: scheduler jobs and the operator page, on real sockets."""

import json
import shutil
import subprocess
import urllib.request

import pytest

from edge_agent import outbox
from edge_agent.issuing import Issuer
from edge_agent.printing import job_counts
from edge_agent.service import Service
from printers.simulator import PrinterSimulator
from tests.procs import wait_for


@pytest.fixture
def service(agents):
    agent = agents.enroll(
        operator_port=0, sync_interval=0.2, pool_interval=0.5, printer_timeout=0.5
    )
    with PrinterSimulator() as sim:
        svc = Service(agent, sim.url)
        svc.start()
        try:
            yield svc, agent, sim
        finally:
            svc.stop()


def get_json(url):
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.loads(resp.read())


def test_the_service_syncs_prints_and_tops_up_by_itself(service):
    svc, agent, sim = service
    issuer = Issuer(agent)
    issued = [issuer.issue("WO-HAT-1", printer_url=sim.url) for _ in range(150)]
    wait_for(lambda: job_counts(agent)["sent"] == 150)
    wait_for(lambda: outbox.counts(agent)["pending"] == 0 and outbox.counts(agent)["done"] == 300)
    assert len(sim.printed) == 150
    # 150 of 200 used: below the low-water mark, so the pool job leased more. It may have run
    # while the 150 were being issued (a loaded machine issues slower): then it topped up
    # before the last ones were used, and the pool ends above the mark rather than full.
    scope = issued[0].scope

    def leased():
        return (
            agent.store.conn()
            .execute(
                "SELECT SUM(last_seq - first_seq + 1) FROM leases WHERE scope_key = ?", (scope,)
            )
            .fetchone()[0]
        )

    wait_for(
        lambda: (
            leased() > 200 and svc.status()["pool"][scope]["remaining"] >= agent.config.low_water
        )
    )
    status = get_json(svc.operator_url + "status.json")
    assert status["printer"]["state"] == "ready" and status["central"]["reachable"] is True
    assert status["outbox"]["pending"] == 0
    with urllib.request.urlopen(svc.operator_url + "metrics", timeout=10) as resp:
        metrics = resp.read().decode()
    assert "link_outbox_pending_count 0.0" in metrics
    assert "link_outbox_dead_count 0.0" in metrics and "printer_ready 1.0" in metrics


def test_operator_page_shows_a_printer_fault(service):
    svc, agent, sim = service
    sim.set_fault("paper_out")
    Issuer(agent).issue("WO-HAT-1", printer_url=sim.url)
    wait_for(lambda: get_json(svc.operator_url + "status.json")["printer"]["state"] == "paper_out")
    with urllib.request.urlopen(svc.operator_url, timeout=10) as resp:
        page = resp.read().decode()
    assert "paper_out" in page and "out of labels" in page
    sim.set_fault(None)
    wait_for(lambda: job_counts(agent)["sent"] == 1)


@pytest.mark.browser
def test_operator_page_in_a_real_browser(service, tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.fail(
            "headless Chromium is needed (apt-get install chromium); bash .ci/run installs it",
            pytrace=False,
        )
    svc, agent, sim = service
    sim.set_fault("head_open")
    Issuer(agent).issue("WO-HAT-1", printer_url=sim.url)
    wait_for(lambda: svc.status()["printer"]["state"] == "head_open")
    out = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'chrome'}",
            "--virtual-time-budget=5000",
            "--dump-dom",
            svc.operator_url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    dom = out.stdout
    assert 'data-state="head_open"' in dom and ">Print head open</div>" in dom
    assert 'id="central-state">online<' in dom
    # the pool table, rebuilt by the page's script (a scope breaks only after its hyphens)
    assert "MA01-<wbr>HAT-<wbr>BAG-" in dom


def test_operator_page_refuses_other_host_names(service):
    """DNS rebinding: a page from another name that resolves to 127.0.0.1 is refused."""
    svc, agent, sim = service
    port = svc.operator_url.rstrip("/").rsplit(":", 1)[1]
    req = urllib.request.Request(
        svc.operator_url + "status.json", headers={"Host": f"evil.example:{port}"}
    )
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(req, timeout=10)
    assert exc.value.code == 403
    exc.value.close()
    for host in (f"127.0.0.1:{port}", f"localhost:{port}"):
        ok = urllib.request.Request(svc.operator_url + "status.json", headers={"Host": host})
        with urllib.request.urlopen(ok, timeout=10) as resp:
            assert resp.status == 200


def test_a_reconcile_that_could_not_reach_central_runs_again_once_a_push_does(agents):
    """Not an hour later: the reconcile after an outage confirms what was delivered."""
    from edge_agent import reconcile
    from edge_agent.errors import CentralUnreachable

    agent = agents.enroll(operator_port=0)
    svc = Service(agent)  # not started: its jobs are called one by one
    real = reconcile.reconcile
    calls = []

    def flaky(a):
        calls.append(1)
        if len(calls) == 1:
            raise CentralUnreachable("timed out")
        return real(a)

    reconcile.reconcile, saved = flaky, reconcile.reconcile
    try:
        svc._job("reconcile", svc._reconcile)()
        assert svc._reconcile_failed and "reconcile" in svc.last_errors
        Issuer(agent).issue("WO-HAT-1")
        svc._sync()  # a push reaches central: the reconcile is wanted again
        assert svc._reconcile_wanted.is_set()
        svc._job("reconcile", svc._reconcile)()
        assert len(calls) == 2 and not svc._reconcile_failed
        assert "reconcile" not in svc.last_errors
    finally:
        reconcile.reconcile = saved
        svc.queue.close()


def test_every_job_runs_however_late_it_starts(service):
    svc, _agent, _sim = service
    assert {job.id: job.misfire_grace_time for job in svc.scheduler.get_jobs()} == {
        job.id: None for job in svc.scheduler.get_jobs()
    }
    assert len(svc.scheduler.get_jobs()) >= 6
