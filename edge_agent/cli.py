"""`lineledger-edge`: enroll, issue, print, sync and run the agent of one line PC.

Output meant for programs goes to stdout as JSON; messages for people go to stderr.
"""

from __future__ import annotations

import gc
import getpass
import ipaddress
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

import click
from zeroconf import InterfaceChoice

from edge_agent import odometer, outbox, pool
from edge_agent.agent import Agent
from edge_agent.cli_guard import GUARD_COMMANDS
from edge_agent.cli_links import LINK_COMMANDS

# The helpers live in cli_support (shared with the other command modules); the commands
# below keep their old names.
from edge_agent.cli_support import (
    EXIT_PRINTER,
    EXIT_UNREACHABLE,
    PRINTER_HELP,
    check_printer,
    know_work_order,
    pass_ctx,
    printer_for,
    start_guard,
)
from edge_agent.cli_support import Ctx as _Ctx
from edge_agent.cli_support import emit as _emit
from edge_agent.cli_support import example as _example
from edge_agent.cli_support import friendly as _friendly
from edge_agent.cli_support import prepare_pool as _prepare_pool
from edge_agent.cli_support import say as _say
from edge_agent.client import CentralClient
from edge_agent.config import CONFIG_NAME, load_config, write_settings
from edge_agent.errors import (
    ERR_ALREADY_ENROLLED,
    ERR_POOL_EMPTY,
    ERR_PRINTER_UNKNOWN,
    EdgeError,
)
from edge_agent.issuing import Issuer, void_serial
from edge_agent.labels import label_for, preview_for
from edge_agent.marks import MarksReporter
from edge_agent.printing import (
    PrintQueue,
    cancel_jobs,
    confirm_job,
    job_statuses,
    list_jobs,
    queue_reprint,
    recover_stale_jobs,
    release_job,
    set_line_printer,
)
from edge_agent.rollback import agent_version
from edge_agent.scanner import parse_scanner_url
from edge_agent.status import build_status
from edge_agent.store import DB_NAME, enrolled_in
from printers.discovery import CENTRAL_TYPE, PRINTER_TYPE, browse
from printers.render import render_label
from printers.urls import parse_printer_url
from protocol.messages import EnrollRequest

SETTLE_SECONDS = 30.0


@click.group(epilog=_example("lineledger-edge --home /var/lib/lineledger-edge status"))
@click.option(
    "--home",
    envvar="LINELEDGER_EDGE_HOME",
    default=str(Path.home() / ".lineledger-edge"),
    show_default=True,
    help="The agent's home folder (database, edge.toml).",
)
@click.version_option(package_name="lineledger")
@click.pass_context
def main(ctx: click.Context, home: str) -> None:
    """The LineLedger edge agent of one production line."""
    ctx.obj = _Ctx(home)
    ctx.call_on_close(ctx.obj.close)


@main.command(
    epilog=_example(
        "lineledger-edge enroll --central https://registry.example --code 7KQ2-M9XD-4TPA-ZR3E"
    )
)
@click.option(
    "--central",
    "central_url",
    required=True,
    help="Base URL of the central registry: https://HOST[:PORT] (http:// only on this machine "
    "or with --insecure).",
)
@click.option("--code", required=True, help="One-time enrollment code from an admin.")
@click.option(
    "--insecure",
    is_flag=True,
    help="Allow a plain http:// central on another machine: the agent's token and lease keys "
    "then cross the network unencrypted (recorded in edge.toml).",
)
@click.option(
    "--ca-bundle",
    "ca_bundle",
    default=None,
    type=click.Path(exists=True, dir_okay=False),
    help="PEM file of the plant's own CA that signed central's https certificate (recorded "
    "in edge.toml).",
)
@pass_ctx
@_friendly
def enroll(ctx: _Ctx, central_url: str, code: str, insecure: bool, ca_bundle: str | None) -> None:
    """Enroll this agent with central, write edge.toml, fetch work orders and fill the pool."""
    home = Path(ctx.home)
    if (home / DB_NAME).is_file() and enrolled_in(home / DB_NAME):
        raise EdgeError(
            ERR_ALREADY_ENROLLED,
            f"{ctx.home} holds an enrolled agent already; use a new --home for another line",
        )
    config = ctx.config
    insecure = insecure or config.insecure
    ca_path = str(Path(ca_bundle).resolve()) if ca_bundle else config.ca_bundle_path
    # Refused before the code leaves this PC: the code is a secret too.
    client = CentralClient(
        central_url, None, config.http_timeout, insecure=insecure, ca_bundle=ca_path
    )
    settings: dict[str, Any] = {}
    if insecure != config.insecure:
        settings["insecure"] = insecure
    if ca_bundle:
        settings["ca_bundle"] = ca_path
    created = not (home / DB_NAME).exists()
    agent = ctx.new_agent()  # the database is made before the code is spent: a bad disk
    try:  # fails here, with the code still unused
        try:
            resp = client.enroll(
                EnrollRequest(code.strip(), socket.gethostname()[:128], agent_version())
            )
        finally:
            client.close()
    except BaseException:
        if created:
            ctx.discard_agent()  # a failed enrollment leaves no half-made home behind
        raise
    with agent.store.write() as conn:
        for key, value in (
            ("central_url", client.base_url),
            ("agent_id", resp.agent_id),
            ("token", resp.token),
            ("org", resp.org),
            ("line", resp.line),
            ("tenant_name", resp.tenant_name),
        ):
            agent.store.set_meta(conn, key, value)
    if settings or not (home / CONFIG_NAME).exists():
        written = write_settings(home, settings)
        _say(f"wrote {written}")
    agent = ctx.reopen()  # with the settings just written
    cfg = agent.refresh_config()
    report = pool.maintain(agent, agent.now())
    _emit(
        {
            "ok": True,
            "agent_id": resp.agent_id,
            "org": resp.org,
            "line": resp.line,
            "work_orders": [w.number for w in cfg.work_orders],
            "leased": report.granted,
            "pool_errors": report.errors,
        }
    )


def _odometer_gate(agent: Agent, printer_url: str) -> None:
    """Refuse before any number is used if the printer printed labels this agent never sent.

    The printer is asked now, so a line PC restored from an older copy of its database is
    caught on its first run; a printer that cannot be reached leaves the last verdict standing.
    """
    if not agent.config.odometer_check:
        return
    queue = PrintQueue(agent)
    try:
        queue.check(printer_url)
    finally:
        queue.close()
    odometer.refuse_if_held(agent, printer_url)


@main.command(
    epilog=_example(
        "lineledger-edge issue --work-order WO-1001 --count 10 --print --printer tcp://10.0.0.7:9100"
    )
)
@click.option("--work-order", "work_order", required=True, help="Work order number.")
@click.option("--count", default=1, show_default=True, type=click.IntRange(1, 100_000))
@click.option("--print", "do_print", is_flag=True, help="Print a label for each serial.")
@click.option("--printer", default=None, help=PRINTER_HELP)
@pass_ctx
@_friendly
def issue(ctx: _Ctx, work_order: str, count: int, do_print: bool, printer: str | None) -> None:
    """Issue serials (one JSON object per serial on stdout) and optionally print them."""
    agent = ctx.agent
    # A bad URL or a missing spool folder is refused before any number is used.
    printer_url = printer_for(agent, printer) if do_print else None
    if printer_url:
        _odometer_gate(agent, printer_url)
    know_work_order(agent, work_order)
    start_guard(agent)
    _prepare_pool(agent, work_order, count)
    issuer = Issuer(agent)
    jobs: list[int] = []
    with MarksReporter(agent) as reporter:
        reporter.ride_on(issuer)
        for done in range(count):
            try:
                issued = issuer.issue(work_order, printer_url=printer_url)
            except EdgeError as exc:
                if exc.code != ERR_POOL_EMPTY:
                    raise
                _prepare_pool(agent, work_order, count - done)  # online: top up and go on
                issued = issuer.issue(work_order, printer_url=printer_url)
            reporter.issued()
            if issued.print_job is not None:
                jobs.append(issued.print_job)
            _emit(issued.to_dict())
    if printer_url and jobs:
        _print_jobs(agent, printer_url, jobs)


def _print_jobs(agent: Agent, printer_url: str, jobs: list[int]) -> None:
    """Print this run's jobs now; what a printer fault leaves stays queued for the service.

    The agent's service may be printing some of the same jobs at the same moment (each job
    is claimed by one process only), so the outcome is read from the jobs themselves.
    """
    queue = PrintQueue(agent)
    result = None
    try:
        for i in range(0, len(jobs), 500):  # bounded SQL parameter lists
            result = queue.run(printer_url, jobs[i : i + 500])
            if result.error:
                break
    finally:
        queue.close()
    assert result is not None
    deadline = time.monotonic() + SETTLE_SECONDS
    counts = job_statuses(agent, jobs)
    while counts["claimed"] + counts["sending"] and time.monotonic() < deadline:
        time.sleep(0.1)  # another process is sending some of them: wait for its outcome
        counts = job_statuses(agent, jobs)
    sent = counts["sent"]
    _say(f"printed {sent} of {len(jobs)} labels on {printer_url}; printer {result.state}")
    if sent < len(jobs):
        message = result.error["message"] if result.error else "printer not ready"
        _say(f"{len(jobs) - sent} labels wait in the print queue: {message}")
        sys.exit(EXIT_PRINTER)


@main.command(
    epilog=_example(
        'lineledger-edge reprint MA01-HAT-BAG-20251109-00027-A9K2-X --reason "label smudged"'
    )
)
@click.argument("serial")
@click.option("--reason", required=True, help="Why the label is printed again.")
@click.option("--printer", default=None, help=PRINTER_HELP)
@pass_ctx
@_friendly
def reprint(ctx: _Ctx, serial: str, reason: str, printer: str | None) -> None:
    """Print a serial's label again; the reprint and its reason are recorded."""
    agent = ctx.agent
    printer_url = printer_for(agent, printer)
    _odometer_gate(agent, printer_url)
    job = queue_reprint(agent, serial.strip().upper(), reason, printer_url)
    _emit({"ok": True, "serial": serial.strip().upper(), "print_job": job})
    _print_jobs(agent, printer_url, [job])


@main.command(
    epilog=_example('lineledger-edge void MA01-HAT-BAG-20251109-00027-A9K2-X --reason "label torn"')
)
@click.argument("serial")
@click.option("--reason", required=True, help="Why the serial is withdrawn.")
@pass_ctx
@_friendly
def void(ctx: _Ctx, serial: str, reason: str) -> None:
    """Void a serial whose label was damaged or never applied; it is never used again."""
    recover_stale_jobs(ctx.agent)  # a print killed mid-send must not block the void forever
    event_id = void_serial(ctx.agent, serial.strip().upper(), reason)
    _emit({"ok": True, "serial": serial.strip().upper(), "event_id": event_id, "state": "voided"})


@main.command(
    epilog=_example(
        "lineledger-edge label MA01-HAT-BAG-20251109-00027-A9K2-X --format pdf --output label.pdf"
    )
)
@click.argument("serial", required=False)
@click.option(
    "--work-order",
    "work_order",
    default=None,
    help="Instead of a serial: preview the next label of this work order.",
)
@click.option(
    "--format", "fmt", type=click.Choice(["zpl", "pdf", "png"]), default="pdf", show_default=True
)
@click.option(
    "--output",
    required=True,
    type=click.Path(dir_okay=False, writable=True),
    help="File to write ('-' for stdout).",
)
@pass_ctx
@_friendly
def label(ctx: _Ctx, serial: str | None, work_order: str | None, fmt: str, output: str) -> None:
    """Render the label of an issued serial (or a preview of a work order's next label)."""
    if (serial is None) == (work_order is None):
        raise click.UsageError("give a SERIAL or --work-order")
    if serial is not None:
        unit, template = label_for(ctx.agent, serial.strip().upper())
    else:
        assert work_order is not None
        know_work_order(ctx.agent, work_order)  # one added minutes ago: ask central now
        unit, template = preview_for(ctx.agent, work_order)
    data = render_label(unit, template, fmt)
    if output == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    else:
        Path(output).write_bytes(data)
        _say(f"wrote {len(data)} bytes of {fmt.upper()} to {output}")


@main.command(epilog=_example("lineledger-edge printers --timeout 3"))
@click.option(
    "--timeout",
    default=3.0,
    show_default=True,
    type=click.FloatRange(0.2, 60),
    help="Seconds to listen for announcements.",
)
@click.option(
    "--interface",
    "interfaces",
    multiple=True,
    help="Listen on this address only (repeatable; default: every interface).",
)
@_friendly
def printers(timeout: float, interfaces: tuple[str, ...]) -> None:
    """Find network label printers and central registries announced with zeroconf."""
    for address in interfaces:
        try:
            ipaddress.ip_address(address)
        except ValueError:
            raise EdgeError(
                "ERR_INVALID", f"--interface takes an IP address, not {address!r}"
            ) from None
    where = list(interfaces) or InterfaceChoice.All
    for found in browse([PRINTER_TYPE, CENTRAL_TYPE], timeout, interfaces=where):
        kind = "printer" if found.type == PRINTER_TYPE else "central"
        _emit(
            {
                "kind": kind,
                "name": found.name,
                "url": found.url,
                "host": found.host,
                "port": found.port,
                "addresses": list(found.addresses),
            }
        )


@main.command(epilog=_example("lineledger-edge sync"))
@pass_ctx
@_friendly
def sync(ctx: _Ctx) -> None:
    """Push the outbox to central until it is empty or central refuses; print a summary.

    Exit 2 when central cannot be reached, also when there was nothing to push.
    """
    summary = outbox.flush(ctx.agent, probe=True)
    _emit(summary.to_dict())
    if summary.error:
        sys.exit(EXIT_UNREACHABLE)


@main.command(epilog=_example("lineledger-edge status"))
@click.option(
    "--printer",
    default=None,
    help="Printer URL to check (default: the line's printer, else printer_url in edge.toml).",
)
@pass_ctx
@_friendly
def status(ctx: _Ctx, printer: str | None) -> None:
    """Print the agent's status as JSON: pool, outbox, central and printer."""
    _emit(build_status(ctx.agent, probe=True, printer_url=printer))


@main.command(epilog=_example("lineledger-edge run --printer tcp://10.0.0.7:9100 --port 8765"))
@click.option(
    "--printer",
    default=None,
    help="The line's printer; `issue --print` and `reprint` use it too. " + PRINTER_HELP,
)
@click.option(
    "--scanner", default=None, help="Serial/USB scanner URL, e.g. /dev/serial/by-id/...?baud=9600."
)
@click.option("--host", default=None, help="Operator page address (default 127.0.0.1).")
@click.option(
    "--port",
    default=None,
    type=click.IntRange(0, 65535),
    help="Operator page port (default 8765; 0 picks a free one).",
)
@click.option(
    "--verbose", is_flag=True, help="Log every scheduled run of the service's jobs (DEBUG)."
)
@pass_ctx
@_friendly
def run(
    ctx: _Ctx,
    printer: str | None,
    scanner: str | None,
    host: str | None,
    port: int | None,
    verbose: bool,
) -> None:
    """Run the agent service: sync, pool top-up, print queue and the operator page.

    The printer it serves (--printer, else printer_url in edge.toml) is recorded as the
    line's printer, which `issue --print`, `reprint` and `spawn --print` use by default.
    """
    from edge_agent.service import Service, configure_logging, trace_memory

    overrides: dict[str, Any] = {}
    if host is not None:
        overrides["operator_host"] = host
    if port is not None:
        overrides["operator_port"] = port
    ctx.check_enrolled()
    agent = Agent(load_config(ctx.home, overrides))
    agent.identity()
    agent.client()  # refuse an insecure central or a missing CA file now, not in every job
    line_printer = printer or agent.config.printer_url or None
    if line_printer:
        check_printer(line_printer)
    if scanner:
        parse_scanner_url(scanner)
    set_line_printer(agent, line_printer)
    configure_logging(verbose)
    service = Service(agent, line_printer, scanner)
    gc.collect()
    gc.freeze()  # long-lived startup objects stay out of the collector's full passes
    trace_memory()  # only with LINELEDGER_EDGE_TRACEMALLOC set
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    service.start()
    _emit(
        {"ok": True, "operator_page": service.operator_url, "agent_id": agent.identity().agent_id}
    )
    try:
        # Wake twice a second: CPython runs a signal handler only when the main thread runs
        # Python code, and a SIGTERM the kernel hands to another thread does not interrupt a
        # wait without a timeout (seen: a `run` that never stopped).
        while not stop.wait(0.5):
            pass
    finally:
        service.stop()
        agent.close()
        _say("lineledger-edge stopped")


@main.group("print-jobs")
def print_jobs() -> None:
    """Inspect the print queue and settle held jobs."""


@print_jobs.command("list", epilog=_example("lineledger-edge print-jobs list --status held"))
@click.option(
    "--status",
    type=click.Choice(["queued", "claimed", "sending", "sent", "failed", "held", "cancelled"]),
    default=None,
)
@pass_ctx
@_friendly
def jobs_list(ctx: _Ctx, status: str | None) -> None:
    """List print jobs as JSON lines, newest first."""
    recover_stale_jobs(ctx.agent)
    for job in list_jobs(ctx.agent, status):
        _emit(job)


@print_jobs.command(
    "cancel",
    epilog=_example(
        'lineledger-edge print-jobs cancel --all --printer tcp://10.0.0.7:9100 --reason "printer '
        'scrapped"'
    ),
)
@click.argument("job_ids", nargs=-1, type=int)
@click.option("--all", "every", is_flag=True, help="Every waiting job of --printer.")
@click.option("--printer", default=None, help="With --all: the printer URL, as the jobs name it.")
@click.option("--reason", required=True, help="Why the labels will not be printed (recorded).")
@click.option(
    "--void",
    "void",
    is_flag=True,
    help="The labels were never applied: void the serials of cancelled first prints too.",
)
@pass_ctx
@_friendly
def jobs_cancel(
    ctx: _Ctx,
    job_ids: tuple[int, ...],
    every: bool,
    printer: str | None,
    reason: str,
    void: bool,
) -> None:
    """Cancel waiting print jobs (queued, failed or held), e.g. for a printer that is gone.

    The serials stay issued and keep counting as used; print them elsewhere with `reprint`,
    or pass --void when their labels were never applied (a void is never undone).
    """
    if every == bool(job_ids):
        raise click.UsageError("give JOB_IDS, or --all with --printer")
    if every and not printer:
        raise click.UsageError("--all needs --printer URL (print-jobs list shows each job's)")
    if printer and not every:
        raise click.UsageError("--printer goes with --all")
    recover_stale_jobs(ctx.agent)
    done = cancel_jobs(
        ctx.agent, reason, list(job_ids) if job_ids else None, printer_url=printer, void=void
    )
    _emit({"ok": True, **done.to_dict()})
    if every and not done.jobs:
        _say(f"no waiting print jobs for {printer}")


@print_jobs.command("release", epilog=_example("lineledger-edge print-jobs release 42"))
@click.argument("job_id", type=int)
@pass_ctx
@_friendly
def jobs_release(ctx: _Ctx, job_id: int) -> None:
    """Queue a held job again: its label did NOT come out."""
    recover_stale_jobs(ctx.agent)
    release_job(ctx.agent, job_id)
    _emit({"ok": True, "job": job_id, "status": "queued"})


@print_jobs.command("confirm", epilog=_example("lineledger-edge print-jobs confirm 42"))
@click.argument("job_id", type=int)
@pass_ctx
@_friendly
def jobs_confirm(ctx: _Ctx, job_id: int) -> None:
    """Mark a held job printed: its label DID come out."""
    recover_stale_jobs(ctx.agent)
    confirm_job(ctx.agent, job_id)
    _emit({"ok": True, "job": job_id, "status": "sent"})


@main.group("printer")
def printer_group() -> None:
    """The printer's label odometer: show it, and confirm it after a hold."""


@printer_group.command(
    "odometer", epilog=_example("lineledger-edge printer odometer --printer tcp://10.0.0.7:9100")
)
@click.option("--printer", default=None, help="Only this printer (default: every printer).")
@click.option(
    "--history", default=10, show_default=True, type=click.IntRange(0, 1000), help="Log entries."
)
@pass_ctx
@_friendly
def printer_odometer(ctx: _Ctx, printer: str | None, history: int) -> None:
    """Print each printer's label odometer record and its recent log as JSON lines."""
    agent = ctx.agent
    found = (
        [r for r in [odometer.record(agent, printer)] if r is not None]
        if printer
        else odometer.records(agent)
    )
    if printer and not found:
        raise EdgeError(
            ERR_PRINTER_UNKNOWN, f"this agent has no label odometer record for {printer}"
        )
    for rec in found:
        _emit({**rec.to_dict(), "log": odometer.history(agent, rec.printer, history)})


@printer_group.command(
    "confirm-odometer",
    epilog=_example(
        "lineledger-edge printer confirm-odometer --printer tcp://10.0.0.7:9100 "
        '--reason "VM restored from Monday\'s snapshot; 12 labels found and voided"'
    ),
)
@click.option("--printer", required=True, help="Printer URL, as the jobs name it.")
@click.option("--reason", required=True, help="What the supervisor found (recorded).")
@click.option("--by", "actor", default=None, help="Who confirms (default: the login name).")
@click.option(
    "--skip-numbers/--no-skip-numbers",
    default=True,
    show_default=True,
    help="Skip as many numbers of every active lease as the printer printed unknown labels.",
)
@click.option(
    "--requeue-held",
    is_flag=True,
    help="Queue again the jobs the hold put on hold: none of their labels came out.",
)
@pass_ctx
@_friendly
def confirm_odometer(
    ctx: _Ctx,
    printer: str,
    reason: str,
    actor: str | None,
    skip_numbers: bool,
    requeue_held: bool,
) -> None:
    """Lift an odometer hold: record who, why and when, then take a new baseline.

    Run it once the labels the printer printed without this agent's record are accounted
    for. Issuing and printing on the printer resume; unless --no-skip-numbers, the numbers
    those labels most likely carry are never handed out.
    """
    agent = ctx.agent
    parse_printer_url(printer)
    by = actor or _login_name()
    result = odometer.confirm(agent, printer, reason, by, skip_numbers, requeue_held)
    queue = PrintQueue(agent)
    try:
        state, error = queue.check(printer)  # take the new baseline now, if the printer answers
    finally:
        queue.close()
    result.update(ok=True, state=state, error=error.to_dict() if error else None)
    _emit(result)
    if result["held_jobs"]:
        _say(
            f"{len(result['held_jobs'])} print jobs stay held: for each, "
            "lineledger-edge print-jobs confirm ID if its label came out, release ID if not"
        )


def _login_name() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


for _command in (*GUARD_COMMANDS, *LINK_COMMANDS):
    main.add_command(_command)
