"""The central store's connection: one engine over SQLite or PostgreSQL, and its schema.

Writes run in `Store.write()`: on SQLite a `BEGIN IMMEDIATE` transaction (one writer at a
time, taken up front so a read-then-write cannot deadlock), on PostgreSQL a READ COMMITTED
transaction whose correctness rests on row locks and constraints. Reads run in
`Store.read()`, which never blocks writers on SQLite (WAL).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine, make_url

from central import tables as T

# The revision of the schema, also written to schema_info for tools that read it.
SCHEMA_VERSION = "5"


PRIVATE_DIR, PRIVATE_FILE = 0o700, 0o600
SQLITE_SUFFIXES = ("", "-wal", "-shm", "-journal")


def _create_private(database: Path) -> None:
    """Create a missing SQLite file 0600 (in a new folder 0700); SQLite gives its -wal and
    -shm files the database file's mode."""
    if not database.parent.exists():
        database.parent.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
    try:
        fd = os.open(database, os.O_CREAT | os.O_EXCL | os.O_WRONLY, PRIVATE_FILE)
    except FileExistsError:
        return
    os.close(fd)


def make_private(database: Path) -> None:
    """Restrict an existing SQLite database and its side files to their owner (0600)."""
    for suffix in SQLITE_SUFFIXES:
        path = database.with_name(database.name + suffix)
        if path.exists():
            path.chmod(PRIVATE_FILE)


def normalise_url(url: str) -> str:
    """Return a SQLAlchemy URL, choosing psycopg 3 for a plain `postgresql://` URL."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def _configure_sqlite(engine: Engine) -> None:
    @sa.event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        # The sqlite3 module's own transaction handling is switched off; we emit BEGIN.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @sa.event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "IMMEDIATE")
        if mode != "NONE":  # NONE: each statement is its own transaction (Store.snapshot)
            conn.exec_driver_sql(f"BEGIN {mode}")


class Store:
    """Own the engine of the central database and hand out transactions."""

    def __init__(self, url: str) -> None:
        self.url = normalise_url(url)
        parsed = make_url(self.url)
        self.sqlite_path: Path | None = None
        if parsed.get_backend_name() == "sqlite":
            database = parsed.database or ""
            if database and database != ":memory:" and not database.startswith("file:"):
                self.sqlite_path = Path(database)
                _create_private(self.sqlite_path)
            self.engine = sa.create_engine(
                self.url, connect_args={"check_same_thread": False, "timeout": 30}
            )
            _configure_sqlite(self.engine)
        elif parsed.get_backend_name() == "postgresql":
            # No pre-ping: it would cost every request a round trip. A connection found dead
            # (the server restarted) is detected on use; SQLAlchemy then retires every pooled
            # connection older than that moment, so one request per worker sees the outage
            # (503 ERR_DATABASE, which agents retry) and public reads retry it themselves.
            self.engine = sa.create_engine(self.url, pool_size=10, max_overflow=20)
        else:
            raise ValueError(f"unsupported database {parsed.get_backend_name()!r}")
        self.dialect = self.engine.dialect.name

    @property
    def is_sqlite(self) -> bool:
        """Tell whether the store is an SQLite file."""
        return self.dialect == "sqlite"

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """Run a write transaction; commit on success, roll back on any exception."""
        with self.engine.connect() as conn, conn.begin():
            yield conn

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """Run a read-only transaction that does not block writers."""
        with self.engine.connect() as conn:
            conn = conn.execution_options(sqlite_begin="DEFERRED")
            with conn.begin():
                yield conn

    def snapshot_read(self, statement: sa.Executable, params: dict[str, Any]) -> Any:
        """Run one read statement on its own, outside an explicit transaction; return its rows.

        One statement sees one consistent snapshot on both databases, so a read that is a
        single statement needs no BEGIN and COMMIT around it: on PostgreSQL that saves two
        round trips. A pooled connection found dead (the database restarted) is thrown away
        and the read tried once more on a fresh one.
        """
        for attempt in (1, 2):
            try:
                with self.engine.connect() as conn:
                    if self.is_sqlite:
                        conn = conn.execution_options(sqlite_begin="NONE")
                    else:
                        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
                    return conn.execute(statement, params).all()
            except sa.exc.DBAPIError as exc:
                if attempt == 2 or not exc.connection_invalidated:
                    raise
        raise AssertionError("unreachable")

    def insert(self, table: sa.Table) -> Any:
        """Return a dialect INSERT that supports `on_conflict_do_nothing()`."""
        return (sqlite.insert if self.is_sqlite else postgresql.insert)(table)

    def upsert(
        self, conn: Connection, table: sa.Table, keys: list[str], values: dict[str, Any]
    ) -> None:
        """Insert a row, or update the non-key columns of the row with the same keys."""
        changes = {k: v for k, v in values.items() if k not in keys}
        conn.execute(
            self.insert(table)
            .values(**values)
            .on_conflict_do_update(index_elements=keys, set_=changes)
        )

    def lock_row(self, query: sa.Select[Any]) -> sa.Select[Any]:
        """Add FOR UPDATE where the database has row locks (SQLite locks the whole file)."""
        return query if self.is_sqlite else query.with_for_update()

    def init_schema(self) -> None:
        """Create or upgrade the schema to this release's newest revision; safe to run again."""
        from central.migrate import upgrade

        upgrade(self)
        with self.write() as conn:
            conn.execute(
                self.insert(T.schema_info)
                .values(key="schema_version", value=SCHEMA_VERSION)
                .on_conflict_do_update(index_elements=["key"], set_={"value": SCHEMA_VERSION})
            )

    def schema_ready(self) -> bool:
        """Tell whether `init` has brought the schema to this release's revision."""
        from central.migrate import current_revision, head_revision

        return current_revision(self) == head_revision()

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()
