"""What every `lineledger-edge` command module shares: the context, output and error helpers."""

from __future__ import annotations

import functools
import json
import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from edge_agent import pool, rollback
from edge_agent.agent import Agent
from edge_agent.config import EdgeConfig, load_config
from edge_agent.errors import (
    ERR_AGENT_REVOKED,
    ERR_NO_PRINTER,
    ERR_NOT_ENROLLED,
    CentralRefused,
    CentralUnreachable,
    EdgeError,
)
from edge_agent.printing import default_printer
from edge_agent.store import DB_NAME, disk_error, enrolled_in
from printers.urls import check_spool_directory, parse_printer_url
from protocol.errors import CodedError

F = TypeVar("F", bound=Callable[..., Any])
EXIT_UNREACHABLE = 2
EXIT_PRINTER = 3
NOT_ENROLLED_ADVICE = (
    "run lineledger-edge enroll --central URL --code CODE, or point --home / "
    "LINELEDGER_EDGE_HOME at the agent's home"
)


def example(text: str) -> str:
    """Return the epilog that shows a command's example in its --help."""
    return "\b\nExample:\n  " + text


def emit(obj: Any) -> None:
    """Write one JSON line for programs on stdout."""
    sys.stdout.write(json.dumps(obj, sort_keys=True) + "\n")
    sys.stdout.flush()


def say(text: str) -> None:
    """Write a message for people on stderr."""
    click.echo(text, err=True)


def friendly(fn: F) -> F:
    """Turn agent errors into one-line CLI errors (exit status 1)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except CodedError as exc:
            raise click.ClickException(f"{exc.code}: {exc.message}") from None
        except sqlite3.Error as exc:  # a full or read-only disk, a locked file
            coded = disk_error(exc)
            if coded is not None:
                raise click.ClickException(f"{coded.code}: {coded.message}") from None
            raise click.ClickException(f"ERR_STORE: the agent's database failed: {exc}") from None
        except OSError as exc:
            raise click.ClickException(f"ERR_IO: {exc}") from None

    return wrapper  # type: ignore[return-value]


class Ctx:
    """The agent home a command works on; the agent is opened on first use.

    Only `enroll` creates a home (`new_agent`); every other command opens an enrolled one
    and refuses a missing or unenrolled home with ERR_NOT_ENROLLED, creating nothing.
    """

    def __init__(self, home: str) -> None:
        self.home = home
        self._agent: Agent | None = None

    @property
    def config(self) -> EdgeConfig:
        return load_config(self.home)

    def check_enrolled(self) -> None:
        """Raise ERR_NOT_ENROLLED unless the home holds an enrolled agent; create nothing."""
        path = Path(self.home) / DB_NAME
        if not path.is_file():
            raise EdgeError(ERR_NOT_ENROLLED, f"no agent in {self.home} ({NOT_ENROLLED_ADVICE})")
        if not enrolled_in(path):
            raise EdgeError(
                ERR_NOT_ENROLLED,
                f"the agent in {self.home} is not enrolled ({NOT_ENROLLED_ADVICE})",
            )

    @property
    def agent(self) -> Agent:
        if self._agent is None:
            self.check_enrolled()
            self._agent = Agent(self.config)
        return self._agent

    def new_agent(self) -> Agent:
        """Open the home for `enroll`, creating it (0700) and its database if missing."""
        if self._agent is None:
            home = Path(self.home)
            if not home.exists():
                home.mkdir(mode=0o700, parents=True)
            self._agent = Agent(self.config)
        return self._agent

    def reopen(self) -> Agent:
        """Open the agent again with the configuration as it is now on disk."""
        if self._agent is not None:
            self._agent.close()
        self._agent = Agent(self.config)
        return self._agent

    def discard_agent(self) -> None:
        """Close the agent and delete the database `enroll` just made for nothing."""
        if self._agent is not None:
            self._agent.close()
            self._agent = None
        db = Path(self.home) / DB_NAME
        for suffix in ("", "-wal", "-shm", "-journal"):
            db.with_name(db.name + suffix).unlink(missing_ok=True)

    def close(self) -> None:
        if self._agent is not None:
            self._agent.close()


pass_ctx = click.make_pass_decorator(Ctx)


PRINTER_HELP = (
    "Printer URL: tcp://HOST[:9100] (network ZPL); a serial ZPL printer: /dev/ttyUSB0?baud=9600, "
    "COM3, socket://HOST:PORT, rfc2217://HOST:PORT or loop://; file:///DIR (one .zpl per "
    "label) or pdf:///DIR (one PDF per label), the folder must exist unless ?create=1 is added. "
    "Default: the line's printer (set by `run --printer`), else printer_url in edge.toml."
)


def check_printer(url: str) -> str:
    """Refuse a printer URL that cannot work before anything is written; return it."""
    parse_printer_url(url)
    check_spool_directory(url)
    return url


def printer_for(agent: Agent, printer: str | None) -> str:
    """Return the printer a printing command uses: --printer, the line's, or edge.toml's."""
    url = printer or default_printer(agent)
    if not url:
        raise EdgeError(
            ERR_NO_PRINTER,
            "no printer: name one with --printer, set printer_url in edge.toml, or start "
            "lineledger-edge run --printer URL (the line's printer)",
        )
    return check_printer(url)


def know_work_order(agent: Agent, work_order: str) -> None:
    """Refresh the cached work orders from central when this one is not among them."""
    try:
        agent.work_order(work_order)
    except EdgeError:
        try:
            agent.refresh_config()
        except (CentralUnreachable, CentralRefused):
            pass


def prepare_pool(agent: Agent, work_order: str, count: int) -> None:
    """Top the pool up for a run of `count` labels while central is reachable."""
    if agent.revoked() is not None:
        return  # central refuses every lease; the issuer says why
    wo = agent.work_order(work_order)
    ident = agent.identity()
    scope = pool.scope_for(ident, wo, pool.production_date(ident, agent.now()))
    try:
        pool.top_up(agent, scope, need=count)
    except CentralUnreachable:
        left = pool.remaining(agent.store.conn(), scope.key)
        say(f"central is unreachable: issuing from the {left} numbers of {scope.key} on hand")
    except CentralRefused as exc:
        say(f"central refused a top-up of {scope.key}: {exc.code}: {exc.message}")


def start_guard(agent: Agent) -> None:
    """Compare the pools with central's marks before issuing (the rollback guard).

    Central unreachable: issue offline from what is on hand. Refused: a revoked agent is
    marked so by the answer and the issuer refuses with a clear message; an older central
    without reconcile is no reason to stop.
    """
    try:
        report = rollback.exchange_marks(agent, timeout=agent.config.guard_timeout)
    except CentralUnreachable:
        return
    except CentralRefused as exc:
        # 404: an older central without reconcile. Revoked: the issuer says so itself.
        if exc.status != 404 and exc.code != ERR_AGENT_REVOKED:
            say(f"central refused the high-water report: {exc.code}: {exc.message}")
        return
    for lease_id, (first, last) in report.skipped.items():
        say(
            f"RESTORED FROM AN OLDER COPY: central knows numbers {first}..{last} of lease "
            f"{lease_id} were used; they are skipped"
        )
    for lease_id in report.adopted:
        say(f"adopted lease {lease_id} that central granted to this agent (see alerts)")
