"""Engines for SQLite and PostgreSQL and the one nesting `transaction()` helper.

SQLite: WAL, `synchronous` from settings (FULL by default, so a 201 means the write is on disk),
`busy_timeout` and `foreign_keys` on every pooled connection, pysqlite's own BEGIN disabled and
every write transaction opened with `BEGIN IMMEDIATE`. Writers first queue on a process lock and a
file lock (`flock`) so that they wait in order instead of spinning on `busy_timeout`.

PostgreSQL (psycopg 3): READ COMMITTED, the per-db counter row locked first by the writer, and the
whole unit of work re-run on serialization failures and deadlocks, a bounded number of times.

Engines are created lazily in the process that uses them, never at import and never across
`fork()`: a pid change rebuilds the engine.
"""

from __future__ import annotations

import fcntl
import os
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import psycopg
import sqlalchemy as sa
from sqlalchemy import MetaData, Table, event
from sqlalchemy.engine import Engine as SaEngine  # the class below has a property named `sa`
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.pool import NullPool

from .errors import StoreBusy, StoreFull

T = TypeVar("T")

SYNCHRONOUS_MODES = ("OFF", "NORMAL", "FULL", "EXTRA")
PG_RETRY_CODES = {"40001", "40P01"}
PG_DISK_FULL = "53100"
MAX_ATTEMPTS = 5
# A pooled PostgreSQL connection idle longer than this is pinged before use (the server may
# have restarted or cut it); one in steady use is not, which saves a round trip per request.
# A hot connection that did break fails its request and is dropped at check-in (`_broken`).
PING_AFTER_IDLE = 1.0
FLOCK_POLL_FINE = 0.0001  # seconds between tries for SQLite's cross-process write lock ...
FLOCK_FINE_FOR = 0.005  # ... for this long, then every 0.5 ms
_build_lock = threading.RLock()  # engines are built one at a time (see `Engine.sa`)


def _new_build_lock() -> None:
    """A forked child gets a fresh lock: a thread of the parent may have held it at fork."""
    global _build_lock
    _build_lock = threading.RLock()


os.register_at_fork(after_in_child=_new_build_lock)


class Engine:
    """One SQLAlchemy engine per process, its pragmas, and the transaction helper."""

    def __init__(
        self,
        url: str,
        *,
        synchronous: str = "FULL",
        busy_timeout_ms: int = 10_000,
        pool_size: int = 8,
    ) -> None:
        if synchronous.upper() not in SYNCHRONOUS_MODES:
            raise ValueError(f"synchronous must be one of {', '.join(SYNCHRONOUS_MODES)}")
        self.url = sa.engine.make_url(url)
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        self.synchronous = synchronous.upper()
        self.busy_timeout_ms = busy_timeout_ms
        self.pool_size = pool_size
        self._engine: SaEngine | None = None
        self._pid = 0
        self._local = threading.local()
        self._write_mutex = threading.Lock()
        self._lock_fd: int | None = None

    # -- the engine -----------------------------------------------------------------------

    @property
    def sa(self) -> SaEngine:
        """The SQLAlchemy engine of this process (rebuilt after a fork).

        Built once under a lock: the first requests of a fresh worker arrive on many threads at
        once, and each building its own engine gave each its own pool (four pools of 8 were
        seen in one worker, and PostgreSQL ran out of connections)."""
        engine = self._engine
        if engine is not None and self._pid == os.getpid():
            return engine
        with _build_lock:
            if self._engine is None or self._pid != os.getpid():
                if self._engine is not None:
                    self._engine.dispose(close=False)
                self._write_mutex = threading.Lock()
                self._lock_fd = None
                self._engine = self._build()
                self._pid = os.getpid()
            return self._engine

    def _build(self) -> SaEngine:
        if self.is_sqlite:
            return self._build_sqlite()
        url = self.url
        if url.drivername in ("postgresql", "postgres"):
            url = url.set(drivername="postgresql+psycopg")
        options = "-c lock_timeout=10000 -c statement_timeout=60000 " \
                  "-c idle_in_transaction_session_timeout=60000"
        # A hard cap per process: `pool_size` connections and no overflow. A request that finds
        # them all busy waits for one (bounded by the busy timeout, then 503), so N workers never
        # hold more than N x pool_size (+ one LISTEN each): see docs/scaling.md.
        return sa.create_engine(
            url,
            pool_size=self.pool_size,
            max_overflow=0,
            pool_timeout=self.busy_timeout_ms / 1000,
            pool_pre_ping=False,  # `_checkout` pings connections that sat idle instead
            isolation_level="READ COMMITTED",
            connect_args={"options": options, "application_name": f"settee {os.getpid()}"},
        )

    def _build_sqlite(self) -> SaEngine:
        path = self.url.database
        if path and path != ":memory:":
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        engine = sa.create_engine(
            self.url,
            # Each thread keeps its own connection (see `_checkout`), so no pool is needed.
            poolclass=NullPool,
            connect_args={"check_same_thread": False, "timeout": self.busy_timeout_ms / 1000},
        )
        synchronous, busy = self.synchronous, self.busy_timeout_ms

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA synchronous={synchronous}")
            cur.execute(f"PRAGMA busy_timeout={busy}")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_size_limit=67108864")
            cur.close()

        return engine

    def create_schema(self, metadata: MetaData, tables: list[Table] | None = None) -> None:
        """Create missing tables, or only `tables` (idempotent; safe when several processes race).

        Concurrent first starts are serialised: on PostgreSQL by an advisory lock, on SQLite by
        the writers' file lock, so no worker sees a table half-created by another.
        """
        engine = self.sa  # built first: that makes the data directory and resets writer locks
        with self._writer_queue(self.is_sqlite), engine.begin() as conn:
            if not self.is_sqlite:
                conn.exec_driver_sql("SELECT pg_advisory_xact_lock(5984)")
            metadata.create_all(conn, tables=tables, checkfirst=True)

    def dispose(self) -> None:
        """Close this thread's kept connection and every pooled connection of this process."""
        kept = getattr(self._local, "raw", None)
        if kept is not None:
            self._local.raw = None
            kept[2].close()
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    # -- transactions ---------------------------------------------------------------------

    @property
    def current(self) -> Tx | None:
        """The transaction open on this thread, if any."""
        return getattr(self._local, "tx", None)

    @contextmanager
    def transaction(self, write: bool = False, snapshot: bool = True,
                    consistent: bool = False) -> Iterator[Tx]:
        """Open a transaction, or join the one already open on this thread.

        Runs on the pooled driver connection directly (SQLAlchemy's Connection costs more than
        the query on the hottest paths). A write transaction cannot be opened inside a read one
        (SQLite would fail at once with SQLITE_BUSY_SNAPSHOT); that is a programming error.
        A read of one statement needs no snapshot of its own (`snapshot=False`): it then runs
        without BEGIN/COMMIT (PostgreSQL: in autocommit), two statements (round trips) fewer on
        the hottest path. On PostgreSQL so does a write with `snapshot=False`: each of its
        statements commits on its own (`direct`: one server-side function call per write).
        A read whose statements must agree with each other (`consistent=True`: a view answer's
        totals and its first page) needs one snapshot on PostgreSQL too, where READ COMMITTED
        gives each statement its own: that transaction runs at REPEATABLE READ (psycopg sends it
        with the BEGIN, so it costs no round trip). SQLite's BEGIN already gives one snapshot.
        """
        outer = self.current
        if outer is not None:
            if write and not outer.write:
                raise RuntimeError("write transaction requested inside a read transaction")
            yield outer
            return
        with self._writer_queue(write):
            raw = self._checkout()
            tx = Tx(raw, self.dialect, write)
            self._local.tx = tx
            bare = not snapshot and not consistent and not (write and self.is_sqlite)
            repeatable = consistent and not write and not self.is_sqlite
            if repeatable:
                _isolation(raw, psycopg.IsolationLevel.REPEATABLE_READ)
            try:
                with _translated():
                    if bare and self.is_sqlite:
                        yield tx
                        return
                    if bare:  # PostgreSQL in autocommit: no BEGIN and COMMIT round trips
                        _autocommit(raw, True)
                        try:
                            yield tx
                        finally:
                            _autocommit(raw, False)
                        return
                    if self.is_sqlite:
                        cur = raw.cursor()
                        cur.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                        cur.close()
                    try:
                        yield tx
                        if self.is_sqlite:
                            cur = raw.cursor()
                            cur.execute("COMMIT")
                            cur.close()
                        else:
                            raw.commit()
                    except BaseException:
                        # A failed COMMIT (I/O error, disk full) leaves the transaction open and,
                        # on SQLite, the write lock held: end it here, or drop the connection.
                        self._abandon(raw)
                        raise
            finally:
                self._local.tx = None
                if repeatable:
                    _isolation(raw, psycopg.IsolationLevel.READ_COMMITTED)
                self._checkin(raw)

    def _checkout(self) -> Any:
        """A driver connection: SQLite keeps one per thread (no pool round trip per request)."""
        if self.is_sqlite:
            kept = getattr(self._local, "raw", None)
            if kept is not None and kept[0] == os.getpid() and kept[1] is self._engine:
                return kept[2]
            raw = self.sa.raw_connection()
            self._local.raw = (os.getpid(), self._engine, raw)
            return raw
        try:
            raw = self.sa.raw_connection()
            idle_since = raw.info.get("idle_since")
            if idle_since is not None and time.monotonic() - idle_since > PING_AFTER_IDLE \
                    and not self._alive(raw):
                raw.invalidate()
                raw = self.sa.raw_connection()
            return raw
        except PoolTimeout as exc:  # every connection of this process stayed busy
            raise StoreBusy("No free database connection; try again.") from exc
        except (DBAPIError, psycopg.OperationalError) as exc:  # the server has no free slots
            code = getattr(getattr(exc, "orig", exc), "sqlstate", None)
            if code == "53300" or "too many clients" in str(exc):
                raise StoreBusy("The database server has no free connections; try again.") from exc
            raise

    def _alive(self, raw: Any) -> bool:
        """Whether a pooled connection answers the dialect's ping (one round trip, outside
        any transaction)."""
        try:
            return bool(self.sa.dialect.do_ping(raw.dbapi_connection))
        except (psycopg.Error, DBAPIError):
            return False

    def _abandon(self, raw: Any) -> None:
        """Roll back; if even that fails, the connection is not reused."""
        try:
            raw.rollback()
            driver = getattr(raw, "dbapi_connection", raw)
            if not getattr(driver, "in_transaction", False):
                return
        except Exception:
            pass
        if self.is_sqlite:
            self._local.raw = None
            raw.close()
        else:
            raw.invalidate()

    def _checkin(self, raw: Any) -> None:
        if self.is_sqlite:
            return  # stays with its thread; SQLite connections cost a file handle, no server slot
        if _broken(raw):
            raw.invalidate()
        else:
            raw.info["idle_since"] = time.monotonic()
        raw.close()

    @property
    def dialect(self) -> str:
        """`sqlite` or `postgresql`."""
        return "sqlite" if self.is_sqlite else "postgresql"

    def run(self, fn: Callable[[Tx], T], *, write: bool = True) -> T:
        """Run `fn` in a transaction, re-running it on PostgreSQL serialization failures."""
        if self.current is not None:
            return fn(self.current)
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                with self.transaction(write=write) as tx:
                    return fn(tx)
            except Exception as exc:
                code = getattr(exc, "sqlstate", None)
                if code not in PG_RETRY_CODES or attempt == MAX_ATTEMPTS:
                    raise
                time.sleep(random.uniform(0, 0.01 * 2**attempt))
        raise StoreBusy()  # pragma: no cover - the loop always returns or raises

    @contextmanager
    def _writer_queue(self, write: bool) -> Iterator[None]:
        """Queue SQLite writers on a process mutex and a file lock before BEGIN IMMEDIATE."""
        if not (write and self.is_sqlite):
            yield
            return
        path = self.url.database
        if not path or path == ":memory:":
            with self._write_mutex:
                yield
            return
        deadline = time.monotonic() + self.busy_timeout_ms / 1000
        mutex = self._write_mutex  # the one acquired is the one released
        if not mutex.acquire(timeout=self.busy_timeout_ms / 1000):
            raise StoreBusy()
        try:
            if self._lock_fd is None:
                self._lock_fd = os.open(path + ".writelock", os.O_RDWR | os.O_CREAT, 0o644)
            fd = self._lock_fd
            started = time.monotonic()
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    now = time.monotonic()
                    if now > deadline:
                        raise StoreBusy() from None
                    # Another process commits; its turn is usually over within a few ms, and
                    # the wait until this one notices is dead time for every writer of the
                    # file: poll finely at first, then back off.
                    time.sleep(FLOCK_POLL_FINE if now - started < FLOCK_FINE_FOR else 0.0005)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            mutex.release()


class Tx:
    """An open transaction: the pooled driver connection, its dialect, and whether it writes."""

    __slots__ = ("raw", "dialect", "write")

    def __init__(self, raw: Any, dialect: str, write: bool) -> None:
        self.raw = raw
        self.dialect = dialect
        self.write = write

    def cursor(self) -> Any:
        """A driver cursor on this transaction's connection."""
        return self.raw.cursor()


def _isolation(raw: Any, level: psycopg.IsolationLevel) -> None:
    """Set the isolation of the next transactions of a pooled psycopg connection (local only)."""
    driver = getattr(raw, "dbapi_connection", raw)
    if driver is not None and not driver.closed and driver.isolation_level != level:
        driver.isolation_level = level


def _autocommit(raw: Any, on: bool) -> None:
    """Switch a pooled psycopg connection's autocommit (local: no round trip)."""
    driver = getattr(raw, "dbapi_connection", raw)
    if driver is not None and not driver.closed and driver.autocommit != on:
        driver.autocommit = on


def _broken(raw: Any) -> bool:
    driver = getattr(raw, "dbapi_connection", None)
    return bool(getattr(driver, "broken", False))


@contextmanager
def _translated() -> Iterator[None]:
    """Turn disk-full and lock-timeout driver errors into the store's own errors."""
    try:
        yield
    except (sqlite3.Error, psycopg.Error) as exc:
        text = str(exc).lower()
        code = getattr(exc, "sqlstate", None)
        if code == PG_DISK_FULL or "database or disk is full" in text or "disk full" in text:
            raise StoreFull() from exc
        if "database is locked" in text or code == "55P03":
            raise StoreBusy() from exc
        raise
