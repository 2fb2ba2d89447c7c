"""Reprint and void with reasons, the `label` command, and every printer URL kind."""

import json

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from central import tables as T
from edge_agent.cli import main
from edge_agent.errors import EdgeError
from edge_agent.issuing import Issuer, void_serial
from edge_agent.outbox import flush
from edge_agent.printing import PrintQueue, job_counts, queue_reprint
from printers.simulator import PrinterSimulator
from printers.zpl import extract_fields
from protocol.gs1 import ai21_from_standard, sgtin_fields
from tests.conftest import runtime
from tests.printers.decoding import decode_pdf, decode_png
from tests.procs import json_lines

GTIN = "04006381333931"


def edge(home, *args):
    return CliRunner().invoke(main, ["--home", str(home), *args], catch_exceptions=False)


def registry_row(tenant, serial):
    with runtime(tenant.app).store.read() as conn:
        return conn.execute(sa.select(T.registry).where(T.registry.c.serial == serial)).first()


@pytest.fixture
def printer():
    with PrinterSimulator() as sim:
        yield sim


def test_reprint_needs_a_reason_and_is_recorded(agents, tenant, printer):
    agent = agents.enroll()
    home = agent.config.home_path
    [row] = json_lines(
        edge(home, "issue", "--work-order", "WO-HAT-1", "--print", "--printer", printer.url).stdout
    )
    serial = row["serial"]
    assert (
        CliRunner()
        .invoke(main, ["--home", str(home), "reprint", serial, "--printer", printer.url])
        .exit_code
        == 2
    )  # --reason is required
    blank = edge(home, "reprint", serial, "--reason", "  ", "--printer", printer.url)
    assert blank.exit_code == 1 and "ERR_REASON" in blank.output
    done = edge(home, "reprint", serial, "--reason", "label smudged", "--printer", printer.url)
    assert done.exit_code == 0, done.output
    assert len(printer.printed) == 2  # the first print and the reprint
    assert serial in " ".join(extract_fields(printer.printed[1]))
    event = [
        json.loads(r["body"])
        for r in agent.store.conn().execute("SELECT body FROM outbox WHERE type = 'reprinted'")
    ]
    assert event[0]["data"]["reason"] == "label smudged"
    flush(agent)
    reg = registry_row(tenant, serial)
    assert (reg.state, reg.print_count, reg.reprint_count) == ("printed", 1, 1)


def test_a_serial_not_printed_yet_cannot_be_reprinted(agents, printer):
    agent = agents.enroll()
    issued = Issuer(agent).issue("WO-HAT-1")
    with pytest.raises(EdgeError) as exc:
        queue_reprint(agent, issued.serial, "why not", printer.url)
    assert exc.value.code == "ERR_ILLEGAL_TRANSITION"
    with pytest.raises(EdgeError) as exc:
        queue_reprint(agent, "MA01-HAT-BAG-20251109-00027-A9K2-X", "x", printer.url)
    assert exc.value.code == "ERR_NOT_OURS"


def test_void_cancels_waiting_labels_and_is_final(agents, tenant, printer, client):
    agent = agents.enroll()
    issuer = Issuer(agent)
    printer.set_fault("paper_out")
    issued = issuer.issue("WO-HAT-1", printer_url=printer.url)
    queue = PrintQueue(agent)
    try:
        queue.run(printer.url)  # paper out: the label waits
        void_serial(agent, issued.serial, "label torn")
        printer.set_fault(None)
        assert queue.run(printer.url).sent == []  # its label is never printed now
    finally:
        queue.close()
    assert printer.printed == [] and job_counts(agent)["cancelled"] == 1
    for again in (
        lambda: void_serial(agent, issued.serial, "twice"),
        lambda: queue_reprint(agent, issued.serial, "after void", printer.url),
    ):
        with pytest.raises(EdgeError) as exc:
            again()
        assert exc.value.code == "ERR_ILLEGAL_TRANSITION"
    flush(agent)
    assert registry_row(tenant, issued.serial).state == "voided"
    body = client.get("/api/public/serial/verify/" + issued.serial).json
    assert body["verdict"] == "voided"
    # the number is used for good: the next serial has the next number
    assert issuer.issue("WO-HAT-1").seq == issued.seq + 1


@pytest.mark.parametrize("fmt", ["zpl", "pdf", "png"])
def test_label_command_renders_what_the_registry_holds(agents, tenant, tmp_path, fmt):
    agent = agents.enroll()
    issued = Issuer(agent).issue("WO-OEM-1")
    flush(agent)
    out = tmp_path / f"label.{fmt}"
    result = edge(
        agent.config.home_path, "label", issued.serial, "--format", fmt, "--output", str(out)
    )
    assert result.exit_code == 0, result.output
    data = out.read_bytes()
    serial = registry_row(tenant, issued.serial).serial
    fields = sgtin_fields(GTIN, serial)
    if fmt == "zpl":
        assert data.startswith(b"^XA") and serial in " ".join(extract_fields(data))
        return
    found = decode_png(data) if fmt == "png" else decode_pdf(data)
    by_id = {d.symbology: d for d in found}
    assert by_id["]C0"].text == serial  # Code 128 of the serial
    assert by_id["]d2"].gs1_fields() == fields  # GS1 DataMatrix, FNC1 right
    assert f"/01/{GTIN}/21/{ai21_from_standard(serial)}" in by_id["]Q1"].text


def test_preview_of_the_next_label(agents, tmp_path):
    agent = agents.enroll()
    out = tmp_path / "next.png"
    result = edge(
        agent.config.home_path,
        "label",
        "--work-order",
        "WO-HAT-1",
        "--format",
        "png",
        "--output",
        str(out),
    )
    assert result.exit_code == 0, result.output
    symbols = {d.symbology for d in decode_png(out.read_bytes())}
    assert {"]C0", "]d2", "]Q1"} <= symbols
    assert (
        edge(agent.config.home_path, "label", "--format", "png", "--output", str(out)).exit_code
        == 2
    )


def test_pdf_and_serial_printers_through_the_queue(agents, printer, tmp_path):
    agent = agents.enroll()
    issuer = Issuer(agent)
    pdf_url = f"pdf://{tmp_path / 'pdf'}?create=1"
    serial_url = f"socket://127.0.0.1:{printer.address[1]}"  # a serial line to the printer
    a = issuer.issue("WO-HAT-1", printer_url=pdf_url)
    b = issuer.issue("WO-HAT-1", printer_url=serial_url)
    queue = PrintQueue(agent)
    try:
        assert queue.run(pdf_url).sent == [a.print_job]
        assert queue.run(serial_url).sent == [b.print_job]
    finally:
        queue.close()
    [pdf] = list((tmp_path / "pdf").iterdir())
    assert pdf.name == f"{a.serial}.pdf"
    assert a.serial in {d.text for d in decode_pdf(pdf.read_bytes())}
    assert b.serial in " ".join(extract_fields(printer.printed[0]))
