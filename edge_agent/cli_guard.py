"""`lineledger-edge` commands that keep a line PC trustworthy: clock, alerts, token, reconcile."""

from __future__ import annotations

import getpass
import sys

import click

from edge_agent import alerts, reconcile, rollback
from edge_agent.cli_support import EXIT_UNREACHABLE, Ctx, emit, example, friendly, pass_ctx, say
from edge_agent.client import CentralClient
from edge_agent.clock import REFUSE
from edge_agent.errors import (
    ERR_TOKEN,
    ERR_UNAUTHORIZED,
    CentralRefused,
    CentralUnreachable,
    EdgeError,
)
from edge_agent.issuing import check_reason
from edge_agent.status import clock_status
from protocol.timefmt import format_ts

MAX_TOKEN = 128


@click.group(epilog=example("lineledger-edge clock status"))
def clock() -> None:
    """Show this PC's clock against central's; override the issuing limit."""


@clock.command("status", epilog=example("lineledger-edge clock status"))
@pass_ctx
@friendly
def clock_show(ctx: Ctx) -> None:
    """Measure the offset from central now (if it answers) and print the clock's state."""
    agent = ctx.agent
    central: dict[str, object] = {"reachable": True}
    try:
        agent.client().ping(timeout=min(3.0, agent.config.http_timeout))
    except (CentralUnreachable, CentralRefused) as exc:
        central = {"reachable": False, "error": exc.to_dict()}
    emit({**clock_status(agent), "central": central})


@clock.command(
    "override",
    epilog=example('lineledger-edge clock override --reason "central clock checked, PC BIOS dead"'),
)
@click.option("--reason", required=True, help="Why issuing may go on with this clock.")
@pass_ctx
@friendly
def clock_override(ctx: Ctx, reason: str) -> None:
    """Let issuing go on although the clock is beyond the limit (a supervisor's decision).

    Serials keep central's time (the corrected clock). The override ends by itself once a
    reading shows the clock within the limit, or with `clock clear-override`.
    """
    agent = ctx.agent
    reason = check_reason(reason)
    state = clock_status(agent)
    if state["state"] != REFUSE:
        raise EdgeError(
            "ERR_CLOCK_OK",
            f"the clock is not beyond the limit (state {state['state']}); nothing to override",
        )
    try:
        who = getpass.getuser()
    except (OSError, KeyError):
        who = "unknown"
    emit({"ok": True, "override": agent.set_clock_override(reason, who[:64])})


@clock.command("clear-override", epilog=example("lineledger-edge clock clear-override"))
@pass_ctx
@friendly
def clock_clear_override(ctx: Ctx) -> None:
    """End the clock override: a clock beyond the limit stops issuing again."""
    emit({"ok": True, "cleared": ctx.agent.clear_clock_override()})


@click.group(
    "alerts",
    invoke_without_command=True,
    epilog=example("lineledger-edge alerts --all"),
)
@click.option("--all", "everything", is_flag=True, help="Also list cleared alerts.")
@pass_ctx
@click.pass_context
@friendly
def alerts_group(click_ctx: click.Context, ctx: Ctx, everything: bool) -> None:
    """List open alerts (one JSON object per line), newest first; `alerts clear` settles one."""
    if click_ctx.invoked_subcommand is None:
        for alert in alerts.list_alerts(ctx.agent.store.conn(), everything):
            emit(alert)


@alerts_group.command(
    "clear", epilog=example('lineledger-edge alerts clear 7 --reason "PC restored by IT, checked"')
)
@click.argument("alert_id", type=click.IntRange(1, 2**62))
@click.option("--reason", required=True, help="What was done about it.")
@pass_ctx
@friendly
def alerts_clear(ctx: Ctx, alert_id: int, reason: str) -> None:
    """Clear an open alert with the reason (a condition that persists is raised again)."""
    agent = ctx.agent
    reason = check_reason(reason)
    with agent.store.write() as conn:
        alerts.clear_alert(conn, alert_id, reason, format_ts(agent.now()))
    emit({"ok": True, "alert": alert_id, "cleared_reason": reason})


def _read_token() -> str:
    raw = sys.stdin.read(MAX_TOKEN * 4 + 2)
    token = raw.strip()
    if not token or len(token) > MAX_TOKEN or not token.isascii() or not token.isprintable():
        raise EdgeError(
            ERR_TOKEN,
            f"paste the token on stdin: 1-{MAX_TOKEN} printable ASCII characters, nothing else",
        )
    if any(c.isspace() for c in token):
        raise EdgeError(ERR_TOKEN, "a token has no spaces; paste exactly what central printed")
    return token


@click.command(
    "set-token",
    epilog=example("lineledger-edge set-token < new-token.txt   (or paste it, then Ctrl-D)"),
)
@pass_ctx
@friendly
def set_token(ctx: Ctx) -> None:
    """Store a rotated agent token read from stdin (never from the command line).

    The token is checked with central first when central answers; a token central does not
    know is refused and the old one kept.
    """
    agent = ctx.agent
    ident = agent.identity()
    token = _read_token()
    probe = CentralClient(
        ident.central_url,
        token,
        min(5.0, agent.config.http_timeout),
        insecure=agent.config.insecure,
        ca_bundle=agent.config.ca_bundle_path,
    )
    # Learn revocation or reinstatement from the answer, but not "token rejected": a
    # mistyped new token is refused below and the old one stays.
    probe.on_answer = lambda status, code, message: (
        None if status == 401 else agent.on_central_answer(status, code, message)
    )
    verified: bool | None = True
    try:
        probe.ping()
    except CentralUnreachable:
        verified = None
        say("central is unreachable: the token is stored unchecked")
    except CentralRefused as exc:
        if exc.code == ERR_UNAUTHORIZED:
            raise EdgeError(
                ERR_TOKEN, "central does not know this token; the old one is kept"
            ) from None
        verified = False
        say(f"central answered {exc.code}: {exc.message}")
    finally:
        probe.close()
    agent.set_token(token)
    emit({"ok": True, "verified": verified, "revoked": agent.revoked() is not None})


@click.command("reconcile", epilog=example("lineledger-edge reconcile"))
@click.option("--marks", "marks_only", is_flag=True, help="Report high-water marks only.")
@pass_ctx
@friendly
def reconcile_now(ctx: Ctx, marks_only: bool) -> None:
    """Reconcile with central now: marks, digests, re-sends, confirmations (JSON summary)."""
    agent = ctx.agent
    try:
        if marks_only:
            out = {"ok": True, "mode": "marks", **rollback.exchange_marks(agent).to_dict()}
        else:
            out = {"ok": True, "mode": "full", **reconcile.reconcile(agent).to_dict()}
    except (CentralUnreachable, CentralRefused) as exc:
        emit({"ok": False, "error": exc.to_dict()})
        sys.exit(EXIT_UNREACHABLE)
    emit(out)


GUARD_COMMANDS = (clock, alerts_group, set_token, reconcile_now)
