"""`lineledger-central`: set up and run the central registry.

Every command reads the store from `--db` / `LINELEDGER_CENTRAL_DB` (any SQLAlchemy URL;
default: an SQLite file in `--home` / `LINELEDGER_CENTRAL_HOME`).
"""

from __future__ import annotations

import datetime as dt
import functools
import gc
import json
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from zeroconf import InterfaceChoice, ServiceInfo, Zeroconf

from central import admin, agents, audit, create_app, init_registry, reports, review
from central import tables as T
from central.config import CentralConfig, load_config
from central.db import Store, normalise_url
from central.errors import CentralError
from central.keyring import Keyring
from central.public_url import base_url_mismatch
from central.timeutil import utcnow
from central.webserver import waitress_settings
from printers.discovery import CENTRAL_TYPE, advertise
from protocol.errors import CodedError

F = TypeVar("F", bound=Callable[..., Any])


def _example(text: str) -> str:
    return "\b\nExample:\n  " + text


def _friendly(fn: F) -> F:
    """Turn registry errors into one-line CLI errors (exit status 1)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except CodedError as exc:
            raise click.ClickException(f"{exc.code}: {exc.message}") from None
        except sa.exc.OperationalError as exc:
            raise click.ClickException(f"ERR_DATABASE: {exc.orig}") from None
        except BrokenPipeError:
            # The reader went away (`… | head`): not an error of ours. Point stdout at
            # /dev/null so Python's own flush at exit does not complain again.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            sys.exit(0)
        except OSError as exc:
            raise click.ClickException(f"ERR_IO: {exc}") from None

    return wrapper  # type: ignore[return-value]


class _Ctx:
    def __init__(self, home: str | None, db: str | None) -> None:
        overrides: dict[str, Any] = {}
        if home:
            overrides["home"] = home
        if db:
            overrides["db_url"] = db
        self.overrides = overrides
        self._config: CentralConfig | None = None
        self._store: Store | None = None

    @property
    def config(self) -> CentralConfig:
        if self._config is None:
            self._config = load_config(self.overrides)
        return self._config

    @property
    def store(self) -> Store:
        if self._store is None:
            self._refuse_missing_database()
            self._store = Store(self.config.database_url)
            if not self._store.schema_ready():
                raise CentralError(
                    "ERR_NOT_INITIALISED",
                    "the registry's schema is missing or older than this release: run "
                    "lineledger-central init (it creates or upgrades the schema)",
                )
        return self._store

    def _refuse_missing_database(self) -> None:
        """Refuse a missing SQLite file rather than create an empty one (only `init` does)."""
        url = make_url(normalise_url(self.config.database_url))
        database = url.database or ""
        if url.get_backend_name() != "sqlite" or database in ("", ":memory:"):
            return
        if database.startswith("file:") or Path(database).is_file():
            return
        raise CentralError(
            "ERR_NOT_INITIALISED",
            f"no registry database at {database}: run lineledger-central init to create "
            "one, or point --home / LINELEDGER_CENTRAL_HOME (or --db) at the registry",
        )

    def close(self) -> None:
        if self._store is not None:
            self._store.dispose()


pass_ctx = click.make_pass_decorator(_Ctx)


@click.group(
    epilog=_example(
        "LINELEDGER_CENTRAL_DB=postgresql://postgres@127.0.0.1/ll lineledger-central init"
    )
)
@click.option(
    "--home", envvar="LINELEDGER_CENTRAL_HOME", help="Instance folder (default ./instance)."
)
@click.option("--db", envvar="LINELEDGER_CENTRAL_DB", help="SQLAlchemy URL of the store.")
@click.version_option(package_name="lineledger")
@click.pass_context
def main(ctx: click.Context, home: str | None, db: str | None) -> None:
    """Run and administer the LineLedger central registry."""
    ctx.obj = _Ctx(home, db)
    ctx.call_on_close(ctx.obj.close)


@main.command(epilog=_example("lineledger-central init"))
@pass_ctx
@_friendly
def init(ctx: _Ctx) -> None:
    """Create or upgrade the schema and the first master key (safe to run again)."""
    version = init_registry(ctx.config, utcnow())
    where = make_url(normalise_url(ctx.config.database_url)).render_as_string(hide_password=True)
    click.echo(f"registry ready at {where}; active key version {version}")


@main.command(epilog=_example("lineledger-central serve --host 0.0.0.0 --port 8080"))
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    default=8080,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Port (0 picks a free one and prints it).",
)
@click.option("--threads", default=8, show_default=True, type=click.IntRange(1, 256))
@click.option(
    "--advertise",
    is_flag=True,
    help="Announce this registry on the local network (zeroconf _lineledger._tcp).",
)
@pass_ctx
@_friendly
def serve(ctx: _Ctx, host: str, port: int, threads: int, advertise: bool) -> None:
    """Serve the edge API, public verify and metrics (waitress, production-ready)."""
    from waitress import create_server

    admin.check_keyring(ctx.store, Keyring.load(ctx.config.keyring_file))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    app = create_app(ctx.overrides, server_reads_proxy_headers=True)
    # Everything loaded so far lives as long as the process: keep it out of the collector's
    # full passes, which otherwise stall every request for tens of milliseconds now and then.
    gc.collect()
    gc.freeze()
    server: Any = create_server(
        app,
        host=host,
        port=port,
        threads=threads,
        ident="lineledger",
        **waitress_settings(ctx.config),
    )
    bound = int(server.effective_port)
    click.echo(f"lineledger-central listening on http://{host}:{bound}", nl=True)
    sys.stdout.flush()
    mismatch = base_url_mismatch(ctx.config, host, bound)
    if mismatch:
        click.echo(f"lineledger-central: {mismatch}", err=True)

    def stop(signum: int, _frame: Any) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    announcement = _announce(host, bound) if advertise else None
    try:
        server.run()
    except (SystemExit, KeyboardInterrupt):
        pass
    finally:
        if announcement is not None:
            zc, info = announcement
            zc.unregister_service(info)
            zc.close()
        server.close()
        app.extensions["lineledger"].close()
        click.echo("lineledger-central stopped")


@main.command(epilog=_example("lineledger-central stats"))
@pass_ctx
@_friendly
def stats(ctx: _Ctx) -> None:
    """Print registry counts as JSON: serials by state, events, quarantine, leases."""

    def grouped(conn: Any, column: Any, *where: Any) -> dict[str, int]:
        rows = conn.execute(sa.select(column, sa.func.count()).where(*where).group_by(column))
        return {str(k): int(n) for k, n in rows}

    with ctx.store.read() as conn:
        body = {
            "serials": grouped(conn, T.registry.c.state),
            "events": grouped(conn, T.events.c.outcome),
            "quarantine_open": grouped(
                conn, T.quarantine.c.reason, T.quarantine.c.resolved_at.is_(None)
            ),
            "leases": grouped(conn, T.leases.c.status),
            "agents": grouped(conn, T.agents.c.status),
        }
    click.echo(json.dumps(body, sort_keys=True))


def _announce(host: str, port: int) -> tuple[Zeroconf, ServiceInfo]:
    """Register `_lineledger._tcp` so agents on the plant network can find this registry."""
    try:
        address = socket.gethostbyname(host) if host not in ("0.0.0.0", "::", "") else None
    except OSError as exc:
        raise CentralError(
            "ERR_INVALID", f"cannot resolve {host!r} to announce it: {exc}"
        ) from None
    if address is not None and address.startswith("127."):
        click.echo(
            "note: announcing a loopback address reaches this computer only; "
            "serve on the plant network address or 0.0.0.0",
            err=True,
        )
    addresses = [address] if address else None
    zc = Zeroconf(interfaces=addresses or InterfaceChoice.All)
    name = f"LineLedger central {socket.gethostname()}"[:63].replace(".", "-")
    info = advertise(zc, CENTRAL_TYPE, name, port, {"api": "/api/edge/v1"}, addresses)
    click.echo(f"advertised as {info.name}")
    return zc, info


@main.group()
def tenant() -> None:
    """Manage tenants (companies)."""


@tenant.command(
    "add",
    epilog=_example(
        'lineledger-central tenant add --org MA01 --name "Maison Atelier" --timezone Europe/Paris'
    ),
)
@click.option("--org", required=True, help="Org code, 2-6 of A-Z 0-9; the first field of serials.")
@click.option("--name", required=True, help="Display name.")
@click.option("--timezone", default="UTC", show_default=True, help="Plant time zone (IANA).")
@pass_ctx
@_friendly
def tenant_add(ctx: _Ctx, org: str, name: str, timezone: str) -> None:
    """Add a tenant."""
    admin.add_tenant(ctx.store, org, name, timezone, utcnow())
    click.echo(f"tenant {org.upper()} added")


@tenant.command("list", epilog=_example("lineledger-central tenant list"))
@pass_ctx
@_friendly
def tenant_list(ctx: _Ctx) -> None:
    """List tenants."""
    with ctx.store.read() as conn:
        for row in conn.execute(sa.select(T.tenants).order_by(T.tenants.c.org_code)):
            click.echo(f"{row.org_code}\t{row.name}\t{row.timezone}")


@tenant.command(
    "flag",
    epilog=_example(
        "lineledger-central tenant flag --org MA01 --key FF_VERIFY_PUBLIC_MODE --value standard"
    ),
)
@click.option("--org", required=True)
@click.option("--key", required=True, help="Flag name, e.g. FF_VERIFY_PUBLIC_MODE.")
@click.option("--value", required=True)
@pass_ctx
@_friendly
def tenant_flag(ctx: _Ctx, org: str, key: str, value: str) -> None:
    """Set a feature flag of a tenant."""
    admin.set_flag(ctx.store, org.upper(), key, value, utcnow())
    click.echo(f"{org.upper()} {key}={value}")


@main.group()
def product() -> None:
    """Manage products."""


@product.command(
    "add",
    epilog=_example(
        'lineledger-central product add --org MA01 --sku TOTE-01 --category BAG --name "Tote bag" '
        '--gtin 04006381333931 --brand "Acme Travel"'
    ),
)
@click.option("--org", required=True)
@click.option("--sku", required=True)
@click.option("--category", required=True, help="2-4 letters; the third field of serials.")
@click.option("--name", required=True)
@click.option("--gtin", default=None, help="GTIN-8/12/13/14 (stored as GTIN-14).")
@click.option("--template", default=None, help="Label template name (default: default).")
@click.option(
    "--brand", default=None, help="Brand shown by public verify (1-100 printable characters)."
)
@pass_ctx
@_friendly
def product_add(
    ctx: _Ctx,
    org: str,
    sku: str,
    category: str,
    name: str,
    gtin: str | None,
    template: str | None,
    brand: str | None,
) -> None:
    """Add a product."""
    admin.add_product(
        ctx.store, org.upper(), sku, category, name, gtin, utcnow(), template or "default", brand
    )
    click.echo(f"product {sku} added to {org.upper()}")


@product.command(
    "template",
    epilog=_example(
        "lineledger-central product template --org MA01 --sku TOTE-01 --template big-gs1"
    ),
)
@click.option("--org", required=True)
@click.option("--sku", required=True)
@click.option("--template", required=True, help="Template name, or 'default'.")
@pass_ctx
@_friendly
def product_template(ctx: _Ctx, org: str, sku: str, template: str) -> None:
    """Choose the label template of a product."""
    admin.set_product_template(ctx.store, org.upper(), sku, template)
    click.echo(f"{org.upper()} {sku} prints with template {template}")


@product.command(
    "brand",
    epilog=_example(
        'lineledger-central product brand --org MA01 --sku TOTE-01 --brand "Acme Travel"'
    ),
)
@click.option("--org", required=True)
@click.option("--sku", required=True)
@click.option("--brand", default=None, help="Brand shown by public verify (1-100 characters).")
@click.option("--clear", is_flag=True, help="Show no brand for this product.")
@pass_ctx
@_friendly
def product_brand(ctx: _Ctx, org: str, sku: str, brand: str | None, clear: bool) -> None:
    """Set (or clear) the brand public verify shows for a product."""
    if (brand is None) == (not clear):
        raise CentralError("ERR_INVALID", "give either --brand TEXT or --clear")
    admin.set_product_brand(ctx.store, org.upper(), sku, None if clear else brand)
    if clear:
        click.echo(f"{org.upper()} {sku} shows no brand")
    else:
        click.echo(f"{org.upper()} {sku} shows brand {(brand or '').strip()}")


@main.group()
def template() -> None:
    """Manage label templates (size, dpi, fields, barcode kinds)."""


@template.command(
    "set",
    epilog=_example(
        "lineledger-central template set --org MA01 --name big-gs1 --json "
        '\'{"width_mm": 101.6, "height_mm": 76.2, "barcodes": ["gs1_datamatrix", "qr"]}\''
    ),
)
@click.option("--org", required=True)
@click.option("--name", required=True)
@click.option("--json", "body", default=None, help="The template as a JSON object.")
@click.option(
    "--file",
    "path",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="A file holding the template as a JSON object.",
)
@pass_ctx
@_friendly
def template_set(ctx: _Ctx, org: str, name: str, body: str | None, path: str | None) -> None:
    """Create or replace a label template; it reaches the agents with their config."""

    if (body is None) == (path is None):
        raise click.UsageError("give the template with --json or with --file")
    text = body if body is not None else open(path, encoding="utf-8").read(65536)  # noqa: SIM115
    try:
        data = json.loads(text)
    except ValueError:
        raise CentralError("ERR_INVALID", "the template is not valid JSON") from None
    if not isinstance(data, dict):
        raise CentralError("ERR_INVALID", "a template is a JSON object")
    admin.set_label_template(ctx.store, org.upper(), name, data, utcnow())
    click.echo(f"template {name} saved for {org.upper()}")


@template.command("list", epilog=_example("lineledger-central template list --org MA01"))
@click.option("--org", required=True)
@pass_ctx
@_friendly
def template_list(ctx: _Ctx, org: str) -> None:
    """List a tenant's label templates as JSON lines."""

    with ctx.store.read() as conn:
        tenant = admin.tenant_by_org(conn, org.upper())
        for name, body in sorted(admin.label_templates(conn, tenant.id).items()):
            click.echo(json.dumps({"name": name, "template": body}, sort_keys=True))


@main.group()
def agent() -> None:
    """Manage edge agents."""


@agent.command(
    "enroll-code", epilog=_example("lineledger-central agent enroll-code --org MA01 --line LINE-1")
)
@click.option("--org", required=True)
@click.option("--line", required=True, help="The production line the agent runs on.")
@click.option(
    "--ttl-hours",
    default=None,
    type=click.IntRange(1, 24 * 30),
    help="Hours the code stays valid (default 72).",
)
@pass_ctx
@_friendly
def agent_enroll_code(ctx: _Ctx, org: str, line: str, ttl_hours: int | None) -> None:
    """Create a one-time enrollment code; it is printed as the last word."""
    ttl = ttl_hours or ctx.config.enroll_code_ttl_hours
    code = admin.create_enroll_code(ctx.store, org.upper(), line, ttl, utcnow())
    click.echo(
        f"one-time enrollment code for {code.org} line {code.line}, valid until "
        f"{code.expires_at:%Y-%m-%d %H:%M} UTC: {code.code}"
    )


@agent.command("list", epilog=_example("lineledger-central agent list"))
@pass_ctx
@_friendly
def agent_list(ctx: _Ctx) -> None:
    """List enrolled agents."""
    with ctx.store.read() as conn:
        rows = conn.execute(
            sa.select(T.agents, T.tenants.c.org_code)
            .join(T.tenants, T.tenants.c.id == T.agents.c.tenant_id)
            .order_by(T.agents.c.enrolled_at)
        )
        for row in rows:
            revoked = (
                f"\trevoked {row.revoked_at}: {row.revoked_reason}"
                if row.revoked_at and row.status == "revoked"
                else ""
            )
            click.echo(
                f"{row.id}\t{row.org_code}\t{row.line}\t{row.status}\tlast seen "
                f"{row.last_seen_at}{revoked}"
            )


@agent.command(
    "revoke",
    epilog=_example(
        'lineledger-central agent revoke --agent 01933b2e-... --reason "line PC stolen"'
    ),
)
@click.option("--agent", "agent_id", required=True, help="Agent id (see agent list).")
@click.option("--reason", required=True, help="Why the agent is revoked (recorded).")
@pass_ctx
@_friendly
def agent_revoke(ctx: _Ctx, agent_id: str, reason: str) -> None:
    """Refuse an agent's calls at once and close its leases at the highest number seen."""
    done = agents.revoke_agent(ctx.store, agent_id, reason, audit.cli_actor(), utcnow())
    click.echo(
        f"agent {done['agent_id']} (line {done['line']}) revoked; "
        f"{len(done['leases_closed'])} leases closed, {done['numbers_voided']} unused numbers "
        "voided; later events above the closing marks go to quarantine for review"
    )


@agent.command(
    "reinstate",
    epilog=_example(
        'lineledger-central agent reinstate --agent 01933b2e-... --reason "PC found, not stolen"'
    ),
)
@click.option("--agent", "agent_id", required=True, help="Agent id (see agent list).")
@click.option("--reason", required=True, help="Why the agent may call again (recorded).")
@pass_ctx
@_friendly
def agent_reinstate(ctx: _Ctx, agent_id: str, reason: str) -> None:
    """Let a revoked agent call again; its closed leases stay closed."""
    agents.reinstate_agent(ctx.store, agent_id, reason, audit.cli_actor(), utcnow())
    click.echo(
        f"agent {agent_id} reinstated; events it sends above its closed leases' marks go to "
        "quarantine (lineledger-central quarantine list) for a supervisor to release"
    )


@agent.command(
    "rotate-token", epilog=_example("lineledger-central agent rotate-token --agent 0193...")
)
@click.option("--agent", "agent_id", required=True, help="Agent id (see agent list).")
@pass_ctx
@_friendly
def agent_rotate_token(ctx: _Ctx, agent_id: str) -> None:
    """Give an agent a new token (printed last); the old one is refused at once."""
    token = agents.rotate_token(ctx.store, agent_id, audit.cli_actor(), utcnow())
    click.echo(
        f"new token for agent {agent_id}; on the line PC run `lineledger-edge set-token` and "
        f"paste it (it is not shown again): {token}"
    )


@main.group()
def quarantine() -> None:
    """Review serials central holds: list, show, release, confirm."""


@quarantine.command(
    "release",
    epilog=_example('lineledger-central quarantine release 42 --reason "PC was not stolen"'),
)
@click.argument("entry", type=click.IntRange(1, 10**12))
@click.option("--reason", required=True, help="Why the serial can be trusted (recorded).")
@pass_ctx
@_friendly
def quarantine_release(ctx: _Ctx, entry: int, reason: str) -> None:
    """Release a held serial: the hold ends and its held events are applied."""
    decision = review.release(
        ctx.store,
        Keyring.load(ctx.config.keyring_file),
        entry,
        reason,
        audit.cli_actor(),
        utcnow(),
        dt.timedelta(seconds=ctx.config.clock_tolerance_seconds),
    )
    click.echo(json.dumps(decision.to_dict(), sort_keys=True))


@quarantine.command(
    "confirm",
    epilog=_example('lineledger-central quarantine confirm 42 --reason "label found on a fake"'),
)
@click.argument("entry", type=click.IntRange(1, 10**12))
@click.option("--reason", required=True, help="Why the serial is not to be trusted (recorded).")
@pass_ctx
@_friendly
def quarantine_confirm(ctx: _Ctx, entry: int, reason: str) -> None:
    """Confirm a held serial is not to be trusted: it is retired for good (verify: voided)."""
    decision = review.confirm(ctx.store, entry, reason, audit.cli_actor(), utcnow())
    click.echo(json.dumps(decision.to_dict(), sort_keys=True))


@main.group()
def report() -> None:
    """Reports: where every number of a work order or a lease went."""


@report.command(
    "reconcile",
    epilog=_example("lineledger-central report reconcile --org MA01 --work-order WO-1001"),
)
@click.option("--org", default=None, help="Tenant of the work order (needed if ambiguous).")
@click.option("--work-order", "work_order", default=None, help="Work order number.")
@click.option("--lease", "lease_id", default=None, help="Or one lease, by id.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "json"]),
    default="table",
    show_default=True,
)
@pass_ctx
@_friendly
def report_reconcile(
    ctx: _Ctx, org: str | None, work_order: str | None, lease_id: str | None, fmt: str
) -> None:
    """Print the reconciliation report of a work order (HOLD SHIPMENT) or of one lease."""
    if (work_order is None) == (lease_id is None):
        raise click.UsageError("give --work-order or --lease")
    with ctx.store.read() as conn:
        if lease_id is not None:
            body = reports.report_for_lease(conn, lease_id)
        else:
            assert work_order is not None
            body = reports.report_for_work_order(conn, _org_of(conn, org, work_order), work_order)
    click.echo(reports.render(body, fmt))


def _org_of(conn: Any, org: str | None, work_order: str) -> str:
    """Return the org of a work order number, which must be unambiguous without --org."""
    if org:
        return org.upper()
    orgs = (
        conn.execute(
            sa.select(T.tenants.c.org_code)
            .join(T.work_orders, T.work_orders.c.tenant_id == T.tenants.c.id)
            .where(T.work_orders.c.number == work_order)
        )
        .scalars()
        .all()
    )
    if len(orgs) != 1:
        raise CentralError(
            "ERR_WORK_ORDER_UNKNOWN" if not orgs else "ERR_INVALID",
            f"no work order {work_order!r}"
            if not orgs
            else f"work order {work_order} exists in {', '.join(sorted(orgs))}: give --org",
        )
    return str(orgs[0])


@main.group("admin-token")
def admin_token() -> None:
    """Manage admin API tokens."""


@admin_token.command("add", epilog=_example("lineledger-central admin-token add --name ops"))
@click.option("--name", required=True, help="Who or what uses the token.")
@pass_ctx
@_friendly
def admin_token_add(ctx: _Ctx, name: str) -> None:
    """Create an admin API token; it is shown once, as the last word."""
    token = admin.add_admin_token(ctx.store, name, utcnow())
    click.echo(f"admin token {name} (store it now, it is not shown again): {token}")


@admin_token.command("list", epilog=_example("lineledger-central admin-token list"))
@pass_ctx
@_friendly
def admin_token_list(ctx: _Ctx) -> None:
    """List admin tokens (names and dates; tokens themselves are never stored)."""
    with ctx.store.read() as conn:
        for row in conn.execute(sa.select(T.admin_tokens).order_by(T.admin_tokens.c.name)):
            state = f"revoked {row.revoked_at}" if row.revoked_at else "live"
            click.echo(f"{row.name}\tcreated {row.created_at}\t{state}")


@admin_token.command("revoke", epilog=_example("lineledger-central admin-token revoke --name ops"))
@click.option("--name", required=True)
@pass_ctx
@_friendly
def admin_token_revoke(ctx: _Ctx, name: str) -> None:
    """Revoke an admin token at once."""
    admin.revoke_admin_token(ctx.store, name, utcnow())
    click.echo(f"admin token {name} revoked")


@main.group()
def keys() -> None:
    """Manage master keys."""


@keys.command("rotate", epilog=_example("lineledger-central keys rotate"))
@pass_ctx
@_friendly
def keys_rotate(ctx: _Ctx) -> None:
    """Make a new master key version for new leases; old serials keep verifying."""
    version = admin.rotate_keys(ctx.store, Keyring.load(ctx.config.keyring_file), utcnow())
    click.echo(f"new leases use key version {version}; keyring {ctx.config.keyring_file}")


@keys.command("list", epilog=_example("lineledger-central keys list"))
@pass_ctx
@_friendly
def keys_list(ctx: _Ctx) -> None:
    """List key versions with their public fingerprints."""
    with ctx.store.read() as conn:
        for row in conn.execute(sa.select(T.key_versions).order_by(T.key_versions.c.version)):
            mark = "active" if row.active else ""
            click.echo(f"v{row.version}\t{row.fingerprint}\t{row.created_at}\t{mark}")


# Command groups that live in modules of their own; each registers itself on `main` above.
from central import (  # noqa: E402, F401
    cli_config,
    cli_erp,
    cli_generate,
    cli_jobs,
    cli_review,
    cli_workorders,
)
