"""SQLite writers queue for the write lock: first come, first served, none lost (issue #8)."""

from __future__ import annotations

import stat
import threading
import time
from pathlib import Path

import sqlalchemy as sa

from central import tables as T
from central.db import Store, WriterQueue


def _wait_for(condition, what: str) -> None:
    deadline = time.monotonic() + 60
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.005)


def test_writers_of_one_file_get_their_turn_in_the_order_they_asked(tmp_path: Path) -> None:
    queue = WriterQueue.of(tmp_path / "central.db")
    order: list[int] = []

    def writer(k: int) -> None:
        with queue.turn():
            order.append(k)

    threads = []
    with queue.turn():
        for k in range(8):
            t = threading.Thread(target=writer, args=(k,))
            t.start()
            threads.append(t)
            _wait_for(lambda k=k: len(queue._waiting) == k + 1, f"writer {k} to queue")
    for t in threads:
        t.join()
    assert order == list(range(8))


def test_stores_of_one_file_share_the_queue_and_lose_no_write(tmp_path: Path) -> None:
    db = tmp_path / "central.db"
    stores = [Store(f"sqlite:///{db}"), Store(f"sqlite:///{db}")]
    try:
        assert stores[0].writers is stores[1].writers
        stores[0].init_schema()
        failures: list[BaseException] = []

        def writer(k: int) -> None:
            try:
                for i in range(20):
                    with stores[k % 2].write() as conn:
                        conn.execute(T.schema_info.insert().values(key=f"w{k}-{i}", value=str(i)))
            except BaseException as exc:  # noqa: BLE001 - reported below
                failures.append(exc)

        threads = [threading.Thread(target=writer, args=(k,)) for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not failures
        with stores[0].read() as conn:
            keys = set(conn.execute(sa.select(T.schema_info.c.key)).scalars())
        assert {f"w{k}-{i}" for k in range(8) for i in range(20)} <= keys
    finally:
        for store in stores:
            store.dispose()
    lock_file = tmp_path / ".central.db.writers"
    assert stat.S_IMODE(lock_file.stat().st_mode) == 0o600


def test_a_write_inside_a_write_on_the_same_thread_does_not_wait_for_itself(
    tmp_path: Path,
) -> None:
    queue = WriterQueue.of(tmp_path / "central.db")
    with queue.turn(), queue.turn():
        pass
    with queue.turn():  # and the turn was given back
        pass
