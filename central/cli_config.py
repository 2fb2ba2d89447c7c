"""`lineledger-central config`: a tenant's generation configuration (issue #9).

`show`, `set` (friendly options, merged onto the current configuration), `export` (JSON, never
the ERP token), `import` (all or nothing; `--dry-run` checks only) and `needs` (what a quantity
needs per packaging level, so a supervisor can check the math). These commands register
themselves on `central.cli.main` (imported at the end of that module).
"""

from __future__ import annotations

import copy
import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
import sqlalchemy as sa

from central import audit
from central import genconfig as G
from central import tables as T
from central.cli import _Ctx, _example, _friendly, main, pass_ctx
from central.errors import ValidationFailed
from central.timeutil import utcnow
from protocol import schema

F = TypeVar("F", bound=Callable[..., Any])


def _details(fn: F) -> F:
    """Print every field problem of a refused document, one line each (exit status 1)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ValidationFailed as exc:
            lines = [f"{exc.code}: {exc.message}"]
            for field, messages in exc.details.items():
                lines += [f"  {field or '(document)'}: {m}" for m in messages]
            raise click.ClickException("\n".join(lines)) from None

    return wrapper  # type: ignore[return-value]


def _org(value: str) -> str:
    return value.upper()[:6]


@main.group("config")
def config() -> None:
    """Show and change each tenant's generation configuration (sources, overage, levels)."""


def _table(shown: dict[str, Any]) -> str:
    rules = shown["aggregation_rules"]
    lines = [
        f"tenant {shown['org']}"
        + (" (defaults: never configured)" if shown["is_default"] else "")
        + (
            f", updated {shown['updated_at']} by {shown['updated_by']}"
            if shown["updated_at"]
            else ""
        ),
        f"  manufacturing percentage (overage): {shown['manufacturing_percentage']:g} %",
        f"  discrepancy tolerance:              {shown['discrepancy_tolerance']:g} %",
        "  aggregation: "
        + ", ".join(
            f"{lv}={r['multiplier']}" + ("" if r["enabled"] else " (off)")
            for lv, r in rules.items()
        ),
        "  serial sources: "
        + (
            ", ".join(
                f"{s['name']} [{s['kind']}]" + ("" if s["enabled"] else " (off)")
                for s in shown["serial_sources"]
            )
            or "none"
        ),
        "  SSCC sources: "
        + (
            ", ".join(
                f"{s['name']} = {s['company_prefix']}:{s['extension_digit']}"
                + ("" if s["enabled"] else " (off)")
                for s in shown["sscc_sources"]
            )
            or "none"
        ),
        f"  ERP: {shown['erp_url'] or 'none'}"
        + (
            f", every {shown['erp_interval_s']} s"
            if shown["erp_interval_s"]
            else ", no scheduled pull"
        )
        + (", token set" if shown["erp_token_set"] else ", no token"),
    ]
    return "\n".join(lines)


@config.command(
    "show",
    epilog=_example("lineledger-central config show --org MA01 --format json"),
)
@click.option("--org", default=None, help="Tenant org code (default: every tenant).")
@click.option(
    "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True
)
@pass_ctx
@_friendly
def config_show(ctx: _Ctx, org: str | None, fmt: str) -> None:
    """Show the generation configuration (the ERP token only as set / not set)."""
    with ctx.store.read() as conn:
        if org is not None:
            orgs = [_org(org)]
        else:
            orgs = list(
                conn.execute(sa.select(T.tenants.c.org_code).order_by("org_code")).scalars()
            )
        shown = [G.load(conn, o) for o in orgs]
    if fmt == "json":
        click.echo(json.dumps(shown[0] if org is not None else shown, indent=2, sort_keys=True))
        return
    click.echo("\n\n".join(_table(s) for s in shown) or "no tenants yet")


def _pair(text: str, option: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise click.BadParameter(f"write NAME=VALUE, not {text!r}", param_hint=option)
    return name.strip(), value.strip()


def _apply_aggregation(rules: dict[str, Any], items: tuple[str, ...]) -> None:
    for item in items:
        level, value = _pair(item, "--aggregation")
        level = level.lower()
        if level not in G.LEVELS:
            raise click.BadParameter(
                f"level is one of {', '.join(G.LEVELS)}", param_hint="--aggregation"
            )
        rule = rules.setdefault(level, {"enabled": False, "multiplier": 1})
        if value.lower() in ("off", "no", "false"):
            rule["enabled"] = False
        elif value.lower() in ("on", "yes", "true"):
            rule["enabled"] = True
        elif value.isascii() and value.isdigit() and len(value) <= 9:
            rule.update(enabled=True, multiplier=int(value))
        else:
            raise click.BadParameter(
                f"{level}= takes a number of units per package, on or off (not {value!r})",
                param_hint="--aggregation",
            )


def _apply_sscc(
    sources: list[dict[str, Any]], items: tuple[str, ...], removed: tuple[str, ...]
) -> list[dict[str, Any]]:
    for name in removed:
        if not any(s["name"] == name for s in sources):
            raise click.BadParameter(
                f"there is no SSCC source {name!r}", param_hint="--remove-sscc-source"
            )
        sources = [s for s in sources if s["name"] != name]
    for item in items:
        name, value = _pair(item, "--sscc-source")
        parts = value.split(":")
        if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] not in ("on", "off")):
            raise click.BadParameter(
                f"write NAME=PREFIX:EXTENSION[:off], e.g. plant-a=0614141:3 (not {item!r})",
                param_hint="--sscc-source",
            )
        ext: Any = (
            int(parts[1])
            if parts[1].isascii() and parts[1].isdigit() and len(parts[1]) < 4
            else parts[1]
        )
        source = {
            "name": name,
            "company_prefix": parts[0],
            "extension_digit": ext,
            "enabled": len(parts) == 2 or parts[2] == "on",
        }
        sources = [s for s in sources if s["name"] != name] + [source]
    return sources


def _apply_serial(sources: list[dict[str, Any]], items: tuple[str, ...]) -> list[dict[str, Any]]:
    for item in items:
        kind, value = _pair(item, "--serial-source")
        if value not in ("on", "off"):
            raise click.BadParameter(
                f"write KIND=on or KIND=off (not {item!r})", param_hint="--serial-source"
            )
        matching = [s for s in sources if s.get("kind") == kind]
        for source in matching:
            source["enabled"] = value == "on"
        if not matching:
            sources.append({"name": kind, "kind": kind, "enabled": value == "on"})
    return sources


def _print_result(result: dict[str, Any], fmt: str) -> None:
    if fmt == "json":
        click.echo(
            json.dumps(
                {k: result[k] for k in ("ok", "dry_run", "changed", "after")}, sort_keys=True
            )
        )
        return
    what = "would change" if result["dry_run"] else "changed"
    changed = ", ".join(result["changed"]) or "nothing"
    click.echo(f"{result['after']['org']}: {what} {changed}")
    click.echo(_table(result["after"]))


@config.command(
    "set",
    epilog=_example(
        "lineledger-central config set --org MA01 --manufacturing-percentage 5 --tolerance 2 "
        "--aggregation l2=12 --aggregation l3=480 --sscc-source plant-a=0614141:3\n"
        '  echo "$ERP_TOKEN" | lineledger-central config set --org MA01 '
        "--erp-url https://erp.example/api --erp-token-stdin --erp-interval 900"
    ),
)
@click.option("--org", required=True, help="Tenant org code.")
@click.option(
    "--manufacturing-percentage", type=float, default=None, help="Default overage % (0-100)."
)
@click.option(
    "--tolerance", type=float, default=None, help="Default discrepancy tolerance % (0-100)."
)
@click.option(
    "--aggregation",
    multiple=True,
    metavar="LEVEL=N|on|off",
    help="Units per package at a level (l2=12 cases of 12, l3=480 pallets); off disables.",
)
@click.option(
    "--serial-source",
    multiple=True,
    metavar="KIND=on|off",
    help="standard, sgtin-seq or sgtin-random.",
)
@click.option(
    "--sscc-source",
    multiple=True,
    metavar="NAME=PREFIX:EXT[:off]",
    help="Add or replace an SSCC source.",
)
@click.option("--remove-sscc-source", multiple=True, metavar="NAME", help="Remove an SSCC source.")
@click.option(
    "--erp-url", default=None, help="ERP base URL (http/https, no credentials); 'none' clears."
)
@click.option("--erp-token-stdin", is_flag=True, help="Read the ERP token from standard input.")
@click.option("--clear-erp-token", is_flag=True, help="Forget the ERP token.")
@click.option(
    "--erp-interval", default=None, metavar="SECONDS|off", help="Pull the ERP every N s (>= 60)."
)
@click.option("--dry-run", is_flag=True, help="Check and show what would change; write nothing.")
@click.option(
    "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True
)
@pass_ctx
@_friendly
@_details
def config_set(
    ctx: _Ctx,
    org: str,
    manufacturing_percentage: float | None,
    tolerance: float | None,
    aggregation: tuple[str, ...],
    serial_source: tuple[str, ...],
    sscc_source: tuple[str, ...],
    remove_sscc_source: tuple[str, ...],
    erp_url: str | None,
    erp_token_stdin: bool,
    clear_erp_token: bool,
    erp_interval: str | None,
    dry_run: bool,
    fmt: str,
) -> None:
    """Change some fields of a tenant's configuration; the others stay as they are."""
    org = _org(org)
    with ctx.store.read() as conn:
        current = G.load(conn, org)
    patch: dict[str, Any] = {}
    if manufacturing_percentage is not None:
        patch["manufacturing_percentage"] = manufacturing_percentage
    if tolerance is not None:
        patch["discrepancy_tolerance"] = tolerance
    if aggregation:
        rules = copy.deepcopy(current["aggregation_rules"])
        _apply_aggregation(rules, aggregation)
        patch["aggregation_rules"] = rules
    if serial_source:
        patch["serial_sources"] = _apply_serial(
            copy.deepcopy(current["serial_sources"]), serial_source
        )
    if sscc_source or remove_sscc_source:
        patch["sscc_sources"] = _apply_sscc(
            copy.deepcopy(current["sscc_sources"]), sscc_source, remove_sscc_source
        )
    if erp_url is not None:
        patch["erp_url"] = None if erp_url.lower() == "none" else erp_url
    if erp_token_stdin and clear_erp_token:
        raise click.UsageError("give --erp-token-stdin or --clear-erp-token, not both")
    if erp_token_stdin:
        token = sys.stdin.read(G.MAX_TOKEN + 2).strip("\r\n")
        if not token:
            raise click.UsageError("--erp-token-stdin read nothing")
        patch["erp_token"] = token
    if clear_erp_token:
        patch["erp_token"] = None
    if erp_interval is not None:
        if erp_interval.lower() in ("off", "none"):
            patch["erp_interval_s"] = None
        elif erp_interval.isascii() and erp_interval.isdigit() and len(erp_interval) <= 9:
            patch["erp_interval_s"] = int(erp_interval)
        else:
            raise click.BadParameter(
                "a whole number of seconds, or off", param_hint="--erp-interval"
            )
    if not patch:
        raise click.UsageError("say what to change (see --help)")
    result = G.save(
        ctx.store, org, patch, audit.cli_actor(), utcnow(), partial=True, dry_run=dry_run
    )
    _print_result(result, fmt)


@config.command(
    "export",
    epilog=_example("lineledger-central config export --org MA01 --output ma01-config.json"),
)
@click.option("--org", required=True, help="Tenant org code.")
@click.option(
    "--output", type=click.Path(dir_okay=False), default=None, help="File (default: stdout)."
)
@pass_ctx
@_friendly
def config_export(ctx: _Ctx, org: str, output: str | None) -> None:
    """Write a tenant's configuration as JSON (never the ERP token), ready for `config import`."""
    with ctx.store.read() as conn:
        shown = G.load(conn, _org(org))
    document = {k: shown[k] for k in ("org", *G.EDITABLE) if k in shown}
    text = json.dumps(document, indent=2, sort_keys=True) + "\n"
    if output is None:
        click.echo(text, nl=False)
        return
    Path(output).write_text(text, encoding="utf-8")
    click.echo(f"wrote {output}", err=True)


@config.command(
    "import",
    epilog=_example("lineledger-central config import ma01-config.json --org MA01 --dry-run"),
)
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--org", required=True, help="Tenant org code (the file's own org is ignored).")
@click.option("--dry-run", is_flag=True, help="Check and show what would change; write nothing.")
@click.option(
    "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True
)
@pass_ctx
@_friendly
@_details
def config_import(ctx: _Ctx, file: str, org: str, dry_run: bool, fmt: str) -> None:
    """Replace a tenant's configuration with a JSON file: all of it, or nothing."""
    limit = G.MAX_DOCUMENT_BYTES
    if file == "-":
        raw = sys.stdin.buffer.read(limit + 1)
    else:
        with open(file, "rb") as handle:
            raw = handle.read(limit + 1)
    document = schema.loads(raw, limit)
    result = G.save(ctx.store, _org(org), document, audit.cli_actor(), utcnow(), dry_run=dry_run)
    _print_result(result, fmt)


@config.command(
    "needs",
    epilog=_example("lineledger-central config needs --org MA01 --quantity 1000 --overage 5"),
)
@click.option("--org", required=True, help="Tenant org code (its aggregation rules).")
@click.option(
    "--quantity", type=click.IntRange(1, G.MAX_QUANTITY), required=True, help="Units ordered."
)
@click.option(
    "--overage",
    type=click.FloatRange(0, 100),
    default=None,
    help="Overage % (default: the tenant's manufacturing percentage).",
)
@click.option(
    "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True
)
@pass_ctx
@_friendly
def config_needs(ctx: _Ctx, org: str, quantity: int, overage: float | None, fmt: str) -> None:
    """Show how many serials each packaging level needs, and how many SSCCs."""
    with ctx.store.read() as conn:
        shown = G.load(conn, _org(org))
    pct = shown["manufacturing_percentage"] if overage is None else overage
    result = G.needs(quantity, pct, shown["aggregation_rules"])
    if fmt == "json":
        click.echo(json.dumps(result, sort_keys=True))
        return
    units = result["units"]
    click.echo(f"{quantity} ordered + {pct:g} % overage = {_count(units, 'unit')} (l1)")
    for level, body in result["levels"].items():
        if level != "l1":
            click.echo(
                f"  {level}: {_count(body['count'], 'package')} of "
                f"{_count(body['multiplier'], 'unit')}"
            )
    requests = result["sscc_requests"]
    if requests > 1:
        click.echo(
            f"SSCCs: {result['sscc']:,} (generate in {requests} requests, one makes at most "
            f"{G.SSCC_PER_REQUEST:,}: --sscc {G.SSCC_PER_REQUEST} first, then the rest with "
            "--force-regenerate --sscc N)"
        )
    else:
        click.echo(f"SSCCs: {result['sscc']}")


def _count(n: int, noun: str) -> str:
    """Return "1 unit", "2 units"."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
