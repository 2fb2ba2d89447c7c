"""`lineledger-central work-order`: add, list, show, update and close work orders.

These commands register themselves on `central.cli.main` (imported at the end of that
module). They are thin: `central.workorders` and `central.admin` do the work.
"""

from __future__ import annotations

import csv
import json
from typing import Any

import click
import sqlalchemy as sa

from central import admin, audit, workorders
from central import tables as T
from central.cli import _Ctx, _example, _friendly, _org_of, main, pass_ctx
from central.errors import ERR_TENANT_UNKNOWN, CentralError
from central.timeutil import utcnow

_TABLE = (
    ("number", 16),
    ("name", 20),
    ("sku", 12),
    ("production_type", 4),
    ("source", 6),
    ("status", 6),
    ("quantity", 9),
    ("allowed", 9),
    ("serial_status", 11),
    ("sscc_status", 11),
    ("line", 8),
    ("created_at", 25),
)


@main.group("work-order")
def work_order() -> None:
    """Manage work orders."""


@work_order.command(
    "add",
    epilog=_example(
        "lineledger-central work-order add --org MA01 --number WO-1001 --sku TOTE-01 --type HAT "
        '--quantity 500 --name "Spring totes" --sscc 10'
    ),
)
@click.option("--org", required=True)
@click.option("--number", required=True, help="Work order number.")
@click.option("--sku", required=True)
@click.option(
    "--type",
    "ptype",
    required=True,
    type=click.Choice(["HAT", "OEM"]),
    help="Production type.",
)
@click.option("--quantity", required=True, type=click.IntRange(1, 10_000_000))
@click.option("--line", default=None, help="Only this line may produce it (default: any).")
@click.option(
    "--overage",
    default=None,
    type=click.FloatRange(0, 100),
    help="Overage % (default: the tenant's manufacturing percentage, `config show`).",
)
@click.option(
    "--tolerance",
    default=None,
    type=click.FloatRange(0, 100),
    help="Discrepancy tolerance % (default: the tenant's discrepancy tolerance).",
)
@click.option("--name", default=None, help="A name people know it by (default: the number).")
@click.option(
    "--source",
    default="manual",
    type=click.Choice(["manual", "erp"]),
    help="Where it comes from (default manual).",
)
@click.option(
    "--sscc",
    "requested_sscc",
    default=0,
    type=click.IntRange(0, 10_000_000),
    help="SSCCs requested (cases and pallets).",
)
@pass_ctx
@_friendly
def work_order_add(
    ctx: _Ctx,
    org: str,
    number: str,
    sku: str,
    ptype: str,
    quantity: int,
    line: str | None,
    overage: float | None,
    tolerance: float | None,
    name: str | None,
    source: str,
    requested_sscc: int,
) -> None:
    """Add a work order."""
    admin.add_work_order(
        ctx.store,
        org.upper(),
        number,
        sku,
        ptype,
        quantity,
        utcnow(),
        line=line,
        overage_pct=overage,
        tolerance_pct=tolerance,
        name=name,
        source=source,
        requested_sscc=requested_sscc,
        actor=audit.cli_actor(),
    )
    click.echo(f"work order {number} added to {org.upper()}")


def _only_org(conn: Any, org: str | None) -> str:
    """Return `org`, or the only tenant's org code when there is one."""
    if org:
        return org.upper()
    orgs = conn.execute(sa.select(T.tenants.c.org_code).limit(2)).scalars().all()
    if not orgs:
        raise CentralError(ERR_TENANT_UNKNOWN, "no tenant yet (lineledger-central tenant add)")
    if len(orgs) > 1:
        raise click.UsageError("there are several tenants: give --org")
    return str(orgs[0])


class _Echo:
    """A file-like object for csv.writer that writes through click (stdout, streamed)."""

    def write(self, text: str) -> int:
        click.echo(text, nl=False)
        return len(text)


@work_order.command(
    "list",
    epilog=_example(
        "lineledger-central work-order list --org MA01 --status open --sort -created_at "
        "--page-size 20 --format table"
    ),
)
@click.option("--org", default=None, help="Tenant (needed if there are several).")
@click.option("--status", type=click.Choice(workorders.STATUSES), default=None)
@click.option("--source", type=click.Choice(workorders.SOURCES), default=None)
@click.option("--serial-status", type=click.Choice(workorders.GENERATION_STATUSES), default=None)
@click.option("--sscc-status", type=click.Choice(workorders.GENERATION_STATUSES), default=None)
@click.option("--sku", default=None, help="Only work orders of this product.")
@click.option("--search", default=None, help="Text in the number or the name.")
@click.option("--from", "date_from", default=None, help="Created on or after (YYYY-MM-DD, plant).")
@click.option("--to", "date_to", default=None, help="Created on or before (YYYY-MM-DD, plant).")
@click.option(
    "--sort",
    default=workorders.DEFAULT_SORT,
    help=f"One of {', '.join(workorders.SORT_FIELDS)}; prefix - for descending.",
)
@click.option("--page", default=None, type=int, help="Page number (1 = first).")
@click.option("--page-size", default=workorders.DEFAULT_PAGE_SIZE, type=int)
@click.option("--cursor", default=None, help="Continue from a cursor a previous page printed.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json", "csv"]),
    default="table",
    help="csv prints every matching work order (no paging), streamed.",
)
@pass_ctx
@_friendly
def work_order_list(
    ctx: _Ctx,
    org: str | None,
    fmt: str,
    page: int | None,
    page_size: int,
    **filters: str | None,
) -> None:
    """List work orders, filtered and sorted, a page at a time (csv: all of them)."""
    args: dict[str, Any] = {
        "from": filters.pop("date_from"),
        "to": filters.pop("date_to"),
        "page": page,
        "page_size": page_size,
        **filters,
    }
    query = workorders.parse_query({k: v for k, v in args.items() if v is not None})
    with ctx.store.read() as conn:
        org = _only_org(conn, org)
        if fmt != "csv":
            result = workorders.list_work_orders(conn, org, query)
    if fmt == "csv":
        writer = csv.writer(_Echo())
        writer.writerow(workorders.CSV_FIELDS)
        for item in workorders.export_work_orders(ctx.store, org, query):
            writer.writerow(workorders.csv_row(item))
        return
    if fmt == "json":
        click.echo(json.dumps(result.to_dict(), indent=2))
        return
    click.echo("  ".join(name[:width].ljust(width) for name, width in _TABLE).rstrip())
    for item in result.results:
        cells = ("" if item[n] is None else str(item[n]) for n, _ in _TABLE)
        click.echo(
            "  ".join(c[:w].ljust(w) for c, (_, w) in zip(cells, _TABLE, strict=True)).rstrip()
        )
    click.echo(f"{len(result.results)} of {result.count} work orders")
    if result.next:
        click.echo(f"next page: --cursor {result.next}")
    if result.previous:
        click.echo(f"previous page: --cursor {result.previous}")


@work_order.command(
    "show", epilog=_example("lineledger-central work-order show WO-1001 --org MA01")
)
@click.argument("number")
@click.option("--org", default=None, help="Tenant of the work order (needed if ambiguous).")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
@pass_ctx
@_friendly
def work_order_show(ctx: _Ctx, number: str, org: str | None, fmt: str) -> None:
    """Show a work order with its history (newest first)."""
    with ctx.store.read() as conn:
        body = workorders.show_work_order(conn, _org_of(conn, org and org.upper(), number), number)
    if fmt == "json":
        click.echo(json.dumps(body, indent=2))
        return
    for key, value in body.items():
        if key not in ("history", "needs"):
            click.echo(f"{key:26} {'' if value is None else value}")
    needs = body["needs"]
    levels = ", ".join(
        f"{name} {level['count']} (×{level['multiplier']})"
        for name, level in needs["levels"].items()
    )
    click.echo(f"{'needs':26} {needs['units']} units; {levels}; {needs['sscc']} SSCCs")
    click.echo("history:")
    for h in body["history"]:
        click.echo(
            f"  {h['created_at']}  {h['action']:18} {h['status']:10} {h['actor']}  "
            f"{json.dumps(h['details'], sort_keys=True)}"
        )


@work_order.command(
    "update",
    epilog=_example(
        "lineledger-central work-order update --org MA01 --number WO-1001 --quantity 600 "
        '--reason "customer raised the order"'
    ),
)
@click.option("--org", required=True)
@click.option("--number", required=True, help="Work order number.")
@click.option("--quantity", type=click.IntRange(1, 10_000_000), default=None)
@click.option("--overage", type=click.FloatRange(0, 100), default=None, help="Overage %.")
@click.option("--tolerance", type=click.FloatRange(0, 100), default=None, help="Tolerance %.")
@click.option("--name", default=None, help="A new name.")
@click.option(
    "--sscc", "requested_sscc", type=click.IntRange(0, 10_000_000), default=None, help="SSCCs."
)
@click.option("--line", default=None, help="Only this line may produce it.")
@click.option("--any-line", is_flag=True, help="Any line of the tenant may produce it.")
@click.option("--reason", default=None, help="Why (recorded in the audit log).")
@pass_ctx
@_friendly
def work_order_update(
    ctx: _Ctx,
    org: str,
    number: str,
    quantity: int | None,
    overage: float | None,
    tolerance: float | None,
    name: str | None,
    requested_sscc: int | None,
    line: str | None,
    any_line: bool,
    reason: str | None,
) -> None:
    """Change a work order's quantity, overage, tolerance, name, SSCCs or line."""
    if line is not None and any_line:
        raise click.UsageError("give --line or --any-line, not both")
    extra: dict[str, Any] = {}
    if line is not None or any_line:
        extra["line"] = line
    done = workorders.update_work_order(
        ctx.store,
        org.upper(),
        number,
        audit.cli_actor(),
        utcnow(),
        reason,
        quantity=quantity,
        overage_pct=overage,
        tolerance_pct=tolerance,
        name=name,
        requested_sscc=requested_sscc,
        **extra,
    )
    if done.get("unchanged"):
        click.echo(f"work order {number} already has these values; nothing changed")
        return
    shown = ", ".join(
        f"{field} {done['before'][field]} -> {value}" for field, value in done["after"].items()
    )
    where = f"line {done['line']}" if done.get("line") else "any line"
    click.echo(
        f"work order {number} updated: {shown}; it may consume {done['allowed']} serials ({where})"
    )


@work_order.command(
    "close",
    epilog=_example(
        'lineledger-central work-order close WO-1001 --org MA01 --reason "order shipped"'
    ),
)
@click.argument("number")
@click.option("--org", default=None, help="Tenant of the work order (needed if ambiguous).")
@click.option("--reason", required=True, help="Why (recorded in the audit log and history).")
@pass_ctx
@_friendly
def work_order_close(ctx: _Ctx, number: str, org: str | None, reason: str) -> None:
    """Close a work order: lines stop getting it and no more numbers are leased for it."""
    with ctx.store.read() as conn:
        org = _org_of(conn, org and org.upper(), number)
    workorders.close_work_order(ctx.store, org, number, audit.cli_actor(), utcnow(), reason)
    click.echo(f"work order {number} of {org} closed")
