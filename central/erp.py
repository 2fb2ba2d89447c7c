"""Work orders from the ERP: the idempotent sync of its records (`central.erp_records`).

Each valid record is upserted by (tenant, number) in transactions of `BATCH` records: a new
number becomes a work order with `source = 'erp'`; an existing ERP order is updated field by
field, except fields a supervisor changed by hand (`manual_fields`: kept, reported as a
conflict), and never when it is a manual order, is closed, or would change its product or
production type (reported, left untouched). An unchanged record writes nothing, so the same
feed twice changes nothing. Each changed order gets an `erp_sync` history row; each batch
that changed something and each finished sync get an audit row; `erp_syncs` keeps the
counts and the first `MAX_ERRORS_KEPT` per-record errors and conflicts.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from central import audit
from central import tables as T
from central.admin import tenant_by_org
from central.db import Store
from central.erp_records import LINE_KEY, ErpRecord, Products, RecordError, clean_record, parse_file
from central.errors import (
    ERR_ERP_CLOSED,
    ERR_ERP_DUPLICATE,
    ERR_ERP_MANUAL_ORDER,
    ERR_ERP_MANUAL_VALUE,
    ERR_ERP_PRODUCT_CHANGED,
)
from central.timeutil import as_utc
from central.workorders import manual_fields

BATCH = 500
MAX_ERRORS_KEPT = 1000
MAX_MESSAGE_KEPT = 500  # characters of one per-record message
MAX_NUMBER_KEPT = 64

FILE, SCHEDULE, CLI, API = "file", "schedule", "cli", "api"
QUEUED, RUNNING, SUCCESS, PARTIAL, FAILED = "queued", "running", "success", "partial", "failed"
SOURCE_ERP, SOURCE_MANUAL = "erp", "manual"
INTERRUPTED = "interrupted: the import was stopped (Ctrl-C or SIGTERM); what was synced stays"

# Work-order columns an ERP record sets, in the order they are compared.
SYNCED_COLUMNS = (
    "name",
    "product_id",
    "production_type",
    "quantity",
    "requested_sscc",
    "overage_pct",
    "tolerance_pct",
    "line",
    "status",
)
_SECRET_PARAM = re.compile(r"token|key|secret|pass|auth|sig|cred", re.IGNORECASE)


# --- The sync -----------------------------------------------------------------------------


def safe_source(url: str) -> str:
    """Return a URL fit to record and show: no user info, no secret-looking parameters."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if parts.port:
            host = f"{host}:{parts.port}"
        query = urlencode(
            [(k, "***" if _SECRET_PARAM.search(k) else v) for k, v in parse_qsl(parts.query)]
        )
        return urlunsplit((parts.scheme, host, parts.path, query, ""))[:500]
    except ValueError:
        return "(unreadable URL)"


@dataclass
class SyncReport:
    """What one sync did: counts, per-record problems, and how it ended."""

    sync_id: int | None
    org: str
    trigger: str
    source: str
    received: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    failed: int = 0
    conflicts: int = 0  # records kept in whole or in part: not also updated or unchanged
    problems: list[dict[str, Any]] = field(default_factory=list)
    problems_total: int = 0
    reason: str | None = None
    status: str = RUNNING
    dry_run: bool = False

    @property
    def synced(self) -> int:
        """Return how many records the registry now agrees with (created, updated, same)."""
        return self.created + self.updated + self.unchanged

    def note(
        self,
        kind: str,
        index: int | None,
        number: str | None,
        code: str,
        msg: str,
        line: int | None = None,
    ) -> None:
        """Keep one per-record error or conflict (the first MAX_ERRORS_KEPT are kept).

        `index` counts from 0, `record` from 1 (as people count); `line` is a CSV record's
        line in its file. Texts are bounded (a remote ERP chooses them).
        """
        self.problems_total += 1
        if len(self.problems) < MAX_ERRORS_KEPT:
            self.problems.append(
                {
                    "kind": kind,
                    "index": index,
                    "record": None if index is None else index + 1,
                    "line": line,
                    "number": None if number is None else number[:MAX_NUMBER_KEPT],
                    "code": code[:64],
                    "message": msg[:MAX_MESSAGE_KEPT],
                }
            )

    def conclude(self) -> str:
        """Decide the status: failed, partial (something refused or cut short) or success."""
        if self.reason is not None and self.synced == 0:
            self.status = FAILED
        elif self.failed and self.synced == 0:
            self.status = FAILED
        elif self.reason is not None or self.failed:
            self.status = PARTIAL
        else:
            self.status = SUCCESS
        return self.status

    def to_dict(self) -> dict[str, Any]:
        """Return the report as JSON-friendly values."""
        return {
            "sync_id": self.sync_id,
            "org": self.org,
            "trigger": self.trigger,
            "source": self.source,
            "status": self.status,
            "dry_run": self.dry_run,
            "received": self.received,
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "synced": self.synced,
            "failed": self.failed,
            "conflicts": self.conflicts,
            "reason": self.reason,
            "errors": self.problems,
            "errors_total": self.problems_total,
        }


def _line_of(raw: Any) -> int | None:
    text = raw.get(LINE_KEY) if isinstance(raw, dict) else None
    return int(text) if isinstance(text, str) and text.isdigit() else None


def _defaults(conn: Connection, tenant_id: int) -> dict[str, Any]:
    gc = T.generation_config.c
    row = conn.execute(
        sa.select(gc.manufacturing_percentage, gc.discrepancy_tolerance).where(
            gc.tenant_id == tenant_id
        )
    ).first()
    return {
        "name": None,
        "requested_sscc": 0,
        "overage_pct": float(row.manufacturing_percentage) if row else 0.0,
        "tolerance_pct": float(row.discrepancy_tolerance) if row else 0.0,
        "line": None,
        "status": "open",
    }


class Sync:
    """One sync of one tenant: feed it records page by page, then finish it."""

    def __init__(
        self, store: Store, org: str, trigger: str, source: str, actor: str, now: dt.datetime
    ) -> None:
        self.store, self.actor, self.now = store, actor, now
        self.report = SyncReport(None, org, trigger, source)
        self.seen: set[str] = set()
        self.lines: dict[int, int] = {}  # record index -> CSV line
        with store.read() as conn:
            tenant = tenant_by_org(conn, org)
            self.products = Products.load(conn, tenant.id)
            self.defaults = _defaults(conn, tenant.id)
        self.tenant_id = tenant.id

    # The erp_syncs row --------------------------------------------------------------------
    def start(self, sync_id: int | None = None) -> int:
        """Record the sync as running (a queued row becomes this sync); return its id."""
        values = {
            "status": RUNNING,
            "started_at": self.now,
            "trigger": self.report.trigger,
            "source": self.report.source[:500],
        }
        with self.store.write() as conn:
            if sync_id is None:
                result = conn.execute(
                    T.erp_syncs.insert().values(tenant_id=self.tenant_id, **values)
                )
                sync_id = int(result.inserted_primary_key[0])  # type: ignore[index]
            else:
                conn.execute(
                    T.erp_syncs.update().where(T.erp_syncs.c.id == sync_id).values(**values)
                )
        self.report.sync_id = sync_id
        return sync_id

    def _row_values(self) -> dict[str, Any]:
        r = self.report
        return {
            "received": r.received,
            "synced": r.synced,
            "failed": r.failed,
            "created": r.created,
            "updated": r.updated,
            "unchanged": r.unchanged,
            "conflicts": r.conflicts,
            "reason": r.reason,
            "errors": json.dumps(r.problems, separators=(",", ":")),
        }

    def finish(self, now: dt.datetime, reason: str | None = None) -> SyncReport:
        """Record how the sync ended, with its audit row; return the report."""
        r = self.report
        if reason is not None:
            r.reason = reason[:1000]
        r.conclude()
        if r.dry_run or r.sync_id is None:
            return r
        with self.store.write() as conn:
            conn.execute(
                T.erp_syncs.update()
                .where(T.erp_syncs.c.id == r.sync_id)
                .values(status=r.status, finished_at=now, **self._row_values())
            )
            audit.record(
                conn,
                self.actor,
                "erp.sync",
                f"erp_sync:{r.org}/{r.sync_id}",
                now,
                r.reason,
                {k: v for k, v in r.to_dict().items() if k != "errors"},
                self.tenant_id,
            )
        return r

    # Records ------------------------------------------------------------------------------
    def feed(self, records: Sequence[Any], from_csv: bool = False, dry_run: bool = False) -> None:
        """Validate records and upsert the valid ones, BATCH per transaction."""
        r = self.report
        r.dry_run = r.dry_run or dry_run
        clean: list[ErpRecord] = []
        for raw in records:
            index = r.received
            r.received += 1
            number = raw.get("number") if isinstance(raw, dict) else None
            label = number.strip()[:MAX_NUMBER_KEPT] if isinstance(number, str) else None
            line = _line_of(raw)
            if line is not None:
                self.lines[index] = line
            try:
                rec = clean_record(raw, index, self.products, from_csv)
            except RecordError as exc:
                r.failed += 1
                r.note("error", index, label, exc.code, exc.message, line)
                continue
            if rec.number in self.seen:
                r.failed += 1
                r.note(
                    "error",
                    index,
                    rec.number,
                    ERR_ERP_DUPLICATE,
                    "number repeated in the feed",
                    line,
                )
                continue
            self.seen.add(rec.number)
            clean.append(rec)
        for start in range(0, len(clean), BATCH):
            self._batch(clean[start : start + BATCH])

    def _batch(self, batch: list[ErpRecord]) -> None:
        if self.report.dry_run:
            with self.store.read() as conn:
                self._apply(conn, batch, write=False)
            return
        r = self.report
        saved = (r.created, r.updated, r.unchanged, r.conflicts, r.problems_total, len(r.problems))
        try:
            with self.store.write() as conn:
                self._apply(conn, batch, write=True)
        except sa.exc.IntegrityError:
            # Another import created one of these numbers since we looked: undo this
            # batch's counts and plan it again (the number is an update now).
            r.created, r.updated, r.unchanged, r.conflicts, r.problems_total = saved[:5]
            del r.problems[saved[5] :]
            with self.store.write() as conn:
                self._apply(conn, batch, write=True)

    def _apply(self, conn: Connection, batch: list[ErpRecord], write: bool) -> None:
        r, wo = self.report, T.work_orders.c
        query = sa.select(T.work_orders).where(
            wo.tenant_id == self.tenant_id, wo.number.in_([rec.number for rec in batch])
        )
        if write:  # rows a supervisor may be editing right now
            query = self.store.lock_row(query)
        existing = {row.number: row for row in conn.execute(query)}
        inserts: list[dict[str, Any]] = []
        history: list[tuple[str, dict[str, Any]]] = []
        updates: list[tuple[int, dict[str, Any]]] = []
        for rec in batch:
            row = existing.get(rec.number)
            if row is None:
                values = {**self.defaults, **rec.values}
                values["closed_at"] = self.now if values["status"] == "closed" else None
                inserts.append(
                    {
                        **values,
                        "tenant_id": self.tenant_id,
                        "number": rec.number,
                        "source": SOURCE_ERP,
                        "created_at": self.now,
                        "updated_at": self.now,
                        "erp_synced_at": self.now,
                    }
                )
                history.append((rec.number, {"change": "created", "values": rec.values}))
                r.created += 1
                continue
            noted = r.problems_total
            changes = self._changes(rec, row)
            # Each record is counted once: one with a conflict (kept in whole or in part)
            # is a conflict, not also unchanged or updated.
            conflicted = r.problems_total > noted
            if conflicted:
                r.conflicts += 1
            if changes is None:
                continue
            if not changes:
                if not conflicted:
                    r.unchanged += 1
                continue
            if changes.get("status") == "closed":
                changes["closed_at"] = self.now
            before = {k: getattr(row, k) for k in changes if k != "closed_at"}
            updates.append((row.id, {**changes, "updated_at": self.now, "erp_synced_at": self.now}))
            history.append((rec.number, {"change": "updated", "before": before, "after": changes}))
            if not conflicted:
                r.updated += 1
        if not write or not history:
            return
        ids = {row.number: row.id for row in existing.values()}
        if inserts:
            result = conn.execute(T.work_orders.insert().returning(wo.id, wo.number), inserts)
            ids.update({row.number: row.id for row in result})
        for wo_id, values in updates:
            conn.execute(T.work_orders.update().where(wo.id == wo_id).values(**values))
        conn.execute(
            T.generation_history.insert(),
            [
                {
                    "tenant_id": self.tenant_id,
                    "work_order_id": ids[number],
                    "action": "erp_sync",
                    "status": "completed",
                    "requested_quantity": None,
                    "generated_quantity": None,
                    "details": json.dumps(
                        {"sync_id": r.sync_id, **details}, sort_keys=True, default=str
                    ),
                    "error_details": None,
                    "execution_ms": None,
                    "task_id": None,
                    "actor": self.actor[:128],
                    "created_at": self.now,
                }
                for number, details in history
            ],
        )
        changed = [number for number, _ in history]
        audit.record(
            conn,
            self.actor,
            "erp.sync_batch",
            f"erp_sync:{r.org}/{r.sync_id}",
            self.now,
            None,
            {"sync_id": r.sync_id, "work_orders": changed[:BATCH]},
            self.tenant_id,
        )
        if r.sync_id is not None:
            conn.execute(
                T.erp_syncs.update()
                .where(T.erp_syncs.c.id == r.sync_id)
                .values(**self._row_values())
            )

    def _conflict(self, rec: ErpRecord, code: str, msg: str) -> None:
        self.report.note("conflict", rec.index, rec.number, code, msg, self.lines.get(rec.index))

    def _changes(self, rec: ErpRecord, row: Any) -> dict[str, Any] | None:
        """Return the columns to update (empty: unchanged), or None if the order is kept."""
        if row.source != SOURCE_ERP:
            self._conflict(
                rec,
                ERR_ERP_MANUAL_ORDER,
                "a manual work order has this number; left untouched",
            )
            return None
        if row.status == "closed":
            if rec.values.get("status", "open") != "closed":
                self._conflict(
                    rec,
                    ERR_ERP_CLOSED,
                    "the work order is closed; the ERP cannot reopen it",
                )
                return None
        for key in ("product_id", "production_type"):
            if rec.values[key] != getattr(row, key):
                self._conflict(
                    rec,
                    ERR_ERP_PRODUCT_CHANGED,
                    "the ERP changed the product or production type of an existing work "
                    "order; left untouched (close it and send a new number)",
                )
                return None
        manual = manual_fields(row.manual_fields)
        changes: dict[str, Any] = {}
        for key in SYNCED_COLUMNS:
            if key not in rec.values or rec.values[key] == getattr(row, key):
                continue
            if key in manual:
                self._conflict(
                    rec,
                    ERR_ERP_MANUAL_VALUE,
                    f"kept manual value of {key} ({getattr(row, key)!r}); "
                    f"the ERP sent {rec.values[key]!r}",
                )
                continue
            changes[key] = rec.values[key]
        return changes


def import_records(
    store: Store,
    org: str,
    name: str,
    data: bytes,
    actor: str,
    now: dt.datetime,
    trigger: str = FILE,
    dry_run: bool = False,
) -> SyncReport:
    """Import an ERP file (`.csv` or `.json` by `name`); return what it did."""
    records = parse_file(name, data)
    sync = Sync(store, org, trigger, (name.rsplit("/", 1)[-1] or "upload")[:500], actor, now)
    sync.report.dry_run = dry_run
    if not dry_run:
        sync.start()
    try:
        sync.feed(records, from_csv=name.lower().endswith(".csv"))
    except (KeyboardInterrupt, SystemExit):
        # Ctrl-C, or SIGTERM turned into SystemExit: never leave the sync `running`.
        sync.finish(now, INTERRUPTED)
        raise
    except Exception:
        sync.finish(now, "ERR_INTERNAL: the import stopped; what was synced before stays")
        raise
    return sync.finish(now)


# --- Configuration and status ---------------------------------------------------------------


@dataclass(frozen=True)
class ErpSettings:
    """A tenant's ERP endpoint (the token stays here and is never shown)."""

    tenant_id: int
    org: str
    url: str | None
    token: str | None
    interval_s: int | None


def erp_settings(conn: Connection, org: str) -> ErpSettings:
    """Return a tenant's ERP settings from its generation config."""
    tenant = tenant_by_org(conn, org)
    gc = T.generation_config.c
    row = conn.execute(
        sa.select(gc.erp_url, gc.erp_token, gc.erp_interval_s).where(gc.tenant_id == tenant.id)
    ).first()
    if row is None:
        return ErpSettings(tenant.id, org, None, None, None)
    return ErpSettings(tenant.id, org, row.erp_url, row.erp_token, row.erp_interval_s)


def set_erp_settings(
    store: Store,
    org: str,
    url: str | None,
    token: str | None,
    interval_s: int | None,
    actor: str,
    now: dt.datetime,
) -> None:
    """Set a tenant's ERP endpoint: the ERP part of its generation configuration, through
    the same validation, audit and history as `config set` (`central.genconfig.save`)."""
    from central import genconfig

    genconfig.save(
        store,
        org,
        {"erp_url": url, "erp_token": token, "erp_interval_s": interval_s},
        actor,
        now,
        partial=True,
    )


def _iso(moment: dt.datetime | None) -> str | None:
    moment = as_utc(moment)
    return moment.isoformat().replace("+00:00", "Z") if moment else None


def sync_dict(row: Any) -> dict[str, Any]:
    """Return one erp_syncs row as JSON-friendly values."""
    try:
        errors = json.loads(row.errors or "[]")
    except ValueError:
        errors = []
    return {
        "id": row.id,
        "trigger": row.trigger,
        "source": row.source,
        "status": row.status,
        "started_at": _iso(row.started_at),
        "finished_at": _iso(row.finished_at),
        "received": row.received,
        "synced": row.synced,
        "failed": row.failed,
        "created": row.created,
        "updated": row.updated,
        "unchanged": row.unchanged,
        "conflicts": row.conflicts,
        "reason": row.reason,
        "errors": errors,
    }


def last_pull_start(conn: Connection, tenant_id: int) -> dt.datetime | None:
    """Return when the tenant's newest pull (not a file import, not queued) started."""
    s = T.erp_syncs.c
    found = conn.execute(
        sa.select(sa.func.max(s.started_at)).where(
            s.tenant_id == tenant_id, s.trigger != FILE, s.status != QUEUED
        )
    ).scalar_one()
    return as_utc(found)


def next_pull(conn: Connection, settings: ErpSettings, now: dt.datetime) -> dt.datetime | None:
    """Return when the next scheduled pull is due (None: no schedule)."""
    if not settings.url or not settings.interval_s:
        return None
    last = last_pull_start(conn, settings.tenant_id)
    if last is None:
        return now
    return max(now, last + dt.timedelta(seconds=settings.interval_s))


def erp_status(conn: Connection, org: str, now: dt.datetime, history: int = 0) -> dict[str, Any]:
    """Return the reference's `/erp/status` answer, plus the newest sync in full."""
    settings = erp_settings(conn, org)
    s = T.erp_syncs.c
    rows = conn.execute(
        sa.select(T.erp_syncs)
        .where(s.tenant_id == settings.tenant_id)
        .order_by(s.id.desc())
        .limit(history + 1)
    ).all()
    last = rows[0] if rows else None
    return {
        "ok": True,
        "org": org,
        "configured": bool(settings.url),
        "erp_url": safe_source(settings.url) if settings.url else None,
        "interval_s": settings.interval_s,
        "last_sync": _iso(last.finished_at or last.started_at) if last else None,
        "status": last.status if last else "never",
        "synced_records": last.synced if last else 0,
        "failed_records": last.failed if last else 0,
        "next_scheduled_sync": _iso(next_pull(conn, settings, now)),
        "sync": sync_dict(last) if last else None,
        "history": [sync_dict(row) for row in rows[1:]],
    }


def tenants_with_erp(conn: Connection) -> Iterable[str]:
    """Return the org codes of tenants with an ERP URL."""
    gc, t = T.generation_config.c, T.tenants.c
    rows = conn.execute(
        sa.select(t.org_code)
        .join(T.generation_config, gc.tenant_id == t.id)
        .where(gc.erp_url.is_not(None))
        .order_by(t.org_code)
    )
    return [row.org_code for row in rows]
