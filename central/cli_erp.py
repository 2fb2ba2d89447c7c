"""`lineledger-central erp`: import ERP files, pull the ERP now, see how the syncs went.

Registers itself on `central.cli.main` (imported at the end of that module).
"""

from __future__ import annotations

import contextlib
import json
import re
import signal
import threading
from collections.abc import Iterator
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


# Characters a terminal acts on: C0 and C1 controls, DEL, and bidi embeddings, overrides
# and isolates (they reorder what follows). ERP data is shown with these escaped.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _escape(char: str) -> str:
    code = ord(char)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def safe(value: Any) -> str:
    """Return ERP-supplied text fit for a terminal: control and bidi characters escaped."""
    return _UNSAFE.sub(lambda m: _escape(m.group()), str(value))


def _where(item: dict[str, Any]) -> str:
    """Name a record as people count it: record 1 is the first; a CSV record's file line."""
    index = item.get("index")
    if index is None:
        return "feed"
    parts = [f"line {item['line']}"] if item.get("line") else []
    if item.get("number"):
        parts.append(safe(item["number"]))
    where = f"record {item.get('record') or index + 1}"
    return f"{where} ({', '.join(parts)})" if parts else where


def _problem_lines(report: dict[str, Any]) -> list[str]:
    lines = []
    for item in report["errors"]:
        lines.append(
            f"  {safe(item['kind'])}: {_where(item)}: {safe(item['code'])}: {safe(item['message'])}"
        )
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
        f"{head}{report['org']} {safe(report['source'])}: {report['status']}; "
        f"received {report['received']}, created {report['created']}, "
        f"updated {report['updated']}, unchanged {report['unchanged']}, "
        f"failed {report['failed']}, conflicts {report['conflicts']}"
    )
    if report["conflicts"]:
        click.echo(_CONFLICTS_NOTE)
    if report["reason"]:
        click.echo(f"  stopped: {safe(report['reason'])}")
    for line in _problem_lines(report):
        click.echo(line)


_CONFLICTS_NOTE = (
    "  (a record with a conflict is kept in whole or in part and counted once, as a "
    "conflict, not also as updated or unchanged)"
)

_IMPORT_HELP = """Import work orders from an ERP export (.csv with a header row, or .json).

\b
Columns (CSV header names, or JSON fields; others are ignored):
  number           required: the work-order number (letters, digits, . _ / -)
  sku, gtin        one required: the product (both: they must agree)
  production_type  required: HAT or OEM
  quantity         required: a whole number 1..10,000,000
  name             optional text (up to 200 characters)
  requested_sscc   optional whole number 0..10,000,000
  overage_pct      optional 0..100 (default: the generation config)
  tolerance_pct    optional 0..100 (default: the generation config)
  line             optional: the one line allowed to produce it (or `lines`)
  status           optional: open (default) or closed

\b
CSV separated by `,`, `;` or tab; JSON a list of objects. Example CSV:
  number,sku,production_type,quantity
  WO-1001,TOTE-01,OEM,500

Prints created / updated / unchanged / failed / conflict counts (each record counted once)
and every refused record as "record N" (1 = the first; CSV: also its line). Exits 1 if any
record was refused or the file could not be read.
"""

_FORMAT = click.option(
    "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True
)


@contextlib.contextmanager
def _sigterm_exits() -> Iterator[None]:
    """Turn SIGTERM into SystemExit meanwhile, so an import records itself interrupted."""

    def handler(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@erp_group.command(
    "import",
    help=_IMPORT_HELP,
    epilog=_example("lineledger-central erp import orders.csv --org MA01 --dry-run"),
)
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--org", required=True, help="The tenant the work orders belong to.")
@click.option("--dry-run", is_flag=True, help="Validate and compare only; write nothing.")
@_FORMAT
@click.pass_context
@_friendly
def erp_import(click_ctx: click.Context, file: Path, org: str, dry_run: bool, fmt: str) -> None:
    ctx: _Ctx = click_ctx.obj
    if file.stat().st_size > erp_records.MAX_FILE_BYTES:
        raise CentralError(
            ERR_ERP_TOO_LARGE, f"the file is over {erp_records.MAX_FILE_BYTES} bytes"
        )
    with _sigterm_exits():
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
    reports: list[erp.SyncReport] = []

    def work(jctx: JobContext, now: Any) -> JobResult:
        counts, errors = erp_pull.run_due(
            jctx.store,
            now,
            audit.cli_actor(),
            stop=jctx.stop,
            org=code,
            force=True,
            reports=reports,
        )
        outcome.append((counts, errors))
        return JobResult(counts, errors)

    run = run_job(_job_context(ctx), catalog.ERP_PULL, work, CLI)
    if run.status == SKIPPED:
        raise Conflict(ERR_JOB_BUSY, (run.errors or "").partition(": ")[2] or "a pull is running")
    if not outcome:
        raise CentralError(ERR_JOB_FAILED, run.errors or "the pull failed")
    counts, errors = outcome[0]
    # Per-record refusals are part of the answer too: a partial or failed sync exits 1.
    record_errors = [
        f"{r.org}: {_where(p)}: {p['code']}: {p['message']}"
        for r in reports
        for p in r.problems
        if p["kind"] == "error"
    ]
    incomplete = [r for r in reports if r.status in (erp.PARTIAL, erp.FAILED)]
    bad = bool(errors or incomplete or counts["failed_records"])
    if fmt == "json":
        syncs = [
            {
                "org": r.org,
                "sync_id": r.sync_id,
                "status": r.status,
                "reason": r.reason,
                "errors": r.problems,
                "errors_total": r.problems_total,
            }
            for r in reports
        ]
        body = {"ok": not bad, "counts": counts, "errors": errors + record_errors, "syncs": syncs}
        click.echo(json.dumps(body))
    else:
        click.echo(
            f"{counts['pulls']} pull(s): {counts['synced']} records synced, "
            f"{counts['failed_records']} refused"
        )
        for line in errors:
            click.echo(f"  {safe(line)}")
        for r in reports:
            for line in _problem_lines(r.to_dict()):
                click.echo(f"  {r.org}:{line}")
    with ctx.store.read() as conn:
        for tenant in [code] if code else list(erp.tenants_with_erp(conn)):
            status = erp.erp_status(conn, tenant, utcnow())
            if fmt != "json" and status["sync"]:
                click.echo(f"{tenant}: last sync {status['status']} (#{status['sync']['id']})")
    if bad:
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
        click.echo(f"{st['org']}: ERP {safe(st['erp_url'] or 'not configured')}")
        click.echo(f"  last sync: {st['last_sync'] or 'never'} ({st['status']})")
        click.echo(f"  synced records: {st['synced_records']}")
        click.echo(f"  failed records: {st['failed_records']}")
        click.echo(f"  next scheduled sync: {st['next_scheduled_sync'] or 'none (no schedule)'}")
        for sync in ([st["sync"]] if st["sync"] else []) + st["history"]:
            report = {**sync, "errors_total": len(sync["errors"])}
            click.echo(
                f"  sync #{sync['id']} {sync['trigger']} {safe(sync['source'])}: "
                f"{sync['status']}; "
                f"created {sync['created']}, updated {sync['updated']}, "
                f"unchanged {sync['unchanged']}, failed {sync['failed']}, "
                f"conflicts {sync['conflicts']}"
            )
            if sync["reason"]:
                click.echo(f"    stopped: {safe(sync['reason'])}")
            for line in _problem_lines(report):
                click.echo("  " + line)
