"""The consistency checker: find what does not add up, fix what is safe, hold the rest.

One tenant at a time, the findings (`central.jobs.findings`) are settled against what was
done before and then applied:

- `resend`: the lease's `resend_requested_at` is set, so the agent re-sends every event of the
  lease on its next full reconcile (`fixed`); a request not yet delivered is `awaiting_resend`.
- `close`: an expired lease still open is closed by the lease-expiry code (`fixed`).
- `quarantine`: a quarantine entry (source `checker`) holds the serial for review
  (`quarantined`). A finding with an open entry of the same serial and reason is
  `already_quarantined`, never entered twice; one whose entry a reviewer resolved after the
  finding's newest evidence is `reviewed` and dropped (the reviewer's decision stands).
- `report`: reported for a person to look at (`reported`): a silent agent with unsynced work,
  an agent's link records differing from the registry's though all its events arrived.
- `note`: recorded in the report only (`noted`): central holds events an agent no longer
  has (a line PC restored from an older copy); the facts are safe and the agent alerts.

A dry run settles the findings the same way but changes nothing at all.

`failures` (exported as `consistency_check_failures`) counts the findings that need a person:
`quarantined`, `already_quarantined` and `reported` ones, plus tenants the check could not
finish. Findings the checker fixed itself, or whose re-send is on its way, are not failures.

The summary keeps the reference's lines, read in our terms. The reference links each serial
twice, in the tenant's database (job ticket -> token) and in the core registry; here the line
PC's record is the tenant side and the central registry the core side:

- Missing tenant links: leases whose agent's link records (the links digest of its last full
  reconcile) differ from the registry's.
- Missing core links: registry serials whose link targets differ from what their accepted
  events named (a target missing, or one no event named).
- Invalid formats: registry serials that no longer parse, name another number than their
  row, or fail their lease's MAC.
- Orphaned serials: issued but not put to use after the grace of their production type.
- Fixed: re-sends asked for and expired tails closed. Quarantined: entries made by this run.
  Errors: tenants the check could not finish.

Our further lines follow: lease accounting mismatches, duplicate serials, serials outside
leases, silent agents, facts lost, expired lease tails, already quarantined, awaiting
re-send, noted, and "Needing attention" (the failures).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from central import tables as T
from central.admin import tenant_by_org
from central.config import CentralConfig
from central.db import Store
from central.jobs import findings as F
from central.jobs import lease_checks as LC
from central.jobs import serial_checks as S
from central.jobs.expiry import expire_lease
from central.jobs.findings import Finding, TenantRef, Thresholds
from central.jobs.runs import JobStopped, describe
from central.keyring import Keyring
from central.timeutil import as_utc, utcnow
from protocol.errors import CodedError

log = logging.getLogger("lineledger.central.jobs")

FIXED = "fixed"
AWAITING_RESEND = "awaiting_resend"
QUARANTINED = "quarantined"
ALREADY_QUARANTINED = "already_quarantined"
REVIEWED = "reviewed"
REPORTED = "reported"
NOTED = "noted"
NEEDS_ATTENTION = frozenset({QUARANTINED, ALREADY_QUARANTINED, REPORTED})
SOURCE = "checker"
LIVE, DRY_RUN = "live", "dry_run"
_CHUNK = 500
_SHOWN_PER_KIND = 10

# The reference's summary lines, mapped onto our findings (see docs in the package).
_SUMMARY_KINDS = (
    ("missing_tenant_links", "Missing tenant links", F.MISSING_TENANT_LINK),
    ("missing_core_links", "Missing core links", F.MISSING_CORE_LINK),
    ("invalid_formats", "Invalid formats", F.INVALID_FORMAT),
    ("orphaned_serials", "Orphaned serials", F.ORPHAN),
)
_EXTRA_KINDS = (
    ("lease_accounting_mismatches", "Lease accounting mismatches", F.LEASE_ACCOUNTING),
    ("duplicate_serials", "Duplicate serials", F.DUPLICATE_SERIAL),
    ("serials_outside_leases", "Serials outside leases", F.OUTSIDE_LEASE),
    ("silent_agents", "Silent agents", F.AGENT_SILENT),
    ("facts_lost", "Facts lost", F.FACTS_LOST),
    ("expired_lease_tails", "Expired lease tails", F.EXPIRED_TAIL),
)
_FOUND = {
    F.MISSING_TENANT_LINK: (
        "lease whose agent's links differ",
        "leases whose agent's links differ",
    ),
    F.MISSING_CORE_LINK: ("missing core link", "missing core links"),
    F.INVALID_FORMAT: ("invalid serial format", "invalid serial formats"),
    F.ORPHAN: ("orphaned serial", "orphaned serials"),
    F.LEASE_ACCOUNTING: ("lease accounting mismatch", "lease accounting mismatches"),
    F.DUPLICATE_SERIAL: ("duplicate serial", "duplicate serials"),
    F.OUTSIDE_LEASE: ("serial outside its lease", "serials outside their leases"),
    F.AGENT_SILENT: ("silent agent with unsynced work", "silent agents with unsynced work"),
    F.FACTS_LOST: ("used number whose facts were lost", "used numbers whose facts were lost"),
    F.EXPIRED_TAIL: ("expired lease still open", "expired leases still open"),
}


@dataclass
class TenantResult:
    """What the check found and did in one tenant."""

    tenant: TenantRef
    findings: list[Finding] = field(default_factory=list)
    error: str | None = None

    def count(self, kind: str) -> int:
        """Return how many findings of a kind the tenant has."""
        return sum(1 for f in self.findings if f.kind == kind)

    def to_dict(self) -> dict[str, Any]:
        """Return the tenant's part of the report."""
        return {
            "org": self.tenant.org,
            "name": self.tenant.name,
            "error": self.error,
            "findings": dict(Counter(f.kind for f in self.findings)),
        }


@dataclass
class CheckReport:
    """The outcome of one check over one tenant or all of them."""

    mode: str
    started_at: dt.datetime
    thresholds: Thresholds
    org: str | None = None
    tenants: list[TenantResult] = field(default_factory=list)
    completed_at: dt.datetime | None = None

    @property
    def findings(self) -> list[Finding]:
        """Return every finding, tenant by tenant."""
        return [f for t in self.tenants for f in t.findings]

    @property
    def errors(self) -> list[str]:
        """Return the errors of tenants the check could not finish."""
        return [f"{t.tenant.org}: {t.error}" for t in self.tenants if t.error]

    @property
    def failures(self) -> int:
        """Return the findings that need a person, plus tenants the check could not finish."""
        return sum(1 for f in self.findings if f.outcome in NEEDS_ATTENTION) + len(self.errors)

    def summary(self) -> dict[str, int]:
        """Return the reference's summary counts, then ours."""
        found = Counter(f.kind for f in self.findings)
        outcomes = Counter(f.outcome for f in self.findings)
        out = {"tenants_processed": len(self.tenants)}
        out.update({key: found[kind] for key, _, kind in _SUMMARY_KINDS})
        out["fixed"] = outcomes[FIXED]
        out["quarantined"] = outcomes[QUARANTINED]
        out["errors"] = len(self.errors)
        out.update({key: found[kind] for key, _, kind in _EXTRA_KINDS})
        out["already_quarantined"] = outcomes[ALREADY_QUARANTINED]
        out["awaiting_resend"] = outcomes[AWAITING_RESEND]
        out["noted"] = outcomes[NOTED]
        out["failures"] = self.failures
        return out

    def counts(self) -> dict[str, Any]:
        """Return what a job run records: the summary, findings per kind, and the scope."""
        out: dict[str, Any] = {**self.summary(), "mode": self.mode}
        out["findings"] = dict(Counter(f.kind for f in self.findings))
        if self.org:
            out["tenant"] = self.org
        return out

    def to_dict(self) -> dict[str, Any]:
        """Return the whole report (`check --format json`)."""
        return {
            "ok": not self.errors,
            "mode": self.mode,
            "started_at": self.started_at.isoformat(),
            "completed_at": self.completed_at.isoformat() if self.completed_at else None,
            "thresholds": self.thresholds.to_dict(),
            "tenants": [t.to_dict() for t in self.tenants],
            "summary": self.summary(),
            "findings": [
                {"org": t.tenant.org, **f.to_dict()} for t in self.tenants for f in t.findings
            ],
        }

    def to_text(self) -> str:
        """Return the reference's summary: per tenant what was found, then the totals."""
        lines = [
            "=== LineLedger Consistency Checker ===",
            f"Started at: {self.started_at:%Y-%m-%d %H:%M:%S} UTC",
            f"Mode: {'DRY RUN' if self.mode == DRY_RUN else 'LIVE'}",
            "",
        ]
        for result in self.tenants:
            lines.append(f"Processing tenant: {result.tenant.name} ({result.tenant.org})")
            for kind in F.KINDS:
                of_kind = [f for f in result.findings if f.kind == kind]
                if not of_kind:
                    continue
                one, many = _FOUND[kind]
                lines.append(f"  Found {len(of_kind)} {one if len(of_kind) == 1 else many}")
                for finding in of_kind[:_SHOWN_PER_KIND]:
                    lines.append(f"    - {_line(finding)}")
                if len(of_kind) > _SHOWN_PER_KIND:
                    rest = len(of_kind) - _SHOWN_PER_KIND
                    lines.append(f"    ... and {rest} more (--format json lists them all)")
            if result.error:
                lines.append(f"  ❌ Error: {result.error}")
            else:
                lines.append("  ✅ Completed")
            lines.append("")
        summary = self.summary()
        lines.append("=== Summary ===")
        lines.append(f"Tenants processed: {summary['tenants_processed']}")
        for key, label, _ in _SUMMARY_KINDS:
            lines.append(f"{label}: {summary[key]}")
        lines.append(f"Fixed: {summary['fixed']}")
        lines.append(f"Quarantined: {summary['quarantined']}")
        lines.append(f"Errors: {summary['errors']}")
        for key, label, _ in _EXTRA_KINDS:
            lines.append(f"{label}: {summary[key]}")
        lines.append(f"Already quarantined: {summary['already_quarantined']}")
        lines.append(f"Awaiting re-send: {summary['awaiting_resend']}")
        lines.append(f"Noted, nothing to do: {summary['noted']}")
        lines.append(f"Needing attention: {summary['failures']}")
        lines.append("")
        if self.completed_at is not None:
            lines.append(f"Completed at: {self.completed_at:%Y-%m-%d %H:%M:%S} UTC")
        if self.mode == DRY_RUN:
            lines.append("Dry run: nothing was changed (Fixed and Quarantined say what would be).")
        if self.errors:
            lines.append(f"❌ Completed with {len(self.errors)} errors")
        else:
            lines.append("✅ Success!")
        return "\n".join(lines)


def _line(finding: Finding) -> str:
    subject = finding.serial or (
        f"lease {finding.lease_id}" if finding.lease_id else f"agent {finding.agent_id}"
    )
    return f"{subject}: {finding.message} [{finding.reason}, {finding.outcome}]"


def tenants_to_check(conn: Connection, org: str | None) -> list[TenantRef]:
    """Return the tenants a check covers: one (ERR_TENANT_UNKNOWN if none) or all, by org."""
    if org:
        row = tenant_by_org(conn, org.upper())
        return [TenantRef(row.id, row.org_code, row.name)]
    rows = conn.execute(sa.select(T.tenants).order_by(T.tenants.c.org_code))
    return [TenantRef(row.id, row.org_code, row.name) for row in rows]


def _existing_entries(
    conn: Connection, tenant: TenantRef, serials: list[str]
) -> dict[tuple[str, str], list[Any]]:
    q = T.quarantine.c
    out: dict[tuple[str, str], list[Any]] = {}
    for i in range(0, len(serials), _CHUNK):
        for row in conn.execute(
            sa.select(q.serial, q.reason, q.resolved_at).where(
                q.serial.in_(serials[i : i + _CHUNK]), q.tenant_id == tenant.id
            )
        ):
            out.setdefault((row.serial, row.reason), []).append(row)
    return out


def _settle_quarantines(conn: Connection, tenant: TenantRef, found: list[Finding]) -> None:
    """Set the outcome of quarantine findings from the entries the serials have already."""
    serials = sorted({f.serial for f in found if f.serial})
    existing = _existing_entries(conn, tenant, serials)
    planned: set[tuple[str, str]] = set()
    for finding in found:
        assert finding.serial is not None
        key = (finding.serial, finding.reason)
        entries = existing.get(key, [])
        evidence = finding.evidence_at
        if key in planned or any(e.resolved_at is None for e in entries):
            finding.outcome = ALREADY_QUARANTINED
        elif any(
            evidence is None or as_utc(e.resolved_at) >= evidence  # type: ignore[operator]
            for e in entries
        ):
            finding.outcome = REVIEWED
        else:
            finding.outcome = QUARANTINED
            planned.add(key)


def _quarantine_row(tenant: TenantRef, finding: Finding, now: dt.datetime) -> dict[str, Any]:
    details = {"message": finding.message, "finding": finding.kind, **finding.details}
    if finding.lease_id:
        details.setdefault("lease_id", finding.lease_id)
    return {
        "tenant_id": tenant.id,
        "serial": finding.serial,
        "reason": finding.reason,
        "holds_serial": finding.hold,
        "details": json.dumps(details, sort_keys=True, default=str),
        "event_id": finding.event_id,
        "agent_id": finding.agent_id,
        "created_at": now,
        "source": SOURCE,
    }


def _settle_resends(conn: Connection, found: list[Finding]) -> set[str]:
    """Set the outcome of lease and agent findings; return the leases to ask to re-send now."""
    wanted = sorted({f.lease_id for f in found if f.lease_id and f.action == F.RESEND})
    outstanding: set[str] = set()
    for i in range(0, len(wanted), _CHUNK):
        outstanding.update(
            conn.execute(
                sa.select(T.leases.c.id).where(
                    T.leases.c.id.in_(wanted[i : i + _CHUNK]),
                    T.leases.c.resend_requested_at.is_not(None),
                )
            ).scalars()
        )
    for finding in found:
        if finding.action == F.RESEND:
            finding.outcome = AWAITING_RESEND if finding.lease_id in outstanding else FIXED
        else:
            finding.outcome = NOTED if finding.action == F.NOTE else REPORTED
    return set(wanted) - outstanding


def find_all(
    conn: Connection,
    keyring: Keyring,
    tenant: TenantRef,
    thresholds: Thresholds,
    now: dt.datetime,
    between: Callable[[], None] | None = None,
) -> list[Finding]:
    """Return every finding of one tenant, in the summary's order of kinds.

    `between` runs between pages of the registry (it may raise to stop a long check).
    """
    invalid, core_links = S.registry_pass(conn, keyring, tenant, between)
    found = [
        *LC.lease_accounts(conn, tenant),
        *core_links,
        *invalid,
        *S.orphans(conn, tenant, thresholds, now),
        *S.duplicates(conn, tenant),
        *S.outside_leases(conn, tenant),
        *LC.silent_agents(conn, tenant, thresholds, now),
        *LC.facts_lost(conn, keyring, tenant, thresholds, now),
        *LC.expired_tails(conn, tenant, now),
    ]
    order = {kind: i for i, kind in enumerate(F.KINDS)}
    return sorted(found, key=lambda f: order[f.kind])  # stable: each kind keeps its order


def check_tenant(
    store: Store,
    keyring: Keyring,
    tenant: TenantRef,
    thresholds: Thresholds,
    now: dt.datetime,
    dry_run: bool,
    between: Callable[[], None] | None = None,
) -> list[Finding]:
    """Find, settle and (unless a dry run) apply the findings of one tenant."""
    with store.read() as conn:
        found = find_all(conn, keyring, tenant, thresholds, now, between)
    held = [f for f in found if f.action == F.QUARANTINE]
    leases = [f for f in found if f.action in (F.RESEND, F.REPORT, F.NOTE)]
    closes = [f for f in found if f.action == F.CLOSE]
    if dry_run:
        with store.read() as conn:
            _settle_quarantines(conn, tenant, held)
            _settle_resends(conn, leases)
        for finding in closes:
            finding.outcome = FIXED
    else:
        with store.write() as conn:
            _settle_quarantines(conn, tenant, held)
            rows = [_quarantine_row(tenant, f, now) for f in held if f.outcome == QUARANTINED]
            if rows:
                conn.execute(T.quarantine.insert(), rows)
            for lease_id in sorted(_settle_resends(conn, leases)):
                conn.execute(
                    T.leases.update()
                    .where(T.leases.c.id == lease_id, T.leases.c.resend_requested_at.is_(None))
                    .values(resend_requested_at=now)
                )
        for finding in closes:
            assert finding.lease_id is not None
            closed = expire_lease(store, finding.lease_id, now)
            finding.outcome = FIXED
            if closed is not None:
                finding.details.update(mark=closed.mark, numbers_voided=closed.voided)
            else:
                finding.details["closed_meanwhile"] = True
    return [f for f in found if f.outcome != REVIEWED]


def run_check(
    store: Store,
    keyring: Keyring,
    config: CentralConfig,
    now: dt.datetime,
    dry_run: bool = False,
    org: str | None = None,
    between: Callable[[], None] | None = None,
) -> CheckReport:
    """Check one tenant (`org`) or all; `between` runs between units of work (it may stop it).

    A tenant whose check fails is reported with its error and the others are still checked.
    """
    thresholds = Thresholds.from_config(config)
    report = CheckReport(
        DRY_RUN if dry_run else LIVE, now, thresholds, org.upper() if org else None
    )
    with store.read() as conn:
        tenants = tenants_to_check(conn, org)
    for tenant in tenants:
        if between is not None:
            between()
        result = TenantResult(tenant)
        report.tenants.append(result)
        try:
            result.findings = check_tenant(
                store, keyring, tenant, thresholds, now, dry_run, between
            )
        except JobStopped:
            raise
        except Exception as exc:  # one tenant's failure must not hide the others' findings
            if not isinstance(exc, (CodedError, sa.exc.SQLAlchemyError)):
                log.exception("consistency check of %s failed", tenant.org)
            result.error = describe(exc)
            log.warning("consistency check of %s failed: %s", tenant.org, result.error)
    report.completed_at = utcnow()
    return report
