"""Job locks: at most one holder per name, kept in the database, lapsing unless renewed.

A lock is a row of `job_locks`. Taking it inserts the row, or takes over a row whose holder
let it lapse, inside one write transaction: SQLite lets one writer in at a time, and on
PostgreSQL the UPDATE's row lock makes a rival re-read the row after the winner committed, so
both databases give the same answer. The holder renews the lock while it works (`Heartbeat`);
a holder that dies without releasing it frees it when it lapses. Lapse times come from the
holders' clocks, so hosts sharing a lock need NTP (they need it for production dates anyway).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import secrets
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from central import tables as T
from central.db import Store
from central.errors import ERR_JOB_BUSY, Conflict
from central.timeutil import as_utc, utcnow

log = logging.getLogger("lineledger.central.jobs")

SCHEDULER = "scheduler"  # the lock of the process that runs the schedule


def job_lock(job: str) -> str:
    """Return the name of one job's own lock."""
    return f"job:{job}"


def new_holder() -> str:
    """Return a holder name that says where the holder runs: host, pid and a nonce."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"[:160]


def holder_host_pid(holder: str) -> tuple[str, int | None]:
    """Return the host and pid a holder name (from `new_holder`) carries."""
    host, _, rest = holder.partition(":")
    pid = rest.partition(":")[0]
    return host, int(pid) if pid.isdigit() else None


@dataclass(frozen=True)
class LockInfo:
    """Who holds a lock and until when."""

    name: str
    holder: str
    acquired_at: dt.datetime
    expires_at: dt.datetime

    def live(self, now: dt.datetime) -> bool:
        """Tell whether the holder renewed the lock recently enough to still hold it."""
        return self.expires_at > now

    def to_dict(self) -> dict[str, Any]:
        """Return the lock as JSON-friendly values."""
        host, pid = holder_host_pid(self.holder)
        return {
            "holder": self.holder,
            "host": host,
            "pid": pid,
            "acquired_at": self.acquired_at.isoformat(),
            "expires_at": self.expires_at.isoformat(),
        }


def lock_info(conn: Connection, name: str) -> LockInfo | None:
    """Return the row of a lock, live or lapsed (None: nobody took it or it was released)."""
    row = conn.execute(sa.select(T.job_locks).where(T.job_locks.c.name == name)).first()
    if row is None:
        return None
    return LockInfo(row.name, row.holder, as_utc(row.acquired_at), as_utc(row.expires_at))  # type: ignore[arg-type]


def acquire(store: Store, name: str, holder: str, ttl: dt.timedelta, now: dt.datetime) -> bool:
    """Take a lock that is free, lapsed or ours already; tell whether we hold it now."""
    locks = T.job_locks
    with store.write() as conn:
        conn.execute(
            store.insert(locks)
            .values(name=name, holder=holder, acquired_at=now, expires_at=now + ttl)
            .on_conflict_do_nothing()
        )
        taken = conn.execute(
            locks.update()
            .where(
                locks.c.name == name,
                sa.or_(locks.c.holder == holder, locks.c.expires_at <= now),
            )
            .values(
                holder=holder,
                acquired_at=sa.case(
                    (locks.c.holder == holder, locks.c.acquired_at), else_=sa.literal(now, T.TS)
                ),
                expires_at=now + ttl,
            )
        )
        return taken.rowcount == 1


def renew(store: Store, name: str, holder: str, ttl: dt.timedelta, now: dt.datetime) -> bool:
    """Push a held lock's lapse time forward; False means another holder has it now."""
    with store.write() as conn:
        done = conn.execute(
            T.job_locks.update()
            .where(T.job_locks.c.name == name, T.job_locks.c.holder == holder)
            .values(expires_at=now + ttl)
        )
        return done.rowcount == 1


def release(store: Store, name: str, holder: str) -> None:
    """Give a lock up if we hold it."""
    with store.write() as conn:
        conn.execute(
            T.job_locks.delete().where(T.job_locks.c.name == name, T.job_locks.c.holder == holder)
        )


class Heartbeat:
    """Renew a held lock from a thread of its own until stopped; note when it was lost."""

    def __init__(
        self,
        store: Store,
        name: str,
        holder: str,
        ttl: dt.timedelta,
        clock: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self.store = store
        self.name = name
        self.holder = holder
        self.ttl = ttl
        self.clock = clock
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat {name}", daemon=True)

    def start(self) -> Heartbeat:
        """Start renewing; return self."""
        self._thread.start()
        return self

    def beat(self) -> bool:
        """Renew once; return False once the lock is lost (a database error is not a loss)."""
        try:
            if not renew(self.store, self.name, self.holder, self.ttl, self.clock()):
                self.lost.set()
        except sa.exc.SQLAlchemyError as exc:
            # The database may be back before the lock lapses; keep trying.
            log.warning("cannot renew lock %s: %s", self.name, exc)
        return not self.lost.is_set()

    def _run(self) -> None:
        interval = max(self.ttl.total_seconds() / 4, 0.05)
        while not self._stop.wait(interval):
            if not self.beat():
                log.error("lock %s was taken over by another process", self.name)
                return

    def stop(self) -> None:
        """Stop renewing (the lock stays held until released or lapsed)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()


def busy_error(conn: Connection, name: str, what: str) -> Conflict:
    """Return the ERR_JOB_BUSY error that names who holds a lock."""
    info = lock_info(conn, name)
    if info is None:
        return Conflict(ERR_JOB_BUSY, f"{what} is busy; try again")
    host, pid = holder_host_pid(info.holder)
    return Conflict(
        ERR_JOB_BUSY,
        f"{what} is held by process {pid} on {host} since {info.acquired_at:%Y-%m-%d %H:%M:%S} "
        f"UTC (lapses at {info.expires_at:%H:%M:%S} UTC unless renewed)",
    )


@contextmanager
def holding(
    store: Store, name: str, holder: str, ttl: dt.timedelta, now: dt.datetime, what: str
) -> Iterator[Heartbeat]:
    """Hold a lock for the duration of a block, renewed meanwhile; raise ERR_JOB_BUSY if taken."""
    if not acquire(store, name, holder, ttl, now):
        with store.read() as conn:
            raise busy_error(conn, name, what)
    heartbeat = Heartbeat(store, name, holder, ttl).start()
    try:
        yield heartbeat
    finally:
        heartbeat.stop()
        try:
            release(store, name, holder)
        except sa.exc.SQLAlchemyError as exc:  # it lapses by itself
            log.warning("cannot release lock %s: %s", name, exc)
