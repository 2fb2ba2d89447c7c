"""Measure label rendering and ZPL printing speed on this machine and print the figures.

1. Labels rendered per second as ZPL, PDF and PNG: the default 4 x 2 inch template with a
   Code 128 of the serial, the QR code of the GS1 Digital Link and a GS1 Data Matrix, every
   label distinct (a new serial and AI (21) each), after a warm-up, in one thread.
2. ZPL labels sent per second through TcpPrinter to the printer simulator on loopback, with
   one ~HS at the end so every label is known to have been read; and the same with
   rendering included (render + send), which is what a print queue does.
3. PDF labels rendered and spooled per second into a `pdf:///DIR` directory (each file
   written, fsynced and published whole).

No thresholds: the issue's aims (>= 50 labels/s end to end with ZPL, >= 20/s with PDF) are
printed beside the figures for reading, not asserted.
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from printers.label import LabelTemplate, UnitLabel  # noqa: E402
from printers.pdfspool import PdfPrinter  # noqa: E402
from printers.render import render_label  # noqa: E402
from printers.simulator import PrinterSimulator  # noqa: E402
from printers.tcp import TcpPrinter  # noqa: E402
from protocol.gs1 import digital_link  # noqa: E402

GTIN = "04006381333931"


def label(n: int) -> UnitLabel:
    """Return the n-th distinct GTIN label."""
    serial = f"MA01-HAT-BAG-20251109-{n % 100_000:05d}-A9K2-X"
    ai21 = f"251109HAT{n % 100_000:05d}{n // 100_000:04d}Y"
    return UnitLabel(
        serial=serial,
        verify_url=digital_link("https://verify.lineledger.example", GTIN, ai21),
        product_name="Tote bag, natural leather",
        sku="TB-100-NAT",
        work_order="WO-2025-0042",
        prod_date="2025-11-09",
        gs1=(("01", GTIN), ("21", ai21)),
    )


def rate(count: int, seconds: float) -> str:
    return f"{count / seconds:8.1f}/s  ({seconds / count * 1000:6.2f} ms each)"


def bench_render(fmt: str, count: int, warmup: int, template: LabelTemplate) -> float:
    """Return seconds to render `count` distinct labels as `fmt` after a warm-up."""
    for n in range(warmup):
        render_label(label(1_000_000 + n), template, fmt)
    labels = [label(n) for n in range(count)]
    start = time.perf_counter()
    for item in labels:
        render_label(item, template, fmt)
    return time.perf_counter() - start


def bench_send(count: int, template: LabelTemplate, render: bool) -> float:
    """Return seconds to send `count` ZPL labels to the simulator and see them all read."""
    labels = [label(2_000_000 + n) for n in range(count)]
    formats = [] if render else [render_label(item, template, "zpl") for item in labels]
    with PrinterSimulator() as simulator, TcpPrinter(*simulator.address) as printer:
        printer.send(render_label(label(3_000_000), template, "zpl"), "warm-up")
        printer.query_status()
        start = time.perf_counter()
        if render:
            for item in labels:
                printer.send(render_label(item, template, "zpl"), item.serial)
        else:
            for zpl in formats:
                printer.send(zpl, "x")
        # The printer answers ~HS only after reading everything sent before it.
        printer.query_status()
        elapsed = time.perf_counter() - start
        printed = len(simulator.printed) - 1
    if printed != count:
        raise SystemExit(f"the simulator printed {printed} of {count} labels")
    return elapsed


def bench_pdf_spool(count: int, template: LabelTemplate) -> float:
    """Return seconds to render `count` labels as PDF and spool each into a directory."""
    labels = [label(4_000_000 + n) for n in range(count)]
    with tempfile.TemporaryDirectory() as directory:
        printer = PdfPrinter(directory)
        start = time.perf_counter()
        for item in labels:
            printer.send(render_label(item, template, "pdf"), item.serial)
        elapsed = time.perf_counter() - start
        written = len(list(Path(directory).iterdir()))
    if written != count:
        raise SystemExit(f"the PDF spool holds {written} of {count} labels")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description="LineLedger label rendering benchmark")
    parser.add_argument("--labels", type=int, default=3000, help="labels per measurement")
    parser.add_argument("--warmup", type=int, default=200, help="labels rendered first")
    args = parser.parse_args()
    template = LabelTemplate()
    print(f"# {platform.python_implementation()} {platform.python_version()}, {platform.machine()}")
    print(
        f"# template {template.name}: {template.width_mm:g} x {template.height_mm:g} mm at "
        f"{template.dpi} dpi, barcodes {', '.join(template.barcodes)}"
    )
    print(f"# {args.labels} distinct labels per figure, one thread")
    for fmt in ("zpl", "pdf", "png"):
        seconds = bench_render(fmt, args.labels, args.warmup, template)
        print(f"render {fmt}:              {rate(args.labels, seconds)}")
    seconds = bench_send(args.labels, template, render=False)
    print(f"send zpl (TcpPrinter):      {rate(args.labels, seconds)}")
    seconds = bench_send(args.labels, template, render=True)
    print(f"render + send zpl:          {rate(args.labels, seconds)}   (aim >= 50/s)")
    spooled = min(args.labels, 500)
    seconds = bench_pdf_spool(spooled, template)
    print(f"render + spool pdf:         {rate(spooled, seconds)}   (aim >= 20/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
