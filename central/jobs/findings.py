"""Consistency findings: what the checker's finders report, and what it does about each.

The finders (`central.jobs.lease_checks`, `central.jobs.serial_checks`) are read-only
queries over one tenant; each returns `Finding`s with the action the checker takes: ask the
agent to re-send its events of a lease on its next reconcile (`resend`), close an expired
lease (`close`), hold the serial for review (`quarantine`), report it to a person
(`report`), or note it for the record when there is nothing in the registry to act on
(`note`). `central.jobs.checker` decides what was done already and applies the rest.

Every piece of evidence is read from the tenant's own rows (its registry rows, its agents'
events and leases), so a finding may hold the serial when the serial names the tenant's org.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from central.config import CentralConfig
from central.timeutil import as_utc

# Kinds of finding, in the order the summary lists them.
MISSING_TENANT_LINK = "missing_tenant_link"
MISSING_CORE_LINK = "missing_core_link"
INVALID_FORMAT = "invalid_format"
ORPHAN = "orphan"
LEASE_ACCOUNTING = "lease_accounting"
DUPLICATE_SERIAL = "duplicate_serial"
OUTSIDE_LEASE = "outside_lease"
AGENT_SILENT = "agent_silent"
FACTS_LOST = "facts_lost"
EXPIRED_TAIL = "expired_tail"
KINDS = (
    MISSING_TENANT_LINK,
    MISSING_CORE_LINK,
    INVALID_FORMAT,
    ORPHAN,
    LEASE_ACCOUNTING,
    DUPLICATE_SERIAL,
    OUTSIDE_LEASE,
    AGENT_SILENT,
    FACTS_LOST,
    EXPIRED_TAIL,
)

QUARANTINE, RESEND, CLOSE, REPORT = "quarantine", "resend", "close", "report"
NOTE = "note"  # reported for the record; nothing in the registry to act on


@dataclass
class Finding:
    """One thing that does not add up, and what the checker does about it."""

    kind: str
    action: str
    reason: str
    message: str
    serial: str | None = None
    lease_id: str | None = None
    agent_id: str | None = None
    event_id: str | None = None
    hold: bool = True
    evidence_at: dt.datetime | None = None  # the newest fact the finding rests on
    details: dict[str, Any] = field(default_factory=dict)
    outcome: str | None = None  # what the checker did (see central.jobs.checker)

    def to_dict(self) -> dict[str, Any]:
        """Return the finding as JSON-friendly values."""
        out: dict[str, Any] = {
            "kind": self.kind,
            "action": self.action,
            "outcome": self.outcome,
            "reason": self.reason,
            "message": self.message,
        }
        for name in ("serial", "lease_id", "agent_id", "event_id"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        if self.action == QUARANTINE:
            out["holds_serial"] = self.hold
        if self.details:
            out["details"] = self.details
        return out


@dataclass(frozen=True)
class TenantRef:
    """The tenant being checked."""

    id: int
    org: str
    name: str

    def owns(self, serial: str) -> bool:
        """Tell whether a serial names this tenant's org (only then may it be held)."""
        return serial.upper().startswith(f"{self.org}-")


@dataclass(frozen=True)
class Thresholds:
    """How long things may stay unfinished before they are findings."""

    orphan_hat: dt.timedelta
    orphan_oem: dt.timedelta
    agent_silent: dt.timedelta
    facts_grace: dt.timedelta

    @classmethod
    def from_config(cls, config: CentralConfig) -> Thresholds:
        """Read the thresholds from the central configuration."""
        return cls(
            orphan_hat=dt.timedelta(hours=config.orphan_grace_hours_hat),
            orphan_oem=dt.timedelta(hours=config.orphan_grace_hours_oem),
            agent_silent=dt.timedelta(hours=config.agent_silent_hours),
            facts_grace=dt.timedelta(minutes=config.facts_grace_minutes),
        )

    def to_dict(self) -> dict[str, float]:
        """Return the thresholds in the configuration's units."""
        return {
            "orphan_grace_hours_hat": self.orphan_hat.total_seconds() / 3600,
            "orphan_grace_hours_oem": self.orphan_oem.total_seconds() / 3600,
            "agent_silent_hours": self.agent_silent.total_seconds() / 3600,
            "facts_grace_minutes": self.facts_grace.total_seconds() / 60,
        }


def iso(moment: dt.datetime | None) -> str | None:
    """Return a stored time as ISO 8601 UTC text (None stays None)."""
    value = as_utc(moment)
    return value.isoformat() if value is not None else None


def chunks(values: list[str], size: int = 500) -> Iterator[list[str]]:
    """Yield a list in slices small enough for an IN (...) clause."""
    for i in range(0, len(values), size):
        yield values[i : i + size]
