"""Edge agent configuration: code defaults, then `<home>/edge.toml`, then `LINELEDGER_EDGE_*`.

The defaults keep a line issuing for hours without the network: at one unit a second a full
pool (10,000 numbers per active scope) lasts close to three hours, and top-ups start at
4,000 left, which is over an hour of warning.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_agent.errors import ERR_CONFIG, EdgeError


@dataclass(frozen=True)
class EdgeConfig:
    """Everything an edge agent can be told."""

    home: str = "."
    printer_url: str = ""  # default printer; `issue --printer` overrides it
    # Plain http:// to a central off this machine sends the token and lease keys unencrypted:
    # refused unless insecure is true. ca_bundle: PEM file of the plant's own CA for https.
    insecure: bool = False
    ca_bundle: str = ""
    scanner_url: str = ""  # serial/USB-CDC scanner, e.g. /dev/serial/by-id/...?baud=9600
    lease_block: int = 2_500  # numbers asked for in one lease request (at least)
    pool_target: int = 10_000  # numbers kept on hand per active scope
    low_water: int = 4_000  # top up below this; warn the operator below a quarter of it
    lookahead_hours: float = 2.0  # lease tomorrow's scope this long before plant midnight
    sync_batch: int = 500  # events per push (central takes up to 1000)
    sync_interval: float = 2.0  # seconds between pushes while there is work
    backoff_base: float = 1.0  # first reconnect delay when central is unreachable
    backoff_max: float = 60.0  # reconnect delays are capped at about a minute
    retry_schedule: tuple[float, ...] = (60.0, 300.0, 900.0, 3600.0, 21600.0)
    max_attempts: int = 10  # an event answered `retry` this often goes dead
    http_timeout: float = 10.0
    print_batch: int = 20  # labels claimed and sent between two status checks
    print_retry: float = 5.0  # seconds before a label that failed to send is tried again
    printer_timeout: float = 2.0
    claim_stale_seconds: float = 60.0  # a "printing" claim older than this was interrupted
    operator_host: str = "127.0.0.1"
    operator_port: int = 8765
    pool_interval: float = 30.0
    retention_days: float = 30.0  # delivered events and sent print jobs are kept this long
    config_interval: float = 300.0
    # The printer's label odometer (edge_agent.odometer): compare it before every batch, hold
    # when the printer counted more labels than this agent sent it, beyond this tolerance.
    # 0 by default: Zebra's count leaves out form feeds and calibration labels, so every
    # extra label is one printed from a format; set odometer_check = false for a printer that
    # other systems print on too.
    odometer_check: bool = True
    odometer_tolerance: int = 0
    odometer_recheck_seconds: float = 300.0  # ask a printer that stayed silent again after this
    clock_warn_seconds: float = 120.0  # warn the operator beyond this clock offset
    clock_limit_seconds: float = 3600.0  # refuse to issue beyond this (ERR_CLOCK_SKEW)
    # High-water-mark reports while central is reachable: after this many serials or this many
    # seconds with unreported serials, whichever comes first, and at the end of every `issue`.
    marks_report: bool = True
    marks_every: int = 50
    marks_seconds: float = 5.0
    guard_timeout: float = 2.0  # the rollback guard's exchange at the start of `issue`
    reconcile_interval: float = 3600.0  # full reconcile in `run` (also at start, after catch-up)

    @property
    def home_path(self) -> Path:
        """Return the agent's home folder."""
        return Path(self.home)

    @property
    def ca_bundle_path(self) -> str:
        """Return the CA file as an absolute path (a relative one is relative to the home)."""
        if not self.ca_bundle:
            return ""
        return str(self.home_path / self.ca_bundle)  # an absolute ca_bundle stays as it is


ENV_PREFIX = "LINELEDGER_EDGE_"


def _coerce(name: str, value: Any) -> Any:
    fields = {f.name: f for f in dataclasses.fields(EdgeConfig)}
    field = fields.get(name)
    if field is None:
        raise EdgeError(ERR_CONFIG, f"unknown setting {name!r}")
    default = field.default
    try:
        if isinstance(default, tuple):
            items = value.split(",") if isinstance(value, str) else list(value)
            return tuple(float(v) for v in items)
        if isinstance(default, bool):
            return str(value).lower() in ("1", "true", "yes", "on")
        return type(default)(value)
    except (TypeError, ValueError):
        raise EdgeError(ERR_CONFIG, f"setting {name} must be a {type(default).__name__}") from None


def load_config(
    home: str | Path,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> EdgeConfig:
    """Build the configuration of the agent whose home is `home`."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    config_file = Path(home) / "edge.toml"
    if config_file.exists():
        try:
            with config_file.open("rb") as fh:
                values.update(tomllib.load(fh).get("edge", {}))
        except (OSError, ValueError) as exc:  # TOMLDecodeError and bad UTF-8 are ValueErrors
            raise EdgeError(ERR_CONFIG, f"cannot read {config_file}: {exc}") from None
    for f in dataclasses.fields(EdgeConfig):
        var = ENV_PREFIX + f.name.upper()
        if f.name != "home" and env.get(var):
            values[f.name] = env[var]
    values.update(overrides or {})
    values["home"] = str(home)
    config = EdgeConfig(**{k: _coerce(k, v) for k, v in values.items()})
    if not 0 < config.low_water <= config.pool_target or config.lease_block < 1:
        raise EdgeError(ERR_CONFIG, "need 0 < low_water <= pool_target and lease_block >= 1")
    if config.odometer_tolerance < 0 or config.odometer_recheck_seconds < 0:
        raise EdgeError(ERR_CONFIG, "odometer_tolerance and odometer_recheck_seconds must be >= 0")
    if not 1 <= config.sync_batch <= 1000:
        raise EdgeError(ERR_CONFIG, "sync_batch must be 1..1000")
    if not 0 < config.clock_warn_seconds <= config.clock_limit_seconds:
        raise EdgeError(ERR_CONFIG, "need 0 < clock_warn_seconds <= clock_limit_seconds")
    if config.marks_every < 1 or config.marks_seconds <= 0 or config.guard_timeout <= 0:
        raise EdgeError(ERR_CONFIG, "marks_every, marks_seconds and guard_timeout must be > 0")
    if config.reconcile_interval < 60:
        raise EdgeError(ERR_CONFIG, "reconcile_interval is at least 60 seconds")
    return config


CONFIG_NAME = "edge.toml"
# What `enroll` writes when the home has no edge.toml yet: the settings a line commonly
# changes, commented out at their defaults, under the ones enroll was given.
_HEADER = """\
# LineLedger edge agent settings (written by `lineledger-edge enroll`).
# A line starting with # shows a setting at its default: remove the # and change the value.
# LINELEDGER_EDGE_<SETTING> environment variables override this file,
# e.g. LINELEDGER_EDGE_PRINTER_URL=tcp://10.0.0.7:9100.
"""
_GROUPS: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = (
    (
        "central",
        (
            ("insecure", "allow plain http:// to a central that is not this machine"),
            ("ca_bundle", "PEM file of the plant's own CA, for https:// with a private CA"),
            ("http_timeout", "seconds"),
        ),
    ),
    (
        "printer and scanner",
        (
            ("printer_url", "tcp://HOST:9100, /dev/ttyUSB0?baud=9600, COM3, socket://HOST:PORT,"),
            ("", "file:///DIR or pdf:///DIR (the folder must exist, or add ?create=1)"),
            ("scanner_url", "e.g. /dev/serial/by-id/usb-Honeywell...?baud=9600"),
            ("print_batch", "labels sent between two printer status checks"),
            ("printer_timeout", "seconds"),
            ("odometer_check", "false for a printer other systems print on too"),
            ("odometer_tolerance", "labels beyond those sent before the printer is held"),
        ),
    ),
    (
        "lease pool, per active scope",
        (
            ("pool_target", "numbers kept on hand (about 3 h at 1 unit/s)"),
            ("low_water", "top up below this; the page warns below a quarter of it"),
            ("lease_block", "numbers asked for in one lease request"),
            ("lookahead_hours", "lease tomorrow's numbers this long before midnight"),
        ),
    ),
    (
        "sync",
        (
            ("sync_batch", "events per push (1..1000)"),
            ("sync_interval", "seconds between pushes while there is work"),
            ("backoff_max", "reconnect delay cap while central is unreachable"),
            ("retry_schedule", "seconds before an event answered `retry` is sent again"),
            ("max_attempts", "an event answered `retry` this often goes dead"),
            ("retention_days", "delivered events and sent print jobs are kept this long"),
        ),
    ),
    (
        "operator page and clock",
        (
            ("operator_host", "0.0.0.0 to reach the page from other PCs"),
            ("operator_port", ""),
            ("clock_warn_seconds", "warn beyond this offset from central's clock"),
            ("clock_limit_seconds", "refuse to issue beyond it (ERR_CLOCK_SKEW)"),
        ),
    ),
)


def _commented_defaults() -> str:
    """Return the commented part of a new edge.toml, each value the code's default."""
    defaults = EdgeConfig()
    out: list[str] = []
    for title, settings in _GROUPS:
        out.append(f"# -- {title} " + "-" * (84 - len(title)))
        for key, note in settings:
            line = f"# {key} = {_toml_value(getattr(defaults, key))}" if key else "#"
            out.append(f"{line:<40} # {note}" if note else line)
    return "\n".join(out) + "\n"


_SECTION = re.compile(r"^\s*\[([^\]]*)\]")


def _is_edge_header(line: str) -> bool:
    header = _SECTION.match(line)
    return header is not None and header[1].strip() == "edge"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(value)  # a JSON string or number is a TOML basic string or number


def write_settings(home: str | Path, settings: Mapping[str, Any]) -> Path:
    """Write settings into `<home>/edge.toml` (0600): a new commented file, or an update.

    An existing file keeps its text; each given setting replaces its line in `[edge]`, or is
    added right after the `[edge]` header.
    """
    path = Path(home) / CONFIG_NAME
    lines = [f"{k} = {_toml_value(v)}" for k, v in settings.items()]
    if not path.exists():
        text = _HEADER + "[edge]\n" + "".join(f"{line}\n" for line in lines)
        text += _commented_defaults()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        return path
    old = path.read_text(encoding="utf-8").splitlines()
    new: list[str] = []
    section: str | None = None
    pending = dict(zip(settings, lines, strict=True))
    for line in old:
        header = _SECTION.match(line)
        if header:
            section = header[1].strip()
            new.append(line)
            continue
        key = (
            line.split("=", 1)[0].strip()
            if "=" in line and not line.lstrip().startswith("#")
            else ""
        )
        if section == "edge" and key in pending:
            new.append(pending.pop(key))
        else:
            new.append(line)
    if pending:
        at = next((i + 1 for i, text in enumerate(new) if _is_edge_header(text)), None)
        if at is None:
            new += ["[edge]", *pending.values()]
        else:
            new[at:at] = list(pending.values())
    path.write_text("\n".join(new) + "\n", encoding="utf-8")
    path.chmod(0o600)
    return path
