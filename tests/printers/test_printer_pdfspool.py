"""Tests for PdfPrinter: whole PDF files, no overwrite on reprint, nothing but PDF accepted."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from printers import errors as E
from printers.errors import PrinterError
from printers.filespool import FilePrinter
from printers.label import LabelTemplate
from printers.pdfspool import PdfPrinter
from printers.render import render_label
from printers.status import PrinterStatus
from printers.urls import open_printer
from tests.printers.decoding import check_symbols, decode_pdf, gs1_label


def names(directory: Path) -> list[str]:
    return sorted(path.name for path in directory.iterdir())


def test_a_label_becomes_one_pdf_file_that_decodes(tmp_path: Path) -> None:
    label = gs1_label()
    with open_printer(f"pdf://{tmp_path}") as printer:
        assert isinstance(printer, PdfPrinter) and printer.format == "pdf"
        assert printer.url == f"pdf://{tmp_path}"
        printer.send(render_label(label, LabelTemplate(), printer.format), label.serial)
        assert printer.query_status() == PrinterStatus()
    assert names(tmp_path) == [f"{label.serial}.pdf"]
    found = decode_pdf((tmp_path / f"{label.serial}.pdf").read_bytes())
    check_symbols(found, label, ["code128", "qr", "gs1_datamatrix"])


def test_a_reprint_never_overwrites_an_earlier_pdf(tmp_path: Path) -> None:
    pdfs = [render_label(gs1_label(ai21=f"A{n}"), LabelTemplate(), "pdf") for n in range(3)]
    printer = PdfPrinter(tmp_path)
    for pdf in pdfs:
        printer.send(pdf, "S1")
    assert names(tmp_path) == ["S1.2.pdf", "S1.3.pdf", "S1.pdf"]
    assert [(tmp_path / name).read_bytes() for name in ("S1.pdf", "S1.2.pdf", "S1.3.pdf")] == pdfs


def test_concurrent_writers_of_one_job_each_get_their_own_file(tmp_path: Path) -> None:
    pdf = render_label(gs1_label(), LabelTemplate(), "pdf")
    writers = 6
    start = threading.Barrier(writers)

    def write() -> None:
        start.wait()
        PdfPrinter(tmp_path).send(pdf, "S1")

    threads = [threading.Thread(target=write) for _ in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert names(tmp_path) == sorted(["S1.pdf", *(f"S1.{n}.pdf" for n in range(2, 7))])


def test_pdf_and_zpl_spools_share_a_directory_without_colliding(tmp_path: Path) -> None:
    label = gs1_label()
    PdfPrinter(tmp_path).send(render_label(label, LabelTemplate(), "pdf"), "S1")
    FilePrinter(tmp_path).send(render_label(label, LabelTemplate(), "zpl"), "S1")
    assert names(tmp_path) == ["S1.pdf", "S1.zpl"]


@pytest.mark.parametrize(
    "data",
    [
        b"^XA^FDnot a pdf^FS^XZ",
        b"",
        b"%PDF-1.4 cut short",
        b"%PDF-1.4\n" + b"x" * 100 + b"\n%%EOF\n" + b"trailing junk" * 10,
    ],
)
def test_anything_but_a_whole_pdf_is_refused_and_nothing_is_written(
    tmp_path: Path, data: bytes
) -> None:
    with pytest.raises(PrinterError) as caught:
        PdfPrinter(tmp_path).send(data, "S1")
    assert caught.value.code == E.ERR_LABEL_DATA
    assert "format" in caught.value.message
    assert not tmp_path.exists() or names(tmp_path) == []


def test_hostile_job_names_are_refused(tmp_path: Path) -> None:
    pdf = render_label(gs1_label(), LabelTemplate(), "pdf")
    for job in ("../x", ".hidden", "a/b", "", "x" * 200):
        with pytest.raises(PrinterError) as caught:
            PdfPrinter(tmp_path).send(pdf, job)
        assert caught.value.code == E.ERR_PRINTER_IO
    assert names(tmp_path) == []
