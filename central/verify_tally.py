"""Verification counts: distinct clients per day, tallied in memory and written in bulk.

A customer-facing count that one client could inflate by reloading is no clone signal, so a
serial's `verify_count` counts client-days: one client (an IPv4 address, or an IPv6 /64,
which one household or phone usually holds) counts once per UTC day. Addresses never reach
the database: they wait in memory until the next flush (seconds), which stores only a keyed
hash under that day's random salt, and a day's salt is deleted once the day is over.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import ipaddress
import logging
import secrets
import threading
from collections import defaultdict

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from central import tables as T
from central.db import Store

log = logging.getLogger("lineledger.central")


def client_key(address: str | None) -> str:
    """Return what identifies one client: its IPv4 address, or the /64 of its IPv6 address."""
    try:
        ip = ipaddress.ip_address((address or "").split("%")[0])
    except ValueError:
        return f"other:{address or ''}"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


def client_hash(salt: bytes, key: str) -> str:
    """Return the stored form of a client: a keyed hash, useless once the salt is gone."""
    return hmac.new(salt, key.encode("utf-8"), hashlib.sha256).hexdigest()[:32]


def day_salt(conn: Connection, store: Store, day: dt.date) -> bytes:
    """Return the salt of a UTC day, creating it (every worker gets the same one)."""
    conn.execute(
        store.insert(T.verify_salts)
        .values(day=day, salt=secrets.token_hex(32))
        .on_conflict_do_nothing()
    )
    salt = conn.execute(sa.select(T.verify_salts.c.salt).where(T.verify_salts.c.day == day))
    return bytes.fromhex(salt.scalar_one())


class VerifyTally:
    """Note who verified which serial and add the distinct client-days to the store in bulk."""

    def __init__(self, store: Store, interval: float) -> None:
        self.store = store
        self.interval = interval
        self._lock = threading.Lock()
        self._flushing = threading.Lock()
        self._seen: dict[tuple[str, dt.date], set[str]] = defaultdict(set)
        self._first: dict[str, dt.datetime] = {}
        self._timer: threading.Timer | None = None
        self._closed = False

    def add(self, serial: str, now: dt.datetime, address: str | None = None) -> None:
        """Note one verification of a serial by the client at `address`."""
        with self._lock:
            self._seen[(serial, now.astimezone(dt.UTC).date())].add(client_key(address))
            self._first.setdefault(serial, now)
            if self._timer is None and not self._closed:
                self._timer = threading.Timer(self.interval, self.flush)
                self._timer.daemon = True
                self._timer.start()

    def flush(self) -> int:
        """Write the tallied client-days; return how many serials were updated.

        Rows are written in serial order, the order ingest uses too, so the two never
        deadlock on PostgreSQL; what could not be written is kept for the next flush.
        """
        with self._flushing:  # one flush at a time; close() waits for a running one
            return self._flush()

    def _flush(self) -> int:
        with self._lock:
            seen, first = self._seen, self._first
            self._seen, self._first = defaultdict(set), {}
            self._timer = None
        if not seen:
            return 0
        reg = T.registry.c
        try:
            with self.store.write() as conn:
                salts = {day: day_salt(conn, self.store, day) for _, day in seen}
                added: dict[str, int] = defaultdict(int)
                for serial, day in sorted(seen):
                    for key in sorted(seen[(serial, day)]):
                        inserted = conn.execute(
                            self.store.insert(T.verify_clients)
                            .values(serial=serial, day=day, client=client_hash(salts[day], key))
                            .on_conflict_do_nothing()
                            .returning(T.verify_clients.c.serial)  # rowcount is -1 on psycopg
                        ).first()
                        added[serial] += inserted is not None
                rows = [
                    {"b_serial": s, "b_n": added[s], "b_first": first[s]} for s in sorted(first)
                ]
                conn.execute(
                    T.registry.update()
                    .where(reg.serial == sa.bindparam("b_serial"))
                    .values(
                        verify_count=reg.verify_count + sa.bindparam("b_n"),
                        first_verified_at=sa.func.coalesce(
                            reg.first_verified_at, sa.bindparam("b_first", type_=T.TS)
                        ),
                    ),
                    rows,
                )
                # A day's salt outlives it by one day, for workers still flushing that day.
                keep_from = max(salts) - dt.timedelta(days=1)
                conn.execute(T.verify_salts.delete().where(T.verify_salts.c.day < keep_from))
        except sa.exc.SQLAlchemyError:
            log.warning("verification counts kept for the next flush", exc_info=True)
            with self._lock:
                for k, clients in seen.items():
                    self._seen[k] |= clients
                for serial, when in first.items():
                    self._first.setdefault(serial, when)
            return 0
        return len(first)

    def close(self) -> None:
        """Stop the timer and write what is left."""
        with self._lock:
            self._closed = True
            timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()
        self.flush()
