"""The label odometer check: the comparison rules, and the hold with the simulator on a socket."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from edge_agent import odometer
from edge_agent.cli import main as edge_main
from edge_agent.errors import ERR_PRINTER_BUSY, ERR_PRINTER_ODOMETER, EdgeError
from edge_agent.issuing import Issuer
from edge_agent.odometer import HELD, NEW, OK, WAITING, OdometerRecord, decide
from edge_agent.printing import PrintQueue, confirm_job, job_counts, list_jobs, mark_sent
from edge_agent.status import build_status
from edge_agent.web import create_operator_app
from printers.odometer import LabelOdometer
from printers.simulator import PrinterSimulator
from printers.status import PrinterStatus
from printers.zpl import extract_fields

# -- the rules, without I/O -------------------------------------------------------------------

BASE = OdometerRecord(
    "tcp://p:9100", labels_sent=50, baseline_odometer=1000, baseline_sent=40, state=OK
)


def test_the_first_contact_takes_the_baseline_when_the_printer_is_idle() -> None:
    fresh = OdometerRecord("tcp://p:9100", labels_sent=7)
    assert decide(fresh, 1234, True, 0, 0) == odometer.Decision(OK, (1234, 7), event="baseline")
    assert decide(fresh, 1234, False, 0, 0).state == WAITING


@pytest.mark.parametrize(
    ("count", "in_flight", "tolerance", "state", "unknown", "uncounted"),
    [
        (1010, 0, 0, OK, 0, 0),  # 10 printed, 10 sent
        (1013, 0, 0, HELD, 3, 0),  # three labels nobody here sent
        (1013, 0, 3, OK, 3, 0),  # within the tolerance
        (1013, 0, 2, HELD, 3, 0),
        (1012, 2, 0, OK, 0, 0),  # two being sent by another process right now
        (1006, 0, 0, OK, 0, 4),  # four still in the printer, or lost: never a hold
        (1000, 0, 0, OK, 0, 10),
    ],
)
def test_labels_printed_beyond_those_sent_hold(
    count: int, in_flight: int, tolerance: int, state: str, unknown: int, uncounted: int
) -> None:
    decision = decide(BASE, count, True, in_flight, tolerance)
    assert (decision.state, decision.unknown, decision.uncounted) == (state, unknown, uncounted)
    assert decision.baseline is None  # the baseline stays: uncounted labels may still print
    assert decision.event == ("mismatch" if state == HELD else None)


def test_a_lower_count_is_another_printer_a_new_baseline_and_no_hold() -> None:
    decision = decide(BASE, 20, True, 0, 0)
    assert decision.state == OK and decision.baseline == (20, 50)
    assert decision.event == "replaced" and "went down from 1000 to 20" in (decision.note or "")
    assert decide(BASE, 20, False, 0, 0).state == WAITING  # busy: the baseline waits


def test_a_hold_is_lifted_only_by_the_labels_being_accounted_for() -> None:
    held = OdometerRecord(**{**BASE.__dict__, "state": HELD, "unknown": 3})
    assert decide(held, 1013, True, 0, 0) == odometer.Decision(HELD, unknown=3)  # no new log
    assert decide(held, 1014, True, 0, 0).event == "mismatch"  # one more: logged again
    assert decide(held, 20, True, 0, 0).state == HELD  # a swap does not lift it
    # the operator confirmed the held jobs whose labels came out: the agent's count caught up
    caught_up = OdometerRecord(**{**held.__dict__, "labels_sent": 53})
    assert decide(caught_up, 1013, True, 0, 0).event == "resolved"


# -- with the simulator on a socket -----------------------------------------------------------


@pytest.fixture
def printer():
    with PrinterSimulator(odometer_start=1000) as sim:
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


def next_seqs(agent):
    return {
        r["lease_id"]: r["next_seq"]
        for r in agent.store.conn().execute("SELECT lease_id, next_seq FROM leases")
    }


def log_events(agent, url):
    return [e["event"] for e in reversed(odometer.history(agent, url))]


def edge(agent, *args):
    return CliRunner().invoke(edge_main, ["--home", str(agent.config.home_path), *args])


def test_the_first_contact_sets_the_baseline_and_sent_labels_keep_it_in_step(line, printer):
    agent, queue = line
    issue(agent, printer.url, 4)
    assert len(queue.run(printer.url).sent) == 4
    rec = odometer.record(agent, printer.url)
    assert (rec.state, rec.baseline_odometer, rec.baseline_sent) == (OK, 1000, 0)
    # read again after the batch (the run asks once more before it ends): in step
    assert (rec.labels_sent, rec.printer_count, rec.unknown) == (4, 1004, 0)
    issue(agent, printer.url, 2)
    queue.run(printer.url)
    rec = odometer.record(agent, printer.url)
    assert (rec.state, rec.labels_sent, rec.printer_count) == (OK, 6, 1006)
    assert log_events(agent, printer.url) == ["baseline"]
    assert "in step" in rec.to_dict()["summary"]


def test_labels_printed_elsewhere_hold_the_queue_and_its_waiting_jobs(line, printer):
    agent, queue = line
    issue(agent, printer.url, 3)
    queue.run(printer.url)
    printer.add_labels(2)  # e.g. printed by this agent's newer database copy, now lost
    waiting = issue(agent, printer.url, 3)
    result = queue.run(printer.url)
    assert result.sent == [] and result.state == HELD
    assert result.error["code"] == ERR_PRINTER_ODOMETER
    assert "2 labels this agent has no record of" in result.error["message"]
    assert "confirm-odometer --printer " + printer.url in result.error["message"]
    assert len(printer.printed) == 3
    held = list_jobs(agent, "held")
    assert sorted(j["id"] for j in held) == sorted(i.print_job for i in waiting)
    assert all(j["last_error"].startswith("ERR_PRINTER_ODOMETER: ") for j in held)
    status = build_status(agent, probe=False, printer_url=printer.url)
    assert status["printer"]["state"] == HELD and status["printer"]["code"] == ERR_PRINTER_ODOMETER
    odo = status["printer"]["odometer"]
    assert (
        odo["held"]
        and odo["unknown"] == 2
        and odo["since_baseline"]
        == {
            "printed": 5,
            "sent": 3,
        }
    )
    assert log_events(agent, printer.url) == ["baseline", "mismatch"]
    # the hold outlives a printer fault: it is still what the operator sees
    printer.set_fault("paper_out")
    assert queue.run(printer.url).state == "paper_out"
    assert build_status(agent, probe=False, printer_url=printer.url)["printer"]["state"] == HELD


def test_issue_and_reprint_are_refused_before_any_number_is_used(line, printer):
    agent, queue = line
    [done] = issue(agent, printer.url, 1)
    queue.run(printer.url)
    printer.add_labels(1)
    before = next_seqs(agent)
    result = edge(
        agent, "issue", "--work-order", "WO-HAT-1", "--count", "2", "--print",
        "--printer", printer.url,
    )  # fmt: skip
    assert result.exit_code == 1 and "ERR_PRINTER_ODOMETER:" in result.output
    assert "Traceback" not in result.output and result.exception.__class__ is SystemExit
    assert next_seqs(agent) == before
    assert agent.store.conn().execute("SELECT COUNT(*) FROM serials").fetchone()[0] == 1
    result = edge(agent, "reprint", done.serial, "--reason", "smudged", "--printer", printer.url)
    assert result.exit_code == 1 and "ERR_PRINTER_ODOMETER:" in result.output
    assert job_counts(agent)["queued"] == 0
    # issuing without printing, or on another printer, goes on
    assert edge(agent, "issue", "--work-order", "WO-HAT-1").exit_code == 0


def test_the_refusal_stands_while_the_printer_cannot_be_reached(line, printer):
    agent, queue = line
    issue(agent, printer.url, 1)
    queue.run(printer.url)
    printer.add_labels(1)
    queue.run(printer.url)
    printer.refuse_connections(True)
    with pytest.raises(EdgeError) as caught:
        odometer.refuse_if_held(agent, printer.url)
    assert caught.value.code == ERR_PRINTER_ODOMETER
    result = edge(agent, "issue", "--work-order", "WO-HAT-1", "--print", "--printer", printer.url)
    assert result.exit_code == 1 and "ERR_PRINTER_ODOMETER:" in result.output


def test_a_supervisor_confirms_numbers_are_skipped_and_printing_resumes(line, printer):
    agent, queue = line
    issue(agent, printer.url, 2)
    queue.run(printer.url)
    printer.add_labels(3)
    waiting = issue(agent, printer.url, 2)
    queue.run(printer.url)
    before = next_seqs(agent)
    result = edge(
        agent, "printer", "confirm-odometer", "--printer", printer.url,
        "--reason", "restored from Monday's copy; three labels found and scrapped",
        "--by", "M. Durand", "--requeue-held",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["ok"] and out["was_held"] and out["unknown_labels"] == 3
    assert out["by"] == "M. Durand" and out["requeued_jobs"] == [i.print_job for i in waiting]
    assert out["state"] == "ready"  # the printer was asked at once: new baseline taken
    # every scope with numbers on hand skips three; here is the one these labels came from
    ranges = out["skipped"][waiting[0].scope]
    [[lease_id, first, last]] = ranges
    assert all(len(r) == 1 and r[0][2] - r[0][1] == 2 for r in out["skipped"].values())
    assert (first, last) == (before[lease_id], before[lease_id] + 2)
    assert next_seqs(agent)[lease_id] == before[lease_id] + 3
    rec = odometer.record(agent, printer.url)
    assert (rec.state, rec.baseline_odometer, rec.unknown) == (OK, 1005, 0)
    assert len(queue.run(printer.url).sent) == 2
    assert serials_printed(printer)[-2:] == [i.serial for i in waiting]
    [after] = issue(agent, printer.url, 1)
    assert after.seq == before[lease_id] + 3  # the next number skips the three
    assert log_events(agent, printer.url) == ["baseline", "mismatch", "confirmed", "baseline"]
    confirmed = next(e for e in odometer.history(agent, printer.url) if e["event"] == "confirmed")
    assert confirmed["actor"] == "M. Durand" and "Monday" in confirmed["reason"]
    assert confirmed["detail"]["skipped"] == out["skipped"] and confirmed["at"]


def test_confirming_without_requeue_leaves_held_jobs_to_the_operator(line, printer):
    agent, queue = line
    issue(agent, printer.url, 1)
    queue.run(printer.url)
    printer.add_labels(1)
    [waiting] = issue(agent, printer.url, 1)
    queue.run(printer.url)
    before = next_seqs(agent)
    result = edge(
        agent, "printer", "confirm-odometer", "--printer", printer.url,
        "--reason", "a test page", "--no-skip-numbers",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["skipped"] == {} and out["held_jobs"] == [waiting.print_job]
    assert "print-jobs confirm ID" in result.stderr
    assert next_seqs(agent) == before
    assert list_jobs(agent, "held")[0]["id"] == waiting.print_job


def test_confirming_a_held_job_whose_label_came_out_resolves_the_hold(line, printer):
    """A sender killed after its label came out: the printer counted one label we did not."""
    agent, queue = line
    issue(agent, printer.url, 1)
    queue.run(printer.url)
    [job] = issue(agent, printer.url, 1)
    row = (
        agent.store.conn()
        .execute("SELECT id, serial, kind, reason FROM print_jobs WHERE id = ?", (job.print_job,))
        .fetchone()
    )
    printer.add_labels(1)  # the label came out ...
    with agent.store.write() as conn:  # ... and the process died before recording it
        conn.execute("UPDATE print_jobs SET status = 'held' WHERE id = ?", (job.print_job,))
    assert queue.run(printer.url).state == HELD
    confirm_job(agent, job.print_job)  # the operator saw that label: it is recorded
    assert queue.run(printer.url).state == "ready"
    assert log_events(agent, printer.url) == ["baseline", "mismatch", "resolved"]
    assert mark_sent(agent, row, printer.url, None) is False  # nothing counted twice


def test_another_printer_at_the_same_address_is_noted_not_held(line, printer):
    agent, queue = line
    issue(agent, printer.url, 2)
    queue.run(printer.url)
    host, port = printer.address
    printer.stop()
    with PrinterSimulator(host, port, odometer_start=40) as replacement:
        issue(agent, replacement.url, 2)
        assert len(queue.run(replacement.url).sent) == 2
        rec = odometer.record(agent, replacement.url)
        assert (rec.state, rec.baseline_odometer, rec.baseline_sent) == (OK, 40, 2)
        assert "went down from 1000 to 40" in rec.note
        assert log_events(agent, replacement.url) == ["baseline", "replaced"]
        issue(agent, replacement.url, 1)
        queue.run(replacement.url)
        assert odometer.record(agent, replacement.url).state == OK


def test_a_swapped_printer_does_not_lift_a_hold(line, printer):
    agent, queue = line
    issue(agent, printer.url, 1)
    queue.run(printer.url)
    printer.add_labels(1)
    queue.run(printer.url)
    host, port = printer.address
    printer.stop()
    with PrinterSimulator(host, port, odometer_start=5) as replacement:
        queue.close()
        assert queue.run(replacement.url).state == HELD
        rec = odometer.record(agent, replacement.url)
        assert "went down" in rec.note and rec.unknown == 1
        assert "1 label this agent has no record of. " in odometer.message(rec)


@pytest.mark.parametrize("fault", ["unsupported", "silent"])
def test_a_printer_without_a_count_prints_and_says_so(line, printer, fault):
    agent, queue = line
    printer.set_odometer_fault(fault)
    issue(agent, printer.url, 3)
    assert len(queue.run(printer.url).sent) == 3
    printer.add_labels(5)
    issue(agent, printer.url, 1)
    assert len(queue.run(printer.url).sent) == 1  # nothing to compare: no hold
    status = build_status(agent, probe=False, printer_url=printer.url)
    assert status["printer"]["state"] == "ready"
    odo = status["printer"]["odometer"]
    assert odo["state"] == ("unsupported" if fault == "unsupported" else "no_answer")
    assert "does not" in odo["message"] and odo["summary"] == "not reported by this printer"


def test_a_silent_printer_is_not_asked_again_before_the_recheck(agents, printer):
    asked = []
    for recheck, expected in ((300.0, 1), (0.0, 3)):
        agent = agents.enroll(
            f"L{int(recheck)}", printer_timeout=0.3, odometer_recheck_seconds=recheck
        )
        queue = PrintQueue(agent)
        try:
            transport = queue._transport(printer.url)
            real = transport.query_odometer

            def counted(real=real):
                asked.append(1)
                return real()

            transport.query_odometer = counted
            printer.set_odometer_fault("silent")
            for _ in range(3):
                assert queue.check(printer.url)[0] == "ready"
        finally:
            queue.close()
        assert len(asked) == expected
        asked.clear()


def test_a_garbage_answer_stops_printing_without_a_hold(line, printer):
    agent, queue = line
    printer.set_odometer_fault("garbage")
    issue(agent, printer.url, 2)
    result = queue.run(printer.url)
    assert result.sent == [] and result.state == "error"
    assert result.error["code"] == "ERR_PRINTER_ODOMETER_ANSWER"
    assert job_counts(agent)["queued"] == 2  # waiting, not held: it is a fault, not a hold
    printer.set_odometer_fault(None)
    assert len(queue.run(printer.url).sent) == 2


def test_the_tolerance_allows_that_many_unknown_labels(agents, printer):
    agent = agents.enroll(printer_timeout=0.5, odometer_tolerance=2)
    queue = PrintQueue(agent)
    try:
        issue(agent, printer.url, 1)
        queue.run(printer.url)
        printer.add_labels(2)
        issue(agent, printer.url, 1)
        assert len(queue.run(printer.url).sent) == 1
        assert odometer.record(agent, printer.url).unknown == 2
        printer.add_labels(1)
        issue(agent, printer.url, 1)
        assert queue.run(printer.url).state == HELD
        assert odometer.record(agent, printer.url).unknown == 3
    finally:
        queue.close()


def test_the_check_can_be_switched_off_for_a_shared_printer(agents, printer):
    agent = agents.enroll(printer_timeout=0.5, odometer_check=False)
    queue = PrintQueue(agent)
    try:
        issue(agent, printer.url, 1)
        queue.run(printer.url)
        printer.add_labels(4)
        issue(agent, printer.url, 1)
        assert len(queue.run(printer.url).sent) == 1
        rec = odometer.record(agent, printer.url)
        assert rec.labels_sent == 2 and rec.state == NEW  # counted, never compared
    finally:
        queue.close()


def test_a_busy_printer_defers_the_baseline(line, printer):
    agent, _queue = line
    busy = PrinterStatus(formats_in_buffer=2)
    verdict = odometer.evaluate(agent, printer.url, LabelOdometer(1000), busy)
    assert verdict.state == "busy" and verdict.error.code == ERR_PRINTER_BUSY
    assert odometer.record(agent, printer.url).baseline_odometer is None
    assert "still printing" in odometer.message(verdict.record)
    verdict = odometer.evaluate(agent, printer.url, LabelOdometer(1002), PrinterStatus())
    assert verdict.state == "ready" and verdict.record.baseline_odometer == 1002
    assert verdict.record.note is None  # the wait is over: nothing left to say


def test_spellings_of_one_printer_share_one_record(line, printer):
    agent, queue = line
    host, port = printer.address
    issue(agent, printer.url, 1)
    queue.run(printer.url)
    other = f"TCP://{host}:{port}/"
    issue(agent, other, 1)
    assert len(queue.run(other).sent) == 1
    [rec] = odometer.records(agent)
    assert rec.printer == printer.url and rec.labels_sent == 2 and rec.state == OK


def test_a_spool_directory_has_no_odometer(line, tmp_path):
    agent, queue = line
    url = f"file://{tmp_path / 'labels'}?create=1"
    issue(agent, url, 2)
    assert len(queue.run(url).sent) == 2
    assert odometer.record(agent, url).state == "spool"


def test_confirm_refuses_unknown_printers_and_empty_reasons(line, printer):
    agent, queue = line
    result = edge(agent, "printer", "confirm-odometer", "--printer", printer.url, "--reason", "x")
    assert result.exit_code == 1 and "ERR_PRINTER_UNKNOWN:" in result.output
    issue(agent, printer.url, 1)
    queue.run(printer.url)
    for args in (["--reason", "  "], ["--reason", "ok", "--by", "x" * 100]):
        result = edge(agent, "printer", "confirm-odometer", "--printer", printer.url, *args)
        assert result.exit_code == 1 and "ERR_REASON:" in result.output
    result = edge(agent, "printer", "confirm-odometer", "--printer", "ftp://x", "--reason", "x")
    assert result.exit_code == 1 and "ERR_PRINTER_URL:" in result.output
    assert log_events(agent, printer.url) == ["baseline"]


def test_the_odometer_command_shows_records_and_their_log(line, printer):
    agent, queue = line
    issue(agent, printer.url, 1)
    queue.run(printer.url)
    printer.add_labels(1)
    queue.run(printer.url)
    result = edge(agent, "printer", "odometer")
    assert result.exit_code == 0, result.output
    [line_out] = [json.loads(x) for x in result.stdout.splitlines()]
    assert line_out["printer"] == printer.url and line_out["held"] is True
    assert [e["event"] for e in line_out["log"]] == ["mismatch", "baseline"]
    result = edge(agent, "printer", "odometer", "--printer", "tcp://10.9.9.9:9100")
    assert result.exit_code == 1 and "ERR_PRINTER_UNKNOWN:" in result.output


def test_the_operator_page_and_metrics_show_the_hold(line, printer):
    agent, queue = line
    issue(agent, printer.url, 1)
    queue.run(printer.url)

    def status():
        return build_status(agent, probe=False, printer_url=printer.url)

    client = create_operator_app(status, agent).test_client()
    page = client.get("/").get_data(as_text=True)
    assert 'id="odometer-alert" role="alert" hidden' in page and "in step" in page
    printer.add_labels(2)
    queue.run(printer.url)
    page = client.get("/").get_data(as_text=True)
    assert 'id="odometer-alert" role="alert">' in page
    assert 'id="odometer-unknown">2<' in page and "odometer_mismatch" in page
    assert "confirm-odometer --printer" in page and "card bad hold" in page
    metrics = client.get("/metrics").get_data(as_text=True)
    assert "printer_odometer_hold 1.0" in metrics
    assert "printer_odometer_unknown_labels 2.0" in metrics
    body = json.loads(client.get("/status.json").get_data(as_text=True))
    assert body["printer"]["odometer"]["unknown"] == 2


def test_status_probe_reads_the_odometer(line, printer):
    agent, _queue = line
    result = edge(agent, "status", "--printer", printer.url)
    assert result.exit_code == 0, result.output
    odo = json.loads(result.stdout)["printer"]["odometer"]
    assert odo["state"] == OK and odo["printer_count"] == 1000
