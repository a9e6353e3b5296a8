"""Waking waiting feeds when a database changes, whichever process or node wrote to it.

One `Notifier` per engine and process runs one background thread, shared by every waiting feed
of that process, and only while some feed waits (it lingers a few seconds after the last one,
then exits and closes its connection). Feeds wait on a condition variable; the thread bumps a
version counter per watched database name and wakes them all (at most a few dozen per process).

How the thread learns of a change:

* SQLite: it reads the watched databases' `(instance, update_seq)` every `tick` (20 ms) on a
  dedicated connection of its own, in autocommit, so it never holds a snapshot open. A point
  read by unique name costs microseconds; a write in any worker process is seen within a tick.
* PostgreSQL: it `LISTEN`s on a dedicated, non-pooled psycopg connection. Writers call
  `announce(conn, db_name)` inside their transaction, and PostgreSQL delivers the NOTIFY at
  commit to every listener on every app node. Until the first notification proves that writers
  announce, the thread also polls at `tick`; after it, it polls every `safety_tick` (1 s) as a
  safety net. NOTIFYs sent while the connection was down are lost, so after every (re)connect
  all watchers are woken to re-read their feeds.

Races are closed by tickets: a feed takes `watch.ticket()` before each read of its feed and
waits for the version to move past it, so a change committed after the read always wakes it.
The first wait of a feed registers the database with the state its read saw (`baseline`); the
thread re-reads a newly registered name at once, and a baseline older than what the thread
already knew wakes the feed immediately.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol

import psycopg

from . import sql
from .engine import Engine, Tx

__all__ = ["ANY", "CHANNEL", "Notifier", "Watch", "announce", "notifier_for"]

log = logging.getLogger("settee.notify")

CHANNEL = "settee_changes"
APPLICATION_NAME = "settee-notify"  # how the listener shows in pg_stat_activity
ANY: str | None = None
"""The watch key that any database's change (or creation, or deletion) wakes."""

State = tuple[str, int] | None  # (instance, update_seq), or None for a missing database
_FINGERPRINT = "SELECT count(*), coalesce(sum(update_seq), 0), coalesce(max(id), 0) FROM settee_dbs"


def announce(conn: Tx, db_name: str) -> None:
    """The write path's hook: on PostgreSQL, tell listeners at commit that `db_name` changed."""
    if conn.dialect == "postgresql":
        sql.execute(conn, "SELECT pg_notify(?, ?)", (CHANNEL, db_name))


def count_and_announce(conn: Tx, db_name: str, update: str, params: tuple[Any, ...]) -> None:
    """Run the write's counter `update` and `announce` in one statement (one round trip on
    PostgreSQL: the notification rides on the UPDATE's RETURNING)."""
    if conn.dialect == "postgresql":
        sql.execute(conn, update + " RETURNING pg_notify(?, ?)", (*params, CHANNEL, db_name))
    else:
        sql.execute(conn, update, params)


class Watch:
    """One feed's interest in one database (or `ANY`); take a ticket, read, then wait on it."""

    def __init__(self, notifier: Notifier, key: str | None, stale: bool) -> None:
        self._notifier = notifier
        self.key = key
        self._stale = stale

    def ticket(self) -> int:
        """The current version; take it before reading the feed."""
        with self._notifier.cond:
            return self._notifier.versions.get(self.key, 0)

    def wait(self, ticket: int, timeout: float) -> bool:
        """Block until the version moves past `ticket` (True) or `timeout` seconds pass."""
        if self._stale:
            self._stale = False
            return True
        deadline = time.monotonic() + max(0.0, timeout)
        cond = self._notifier.cond
        with cond:
            while self._notifier.versions.get(self.key, 0) == ticket:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                cond.wait(remaining)
            return True


class _Source(Protocol):
    def states(self, names: list[str]) -> dict[str, State]: ...
    def fingerprint(self) -> tuple[Any, ...]: ...
    def listen(self, timeout: float) -> set[str]: ...
    def close(self) -> None: ...


class Notifier:
    """The per-process watcher of one engine's databases."""

    def __init__(self, engine: Engine, *, tick: float = 0.02, safety_tick: float = 1.0,
                 linger: float = 10.0) -> None:
        self.engine = engine
        self.tick = tick
        self.safety_tick = safety_tick
        self.linger = linger
        self.cond = threading.Condition()
        self.versions: dict[str | None, int] = {}
        self._refs: dict[str | None, int] = {}
        self._seen: dict[str | None, Any] = {}
        self._check: set[str | None] = set()
        self._thread: threading.Thread | None = None
        self.announced = False  # set once a writer's NOTIFY has arrived (PostgreSQL)

    @property
    def running(self) -> bool:
        """Whether the watcher thread runs (it stops `linger` seconds after the last watch)."""
        with self.cond:
            return self._thread is not None

    @contextmanager
    def watching(self, key: str | None, baseline: State = None) -> Iterator[Watch]:
        """Watch a database name (or `ANY`) for the duration of the block."""
        with self.cond:
            known = self._seen.get(key, _UNKNOWN)
            if key is ANY or baseline is None:
                stale = True  # nothing to compare with: let the first wait re-read
            elif known is _UNKNOWN:
                self._seen[key], stale = baseline, False
            else:
                stale = known != baseline
            self._refs[key] = self._refs.get(key, 0) + 1
            self._check.add(key)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="settee-notify",
                                                daemon=True)
                self._thread.start()
            self.cond.notify_all()
        try:
            yield Watch(self, key, stale)
        finally:
            with self.cond:
                self._refs[key] -= 1
                if not self._refs[key]:
                    del self._refs[key]

    # -- the watcher thread -------------------------------------------------------------------

    def _run(self) -> None:
        source: _Source | None = None
        backoff, next_poll, lost = 0.05, 0.0, False
        try:
            while self._await_watchers():
                with self.cond:
                    keys, check = list(self._refs), set(self._check)
                    self._check.clear()
                try:
                    if source is None:
                        source = self._open()
                        backoff, next_poll = 0.05, 0.0
                        if lost:  # anything may have happened while we were away: re-read all
                            self._bump(set(keys))
                            lost = False
                    notified = source.listen(self.tick)
                    if notified:
                        self.announced = True
                        self._bump(({ANY} | notified) & set(keys))
                    now = time.monotonic()
                    if now >= next_poll or check:
                        period = self.safety_tick if self.announced else self.tick
                        next_poll = now + period
                        self._poll(source, keys)
                except Exception as exc:  # noqa: BLE001 - any failure: reconnect and re-read
                    log.warning("change notifier lost its connection (%s); reconnecting", exc)
                    if source is not None:
                        _close(source)
                        source = None
                    lost = True
                    time.sleep(backoff)
                    backoff = min(backoff * 2, 2.0)
        finally:
            if source is not None:
                _close(source)

    def _await_watchers(self) -> bool:
        """Wait while nobody watches; False (and forget everything) after `linger` idle seconds."""
        with self.cond:
            idle_until = time.monotonic() + self.linger
            while not self._refs:
                remaining = idle_until - time.monotonic()
                if remaining <= 0:
                    self._thread = None
                    self._seen.clear()
                    return False
                self.cond.wait(remaining)
            return True

    def _poll(self, source: _Source, keys: list[str | None]) -> None:
        names = [k for k in keys if k is not None]
        current: dict[str | None, Any] = {}
        if names:
            current.update(source.states(names))
        if ANY in keys:
            current[ANY] = source.fingerprint()
        with self.cond:
            changed = {k for k in current if self._seen.get(k, _UNKNOWN) != current[k]}
            self._seen.update(current)
        self._bump(changed)

    def _bump(self, keys: set[str | None]) -> None:
        if not keys:
            return
        with self.cond:
            for key in keys:
                self.versions[key] = self.versions.get(key, 0) + 1
            self.cond.notify_all()

    def _open(self) -> _Source:
        if self.engine.is_sqlite:
            return _SqliteSource(self.engine, self.tick)
        return _PgSource(self.engine)


class _SqliteSource:
    """Polls through a private autocommit connection (or the pool, for an in-memory store)."""

    def __init__(self, engine: Engine, tick: float) -> None:
        self.engine, self.tick = engine, tick
        path = engine.url.database
        self.conn = None
        if path and path != ":memory:":
            self.conn = sqlite3.connect(path, timeout=engine.busy_timeout_ms / 1000,
                                        isolation_level=None, check_same_thread=False)

    def _rows(self, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        if self.conn is not None:
            return self.conn.execute(query, params).fetchall()
        with self.engine.transaction() as tx:
            return sql.fetchall(tx, query, params)

    def states(self, names: list[str]) -> dict[str, State]:
        out: dict[str, State] = dict.fromkeys(names)
        for chunk in sql.chunks(names):
            query = ("SELECT name, instance, update_seq FROM settee_dbs "
                     f"WHERE name IN ({sql.in_params(len(chunk))})")
            out.update((n, (i, s)) for n, i, s in self._rows(query, tuple(chunk)))
        return out

    def fingerprint(self) -> tuple[Any, ...]:
        return tuple(self._rows(_FINGERPRINT)[0])

    def listen(self, timeout: float) -> set[str]:
        time.sleep(timeout)  # SQLite has no notifications: this is the poll interval
        return set()

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()


class _PgSource:
    """`LISTEN` on a dedicated autocommit psycopg connection, never one from the pool."""

    def __init__(self, engine: Engine) -> None:
        url = engine.url.set(drivername="postgresql")
        self.conn = psycopg.connect(url.render_as_string(hide_password=False), autocommit=True,
                                    connect_timeout=5, application_name=APPLICATION_NAME)
        self.conn.execute(f"LISTEN {CHANNEL}")

    def states(self, names: list[str]) -> dict[str, State]:
        out: dict[str, State] = dict.fromkeys(names)
        rows = self.conn.execute("SELECT name, instance, update_seq FROM settee_dbs "
                                 "WHERE name = ANY(%s)", (names,)).fetchall()
        out.update((n, (i, s)) for n, i, s in rows)
        return out

    def fingerprint(self) -> tuple[Any, ...]:
        row = self.conn.execute(_FINGERPRINT).fetchone()
        return tuple(row) if row else ()

    def listen(self, timeout: float) -> set[str]:
        names = {n.payload for n in self.conn.notifies(timeout=timeout, stop_after=1)}
        if names:  # drain whatever else has arrived, without waiting
            names.update(n.payload for n in self.conn.notifies(timeout=0.001))
        return names

    def close(self) -> None:
        self.conn.close()


def _close(source: _Source) -> None:
    try:
        source.close()
    except Exception as exc:  # noqa: BLE001 - closing a broken connection may fail too
        log.debug("closing the notifier's connection failed: %s", exc)


_UNKNOWN = object()
_registry: weakref.WeakKeyDictionary[Engine, tuple[int, Notifier]] = weakref.WeakKeyDictionary()
_registry_lock = threading.Lock()


def notifier_for(engine: Engine, **options: float) -> Notifier:
    """This process's notifier for `engine` (a fork gets a new one)."""
    with _registry_lock:
        entry = _registry.get(engine)
        if entry is None or entry[0] != os.getpid():
            entry = (os.getpid(), Notifier(engine, **options))
            _registry[engine] = entry
        return entry[1]
