"""Fixtures for the printer tests: a running simulator and a sample label and template."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from printers.label import LabelTemplate, UnitLabel
from printers.simulator import PrinterSimulator


@pytest.fixture
def simulator() -> Iterator[PrinterSimulator]:
    with PrinterSimulator() as running:
        yield running


@pytest.fixture
def label() -> UnitLabel:
    return UnitLabel(
        serial="MA01-HAT-BAG-20251109-00027-A9K2-X",
        verify_url="https://verify.lineledger.example/s/MA01-HAT-BAG-20251109-00027-A9K2-X",
        product_name="Tote bag, natural leather",
        sku="TB-100-NAT",
        work_order="WO-2025-0042",
        prod_date="2025-11-09",
    )


@pytest.fixture
def template() -> LabelTemplate:
    return LabelTemplate()
