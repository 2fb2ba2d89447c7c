"""Print into a directory as PDF: one `<job_name>.pdf` per label (`pdf:///DIR`).

For office and laser printers that take PDF from a watched folder, and for previews. Files
are published exactly as `printers.filespool` does it (whole or not at all, a reprint never
replaces an earlier file: `<job_name>.2.pdf`, ...); this module only says what goes in them.
The data must be one whole PDF document, as `printers.pdf` renders it: anything else is a
caller rendering the wrong format, refused before a file is written.
"""

from __future__ import annotations

from printers import errors as E
from printers.errors import PrinterError
from printers.filespool import FilePrinter

PDF_HEADER = b"%PDF-"
PDF_TRAILER = b"%%EOF"
# A PDF ends with %%EOF and at most a line break or two after it.
_TAIL_BYTES = 32


class PdfPrinter(FilePrinter):
    """A spool directory of PDF files, one page per label."""

    format = "pdf"
    suffix = ".pdf"
    scheme = "pdf"

    def check_data(self, data: bytes) -> None:
        """Refuse data that is not one whole PDF document."""
        if (
            not isinstance(data, bytes)
            or not data.startswith(PDF_HEADER)
            or PDF_TRAILER not in data[-_TAIL_BYTES:]
        ):
            raise PrinterError(
                E.ERR_LABEL_DATA,
                f"The label for {self.url} is not a whole PDF document: render it with "
                "format 'pdf' (the transport's format) before sending it.",
            )
