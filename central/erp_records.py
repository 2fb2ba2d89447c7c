"""ERP records: what one work order from the ERP looks like, and how a feed is read.

A record is one work order as the ERP sends it (a JSON object, or a CSV row under a header):

- `number` (required): the work-order number, the sync's key per tenant (letters, digits,
  `. _ / -`, 1-64).
- `sku` and/or `gtin` (one required): the product, by SKU first, else by GTIN. A GTIN-8/12/
  13/14 is trimmed, padded to 14 digits and its check digit verified; when both are given
  they must name the same product. An unknown product refuses the record.
- `production_type` (required): `HAT` or `OEM`.
- `quantity` (required): a whole number 1..10,000,000.
- `name`: up to 200 printable characters.
- `requested_sscc`: a whole number 0..10,000,000.
- `overage_pct`, `tolerance_pct`: 0..100; a new order without them takes the tenant's
  generation config (`manufacturing_percentage`, `discrepancy_tolerance`).
- `line`, or `lines` (a list of at most one; `;`-separated in CSV): the one line allowed to
  produce it; null or an empty list: any line.
- `status`: `open` (default) or `closed`.

Text is trimmed. JSON numbers must be numbers (a quantity `"5"` is refused); in CSV every cell
is text and an empty cell means "not given"; the separator is `,`, `;` or a tab, whichever the
header line uses most (`,` on a tie), and a row with fewer or more cells than the header is
refused. Unknown fields are ignored. A JSON document is a list of records or one page
`{"results": [...], "next": url-or-null}`.

Parsers take bytes and refuse a feed as a whole (`ERR_ERP_FORMAT`, `ERR_ERP_TOO_LARGE`);
`clean_record` refuses one record (`RecordError` with an `ERR_ERP_...` code).
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from central import tables as T
from central.errors import (
    ERR_ERP_FIELD,
    ERR_ERP_FORMAT,
    ERR_ERP_GTIN,
    ERR_ERP_PRODUCT_MISMATCH,
    ERR_ERP_PRODUCT_UNKNOWN,
    ERR_ERP_QUANTITY,
    ERR_ERP_TOO_LARGE,
    CentralError,
)
from protocol.errors import ProtocolError
from protocol.gs1 import normalise_gtin
from protocol.messages import PRODUCTION_TYPES
from protocol.schema import unsafe_character

MAX_FILE_BYTES = 32 * 1024 * 1024
MAX_RECORDS = 200_000
MAX_QUANTITY = 10_000_000

LINE_KEY = "__line__"  # a CSV record's line number in its file
_NUMBER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,63}")
_FIELDS = (
    "number",
    "name",
    "sku",
    "gtin",
    "production_type",
    "quantity",
    "requested_sscc",
    "overage_pct",
    "tolerance_pct",
    "line",
    "lines",
    "status",
)


class RecordError(Exception):
    """One record is refused; the message says which field and why."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class ErpRecord:
    """One clean record: its number and the work-order columns it sets."""

    index: int
    number: str
    values: dict[str, Any]


@dataclass
class Products:
    """A tenant's products by SKU and by GTIN-14."""

    by_sku: dict[str, int]
    by_gtin: dict[str, int]

    @classmethod
    def load(cls, conn: Connection, tenant_id: int) -> Products:
        """Read every product of a tenant."""
        p = T.products.c
        rows = conn.execute(sa.select(p.id, p.sku, p.gtin).where(p.tenant_id == tenant_id)).all()
        return cls({r.sku: r.id for r in rows}, {r.gtin: r.id for r in rows if r.gtin})


# --- Parsing ------------------------------------------------------------------------------


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def parse_json(data: bytes) -> tuple[list[Any], str | None]:
    """Return a JSON document's records and its `next` link (None: last page)."""
    if len(data) > MAX_FILE_BYTES:
        raise CentralError(ERR_ERP_TOO_LARGE, f"the feed is over {MAX_FILE_BYTES} bytes", 413)
    if not data.strip() or not data.lstrip(b"\xef\xbb\xbf").strip():
        raise CentralError(ERR_ERP_FORMAT, "the file is empty")
    try:
        doc = json.loads(data.decode("utf-8-sig"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise CentralError(ERR_ERP_FORMAT, f"not valid JSON: {str(exc)[:200]}") from None
    if isinstance(doc, list):
        records, nxt = doc, None
    elif isinstance(doc, dict) and isinstance(doc.get("results"), list):
        records, nxt = doc["results"], doc.get("next")
        if nxt is not None and not (isinstance(nxt, str) and 0 < len(nxt) <= 2000):
            raise CentralError(ERR_ERP_FORMAT, "`next` must be a URL or null")
    else:
        raise CentralError(ERR_ERP_FORMAT, 'send a list of records or {"results": [...]}')
    if len(records) > MAX_RECORDS:
        raise CentralError(ERR_ERP_TOO_LARGE, f"at most {MAX_RECORDS} records at once", 413)
    return records, nxt


def parse_csv(data: bytes) -> list[dict[str, str]]:
    """Return a CSV file's rows as records (a header row names the fields; BOM allowed)."""
    if len(data) > MAX_FILE_BYTES:
        raise CentralError(ERR_ERP_TOO_LARGE, f"the file is over {MAX_FILE_BYTES} bytes", 413)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise CentralError(ERR_ERP_FORMAT, "the CSV file is not UTF-8") from None
    if "\0" in text:
        raise CentralError(ERR_ERP_FORMAT, "the CSV file contains a NUL character")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_delimiter(text), strict=True)
    try:
        header = next(reader, None)
        if not header or not any(h.strip() for h in header):
            raise CentralError(ERR_ERP_FORMAT, "the CSV file needs a header row")
        names = [h.strip().lower() for h in header]
        if "number" not in names:
            raise CentralError(ERR_ERP_FORMAT, "the CSV header has no `number` column")
        if len(set(names)) != len(names):
            raise CentralError(ERR_ERP_FORMAT, "the CSV header names a column twice")
        rows: list[dict[str, str]] = []
        for cells in reader:
            if not any(c.strip() for c in cells):
                continue  # blank line
            if len(rows) >= MAX_RECORDS:
                raise CentralError(ERR_ERP_TOO_LARGE, f"at most {MAX_RECORDS} rows at once", 413)
            row = {n: c for n, c in zip(names, cells, strict=False) if n in _FIELDS and c.strip()}
            row[LINE_KEY] = str(reader.line_num)
            if len(cells) > len(names):
                row["__extra__"] = "1"
            elif len(cells) < len(names):
                row["__short__"] = f"{len(cells)} of {len(names)}"
            rows.append(row)
    except csv.Error as exc:
        raise CentralError(ERR_ERP_FORMAT, f"bad CSV at line {reader.line_num}: {exc}") from None
    return rows


def _delimiter(text: str) -> str:
    """Return the header line's separator: `,` unless it has more `;` or tabs (European
    ERPs export `;`)."""
    header = text.split("\n", 1)[0]
    counts = {d: header.count(d) for d in ",;\t"}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] > counts[","] else ","


def parse_file(name: str, data: bytes) -> list[Any]:
    """Return the records of an import file, by its name: `.csv` or `.json`."""
    lower = name.lower()
    if lower.endswith(".csv"):
        return parse_csv(data)
    if lower.endswith(".json"):
        return parse_json(data)[0]
    raise CentralError(ERR_ERP_FORMAT, "import a .csv or .json file")


# --- Validation ---------------------------------------------------------------------------


def _text(raw: dict[str, Any], key: str, max_len: int) -> str | None:
    value = raw.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise RecordError(ERR_ERP_FIELD, f"{key} must be text")
    value = value.strip()
    if not value:
        return None
    if len(value) > max_len or unsafe_character(value) or not value.isprintable():
        raise RecordError(ERR_ERP_FIELD, f"{key} must be 1-{max_len} printable characters")
    return value


def _whole(raw: dict[str, Any], key: str, low: int, high: int, from_csv: bool) -> int | None:
    value = raw.get(key)
    if value is None:
        return None
    code = ERR_ERP_QUANTITY if key == "quantity" else ERR_ERP_FIELD
    if from_csv and isinstance(value, str):
        text = value.strip()
        if not (text.isascii() and text.lstrip("-").isdigit() and len(text) <= 12):
            raise RecordError(code, f"{key} must be a whole number, not {text[:20]!r}")
        value = int(text)
    if isinstance(value, bool) or not isinstance(value, int):
        raise RecordError(code, f"{key} must be a whole number")
    if not low <= value <= high:
        raise RecordError(code, f"{key} must be {low}..{high:,}, not {value}")
    return value


def _percent(raw: dict[str, Any], key: str, from_csv: bool) -> float | None:
    value = raw.get(key)
    if value is None:
        return None
    if from_csv and isinstance(value, str):
        try:
            value = float(value.strip()) if len(value) <= 20 else None
        except ValueError:
            value = None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise RecordError(ERR_ERP_FIELD, f"{key} must be a number 0..100")
    if not 0 <= value <= 100:
        raise RecordError(ERR_ERP_FIELD, f"{key} must be 0..100, not {value}")
    return float(value)


def _line(raw: dict[str, Any], from_csv: bool) -> tuple[bool, str | None]:
    """Return (given, line): None means any line of the tenant."""
    if "line" in raw and "lines" in raw:
        raise RecordError(ERR_ERP_FIELD, "send line or lines, not both")
    if "lines" in raw:
        lines = raw["lines"]
        if from_csv and isinstance(lines, str):
            lines = [x for x in lines.split(";") if x.strip()]
        if not isinstance(lines, list) or len(lines) > 1:
            raise RecordError(
                ERR_ERP_FIELD, "lines is a list of at most one line (empty: any line)"
            )
        raw = {"line": lines[0] if lines else None}
    if "line" not in raw:
        return False, None
    line = _text(raw, "line", 64)
    if line is not None and not _NUMBER.fullmatch(line):
        raise RecordError(ERR_ERP_FIELD, "line must be letters, digits, . _ / - (1-64)")
    return True, line


def clean_record(raw: Any, index: int, products: Products, from_csv: bool = False) -> ErpRecord:
    """Return a validated record, or raise RecordError saying what is wrong."""
    if not isinstance(raw, dict):
        raise RecordError(ERR_ERP_FIELD, "a record is a JSON object")
    if "__extra__" in raw:
        raise RecordError(ERR_ERP_FIELD, "the row has more cells than the header")
    if "__short__" in raw:
        raise RecordError(
            ERR_ERP_FIELD, f"the row has fewer cells than the header ({raw['__short__']})"
        )
    number = _text(raw, "number", 64)
    if number is None:
        raise RecordError(ERR_ERP_FIELD, "number is missing")
    if not _NUMBER.fullmatch(number):
        raise RecordError(ERR_ERP_FIELD, "number must be letters, digits, . _ / - (1-64)")
    values: dict[str, Any] = {}
    sku = _text(raw, "sku", 64)
    gtin_text = _text(raw, "gtin", 20)
    gtin = None
    if gtin_text is not None:
        try:
            gtin = normalise_gtin(gtin_text)
        except ProtocolError as exc:
            raise RecordError(ERR_ERP_GTIN, f"gtin {gtin_text!r}: {exc.message}") from None
    if sku is None and gtin is None:
        raise RecordError(ERR_ERP_FIELD, "sku or gtin is missing")
    if sku is not None:
        product_id = products.by_sku.get(sku)
        if product_id is None:
            raise RecordError(ERR_ERP_PRODUCT_UNKNOWN, f"no product with SKU {sku!r}")
        if gtin is not None and products.by_gtin.get(gtin) != product_id:
            raise RecordError(
                ERR_ERP_PRODUCT_MISMATCH, f"SKU {sku!r} and GTIN {gtin} name different products"
            )
    else:
        assert gtin is not None
        found = products.by_gtin.get(gtin)
        if found is None:
            raise RecordError(ERR_ERP_PRODUCT_UNKNOWN, f"no product with GTIN {gtin}")
        product_id = found
    values["product_id"] = product_id
    ptype = _text(raw, "production_type", 3)
    if ptype is None or ptype.upper() not in PRODUCTION_TYPES:
        raise RecordError(
            ERR_ERP_FIELD, f"production_type must be one of {', '.join(PRODUCTION_TYPES)}"
        )
    values["production_type"] = ptype.upper()
    quantity = _whole(raw, "quantity", 1, MAX_QUANTITY, from_csv)
    if quantity is None:
        raise RecordError(ERR_ERP_QUANTITY, "quantity is missing")
    values["quantity"] = quantity
    if "name" in raw:
        values["name"] = _text(raw, "name", 200)
    sscc = _whole(raw, "requested_sscc", 0, MAX_QUANTITY, from_csv)
    if sscc is not None:
        values["requested_sscc"] = sscc
    for key in ("overage_pct", "tolerance_pct"):
        pct = _percent(raw, key, from_csv)
        if pct is not None:
            values[key] = pct
    given, line = _line(raw, from_csv)
    if given:
        values["line"] = line
    status = _text(raw, "status", 10)
    if status is not None:
        if status.lower() not in ("open", "closed"):
            raise RecordError(ERR_ERP_FIELD, "status must be open or closed")
        values["status"] = status.lower()
    return ErpRecord(index, number, values)
