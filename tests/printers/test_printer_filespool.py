"""Tests for FilePrinter: whole files, no overwrite on reprint, safe job names."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from printers import errors as E
from printers.errors import PrinterError
from printers.filespool import MAX_JOB_NAME, FilePrinter
from printers.status import PrinterStatus

ZPL = b"^XA^FDlabel^FS^XZ"


def names(directory: Path) -> list[str]:
    return sorted(path.name for path in directory.iterdir())


def test_send_writes_one_whole_file_and_no_temporary(tmp_path: Path) -> None:
    with FilePrinter(tmp_path) as printer:
        printer.send(ZPL, "MA01-HAT-BAG-20251109-00027-A9K2-X")
    assert names(tmp_path) == ["MA01-HAT-BAG-20251109-00027-A9K2-X.zpl"]
    assert (tmp_path / "MA01-HAT-BAG-20251109-00027-A9K2-X.zpl").read_bytes() == ZPL


def test_a_reprint_gets_the_next_free_name(tmp_path: Path) -> None:
    printer = FilePrinter(tmp_path)
    for copy in range(1, 4):
        printer.send(b"^XA copy %d ^XZ" % copy, "S1")
    assert names(tmp_path) == ["S1.2.zpl", "S1.3.zpl", "S1.zpl"]
    assert (tmp_path / "S1.zpl").read_bytes() == b"^XA copy 1 ^XZ"
    assert (tmp_path / "S1.3.zpl").read_bytes() == b"^XA copy 3 ^XZ"


def test_concurrent_writers_of_one_job_never_overwrite_each_other(tmp_path: Path) -> None:
    writers = 8
    start = threading.Barrier(writers)

    def write(copy: int) -> None:
        start.wait()
        # Separate objects, like separate processes: only the file system arbitrates.
        FilePrinter(tmp_path).send(b"copy %d" % copy, "S1")

    threads = [threading.Thread(target=write, args=(copy,)) for copy in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    contents = sorted(path.read_bytes() for path in tmp_path.iterdir())
    assert contents == sorted(b"copy %d" % copy for copy in range(writers))


def test_the_directory_is_created_when_missing_if_asked(tmp_path: Path) -> None:
    printer = FilePrinter(tmp_path / "spool" / "line3", create=True)
    assert printer.url.endswith("/spool/line3?create=1")
    assert printer.query_status() == PrinterStatus()
    printer.send(ZPL, "job")
    assert names(tmp_path / "spool" / "line3") == ["job.zpl"]


def test_a_missing_directory_is_refused_and_not_created(tmp_path: Path) -> None:
    printer = FilePrinter(tmp_path / "typo" / "line3")
    for attempt in (printer.query_status, lambda: printer.send(ZPL, "job")):
        with pytest.raises(PrinterError) as caught:
            attempt()
        assert caught.value.code == E.ERR_PRINTER_NO_DIR
        assert str(tmp_path / "typo" / "line3") in caught.value.message
        assert "?create=1" in caught.value.message
    assert not (tmp_path / "typo").exists()


def test_url_is_the_file_uri_of_the_directory(tmp_path: Path) -> None:
    assert FilePrinter(tmp_path).url == tmp_path.as_uri()


@pytest.mark.parametrize(
    "job_name",
    [
        "",
        ".hidden",
        "..",
        "../escape",
        "a/b",
        "a\\b",
        "a b",
        "a\nb",
        "a\x00b",
        "séria",
        "x" * (MAX_JOB_NAME + 1),
        None,
    ],
)
def test_unsafe_job_names_are_refused_and_nothing_is_written(tmp_path: Path, job_name: str) -> None:
    with pytest.raises(PrinterError) as caught:
        FilePrinter(tmp_path / "spool").send(ZPL, job_name)
    assert caught.value.code == E.ERR_PRINTER_IO
    assert names(tmp_path) == []


def test_the_longest_allowed_job_name_works(tmp_path: Path) -> None:
    FilePrinter(tmp_path).send(ZPL, "x" * MAX_JOB_NAME)
    assert names(tmp_path) == ["x" * MAX_JOB_NAME + ".zpl"]


def test_a_directory_that_cannot_be_used_is_an_io_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_bytes(b"")
    printer = FilePrinter(blocker / "spool", create=True)
    for attempt in (printer.query_status, lambda: printer.send(ZPL, "job")):
        with pytest.raises(PrinterError) as caught:
            attempt()
        assert caught.value.code == E.ERR_PRINTER_IO
        assert str(blocker) in caught.value.message
