"""Label printing: what a unit label says, its ZPL rendering, and how it reaches a printer.

`UnitLabel` and `LabelTemplate` describe a label; `render_zpl` turns them into one ZPL II
format. `open_printer(url)` returns a `PrinterTransport` for a network printer on raw TCP
(`tcp://HOST[:PORT]`) or a spool directory (`file:///DIR`); `PrinterStatus` is what a printer
says about itself (`~HS`), and every failure is a `PrinterError` with a stable code.
`printers.simulator` is a ZPL printer on a real socket for tests and demos. This package may
import `protocol` but nothing else of the project; a test checks that.
"""

from printers.errors import PrinterError
from printers.label import LabelTemplate, UnitLabel
from printers.status import PrinterStatus
from printers.urls import open_printer
from printers.zpl import render_zpl

__all__ = [
    "LabelTemplate",
    "PrinterError",
    "PrinterStatus",
    "UnitLabel",
    "open_printer",
    "render_zpl",
]
