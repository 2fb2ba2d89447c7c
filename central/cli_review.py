"""`lineledger-central quarantine list|show` and `recall`: look at what is held, recall.

These commands register themselves on `central.cli.main` and its `quarantine` group
(imported at the end of `central.cli`).
"""

from __future__ import annotations

import json

import click

from central import audit
from central import quarantine as Q
from central import recall as R
from central.cli import _Ctx, _example, _friendly, _org_of, main, pass_ctx, quarantine
from central.timeutil import utcnow


@quarantine.command(
    "list",
    epilog=_example("lineledger-central quarantine list --org MA01 --reason ERR_FACTS_LOST"),
)
@click.option("--org", default=None, help="Only entries of this tenant.")
@click.option("--reason", default=None, help="Only this reason, e.g. ERR_DUPLICATE_SERIAL.")
@click.option("--status", type=click.Choice(Q.STATUSES), default=Q.OPEN, show_default=True)
@click.option("--serial", default=None, help="Only entries of this serial.")
@click.option(
    "--limit", default=Q.DEFAULT_LIMIT, show_default=True, type=click.IntRange(1, Q.MAX_LIMIT)
)
@click.option(
    "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True
)
@pass_ctx
@_friendly
def quarantine_list(
    ctx: _Ctx,
    org: str | None,
    reason: str | None,
    status: str,
    serial: str | None,
    limit: int,
    fmt: str,
) -> None:
    """List quarantine entries, newest first (open ones unless --status says otherwise)."""
    with ctx.store.read() as conn:
        entries = Q.list_entries(conn, org, reason, status, serial, limit)
    if fmt == "json":
        for entry in entries:
            click.echo(json.dumps(entry, sort_keys=True))
        return
    if not entries:
        click.echo("no entries")
        return
    click.echo("id\tcreated (UTC)\torg\tserial\treason\tholds\tsource\tstatus")
    for e in entries:
        created = (e["created_at"] or "")[:19].replace("T", " ")
        click.echo(
            f"{e['id']}\t{created}\t{e['org'] or '-'}\t{e['serial']}\t{e['reason']}\t"
            f"{'yes' if e['holds_serial'] else 'no'}\t{e['source']}\t{e['status']}"
        )


@quarantine.command("show", epilog=_example("lineledger-central quarantine show 42"))
@click.argument("entry", type=click.IntRange(1, 10**12))
@pass_ctx
@_friendly
def quarantine_show(ctx: _Ctx, entry: int) -> None:
    """Show an entry with its held event, the serial's registry row and its other entries."""
    with ctx.store.read() as conn:
        body = Q.show_entry(conn, entry)
    click.echo(json.dumps(body, indent=2, sort_keys=True))


@main.command(
    "recall",
    epilog=_example(
        'lineledger-central recall --work-order WO-1001 --org MA01 --reason "stitching defect"'
    ),
)
@click.option("--serial", default=None, help="Recall this one serial.")
@click.option("--work-order", "work_order", default=None, help="Recall every serial of it.")
@click.option("--org", default=None, help="Tenant (needed with --work-order if ambiguous).")
@click.option("--reason", required=True, help="Why (recorded with who and when).")
@pass_ctx
@_friendly
def recall(
    ctx: _Ctx, serial: str | None, work_order: str | None, org: str | None, reason: str
) -> None:
    """Recall a serial or a work order: verify answers `recalled` for its serials."""
    if (serial is None) == (work_order is None):
        raise click.UsageError("give --serial or --work-order")
    now = utcnow()
    if serial is not None:
        done = R.recall_serial(ctx.store, serial, reason, audit.cli_actor(), now, org)
        if done.get("already_recalled"):
            click.echo(f"{done['serial']} was recalled already")
        else:
            click.echo(f"{done['serial']} recalled (was {done['previous_state']})")
        return
    assert work_order is not None
    with ctx.store.read() as conn:
        org_code = _org_of(conn, org, work_order)
    done = R.recall_work_order(ctx.store, org_code, work_order, reason, audit.cli_actor(), now)
    again = " (it was recalled already)" if done["already_recalled"] else ""
    click.echo(
        f"work order {org_code}/{work_order} recalled{again}: {done['recalled']} serials "
        "recalled now; serials of it that arrive later are recalled too"
    )
