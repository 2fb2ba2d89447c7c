"""`lineledger-central work-order generate|task|task-cancel|ssccs` and `product serial-format`.

Generation runs as a task in the jobs process (`lineledger-central jobs`); these commands ask
for it, follow it and cancel it. They register themselves on `central.cli`'s groups.
"""

from __future__ import annotations

import json
import time
from fractions import Fraction

import click

from central import audit, gentasks
from central.cli import _Ctx, _example, _friendly, pass_ctx, product
from central.cli_workorders import work_order
from central.errors import ERR_INVALID, CentralError
from central.jobs.runs import scheduler_status
from central.serialformats import DEFAULT_PLANNED, FORMATS, MAX_PLANNED, set_serial_format
from central.timeutil import utcnow

POLL_SECONDS = 0.5


@product.command(
    "serial-format",
    epilog=_example(
        "lineledger-central product serial-format --org MA01 --sku TOTE-01 --format sgtin-random "
        "--alphabet 0123456789ABCDEFGHJKLMNPQRSTUVWXYZ --length 12"
    ),
)
@click.option("--org", required=True)
@click.option("--sku", required=True)
@click.option("--format", "fmt", required=True, type=click.Choice(FORMATS))
@click.option(
    "--alphabet",
    default=None,
    help="sgtin-random: the characters drawn (GS1 AI (21) set 82; default 0-9 A-Z without I, O).",
)
@click.option("--length", type=click.IntRange(1, 20), default=None, help="sgtin-random: 1-20.")
@click.option(
    "--planned",
    type=click.IntRange(1, MAX_PLANNED),
    default=DEFAULT_PLANNED,
    show_default=True,
    help="sgtin-random: serials the GTIN will ever need; refused if a guess would then hit "
    "with probability 1/10,000 or more.",
)
@pass_ctx
@_friendly
def product_serial_format(
    ctx: _Ctx,
    org: str,
    sku: str,
    fmt: str,
    alphabet: str | None,
    length: int | None,
    planned: int,
) -> None:
    """Choose a product's serial format: standard, sgtin-seq or sgtin-random."""
    done = set_serial_format(
        ctx.store, org.upper(), sku, fmt, audit.cli_actor(), utcnow(), alphabet, length, planned
    )
    click.echo(f"{org.upper()} {sku} now uses serial format {fmt}")
    if "max_pool_size" in done:
        click.echo(
            f"alphabet {done['after']['serial_alphabet']!r}, length "
            f"{done['after']['serial_length']}: at most {done['max_pool_size']:,} serials per "
            f"GTIN keep a guess below 1/10,000; at {planned:,} a guess hits with probability "
            f"{float(Fraction(done['guess_probability_at_planned'])):.3g}"
        )


def _show(task: gentasks.Task) -> str:
    body = task.to_dict(utcnow())
    return json.dumps(body, indent=2, sort_keys=True)


def _follow(ctx: _Ctx, task: gentasks.Task) -> gentasks.Task:
    """Show a progress bar until the task ends; Ctrl-C stops following, not the task."""
    with ctx.store.read() as conn:
        alive = scheduler_status(conn, utcnow())["alive"]
    if not alive:
        click.echo(
            "no lineledger-central jobs process holds the schedule: the task waits for one",
            err=True,
        )
    shown = task.done
    try:
        with click.progressbar(
            length=max(task.requested, 1), label=f"{task.kind} {task.work_order}", show_eta=True
        ) as bar:
            bar.update(shown)
            while task.status in gentasks.ACTIVE:
                time.sleep(POLL_SECONDS)
                with ctx.store.read() as conn:
                    task = gentasks.get_task(conn, task.id)
                bar.update(task.done - shown)
                shown = task.done
    except KeyboardInterrupt:
        click.echo(
            f"\nstopped following; task {task.id} carries on in the jobs process "
            f"(lineledger-central work-order task {task.id})"
        )
        raise SystemExit(130) from None
    return task


_PACKAGE = {"l2": "case", "l3": "pallet", "l4": "pallet (l4)"}


@work_order.command(
    "generate",
    epilog=_example("lineledger-central work-order generate WO-1001 --org MA01 --sscc 120 --wait"),
)
@click.argument("number")
@click.option("--org", default=None, help="The tenant (needed if several have this number).")
@click.option(
    "--serials",
    type=click.IntRange(1, gentasks.MAX_QUANTITY[gentasks.SERIALS]),
    default=None,
    help="The work order should have this many randomised serials (sgtin-random products).",
)
@click.option(
    "--sscc",
    type=click.IntRange(1, gentasks.MAX_QUANTITY[gentasks.SSCC]),
    default=None,
    help="The work order should have this many SSCCs (cases and pallets).",
)
@click.option(
    "--force-regenerate",
    is_flag=True,
    help="Make N new ones in addition to those it has (numbers are never reused).",
)
@click.option("--wait", is_flag=True, help="Follow the task with a progress bar.")
@pass_ctx
@_friendly
def work_order_generate(
    ctx: _Ctx,
    number: str,
    org: str | None,
    serials: int | None,
    sscc: int | None,
    force_regenerate: bool,
    wait: bool,
) -> None:
    """Start generating SSCCs or randomised serials for a work order (a jobs-process task)."""
    if (serials is None) == (sscc is None):
        raise CentralError(ERR_INVALID, "give either --serials N or --sscc N")
    kind, quantity = (
        (gentasks.SERIALS, serials) if serials is not None else (gentasks.SSCC, sscc or 0)
    )
    task, answer = gentasks.request_generation(
        ctx.store,
        org.upper() if org else None,
        number,
        kind,
        quantity,
        force_regenerate,
        audit.cli_actor(),
        utcnow(),
    )
    click.echo(answer["message"])
    if task is None:
        return
    click.echo(f"task {task.id} ({task.status})")
    click.echo(f"follow it: lineledger-central work-order task {task.id} --wait")
    if wait:
        task = _follow(ctx, task)
        click.echo(f"task {task.id} {task.status}: {task.done:,} of {task.requested:,} made")
        if task.error:
            raise click.ClickException(task.error)


@work_order.command(
    "task",
    epilog=_example("lineledger-central work-order task 0190a8c4-...-7d3e --wait"),
)
@click.argument("task_id")
@click.option("--cancel", is_flag=True, help="Cancel it (a running task stops between chunks).")
@click.option("--wait", is_flag=True, help="Follow it with a progress bar.")
@pass_ctx
@_friendly
def work_order_task(ctx: _Ctx, task_id: str, cancel: bool, wait: bool) -> None:
    """Show a generation task: status, progress (done/total) and ETA."""
    if cancel:
        task = gentasks.cancel_task(ctx.store, task_id, audit.cli_actor(), utcnow())
    else:
        with ctx.store.read() as conn:
            task = gentasks.get_task(conn, task_id)
    if wait and task.status in gentasks.ACTIVE:
        task = _follow(ctx, task)
    click.echo(_show(task))


@work_order.command(
    "task-cancel", epilog=_example("lineledger-central work-order task-cancel 0190a8c4-...-7d3e")
)
@click.argument("task_id")
@pass_ctx
@_friendly
def work_order_task_cancel(ctx: _Ctx, task_id: str) -> None:
    """Cancel a generation task; what it made stays (numbers are never reused)."""
    task = gentasks.cancel_task(ctx.store, task_id, audit.cli_actor(), utcnow())
    if task.status == gentasks.CANCELLED:
        click.echo(f"task {task.id} cancelled ({task.done:,} made)")
    else:
        click.echo(f"task {task.id} will stop after its current chunk ({task.done:,} made so far)")


@work_order.command(
    "ssccs", epilog=_example("lineledger-central work-order ssccs WO-1001 --org MA01")
)
@click.argument("number")
@click.option("--org", default=None, help="The tenant (needed if several have this number).")
@click.option("--limit", type=click.IntRange(1, 1_000_000), default=1000, show_default=True)
@click.option("--after", default="", help="Only SSCCs after this one (18 digits; paging).")
@pass_ctx
@_friendly
def work_order_ssccs(ctx: _Ctx, number: str, org: str | None, limit: int, after: str) -> None:
    """List a work order's SSCCs, one a line, in order, with the package each is for."""
    if after and (len(after) != 18 or not after.isascii() or not after.isdigit()):
        raise CentralError(ERR_INVALID, "--after is an 18-digit SSCC")
    with ctx.store.read() as conn:
        found = gentasks.list_ssccs_with_levels(
            conn, org.upper() if org else None, number, limit, after
        )
    for code, level in found:
        click.echo(f"{code}\t{_PACKAGE.get(level or '', 'spare')}")
