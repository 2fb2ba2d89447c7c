"""The reconciliation report: where every number of a work order or a lease went.

Per lease every number is in exactly one place: registered (a serial with facts), unaccounted
(at or below the highest number central knows was used, yet no fact of it arrived), a
recorded gap (the unused tail of a closed lease) or still unused (an active lease's numbers
above its mark). `balanced` says these add up to the lease's size.

Per work order: requested, allowed (quantity x (1 + overage %)), the leases that served it,
issued, printed, reprinted, voided, linked, retired, recalled, quarantined, and the
discrepancy: serials under review or retired, numbers of its leases whose facts never arrived,
and serials beyond the allowance. Beyond the work order's tolerance (% of the requested
quantity) the report says HOLD SHIPMENT.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from central import tables as T
from central.admin import tenant_by_org
from central.errors import ERR_LEASE_UNKNOWN, ERR_WORK_ORDER_UNKNOWN, NotFound
from central.leases import allowed_serials, high_waters
from protocol import lifecycle as L
from protocol.errors import ProtocolError
from protocol.serials import parse

_PRINTED_STATES = (L.PRINTED, L.LINKED, L.PACKED, L.SHIPPED)


def _held_serials(conn: Connection, tenant_id: int, scope_key: str) -> set[str]:
    """Return the serials of a scope under review (open holds) in a tenant."""
    q = T.quarantine.c
    return set(
        conn.execute(
            sa.select(q.serial)
            .where(
                q.tenant_id == tenant_id,
                q.resolved_at.is_(None),
                q.holds_serial.is_(True),
                q.serial.like(f"{scope_key}-%"),
            )
            .distinct()
        ).scalars()
    )


def _in_lease(serials: Iterable[str], lease: Row[Any]) -> set[str]:
    out = set()
    for text in serials:
        try:
            serial = parse(text)
        except ProtocolError:
            continue
        if serial.scope.key == lease.scope_key and lease.first_seq <= serial.seq <= lease.last_seq:
            out.add(text)
    return out


def lease_report(conn: Connection, lease: Row[Any], mark: int) -> dict[str, Any]:
    """Return the accounting of one lease (`mark`: central's high-water mark of it)."""
    reg = T.registry.c
    rows = conn.execute(
        sa.select(reg.state, reg.seq, reg.print_count, reg.reprint_count, reg.linked_at).where(
            reg.lease_id == lease.id
        )
    ).all()
    gap = conn.execute(
        sa.select(
            sa.func.coalesce(sa.func.sum(T.gaps.c.last_seq - T.gaps.c.first_seq + 1), 0)
        ).where(T.gaps.c.lease_id == lease.id)
    ).scalar()
    size = lease.last_seq - lease.first_seq + 1
    at_or_below = sum(1 for r in rows if r.seq <= mark)
    unused = lease.last_seq - mark if lease.status == "active" else 0
    held = _in_lease(_held_serials(conn, lease.tenant_id, lease.scope_key), lease)
    counts = _state_counts(rows)
    body = {
        "lease_id": lease.id,
        "agent_id": lease.agent_id,
        "scope": lease.scope_key,
        "first": lease.first_seq,
        "last": lease.last_seq,
        "status": lease.status,
        "leased": size,
        "high_water": mark,
        **counts,
        "quarantined": len(held),
        "unaccounted": (mark - lease.first_seq + 1) - at_or_below,
        "above_mark": len(rows) - at_or_below,
        "gap": int(gap or 0),
        "unused": unused,
    }
    body["balanced"] = (
        body["issued"] + body["unaccounted"] + body["gap"] + body["unused"] == size
        and body["above_mark"] == 0
    )
    return body


def _state_counts(rows: list[Row[Any]]) -> dict[str, int]:
    return {
        "issued": len(rows),
        "printed": sum(1 for r in rows if r.print_count > 0 or r.state in _PRINTED_STATES),
        "reprinted": sum(r.reprint_count for r in rows),
        "voided": sum(1 for r in rows if r.state in (L.VOIDED, L.DECOMMISSIONED, L.DESTROYED)),
        "linked": sum(1 for r in rows if r.linked_at is not None),
        "retired": sum(1 for r in rows if r.state == L.RETIRED),
        "recalled": sum(1 for r in rows if r.state == L.RECALLED),
    }


def report_for_lease(conn: Connection, lease_id: str) -> dict[str, Any]:
    """Return the accounting of one lease by id."""
    lease = conn.execute(sa.select(T.leases).where(T.leases.c.id == lease_id[:64])).first()
    if lease is None:
        raise NotFound(ERR_LEASE_UNKNOWN, f"no lease {lease_id[:64]!r}")
    return lease_report(conn, lease, high_waters(conn, [lease])[lease.id])


def report_for_work_order(conn: Connection, org: str, number: str) -> dict[str, Any]:
    """Return the reconciliation report of one work order, with its leases."""
    tenant = tenant_by_org(conn, org)
    wo = conn.execute(
        sa.select(T.work_orders).where(
            T.work_orders.c.tenant_id == tenant.id, T.work_orders.c.number == number
        )
    ).first()
    if wo is None:
        raise NotFound(ERR_WORK_ORDER_UNKNOWN, f"{org} has no work order {number!r}")
    reg = T.registry.c
    rows = conn.execute(
        sa.select(
            reg.serial,
            reg.state,
            reg.seq,
            reg.lease_id,
            reg.print_count,
            reg.reprint_count,
            reg.linked_at,
        ).where(reg.tenant_id == tenant.id, reg.work_order == number)
    ).all()
    lease_ids = sorted({r.lease_id for r in rows})
    leases = conn.execute(sa.select(T.leases).where(T.leases.c.id.in_(lease_ids))).all()
    marks = high_waters(conn, leases)
    per_lease = [lease_report(conn, lease, marks[lease.id]) for lease in leases]
    q = T.quarantine.c
    serials = [r.serial for r in rows]
    held: set[str] = set()
    for i in range(0, len(serials), 500):
        held.update(
            conn.execute(
                sa.select(q.serial)
                .where(
                    q.tenant_id == tenant.id,
                    q.serial.in_(serials[i : i + 500]),
                    q.resolved_at.is_(None),
                    q.holds_serial.is_(True),
                )
                .distinct()
            ).scalars()
        )
    counts = _state_counts(rows)
    allowed = allowed_serials(wo.quantity, wo.overage_pct)
    unaccounted = sum(lr["unaccounted"] for lr in per_lease)
    over = max(0, counts["issued"] - allowed)
    discrepancy = len(held) + counts["retired"] + unaccounted + over
    pct = 100.0 * discrepancy / wo.quantity if wo.quantity else 0.0
    return {
        "org": tenant.org_code,
        "work_order": number,
        "status": wo.status,
        "production_type": wo.production_type,
        "requested": wo.quantity,
        "overage_pct": wo.overage_pct,
        "allowed": allowed,
        "leased": sum(lr["leased"] for lr in per_lease),
        **counts,
        "quarantined": len(held),
        "unaccounted": unaccounted,
        "over_allowance": over,
        "unprinted": counts["issued"]
        - counts["printed"]
        - counts["voided"]
        - counts["retired"]
        - sum(1 for r in rows if r.state == L.RECALLED and r.print_count == 0),
        "gap": sum(lr["gap"] for lr in per_lease),
        "discrepancy": discrepancy,
        "discrepancy_pct": round(pct, 2),
        "tolerance_pct": wo.tolerance_pct,
        "hold_shipment": pct > wo.tolerance_pct,
        "leases": per_lease,
    }


_WO_COLUMNS = (
    "requested",
    "allowed",
    "leased",
    "issued",
    "printed",
    "reprinted",
    "voided",
    "linked",
    "gap",
    "unaccounted",
    "quarantined",
    "retired",
    "recalled",
    "over_allowance",
    "unprinted",
    "discrepancy",
    "discrepancy_pct",
    "tolerance_pct",
)
_LEASE_COLUMNS = (
    "lease_id",
    "scope",
    "first",
    "last",
    "status",
    "leased",
    "high_water",
    "issued",
    "printed",
    "reprinted",
    "voided",
    "linked",
    "quarantined",
    "unaccounted",
    "gap",
    "unused",
    "balanced",
)


_TABLE_COLUMNS = (
    "lease",
    "scope",
    "numbers",
    "status",
    "used to",
    "issued",
    "printed",
    "voided",
    "held",
    "unaccounted",
    "gap",
    "unused",
    "balanced",
)


def _table_row(lease: dict[str, Any]) -> list[str]:
    return [
        lease["lease_id"][:13] + "…",
        lease["scope"],
        f"{lease['first']}-{lease['last']}",
        lease["status"],
        str(lease["high_water"]),
        *(
            str(lease[c])
            for c in ("issued", "printed", "voided", "quarantined", "unaccounted", "gap", "unused")
        ),
        "yes" if lease["balanced"] else "NO",
    ]


def render(report: dict[str, Any], fmt: str) -> str:
    """Return a report as `table` (for people), `csv` or `json`."""
    if fmt == "json":
        return json.dumps(report, sort_keys=True, indent=2)
    is_wo = "work_order" in report
    leases = report.get("leases", []) if is_wo else [report]
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        if is_wo:
            writer.writerow(["work_order", *_WO_COLUMNS, "hold_shipment"])
            writer.writerow(
                [report["work_order"], *(report[c] for c in _WO_COLUMNS), report["hold_shipment"]]
            )
            writer.writerow([])
        writer.writerow(_LEASE_COLUMNS)
        for lease in leases:
            writer.writerow([lease[c] for c in _LEASE_COLUMNS])
        return out.getvalue()
    lines = []
    if is_wo:
        lines.append(f"Work order {report['org']}/{report['work_order']} ({report['status']})")
        width = max(len(c) for c in _WO_COLUMNS)
        lines += [f"  {c.replace('_', ' '):<{width}}  {report[c]}" for c in _WO_COLUMNS]
        lines.append(
            "  >>> HOLD SHIPMENT: the discrepancy exceeds the tolerance <<<"
            if report["hold_shipment"]
            else "  shipment: OK (discrepancy within tolerance)"
        )
        lines.append("")
    lines.append("Leases:" if leases else "Leases: none yet")
    if leases:
        table = [list(_TABLE_COLUMNS)] + [_table_row(lease) for lease in leases]
        widths = [max(len(row[i]) for row in table) for i in range(len(_TABLE_COLUMNS))]
        for row in table:
            lines.append(
                "  "
                + "  ".join(
                    cell.ljust(w) if i < 3 else cell.rjust(w)
                    for i, (cell, w) in enumerate(zip(row, widths, strict=True))
                ).rstrip()
            )
    return "\n".join(lines)
