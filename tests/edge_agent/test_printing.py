"""The print queue against the printer simulator on a real socket."""

import time

import pytest

from edge_agent.issuing import Issuer
from edge_agent.labels import label_for
from edge_agent.printing import (
    PrintQueue,
    confirm_job,
    job_counts,
    list_jobs,
    mark_sent,
    release_job,
)
from printers.render import render_label
from printers.simulator import PrinterSimulator
from printers.zpl import extract_fields
from protocol.gs1 import ai21_from_standard, digital_link


@pytest.fixture
def printer():
    with PrinterSimulator() as sim:
        yield sim


@pytest.fixture
def line(agents):
    agent = agents.enroll(printer_timeout=0.5, print_batch=5, print_retry=0.2)
    queue = PrintQueue(agent)
    yield agent, queue
    queue.close()


def issue(agent, url, n):
    issuer = Issuer(agent)
    return [issuer.issue("WO-HAT-1", printer_url=url) for _ in range(n)]


def serials_printed(sim):
    return [next(f for f in extract_fields(z) if f.startswith("MA01-")) for z in sim.printed]


def outbox_types(agent):
    return [r["type"] for r in agent.store.conn().execute("SELECT type FROM outbox ORDER BY seq")]


def test_labels_print_in_order_and_record_printed_events(line, printer):
    agent, queue = line
    issued = issue(agent, printer.url, 12)
    result = queue.run(printer.url)
    assert result.state == "ready" and len(result.sent) == 12
    assert serials_printed(printer) == [i.serial for i in issued]
    fields = extract_fields(printer.printed[0])
    # the product has a GTIN: the QR code holds its GS1 Digital Link
    link = digital_link(
        agent.identity().verify_base_url, "04006381333931", ai21_from_standard(issued[0].serial)
    )
    assert f"QA,{link}" in fields
    assert outbox_types(agent).count("printed") == 12
    states = {r["state"] for r in agent.store.conn().execute("SELECT state FROM serials")}
    assert states == {"printed"}


@pytest.mark.parametrize("fault", ["paper_out", "head_open", "paused", "no_answer"])
def test_a_fault_pauses_the_queue_and_nothing_is_lost_or_doubled(line, printer, fault):
    agent, queue = line
    issued = issue(agent, printer.url, 8)
    printer.set_fault(fault)
    result = queue.run(printer.url)
    assert result.sent == [] and result.state == fault
    assert result.error["code"].startswith("ERR_PRINTER_")
    assert job_counts(agent)["queued"] == 8 and printer.printed == []
    state = agent.store.get_meta_json(f"printer:{printer.url}")
    assert state["state"] == fault and state["message"]
    printer.set_fault(None)
    result = queue.run(printer.url)
    assert len(result.sent) == 8
    assert serials_printed(printer) == [i.serial for i in issued]
    assert job_counts(agent)["sent"] == 8 and outbox_types(agent).count("printed") == 8


@pytest.mark.parametrize("fault", ["paper_out", "head_open", "no_answer"])
def test_a_fault_in_the_middle_of_a_run_keeps_what_the_printer_took(line, printer, fault):
    """Formats sent before the fault sit in the printer's buffer and print when it clears."""
    agent, queue = line
    issued = issue(agent, printer.url, 12)
    started = []
    real_start = queue._start_sending

    def start_and_fault_after_five(job):
        if len(started) == 5:
            printer.set_fault(fault)  # e.g. the roll runs out during the run
        started.append(job["id"])
        return real_start(job)

    queue._start_sending = start_and_fault_after_five  # observe the run; the fault is real
    result = queue.run(printer.url)
    # print_batch is 5: the head opened at the start of the second batch, whose five labels
    # the printer took into its buffer; the status check before the third batch stops the run.
    assert len(result.sent) == 10 and result.state == fault
    assert len(printer.printed) == 5 and len(printer.buffered) == 5
    printer.set_fault(None)
    queue._start_sending = real_start
    queue.run(printer.url)
    assert serials_printed(printer) == [i.serial for i in issued]


def test_an_unreachable_printer_keeps_jobs_queued_and_retries(line, printer):
    agent, queue = line
    issued = issue(agent, printer.url, 3)
    printer.refuse_connections(True)
    queue.close()
    result = queue.run(printer.url)
    assert result.state == "unreachable" and result.sent == []
    assert job_counts(agent)["queued"] == 3  # the status check failed: nothing was sent
    printer.refuse_connections(False)
    deadline = time.time() + 10
    while job_counts(agent)["sent"] < 3 and time.time() < deadline:
        queue.run(printer.url)
        time.sleep(0.05)
    assert serials_printed(printer) == [i.serial for i in issued]


def test_an_interrupted_send_is_held_and_an_unstarted_claim_is_requeued(line, printer):
    agent, queue = line
    issued = issue(agent, printer.url, 3)
    long_ago = time.time() - 3600
    with agent.store.write() as conn:  # a process that died while sending job 1 ...
        conn.execute(
            "UPDATE print_jobs SET status = 'sending', owner = 'gone:1', "
            "claimed_at = ? WHERE id = ?",
            (long_ago, issued[0].print_job),
        )
        conn.execute(
            "UPDATE print_jobs SET status = 'claimed', owner = 'gone:1', "  # ... and 2
            "claimed_at = ? WHERE id = ?",
            (long_ago, issued[1].print_job),
        )
    assert queue.recover_stale() == 1
    queue.run(printer.url)
    assert serials_printed(printer) == [issued[1].serial, issued[2].serial]
    [held] = list_jobs(agent, "held")
    assert held["id"] == issued[0].print_job and "interrupted" in held["last_error"]
    release_job(agent, held["id"])  # the operator saw no label: print it
    queue.run(printer.url)
    assert serials_printed(printer) == [i.serial for i in (issued[1], issued[2], issued[0])]


def test_a_stalled_sender_cannot_print_a_job_someone_else_printed(line, printer):
    """A process suspended after claiming loses its claim; on waking it sends nothing."""
    agent, queue = line
    [issued] = issue(agent, printer.url, 1)
    stalled = PrintQueue(agent)
    try:
        [job] = stalled._claim(printer.url, None, time.time())
        with agent.store.write() as conn:  # ... and then it stalls for minutes
            conn.execute("UPDATE print_jobs SET claimed_at = ?", (time.time() - 3600,))
        queue.run_all()  # the service settles the stale claim and prints the label
        assert serials_printed(printer) == [issued.serial]
        assert stalled._start_sending(job) is False  # the stalled process wakes up: no send
    finally:
        stalled.close()
    assert outbox_types(agent).count("printed") == 1


def test_confirming_a_held_job_records_it_printed(line, printer):
    agent, queue = line
    [issued] = issue(agent, printer.url, 1)
    with agent.store.write() as conn:
        conn.execute("UPDATE print_jobs SET status = 'held'")
    confirm_job(agent, issued.print_job)
    assert job_counts(agent)["sent"] == 1 and outbox_types(agent) == ["issued", "printed"]
    from edge_agent.errors import EdgeError

    with pytest.raises(EdgeError):
        confirm_job(agent, issued.print_job)
    with pytest.raises(EdgeError):
        release_job(agent, 999)


def test_file_spool_printer(line, tmp_path):
    agent, queue = line
    url = f"file://{tmp_path / 'labels'}?create=1"
    issued = issue(agent, url, 3)
    assert len(queue.run(url).sent) == 3
    files = sorted(p.name for p in (tmp_path / "labels").iterdir())
    assert files == sorted(f"{i.serial}.zpl" for i in issued)


def test_the_cli_counts_labels_another_process_printed(line, printer, capsys):
    """`issue --print` and the agent's service may share the work; none is reported missing."""
    import threading

    from edge_agent.cli import _print_jobs
    from edge_agent.printing import PrintQueue as Queue

    agent, queue = line
    issued = issue(agent, printer.url, 6)
    jobs = [i.print_job for i in issued]
    service = Queue(agent)
    try:
        assert len(service.run(printer.url, jobs[:2]).sent) == 2  # the service was first
        [third] = service._claim(printer.url, [jobs[2]], time.time())
        assert service._start_sending(third)  # ... and is sending the third right now

        def finish():
            time.sleep(0.3)
            label, template = label_for(agent, third["serial"])
            service._transport(printer.url).send(
                render_label(label, template, "zpl"), job_name=third["serial"]
            )
            mark_sent(agent, third, printer.url, service.owner)

        worker = threading.Thread(target=finish)
        worker.start()
        _print_jobs(agent, printer.url, jobs)  # would exit 3 if it missed any
        worker.join()
    finally:
        service.close()
    assert "printed 6 of 6 labels" in capsys.readouterr().err
    assert sorted(serials_printed(printer)) == sorted(i.serial for i in issued)
