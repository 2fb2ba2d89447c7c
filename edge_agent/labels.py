"""What the label of an issued serial says and how it is laid out, from the agent's store.

A product with a GTIN gets its GS1 element string (01)+(21) and a GS1 Digital Link in the
QR code; any other product gets the serial and `{verify base}/v/{serial}`.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from edge_agent.agent import Agent
from edge_agent.errors import ERR_JOB_UNKNOWN, EdgeError
from edge_agent.pool import production_date, scope_for
from printers import LabelTemplate, UnitLabel
from protocol.gs1 import digital_link, sgtin_fields
from protocol.keys import derive_lease_key
from protocol.serials import MAX_SEQ, render

_LABEL_QUERY = (
    "SELECT s.serial, s.work_order, s.scope_key, w.product_name, w.sku, w.gtin, "
    "w.label_template FROM serials s LEFT JOIN work_orders w ON w.number = s.work_order "
    "WHERE s.serial = ?"
)
# Previews of a label not issued yet carry a serial made with a key nobody holds.
_PREVIEW_KEY = derive_lease_key(b"\0" * 32, "label-preview")


@lru_cache(maxsize=64)
def _template(raw_templates: str, name: str) -> LabelTemplate:
    templates = json.loads(raw_templates)
    body: Any = templates.get(name, templates.get("default", {}))
    return LabelTemplate.from_dict(body)


def template_named(agent: Agent, name: str | None) -> LabelTemplate:
    """Return the label template central configured under `name` (or the default)."""
    return _template(agent.store.get_meta("label_templates") or "{}", name or "default")


def build_label(
    agent: Agent,
    serial: str,
    work_order: str,
    prod_date: str,
    product_name: str,
    sku: str,
    gtin: str | None,
) -> UnitLabel:
    """Return the facts printed on the label of one serial."""
    base = agent.store.get_meta("verify_base_url") or "http://localhost"
    gs1 = sgtin_fields(gtin, serial) if gtin else ()
    url = digital_link(base, gtin, gs1[1][1]) if gtin else f"{base}/v/{serial}"
    return UnitLabel(
        serial=serial,
        verify_url=url,
        product_name=product_name,
        sku=sku,
        work_order=work_order,
        prod_date=prod_date,
        gs1=gs1,
    )


def label_for(agent: Agent, serial: str) -> tuple[UnitLabel, LabelTemplate]:
    """Return the label of a serial this agent issued, with its product's template."""
    row = agent.store.conn().execute(_LABEL_QUERY, (serial,)).fetchone()
    if row is None:
        raise EdgeError(ERR_JOB_UNKNOWN, f"serial {serial} was not issued by this agent")
    day = row["scope_key"].rsplit("-", 1)[-1]
    label = build_label(
        agent,
        row["serial"],
        row["work_order"] or "",
        f"{day[:4]}-{day[4:6]}-{day[6:]}",
        row["product_name"] or "",
        row["sku"] or "",
        row["gtin"],
    )
    return label, template_named(agent, row["label_template"])


def preview_for(
    agent: Agent, work_order: str, serial: str | None = None
) -> tuple[UnitLabel, LabelTemplate]:
    """Return what the next label of a work order will look like.

    Without `serial` the serial is a sample no lease can produce.
    """
    wo = agent.work_order(work_order)
    ident = agent.identity()
    today = production_date(ident, agent.now())
    if serial is None:
        serial = render(scope_for(ident, wo, today), MAX_SEQ, _PREVIEW_KEY)
    label = build_label(
        agent, serial, wo.number, today.isoformat(), wo.product_name, wo.sku, wo.gtin
    )
    return label, template_named(agent, wo.label_template)
