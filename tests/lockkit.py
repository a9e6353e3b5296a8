"""A writer that holds a database's write lock, and a wait until another write queues behind it."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from settee.store import Store, sql
from settee.store.writes import Edit, lock_db, write_edits


@contextmanager
def lock_held(store: Store, db: str, edits: Sequence[Edit]) -> Iterator[None]:
    """Inside the block another thread has written `edits` to `db` and holds its write lock,
    uncommitted; leaving the block lets it commit and waits for it."""
    holding, release = threading.Event(), threading.Event()

    def hold(conn: Any) -> None:
        write_edits(conn, db, list(edits), new_edits=True, layer=store.layer,
                    locked=lock_db(conn, db))
        holding.set()
        release.wait(10)

    holder = threading.Thread(target=lambda: store.engine.run(hold))
    holder.start()
    try:
        assert holding.wait(10), "the lock holder never wrote"
        yield
    finally:
        release.set()
        holder.join(10)


def wait_for_lock_wait(store: Store, query_like: str = "%", timeout: float = 10.0) -> bool:
    """Until a session of this PostgreSQL database whose query matches `query_like` waits for
    a lock (False after `timeout`). SQLite shows no waiters: there it gives a queued write
    0.2 s to reach the file lock and returns True."""
    if store.engine.dialect != "postgresql":
        time.sleep(0.2)
        return True
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with store.engine.transaction(snapshot=False) as conn:
            row = sql.fetchone(conn, "SELECT count(*) FROM pg_stat_activity WHERE "
                                     "datname = current_database() AND wait_event_type = 'Lock' "
                                     "AND query LIKE ?", (query_like,))
        if row is not None and row[0]:
            return True
        time.sleep(0.01)
    return False
