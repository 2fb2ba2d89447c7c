"""The agent's local store: one SQLite file in its home, WAL, `synchronous=FULL`.

Every write is a `BEGIN IMMEDIATE` transaction, so claiming a number and recording its
`issued` event either both happen or neither does, even if the process is killed or the
power fails between them. Each thread gets its own connection.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

import sqlite_utils

from edge_agent.errors import ERR_DISK_FULL, ERR_STORE_IO, ERR_STORE_READ_ONLY, EdgeError

DB_NAME = "edge.db"
# Pages the WAL may hold before a commit copies them into the database file (SQLite's default
# is 1,000). An issued serial writes about 11 pages (the serial, its event, their indexes, the
# lease and the work order), so at the default one serial in about 90 paid for a checkpoint
# (two more disk flushes): over 1 %, right in the p99. At 10,000 it is one in about 900, for
# a WAL of at most about 40 MB. Every commit is still flushed (synchronous=FULL).
WAL_AUTOCHECKPOINT = 10_000

_SCHEMA: dict[str, dict[str, Any]] = {
    "meta": {"columns": {"key": str, "value": str}, "pk": "key"},
    "work_orders": {
        "columns": {
            "number": str,
            "sku": str,
            "product_name": str,
            "category": str,
            "ptype": str,
            "quantity": int,
            "status": str,
            "gtin": str,
            "label_template": str,
            "allowed": int,  # most serials the work order may consume on all lines (None: any)
            "consumed_elsewhere": int,  # serials of it central has from other lines
            "issued_local": int,  # serials this agent issued for it, counted as they are issued
        },
        "pk": "number",
        "defaults": {"consumed_elsewhere": 0, "issued_local": 0},
    },
    "leases": {
        "columns": {
            "lease_id": str,
            "scope_key": str,
            "prod_date": str,
            "first_seq": int,
            "last_seq": int,
            "next_seq": int,
            "key_hex": str,
            "key_version": int,
            "expires_at": str,
            "granted_at": str,
            "status": str,  # active | returning | returned | closed
            "returned_hw": int,
            "central_status": str,  # what central last said: active, expired, revoked, ...
            "reported_hw": int,  # the last high-water mark central acknowledged
            "reported_at": str,
            "settled_at": str,  # closed and every delivered event confirmed: no more reports
        },
        "pk": "lease_id",
        "not_null": {"scope_key", "first_seq", "last_seq", "next_seq", "key_hex", "status"},
    },
    "lease_requests": {
        "columns": {"request_id": str, "scope_key": str, "size": int, "created_at": str},
        "pk": "request_id",
    },
    "serials": {
        "columns": {
            "serial": str,
            "scope_key": str,
            "seq": int,
            "lease_id": str,
            "work_order": str,
            "issued_at": str,
            "event_id": str,
            "state": str,
            # The agent's half of the dual link (what central's registry must agree with).
            "job_ticket": str,
            "token": str,
            "linked_work_order": str,
            "linked_at": str,
            "spawned_at": str,
        },
        "pk": "serial",
    },
    "outbox": {
        "columns": {
            "seq": int,
            "event_id": str,
            "serial": str,
            "type": str,
            "body": str,
            "created_at": str,
            "status": str,
            "attempts": int,
            "next_attempt_at": float,
            "last_code": str,
            "last_message": str,
            "acked_at": str,
            "confirmed_at": str,  # a reconcile confirmed central holds it: it may be pruned
        },
        "pk": "seq",
        "not_null": {"event_id", "serial", "type", "body", "status", "attempts", "next_attempt_at"},
        "defaults": {"attempts": 0, "next_attempt_at": 0},
    },
    "print_jobs": {
        "columns": {
            "id": int,
            "serial": str,
            "printer_url": str,
            "kind": str,
            "status": str,
            "attempts": int,
            "next_attempt_at": float,
            "claimed_at": float,
            "owner": str,
            "last_error": str,
            "created_at": str,
            "sent_at": str,
            "reason": str,
        },
        "pk": "id",
        "not_null": {"serial", "printer_url", "status", "attempts", "next_attempt_at"},
        "defaults": {"attempts": 0, "next_attempt_at": 0},
    },
    # One row per printer (its URL in normal form): see edge_agent.odometer.
    "printer_odometers": {
        "columns": {
            "printer_url": str,
            "labels_sent": int,
            "baseline_odometer": int,
            "baseline_sent": int,
            "baseline_at": str,
            "state": str,
            "unknown_labels": int,
            "uncounted_labels": int,
            "printer_count": int,
            "checked_at": str,
            "asked_at": float,
            "note": str,
        },
        "pk": "printer_url",
        "not_null": {"labels_sent", "baseline_sent", "unknown_labels", "uncounted_labels"},
        "defaults": {
            "labels_sent": 0,
            "baseline_sent": 0,
            "unknown_labels": 0,
            "uncounted_labels": 0,
        },
    },
    # What happened to each printer's odometer record: baselines, holds, confirmations.
    "odometer_log": {
        "columns": {
            "id": int,
            "printer_url": str,
            "at": str,
            "event": str,
            "printer_count": int,
            "labels_sent": int,
            "unknown_labels": int,
            "actor": str,
            "reason": str,
            "detail": str,
        },
        "pk": "id",
        "not_null": {"printer_url", "at", "event"},
    },
    "alerts": {
        "columns": {
            "id": int,
            "kind": str,
            "subject": str,  # what the alert is about (a lease, a printer); "" for the agent
            "message": str,
            "details": str,
            "raised_at": str,
            "cleared_at": str,
            "cleared_reason": str,
        },
        "pk": "id",
        "not_null": {"kind", "subject", "message", "raised_at"},
        "defaults": {"subject": ""},
    },
    "gaps": {
        "columns": {
            "id": int,
            "lease_id": str,
            "scope_key": str,
            "first_seq": int,
            "last_seq": int,
            "reason": str,
            "recorded_at": str,
        },
        "pk": "id",
        "not_null": {"lease_id", "scope_key", "first_seq", "last_seq", "reason"},
    },
    "lease_digests": {
        # What pruned, confirmed events of a lease contributed to its reconcile digest.
        "columns": {"lease_id": str, "counts": str, "buckets": str, "events": int},
        "pk": "lease_id",
    },
}

_INDEXES = [
    ("leases", ["scope_key", "status", "first_seq"]),
    ("outbox", ["status", "next_attempt_at", "seq"]),
    ("outbox", ["serial", "seq"]),
    ("print_jobs", ["status", "next_attempt_at", "id"]),
    ("odometer_log", ["printer_url", "id"]),
    ("serials", ["lease_id"]),
    ("serials", ["job_ticket", "token"]),
    ("alerts", ["cleared_at", "kind"]),
]


def disk_error(exc: BaseException, path: Path | None = None) -> EdgeError | None:
    """Return the coded error a storage failure of the agent's database becomes, else None.

    A full, read-only or failing disk is something an operator fixes, not a bug: it gets a
    stable code and a message that says what to do (other SQLite errors stay as they are).
    """
    if not isinstance(exc, sqlite3.DatabaseError):
        return None
    name = getattr(exc, "sqlite_errorname", None) or ""
    where = str(path) if path is not None else "the agent's database"
    if name == "SQLITE_FULL":
        return EdgeError(
            ERR_DISK_FULL,
            f"the disk holding {where} is full: free space there; what was being recorded "
            "was not, and nothing was handed out for it",
        )
    if name.startswith(("SQLITE_READONLY", "SQLITE_CANTOPEN", "SQLITE_PERM")):
        return EdgeError(
            ERR_STORE_READ_ONLY,
            f"cannot write {where} ({exc}): is its disk read-only or full, or its "
            "permissions wrong? Nothing was recorded",
        )
    if name.startswith("SQLITE_IOERR"):
        return EdgeError(
            ERR_STORE_IO,
            f"the disk holding {where} failed ({exc}); check the disk. Nothing was recorded",
        )
    return None


def enrolled_in(path: Path) -> bool:
    """Tell whether the agent database at `path` holds an agent token (read only, no writes)."""
    try:
        conn = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True, timeout=30)
    except sqlite3.Error as exc:
        _raise_coded(exc, path)
    try:
        row = conn.execute("SELECT value FROM meta WHERE key = 'token'").fetchone()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return False
        _raise_coded(exc, path)
    finally:
        conn.close()
    return row is not None and bool(row[0])


def _raise_coded(exc: BaseException, path: Path) -> NoReturn:
    """Raise the coded form of a storage failure, or the failure itself."""
    coded = disk_error(exc, path)
    if coded is None:
        raise exc
    raise coded from exc


def _rollback(conn: sqlite3.Connection) -> None:
    """Roll back what is left of a failed transaction (SQLite may have done so already)."""
    if conn.in_transaction:
        try:
            conn.execute("ROLLBACK")
        except sqlite3.Error:
            pass  # the original failure is what the caller needs to see


class EdgeStore:
    """The agent's SQLite file, with one connection per thread."""

    def __init__(self, home: Path) -> None:
        self.home = Path(home)
        self.path = self.home / DB_NAME
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    @property
    def exists(self) -> bool:
        """Tell whether the agent's database file is there."""
        return self.path.exists()

    def conn(self) -> sqlite3.Connection:
        """Return this thread's connection, opening it on first use."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            self.home.mkdir(parents=True, exist_ok=True)
            new = not self.path.exists()
            conn = sqlite3.connect(
                self.path, isolation_level=None, timeout=30, check_same_thread=False
            )
            conn.row_factory = sqlite3.Row
            try:
                if new:
                    os.chmod(self.path, 0o600)  # the file holds lease keys and the agent token
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=FULL")
                conn.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT}")
                conn.execute("PRAGMA busy_timeout=30000")
                conn.execute("PRAGMA foreign_keys=ON")
            except sqlite3.Error as exc:
                conn.close()
                _raise_coded(exc, self.path)
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """Run a `BEGIN IMMEDIATE` transaction; commit on success, roll back on error.

        A full, read-only or failing disk raises a coded EdgeError (see `disk_error`); a
        failed COMMIT is rolled back.
        """
        conn = self.conn()
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            _raise_coded(exc, self.path)
        try:
            yield conn
        except BaseException as exc:
            _rollback(conn)
            _raise_coded(exc, self.path)
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            _rollback(conn)
            _raise_coded(exc, self.path)

    def try_write(self, statements: list[tuple[str, tuple[Any, ...]]]) -> bool:
        """Run statements in one transaction if the write lock is free now; else do nothing.

        For bookkeeping that may wait for a later chance, so a thread never queues behind an
        issuing loop that takes the lock again and again.
        """
        conn = self.conn()
        conn.execute("PRAGMA busy_timeout=0")
        try:
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError:
                return False  # busy: another time
            try:
                for sql, params in statements:
                    conn.execute(sql, params)
                conn.execute("COMMIT")
            except sqlite3.Error:
                _rollback(conn)
                return False
            return True
        finally:
            conn.execute("PRAGMA busy_timeout=30000")

    def init_schema(self) -> None:
        """Create the tables and indexes (safe to run again)."""
        db = sqlite_utils.Database(self.conn())
        for name, spec in _SCHEMA.items():
            db[name].create(  # type: ignore[union-attr]
                spec["columns"],
                pk=spec["pk"],
                not_null=spec.get("not_null"),
                defaults=spec.get("defaults"),
                if_not_exists=True,
            )
            # A home made by an older version gets the columns added since.
            existing = db[name].columns_dict  # type: ignore[union-attr]
            for column, kind in spec["columns"].items():
                if column not in existing:
                    default = spec.get("defaults", {}).get(column)
                    db[name].add_column(  # type: ignore[union-attr]
                        column, kind, not_null_default=default
                    )
                    if (name, column) == ("work_orders", "issued_local"):
                        # A home made before the counter existed: count what it issued.
                        self.conn().execute(
                            "UPDATE work_orders SET issued_local = (SELECT COUNT(*) FROM "
                            "serials WHERE serials.work_order = work_orders.number)"
                        )
        for table, columns in _INDEXES:
            db[table].create_index(columns, if_not_exists=True)  # type: ignore[union-attr]
        conn = self.conn()
        conn.execute("CREATE UNIQUE INDEX IF NOT EXISTS outbox_event_id ON outbox(event_id)")
        # One physical piece (token) carries one serial.
        conn.execute(
            "CREATE UNIQUE INDEX IF NOT EXISTS serials_token ON serials(token) "
            "WHERE token IS NOT NULL"
        )

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """Run a read transaction: every query inside sees one snapshot of the file."""
        conn = self.conn()
        conn.execute("BEGIN")
        try:
            yield conn
        finally:
            conn.execute("COMMIT")

    def get_meta(self, key: str, default: str | None = None) -> str | None:
        """Read one value of the meta table."""
        row = self.conn().execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return default if row is None else str(row["value"])

    def get_meta_json(self, key: str) -> Any:
        """Read one JSON value of the meta table (None if absent)."""
        value = self.get_meta(key)
        return None if value is None else json.loads(value)

    def set_meta(self, conn: sqlite3.Connection, key: str, value: str) -> None:
        """Write one meta value inside the caller's transaction."""
        conn.execute(
            "INSERT INTO meta(key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def close(self) -> None:
        """Close every connection this store opened."""
        with self._lock:
            conns, self._all = self._all, []
        for conn in conns:
            conn.close()
        self._local = threading.local()
