"""Group commit: concurrent writes in one process share one transaction and one fsync.

With `synchronous=FULL` every commit waits for the disk, and writers take turns on one lock, so
eight clients each PUTting one document would pay eight lock hand-offs and eight fsyncs. Instead,
the first writer to arrive becomes the leader: it takes every write queued so far, runs them one
after another inside one write transaction (each in its own savepoint, so a refused write rolls
back alone), commits once, and wakes the others with their own results. Then it hands the lead to
the oldest write still waiting, so no thread stays leader for long.

Writes are applied in arrival order per database (the batch is sorted by database name only, a
stable sort, so that every process takes row locks in the same order and PostgreSQL batches
cannot deadlock each other). Seqs are still allocated in commit order.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from .engine import Engine, Tx
from .errors import StoreError

T = TypeVar("T")
MAX_BATCH = 64


class _Item(Generic[T]):
    __slots__ = ("fn", "key", "done", "lead", "result", "error")

    def __init__(self, fn: Callable[[Tx], T], key: str) -> None:
        self.fn = fn
        self.key = key
        self.done = threading.Event()
        self.lead = False
        self.result: Any = None
        self.error: BaseException | None = None


class CommitQueue:
    """Run write functions in shared transactions, one fsync per batch."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._lock = threading.Lock()
        self._pending: list[_Item[Any]] = []
        self._leading = False

    def submit(self, key: str, fn: Callable[[Tx], T]) -> T:
        """Run `fn(tx)` in a write transaction (possibly shared) and return its result."""
        if self.engine.current is not None:
            return fn(self.engine.current)  # already inside a transaction: join it
        item: _Item[T] = _Item(fn, key)
        with self._lock:
            self._pending.append(item)
            lead = not self._leading
            self._leading = True
        if not lead:
            item.done.wait()
            if not item.lead:
                return _outcome(item)
        self._lead()
        item.done.wait()
        return _outcome(item)

    def _lead(self) -> None:
        with self._lock:
            batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
        try:
            self._run(sorted(batch, key=lambda i: i.key))
        finally:
            with self._lock:
                if self._pending:
                    nxt = self._pending[0]
                    nxt.lead = True
                    nxt.done.set()  # wakes it as the next leader; its own result comes later
                else:
                    self._leading = False
            for item in batch:
                item.done.set()

    def _run(self, batch: list[_Item[Any]]) -> None:
        def apply(tx: Tx) -> None:
            for item in batch:
                item.result, item.error = None, None
                cur = tx.cursor()
                cur.execute("SAVEPOINT settee_write")
                try:
                    item.result = item.fn(tx)
                except StoreError as exc:
                    cur.execute("ROLLBACK TO SAVEPOINT settee_write")
                    item.error = exc
                cur.execute("RELEASE SAVEPOINT settee_write")
                cur.close()

        try:
            self.engine.run(apply, write=True)
        except BaseException as exc:  # the commit itself failed: nothing in the batch stands
            for item in batch:
                item.result, item.error = None, exc


def _outcome(item: _Item[T]) -> T:
    if item.error is not None:
        raise item.error
    return item.result  # type: ignore[no-any-return]
