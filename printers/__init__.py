"""Label printing: what a unit label says, how it is drawn, and how it reaches a printer.

`UnitLabel` and `LabelTemplate` describe a label (with its GS1 element string, if the product
has a GTIN, and the barcode kinds the template prints); `printers.layout` places everything
in printer dots once, and `render_label(label, template, fmt)` draws it as ZPL II, PDF or
PNG from that one layout, with symbols encoded by zint (`printers.barcodes`).
`open_printer(url)` returns a `PrinterTransport` for a network printer on raw TCP
(`tcp://HOST[:PORT]`), a serial printer (a device path or pyserial URL), or a spool
directory of ZPL (`file:///DIR`) or PDF (`pdf:///DIR`) files; its `format` says which
rendering it takes. `PrinterStatus` is what a printer says about itself (`~HS`),
`LabelOdometer` how many labels it has printed in its life (`printers.odometer`), and every
failure is a `PrinterError` with a stable code. `printers.discovery` finds printers and
central with zeroconf; `printers.simulator` is a ZPL printer on a real socket for tests and
demos, and `printers.zplrender` reads ZPL back into images to prove what a label encodes.
This package may import `protocol` but nothing else of the project; a test checks that.
"""

from printers.errors import PrinterError
from printers.label import LabelTemplate, UnitLabel
from printers.odometer import LabelOdometer
from printers.render import RENDER_FORMATS, render_label
from printers.status import PrinterStatus
from printers.urls import open_printer
from printers.zpl import render_zpl

__all__ = [
    "RENDER_FORMATS",
    "LabelOdometer",
    "LabelTemplate",
    "PrinterError",
    "PrinterStatus",
    "UnitLabel",
    "open_printer",
    "render_label",
    "render_zpl",
]
