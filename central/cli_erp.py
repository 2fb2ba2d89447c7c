"""`lineledger-central erp`: import ERP files, pull the ERP now, see how the syncs went.

Registers itself on `central.cli.main` (imported at the end of that module).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
import sqlalchemy as sa

from central import audit, erp, erp_pull, erp_records
from central import tables as T
from central.cli import _Ctx, _example, _friendly, main, pass_ctx
from central.cli_jobs import _job_context
from central.errors import (
    ERR_ERP_NOT_CONFIGURED,
    ERR_ERP_TOO_LARGE,
    ERR_JOB_BUSY,
    ERR_JOB_FAILED,
    CentralError,
    Conflict,
)
from central.jobs import catalog
from central.jobs.runs import CLI, SKIPPED, JobContext, JobResult, run_job
from central.timeutil import utcnow


@main.group("erp")
def erp_group() -> None:
    """Work orders from the ERP: file imports, pulls, sync status."""


def _problem_lines(report: dict[str, Any]) -> list[str]:
    lines = []
    for item in report["errors"]:
        where = f"record {item['index']}" if item["index"] is not None else "feed"
        if item.get("number"):
            where += f" ({item['number']})"
        lines.append(f"  {item['kind']}: {where}: {item['code']}: {item['message']}")
    hidden = report["errors_total"] - len(report["errors"])
    if hidden > 0:
        lines.append(f"  ... and {hidden} more")
    return lines


def _print_report(report: dict[str, Any], fmt: str) -> None:
    if fmt == "json":
        click.echo(json.dumps({"ok": True, **report}, sort_keys=True))
        return
    head = "dry run (nothing written): " if report["dry_run"] else ""
    click.echo(
        f"{head}{report['org']} {report['source']}: {report['status']}; "
        f"received {report['received']}, created {report['created']}, "
        f"updated {report['updated']}, unchanged {report['unchanged']}, "
        f"failed {report['failed']}, conflicts {report['conflicts']}"
    )
    if report["reason"]:
        click.echo(f"  stopped: {report['reason']}")
    for line in _problem_lines(report):
        click.echo(line)


_FORMAT = click.option(
    "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True
)


@erp_group.command(
    "import",
    epilog=_example("lineledger-central erp import orders.csv --org MA01 --dry-run"),
)
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--org", required=True, help="The tenant the work orders belong to.")
@click.option("--dry-run", is_flag=True, help="Validate and compare only; write nothing.")
@_FORMAT
@click.pass_context
@_friendly
def erp_import(click_ctx: click.Context, file: Path, org: str, dry_run: bool, fmt: str) -> None:
    """Import work orders from an ERP export (.csv with a header row, or .json).

    Prints created / updated / unchanged / failed counts and every refused record with its
    reason. Exits 1 if any record was refused or the file could not be read.
    """
    ctx: _Ctx = click_ctx.obj
    if file.stat().st_size > erp_records.MAX_FILE_BYTES:
        raise CentralError(
            ERR_ERP_TOO_LARGE, f"the file is over {erp_records.MAX_FILE_BYTES} bytes"
        )
    report = erp.import_records(
        ctx.store,
        org.upper(),
        file.name,
        file.read_bytes(),
        audit.cli_actor(),
        utcnow(),
        dry_run=dry_run,
    )
    _print_report(report.to_dict(), fmt)
    if report.failed or report.reason:
        click_ctx.exit(1)


@erp_group.command("pull", epilog=_example("lineledger-central erp pull --org MA01"))
@click.option("--org", default=None, help="Pull this tenant only (default: every configured).")
@_FORMAT
@click.pass_context
@_friendly
def erp_pull_now(click_ctx: click.Context, org: str | None, fmt: str) -> None:
    """Pull the ERP now (as the jobs process does when due), as a run of the erp_pull job.

    Exits 1 if a pull failed or stopped part way; what was synced before stays.
    """
    ctx: _Ctx = click_ctx.obj
    code = org.upper() if org else None
    if code is not None:
        with ctx.store.read() as conn:
            if not erp.erp_settings(conn, code).url:
                raise Conflict(ERR_ERP_NOT_CONFIGURED, f"{code} has no erp_url configured")
    outcome: list[tuple[dict[str, Any], list[str]]] = []

    def work(jctx: JobContext, now: Any) -> JobResult:
        counts, errors = erp_pull.run_due(
            jctx.store, now, audit.cli_actor(), stop=jctx.stop, org=code, force=True
        )
        outcome.append((counts, errors))
        return JobResult(counts, errors)

    run = run_job(_job_context(ctx), catalog.ERP_PULL, work, CLI)
    if run.status == SKIPPED:
        raise Conflict(ERR_JOB_BUSY, (run.errors or "").partition(": ")[2] or "a pull is running")
    if not outcome:
        raise CentralError(ERR_JOB_FAILED, run.errors or "the pull failed")
    counts, errors = outcome[0]
    if fmt == "json":
        click.echo(json.dumps({"ok": not errors, "counts": counts, "errors": errors}))
    else:
        click.echo(
            f"{counts['pulls']} pull(s): {counts['synced']} records synced, "
            f"{counts['failed_records']} refused"
        )
        for line in errors:
            click.echo(f"  {line}")
    with ctx.store.read() as conn:
        for tenant in [code] if code else list(erp.tenants_with_erp(conn)):
            status = erp.erp_status(conn, tenant, utcnow())
            if fmt != "json" and status["sync"]:
                click.echo(f"{tenant}: last sync {status['status']} (#{status['sync']['id']})")
    if errors:
        click_ctx.exit(1)


def _status_orgs(conn: sa.Connection) -> list[str]:
    t, s = T.tenants.c, T.erp_syncs.c
    with_syncs = sa.select(s.tenant_id).distinct()
    rows = conn.execute(sa.select(t.org_code).where(t.id.in_(with_syncs)).order_by(t.org_code))
    return sorted({*erp.tenants_with_erp(conn), *(r.org_code for r in rows)})


@erp_group.command("status", epilog=_example("lineledger-central erp status --org MA01"))
@click.option("--org", default=None, help="One tenant (default: every tenant with ERP syncs).")
@click.option("--history", default=0, type=click.IntRange(0, 100), help="Also older syncs.")
@_FORMAT
@pass_ctx
@_friendly
def erp_status(ctx: _Ctx, org: str | None, history: int, fmt: str) -> None:
    """Show the last sync, its status, synced and failed records (with reasons), next pull."""
    now = utcnow()
    with ctx.store.read() as conn:
        orgs = [org.upper()] if org else _status_orgs(conn)
        statuses = [erp.erp_status(conn, code, now, history) for code in orgs]
    if fmt == "json":
        body: Any = statuses[0] if org else {"ok": True, "tenants": statuses}
        click.echo(json.dumps(body, sort_keys=True))
        return
    if not statuses:
        click.echo("no tenant has an ERP configured or a sync recorded")
    for st in statuses:
        click.echo(f"{st['org']}: ERP {st['erp_url'] or 'not configured'}")
        click.echo(f"  last sync: {st['last_sync'] or 'never'} ({st['status']})")
        click.echo(f"  synced records: {st['synced_records']}")
        click.echo(f"  failed records: {st['failed_records']}")
        click.echo(f"  next scheduled sync: {st['next_scheduled_sync'] or 'none (no schedule)'}")
        for sync in ([st["sync"]] if st["sync"] else []) + st["history"]:
            report = {**sync, "errors_total": len(sync["errors"])}
            click.echo(
                f"  sync #{sync['id']} {sync['trigger']} {sync['source']}: {sync['status']}; "
                f"created {sync['created']}, updated {sync['updated']}, "
                f"unchanged {sync['unchanged']}, failed {sync['failed']}, "
                f"conflicts {sync['conflicts']}"
            )
            if sync["reason"]:
                click.echo(f"    stopped: {sync['reason']}")
            for line in _problem_lines(report):
                click.echo("  " + line)
