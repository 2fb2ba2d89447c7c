"""Central configuration: code defaults, then a TOML file, then `LINELEDGER_*` variables.

Tests and embedders pass a mapping to `create_app`, which wins over everything else.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from central.errors import ERR_INVALID, CentralError


@dataclass(frozen=True)
class CentralConfig:
    """Everything the central registry can be told, with defaults for one plant on SQLite."""

    home: str = "instance"
    db_url: str = ""  # "" means sqlite:///<home>/central.db
    keyring_path: str = ""  # "" means <home>/master_keys.json
    public_base_url: str = "http://127.0.0.1:8080"
    verify_rate_limit: str = "60/hour"
    ratelimit_storage_uri: str = "memory://"
    enroll_rate_limit: str = "20/minute"
    trusted_proxies: int = 0  # how many reverse proxies' X-Forwarded-For to trust
    # The address the nearest reverse proxy connects from; X-Forwarded-* headers from any
    # other client are dropped ("*" trusts every client: only when nothing else can connect).
    trusted_proxy_address: str = "127.0.0.1"
    metrics_token: str = ""  # "" means /metrics answers loopback clients only
    lease_max_size: int = 10_000
    lease_days_ahead: int = 1  # a line may lease for tomorrow's date (midnight offline)
    lease_days_behind: int = 1  # ... and finish yesterday's shift
    lease_grace_days: int = 2  # a lease expires this long after its production date
    enroll_code_ttl_hours: int = 72
    max_body_bytes: int = 4 * 1024 * 1024
    # `serve` (waitress) limits: the server refuses a larger body (also a chunked one) before
    # reading it all; open connections beyond the limit wait in the listen backlog; a
    # connection idle this many seconds is closed, checked every `cleanup_interval` seconds.
    connection_limit: int = 100
    channel_timeout: int = 30
    cleanup_interval: int = 10
    verify_flush_seconds: float = 2.0
    # Under gunicorn (deploy/gunicorn.conf.py): a public verify request that waited longer
    # than this for a worker thread is answered 503 + Retry-After at once (0: never shed).
    shed_after_ms: int = 100
    # Public verify warns that a code may be copied once it was checked from this many
    # distinct client-days (one address or IPv6 /64 on one UTC day).
    verify_warn_client_days: int = 20
    # What one agent may hold unused per scope: its pool target plus one block (ERR_LEASE_CAP).
    # The edge agent's own defaults are the same numbers.
    lease_pool_target: int = 10_000
    lease_block: int = 2_500
    # An event claiming a time this far in the future, or this long before its lease was
    # granted, is flagged; an `issued` event so is held for review (ERR_CLOCK_SKEW).
    clock_tolerance_seconds: int = 300
    # Consistency checker thresholds.
    orphan_grace_hours_hat: float = 72.0  # a HAT serial not linked to its piece by then
    orphan_grace_hours_oem: float = 24.0  # an OEM serial never printed by then
    agent_silent_hours: float = 6.0  # an agent with unsynced work silent this long
    facts_grace_minutes: float = 60.0  # used numbers (high-water) with no facts this long
    # Central jobs (`lineledger-central jobs`): minutes between runs.
    lease_expiry_minutes: float = 15.0
    consistency_check_minutes: float = 60.0
    # How often the jobs process looks for due or queued ERP pulls (each tenant's own
    # erp_interval_s says how often it is pulled).
    erp_check_minutes: float = 1.0
    # How often the jobs process looks for queued work-order generation tasks (issue #9);
    # a look that finds none is not recorded as a run.
    generation_tasks_minutes: float = 0.05
    # A job lock (the scheduler's, or one job run's) lapses this long after its holder last
    # renewed it; holders renew every quarter of it, so a killed process frees its jobs soon.
    job_lock_seconds: float = 120.0

    @property
    def database_url(self) -> str:
        """Return the SQLAlchemy URL of the store."""
        return self.db_url or f"sqlite:///{Path(self.home).resolve() / 'central.db'}"

    @property
    def keyring_file(self) -> Path:
        """Return where the master keys live (never inside the database)."""
        return (
            Path(self.keyring_path) if self.keyring_path else Path(self.home) / "master_keys.json"
        )


ENV = {
    "LINELEDGER_CENTRAL_HOME": "home",
    "LINELEDGER_CENTRAL_DB": "db_url",
    "LINELEDGER_CENTRAL_KEYRING": "keyring_path",
    "LINELEDGER_PUBLIC_BASE_URL": "public_base_url",
    "LINELEDGER_VERIFY_RATE_LIMIT": "verify_rate_limit",
    "LINELEDGER_RATELIMIT_STORAGE": "ratelimit_storage_uri",
    "LINELEDGER_ENROLL_RATE_LIMIT": "enroll_rate_limit",
    "LINELEDGER_VERIFY_WARN_CLIENT_DAYS": "verify_warn_client_days",
    "LINELEDGER_SHED_AFTER_MS": "shed_after_ms",
    "LINELEDGER_TRUSTED_PROXIES": "trusted_proxies",
    "LINELEDGER_TRUSTED_PROXY_ADDRESS": "trusted_proxy_address",
    "LINELEDGER_MAX_BODY_BYTES": "max_body_bytes",
    "LINELEDGER_CONNECTION_LIMIT": "connection_limit",
    "LINELEDGER_CHANNEL_TIMEOUT": "channel_timeout",
    "LINELEDGER_CLEANUP_INTERVAL": "cleanup_interval",
    "LINELEDGER_METRICS_TOKEN": "metrics_token",
    "LINELEDGER_LEASE_MAX_SIZE": "lease_max_size",
    "LINELEDGER_LEASE_POOL_TARGET": "lease_pool_target",
    "LINELEDGER_LEASE_BLOCK": "lease_block",
    "LINELEDGER_CLOCK_TOLERANCE_SECONDS": "clock_tolerance_seconds",
}


def _coerce(name: str, value: Any) -> Any:
    field = {f.name: f for f in dataclasses.fields(CentralConfig)}.get(name)
    if field is None:
        raise CentralError(ERR_INVALID, f"unknown configuration setting {name!r}")
    kind = type(field.default)
    try:
        return kind(value) if kind is not str else str(value)
    except (TypeError, ValueError):
        raise CentralError(ERR_INVALID, f"setting {name} must be a {kind.__name__}") from None


def load_config(
    overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
) -> CentralConfig:
    """Build the configuration from defaults, `LINELEDGER_CENTRAL_CONFIG`, env and overrides."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    config_file = env.get("LINELEDGER_CENTRAL_CONFIG")
    if config_file:
        try:
            with open(config_file, "rb") as fh:
                values.update(tomllib.load(fh).get("central", {}))
        except (OSError, ValueError) as exc:  # TOMLDecodeError and bad UTF-8 are ValueErrors
            raise CentralError(ERR_INVALID, f"cannot read {config_file}: {exc}") from None
    for var, name in ENV.items():
        if env.get(var):
            values[name] = env[var]
    values.update(overrides or {})
    return CentralConfig(**{k: _coerce(k, v) for k, v in values.items()})
