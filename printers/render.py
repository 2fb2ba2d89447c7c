"""Render a unit label in the format a printer or a preview needs: ZPL, PDF or PNG.

`render_label(label, template, fmt)` is the one call the edge agent and central make; `fmt`
is usually a transport's `format` ("zpl" or "pdf") or "png" for a preview. All three are
drawn from the same layout (`printers.layout`), so they show the same label.
"""

from __future__ import annotations

from collections.abc import Callable

from printers.errors import LabelError
from printers.label import LabelTemplate, UnitLabel
from printers.pdf import render_pdf
from printers.png import render_png
from printers.zpl import render_zpl

RENDER_FORMATS = ("zpl", "pdf", "png")
# What to call a rendering when it is served or saved.
CONTENT_TYPES = {"zpl": "application/vnd.zebra.zpl", "pdf": "application/pdf", "png": "image/png"}
FILE_SUFFIXES = {"zpl": ".zpl", "pdf": ".pdf", "png": ".png"}

_RENDERERS: dict[str, Callable[[UnitLabel, LabelTemplate], bytes]] = {
    "zpl": render_zpl,
    "pdf": render_pdf,
    "png": render_png,
}


def render_label(label: UnitLabel, template: LabelTemplate, fmt: str) -> bytes:
    """Return `label` laid out by `template` as `fmt` ("zpl", "pdf" or "png") bytes."""
    renderer = _RENDERERS.get(fmt) if isinstance(fmt, str) else None
    if renderer is None:
        raise LabelError(
            f"label format {str(fmt)[:20]!r} is not known: use one of {', '.join(RENDER_FORMATS)}"
        )
    return renderer(label, template)
