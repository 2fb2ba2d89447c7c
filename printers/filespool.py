"""Print into a directory: one `<job_name>.zpl` file per label, for spoolers and tests.

A file appears whole or not at all (written to a hidden temporary file, synced, then linked
into place), and a reprint never replaces an earlier file: it gets the next free name,
`<job_name>.2.zpl`, `<job_name>.3.zpl` and so on. Subclasses spool other formats the same
way by setting `suffix`, `scheme` and `format` (`printers.pdfspool`). The directory must
exist (`ERR_PRINTER_NO_DIR`) unless the spool was made with `create=True` (`?create=1`).
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

from printers import errors as E
from printers.base import PrinterTransport
from printers.errors import PrinterError
from printers.odometer import SPOOL, LabelOdometer
from printers.status import PrinterStatus

log = logging.getLogger("lineledger.printers")

MAX_JOB_NAME = 100
MAX_COPIES = 10_000
# No leading dot: hidden names are kept for our temporary files, which spoolers skip.
_JOB_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")


class FilePrinter(PrinterTransport):
    """A spool directory of ZPL files that stands in for a printer."""

    format = "zpl"
    suffix = ".zpl"
    scheme = "file"

    def __init__(self, directory: str | os.PathLike[str], create: bool = False) -> None:
        self.directory = Path(directory).absolute()
        self.create = create  # make the folder when missing; else ERR_PRINTER_NO_DIR
        # as_uri() quotes the path properly; only the scheme differs between spools.
        self.url = self.scheme + self.directory.as_uri()[len("file") :]
        if create:
            self.url += "?create=1"
        self._lock = threading.Lock()

    def check_data(self, data: bytes) -> None:
        """Raise PrinterError ERR_LABEL_DATA if `data` is not in this spool's format."""

    def send(self, data: bytes, job_name: str) -> None:
        """Write `data` to a new file named after `job_name`, never replacing one."""
        if (
            not isinstance(job_name, str)
            or len(job_name) > MAX_JOB_NAME
            or not _JOB_NAME.fullmatch(job_name)
        ):
            raise PrinterError(
                E.ERR_PRINTER_IO,
                f"Job name {str(job_name)[:60]!r} cannot name a spool file: use up to "
                f"{MAX_JOB_NAME} of A-Z a-z 0-9 . _ - not starting with a dot.",
            )
        self.check_data(data)
        with self._lock:
            try:
                self._ensure_directory()
                temp = self._write_temporary(data)
                try:
                    self._publish(temp, job_name)
                finally:
                    # Once published the label is delivered: failing to tidy up must not
                    # report it as unwritten, or it would be written again.
                    _quietly(temp.unlink, True)
            except OSError as exc:
                raise self._io_error("writing a label", exc) from exc
            _quietly(_sync_directory, self.directory)

    def query_status(self) -> PrinterStatus:
        """Return a ready status if a file can be created in the directory."""
        with self._lock:
            try:
                self._ensure_directory()
                # Trying is the only honest test: permissions, read-only mounts and full
                # disks all show up here, and os.access() sees none of them for root.
                self._write_temporary(b"").unlink()
            except OSError as exc:
                raise self._io_error("checking the spool directory", exc) from exc
        return PrinterStatus()

    def query_odometer(self) -> LabelOdometer:
        """Return no count: a spool directory is not a printer and keeps no label odometer."""
        return LabelOdometer(None, SPOOL)

    def close(self) -> None:
        """Do nothing: a spool directory holds no connection."""

    def _ensure_directory(self) -> None:
        if self.create:
            self.directory.mkdir(parents=True, exist_ok=True)
        elif not self.directory.exists():
            raise no_directory(self.directory, self.url)

    def _write_temporary(self, data: bytes) -> Path:
        """Write `data` durably to a new hidden file in the directory and return its path."""
        fd, name = tempfile.mkstemp(dir=self.directory, prefix=".", suffix=".tmp")
        path = Path(name)
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return path

    def _publish(self, temp: Path, job_name: str) -> None:
        """Give `temp` the first free name for `job_name` without ever replacing a file."""
        for copy in range(1, MAX_COPIES + 1):
            suffix = self.suffix if copy == 1 else f".{copy}{self.suffix}"
            target = self.directory / f"{job_name}{suffix}"
            try:
                # A hard link fails if the name is taken, so two writers cannot both win it.
                os.link(temp, target)
                return
            except FileExistsError:
                continue
            except OSError:
                # File systems without hard links (FAT, some shares): check, then rename.
                if target.exists():
                    continue
                os.replace(temp, target)
                return
        raise OSError(f"{MAX_COPIES} files for job {job_name} already exist")

    def _io_error(self, doing: str, exc: OSError) -> PrinterError:
        return PrinterError(
            E.ERR_PRINTER_IO,
            f"Failed {doing} in {self.directory} ({exc.strerror or exc}): check that the "
            "directory exists, is writable and has free space.",
        )


def no_directory(directory: Path, url: str) -> PrinterError:
    """Return the error for a spool folder that does not exist."""
    return PrinterError(
        E.ERR_PRINTER_NO_DIR,
        f"The folder {directory} of printer {url} does not exist: create it, correct the "
        "path, or add ?create=1 to the URL to have it made.",
    )


def _quietly(action: Callable[..., object], *args: object) -> None:
    """Run a best-effort step after delivery; log rather than raise if it fails."""
    try:
        action(*args)
    except OSError as exc:
        log.warning("spool housekeeping failed after the label was written: %s", exc)


def _sync_directory(directory: Path) -> None:
    """Make the new directory entry durable where the platform allows it."""
    if not hasattr(os, "O_DIRECTORY"):
        return  # Windows cannot open a directory; NTFS journals the entry itself.
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
