"""The central store's connection: one engine over SQLite or PostgreSQL, and its schema.

Writes run in `Store.write()`: on SQLite a `BEGIN IMMEDIATE` transaction (one writer at a
time, taken up front so a read-then-write cannot deadlock), on PostgreSQL a READ COMMITTED
transaction whose correctness rests on row locks and constraints. Reads run in
`Store.read()`, which never blocks writers on SQLite (WAL).

On SQLite, writers queue for the write lock (`WriterQueue`) instead of polling for it: SQLite's
busy handler retries after sleeps that grow to 100 ms, so under contention a writer that has
waited long sleeps longest while a newcomer takes the lock at once, and some requests wait
seconds (issue #8: lease p99 of 1-2 s against a p50 of 100-200 ms).
"""

from __future__ import annotations

import collections
import fcntl
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine, make_url

from central import tables as T

# The revision of the schema, also written to schema_info for tools that read it.
SCHEMA_VERSION = "6"


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


class WriterQueue:
    """Let the write transactions of one SQLite file in first come, first served.

    Threads of a process wait in a FIFO queue (each is handed the turn by the one before);
    the thread at the head then takes an exclusive `flock` on a lock file beside the database,
    where the heads of the other processes (gunicorn workers, the jobs process, the CLI) wait
    in the kernel and are woken as soon as it is free. SQLite's own lock is taken after
    that (`BEGIN IMMEDIATE`) and is free by then, unless a process that does not queue (an
    older release, the sqlite3 shell) holds it: then the busy timeout applies as before.

    A write transaction opened inside another on the same thread passes through (as before,
    SQLite's busy timeout then fails it). One queue per file and process, shared by every
    `Store` of that file; a forked child makes its own.
    """

    _queues: dict[str, WriterQueue] = {}
    _queues_lock = threading.Lock()

    def __init__(self, lock_path: Path | None) -> None:
        self.lock_path = lock_path
        self._mutex = threading.Lock()
        self._waiting: collections.deque[threading.Lock] = collections.deque()
        self._busy = False
        self._local = threading.local()
        self._pid = os.getpid()

    @classmethod
    def of(cls, database: Path | None) -> WriterQueue:
        """Return this process's queue for a database file (None: in memory, threads only)."""
        key = str(database.resolve()) if database is not None else ""
        with cls._queues_lock:
            queue = cls._queues.get(key)
            if queue is None or queue._pid != os.getpid():
                lock_path = database.with_name(f".{database.name}.writers") if database else None
                queue = cls._queues[key] = WriterQueue(lock_path)
            return queue

    def _open(self) -> int | None:
        """Open the lock file (a new descriptor per turn: nothing stays open, nothing is
        shared with a forked child). None if there is none or it cannot be opened (made by
        another user): then SQLite's busy timeout alone orders the processes, as before."""
        if self.lock_path is None:
            return None
        try:
            return os.open(self.lock_path, os.O_RDWR | os.O_CREAT, PRIVATE_FILE)
        except OSError:
            return None

    def _acquire(self) -> None:
        with self._mutex:
            if not self._busy:
                self._busy = True
                return
            turn = threading.Lock()
            turn.acquire()
            self._waiting.append(turn)
        turn.acquire()  # released by the holder before us: the turn is ours, still busy

    def _release(self) -> None:
        with self._mutex:
            if self._waiting:
                self._waiting.popleft().release()
            else:
                self._busy = False

    @contextmanager
    def turn(self) -> Iterator[None]:
        """Hold the write turn of this file (in this process, then among processes)."""
        if getattr(self._local, "held", False):
            yield
            return
        self._acquire()
        try:
            fd = self._open()
            try:
                if fd is not None:
                    fcntl.flock(fd, fcntl.LOCK_EX)
                self._local.held = True
                yield
            finally:
                self._local.held = False
                if fd is not None:
                    os.close(fd)  # releases the flock
        finally:
            self._release()


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
            self.writers: WriterQueue | None = WriterQueue.of(self.sqlite_path)
        elif parsed.get_backend_name() == "postgresql":
            # No pre-ping: it would cost every request a round trip. A connection found dead
            # (the server restarted) is detected on use; SQLAlchemy then retires every pooled
            # connection older than that moment, so one request per worker sees the outage
            # (503 ERR_DATABASE, which agents retry) and public reads retry it themselves.
            self.engine = sa.create_engine(self.url, pool_size=10, max_overflow=20)
            self.writers = None
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
        if self.writers is None:
            with self.engine.connect() as conn, conn.begin():
                yield conn
            return
        with self.writers.turn(), self.engine.connect() as conn, conn.begin():
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
