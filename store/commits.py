"""Group commit: concurrent writes in one process share one transaction and one fsync.

With `synchronous=FULL` every commit waits for the disk, and writers take turns on one lock, so
eight clients each PUTting one document would pay eight lock hand-offs and eight fsyncs. Instead,
the first writer to arrive becomes the leader: it takes every write queued so far, runs them one
after another inside one write transaction (each in its own savepoint, so a refused write rolls
back alone), commits once, and wakes the others with their own results. Then it hands the lead to
the oldest write still waiting, so no thread stays leader for long.

The batch closes when the transaction is ready to commit, not when the leader starts: waiting for
the database's write lock (another process's commit and fsync) is when most writes arrive, so
after each write the leader takes the writes queued meanwhile into the same transaction.

Writes that say they can be joined (a `Joinable`: the document writes of `_bulk_docs`, PUT,
DELETE... to one database, validated against the same design documents) and sit next to each
other in the batch run as one call: one lock, one read of the touched documents, one multi-row
INSERT, one counter update, instead of one of each per request. A joined group runs in its own
savepoint; if it is refused as a whole, its writes run again one by one, so one request's error
never becomes another's.

A group that can be stored without a transaction of the queue's is (`Joinable.run_direct`: on
PostgreSQL, one server-side function call that locks, checks, writes and commits); otherwise, or
if what it was worked out against has changed, it runs in a transaction as above.

Writes are applied in arrival order per database (the batch is sorted by database name only, a
stable sort, so that every process takes row locks in the same order and PostgreSQL batches
cannot deadlock each other; a write that arrives late joins only if its database sorts at or
after the last one locked). Seqs are still allocated in commit order.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any, Generic, Protocol, TypeVar

from .engine import Engine, Tx
from .errors import StoreError

T = TypeVar("T")
MAX_BATCH = 64


class Joinable(Protocol):
    """A write that can run in one call with its neighbours in a batch of the same `kind`."""

    @property
    def kind(self) -> object:
        """Writes whose kinds are equal may be joined."""
        ...

    def begin(self, tx: Tx) -> None:
        """Take the locks the write needs: the first statement of a transaction, run before
        the group is formed, so the writes that arrive while it waits join the group."""
        ...

    def run_joined(self, tx: Tx, parts: Sequence[Joinable]) -> list[Any]:
        """Run `parts` (this write first) as one; one result each, in order."""
        ...

    def run_direct(self, parts: Sequence[Joinable]) -> list[Any] | None:
        """Run `parts` (this write first) as one outside any transaction of the queue's (one
        statement that commits as it returns), if they can be: one result each, in order; or
        None if they must run in a transaction (`run_joined`) instead, having stored nothing."""
        ...


class _Item(Generic[T]):
    __slots__ = ("done", "error", "fn", "joinable", "key", "lead", "result")

    def __init__(self, fn: Callable[[Tx], T], key: str, joinable: Joinable | None) -> None:
        self.fn = fn
        self.joinable = joinable
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

    def submit(self, key: str, fn: Callable[[Tx], T], joinable: Joinable | None = None) -> T:
        """Run `fn(tx)` in a write transaction (possibly shared) and return its result; a
        `joinable` write may instead run as part of its group's `run_joined` (which must give
        it the result `fn` would have)."""
        if self.engine.current is not None:
            return fn(self.engine.current)  # already inside a transaction: join it
        item: _Item[T] = _Item(fn, key, joinable)
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
        batch.sort(key=lambda i: i.key)  # in place: late writes join this very list
        try:
            self._run(batch)
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
        start = 0
        while start < len(batch):
            start = self._transaction(batch, start)

    def _transaction(self, batch: list[_Item[Any]], start: int) -> int:
        """Run `batch[start:]`, and the writes that join it, in one transaction; return where
        the next transaction starts (the batch's length once every write has its outcome).

        The first write needs no savepoint of its own (two statements fewer; on PostgreSQL two
        round trips under the database's lock): if it is refused, nothing else has run in the
        transaction, so the whole transaction rolls back and the rest start a new one."""
        first = batch[start]
        if first.joinable is not None:
            direct = _run_direct(_group(batch, start))
            if direct is not None:
                return start + direct

        def apply(tx: Tx) -> None:
            first.result, first.error = None, None
            try:
                if first.joinable is not None:
                    first.joinable.begin(tx)
                    self._extend(batch)
                group = _group(batch, start)
                if len(group) > 1:
                    _apply_joined(tx, group)
                else:
                    first.result = first.fn(tx)
            except StoreError as exc:
                raise _FirstRefused(exc) from exc
            done = start + len(group)
            while True:
                self._extend(batch)  # the writes queued meanwhile, before grouping
                if done >= len(batch):
                    break
                group = _group(batch, done)
                if len(group) > 1:
                    _apply_joined(tx, group)
                else:
                    _apply_one(tx, batch[done])
                done += len(group)

        try:
            self.engine.run(apply, write=True)
        except _FirstRefused as refused:
            first.result, first.error = None, refused.error
            return start + 1
        except BaseException as exc:  # the commit itself failed: nothing of it stands
            for item in batch[start:]:
                item.result, item.error = None, exc
        return len(batch)

    def _extend(self, batch: list[_Item[Any]]) -> None:
        """Move writes queued since the batch began into it, keeping its lock order."""
        with self._lock:
            room = MAX_BATCH - len(batch)
            if room <= 0 or not self._pending:
                return
            last = batch[-1].key
            late = [i for i in self._pending if i.key >= last][:room]
            taken = set(map(id, late))
            self._pending = [i for i in self._pending if id(i) not in taken]
        batch.extend(late)


class _FirstRefused(Exception):
    """The first write of a transaction was refused: roll the transaction back."""

    def __init__(self, error: StoreError) -> None:
        super().__init__(str(error))
        self.error = error


def _group(batch: list[_Item[Any]], at: int) -> list[_Item[Any]]:
    """The run of joinable writes of one kind that starts at `at` (at least that write)."""
    head = batch[at]
    end = at + 1
    if head.joinable is not None:
        kind = head.joinable.kind
        while end < len(batch) and batch[end].joinable is not None \
                and batch[end].joinable.kind == kind:  # type: ignore[union-attr]
            end += 1
    return batch[at:end]


def _run_direct(group: list[_Item[Any]]) -> int | None:
    """Run a group of joinable writes in one statement if they can be (`run_direct`): how many
    writes now have their outcome, or None if they must run in a transaction."""
    head = group[0].joinable
    assert head is not None
    try:
        results = head.run_direct([item.joinable for item in group])  # type: ignore[misc]
    except BaseException as exc:  # failed, or its reply was lost (as a COMMIT's can be)
        for item in group:
            item.result, item.error = None, exc
        return len(group)
    if results is None:
        return None
    for item, result in zip(group, results, strict=True):
        item.result, item.error = result, None
    return len(group)


def _apply_joined(tx: Tx, group: list[_Item[Any]]) -> None:
    """Run a group as one call in a savepoint; if it is refused, run its writes one by one."""
    cur = tx.cursor()
    cur.execute("SAVEPOINT settee_write")
    try:
        head = group[0].joinable
        assert head is not None
        results = head.run_joined(tx, [item.joinable for item in group])  # type: ignore[misc]
    except StoreError:
        cur.execute("ROLLBACK TO SAVEPOINT settee_write")
        cur.close()
        for item in group:
            _apply_one(tx, item)
        return
    cur.close()
    for item, result in zip(group, results, strict=True):
        item.result, item.error = result, None


def _apply_one(tx: Tx, item: _Item[Any]) -> None:
    """Run one write in its own savepoint: a refused write rolls back alone. Savepoints are
    not released: they stack (at most MAX_BATCH) and end with the transaction, a statement
    fewer per write."""
    item.result, item.error = None, None
    cur = tx.cursor()
    cur.execute("SAVEPOINT settee_write")
    try:
        item.result = item.fn(tx)
    except StoreError as exc:
        cur.execute("ROLLBACK TO SAVEPOINT settee_write")
        item.error = exc
    cur.close()


def _outcome(item: _Item[T]) -> T:
    if item.error is not None:
        raise item.error
    return item.result  # type: ignore[no-any-return]
