"""`lineledger-edge pregenerate | spawn | link`: job tickets, tokens and the dual link."""

from __future__ import annotations

import click

from edge_agent import links
from edge_agent.agent import Agent
from edge_agent.cli_support import (
    PRINTER_HELP,
    Ctx,
    emit,
    example,
    friendly,
    know_work_order,
    pass_ctx,
    prepare_pool,
    printer_for,
    start_guard,
)
from edge_agent.issuing import Issuer
from edge_agent.marks import MarksReporter

MAX_PREGENERATE = 10_000


def _printer(agent: Agent, do_print: bool, printer: str | None) -> str | None:
    # A bad URL or a missing spool folder is refused before anything is written.
    return printer_for(agent, printer) if do_print else None


def _print_now(agent: Agent, url: str | None, jobs: list[int]) -> None:
    if url and jobs:
        from edge_agent.cli import _print_jobs  # the print step `issue` uses (cli imports us)

        _print_jobs(agent, url, jobs)


_PRINT = click.option("--print", "do_print", is_flag=True, help="Print the labels now.")
_PRINTER = click.option("--printer", default=None, help=PRINTER_HELP)


@click.command(
    epilog=example("lineledger-edge pregenerate --work-order WO-1001 --job-ticket JT-88 --count 10")
)
@click.option("--work-order", "work_order", required=True, help="Work order number.")
@click.option("--job-ticket", "job_ticket", required=True, help="Job ticket to reserve them for.")
@click.option("--count", required=True, type=click.IntRange(1, MAX_PREGENERATE))
@_PRINT
@_PRINTER
@pass_ctx
@friendly
def pregenerate(
    ctx: Ctx, work_order: str, job_ticket: str, count: int, do_print: bool, printer: str | None
) -> None:
    """Issue serials reserved for a job ticket, all or none (one JSON object per serial).

    Its pieces (tokens) take them in order with `spawn`.
    """
    agent = ctx.agent
    url = _printer(agent, do_print, printer)
    know_work_order(agent, work_order)
    start_guard(agent)
    prepare_pool(agent, work_order, count)
    with MarksReporter(agent) as reporter:
        issued = links.pregenerate(agent, Issuer(agent), work_order, job_ticket, count, url)
        reporter.issued(len(issued))
    for item in issued:
        emit(item.to_dict())
    _print_now(agent, url, [i.print_job for i in issued if i.print_job is not None])


@click.command(
    epilog=example("lineledger-edge spawn --job-ticket JT-88 --token TK-1 --token TK-2 --print")
)
@click.option("--job-ticket", "job_ticket", required=True, help="The job ticket of the pieces.")
@click.option(
    "--token", "tokens", multiple=True, required=True, help="A new piece's token (repeatable)."
)
@_PRINT
@_PRINTER
@pass_ctx
@friendly
def spawn(
    ctx: Ctx, job_ticket: str, tokens: tuple[str, ...], do_print: bool, printer: str | None
) -> None:
    """Give each new token the job ticket's next unspawned serial, all or none.

    A token spawned before gets its serial back; with --print, new pieces get their label.
    """
    agent = ctx.agent
    url = _printer(agent, do_print, printer)
    done = links.spawn(agent, job_ticket, tokens, url)
    for item in done:
        emit(item.to_dict())
    _print_now(agent, url, [s.print_job for s in done if s.print_job is not None])


@click.command(
    epilog=example("lineledger-edge link MA01-HAT-BAG-20251109-00027-A9K2-X --token TK-1")
)
@click.argument("serial")
@click.option("--work-order", "work_order", default=None, help="The manufacturing order (OEM).")
@click.option("--job-ticket", "job_ticket", default=None, help="The job ticket (HAT, OEM).")
@click.option("--token", default=None, help="The piece's token (HAT).")
@pass_ctx
@friendly
def link(
    ctx: Ctx, serial: str, work_order: str | None, job_ticket: str | None, token: str | None
) -> None:
    """Link a serial to one work order, job ticket or token (context rules per type)."""
    given = {
        kind: value
        for kind, value in (
            ("work_order", work_order),
            ("job_ticket", job_ticket),
            ("token", token),
        )
        if value is not None
    }
    if len(given) != 1:
        raise click.UsageError("give exactly one of --work-order, --job-ticket, --token")
    ((kind, value),) = given.items()
    emit(links.link(ctx.agent, serial, kind, value))


LINK_COMMANDS = (pregenerate, spawn, link)
