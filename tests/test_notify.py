"""The change notifier on both backends: polling, PostgreSQL NOTIFY, reconnects and lingering;
and the `_db_updates` event log's diff, as a pure function."""

from __future__ import annotations

import time
from typing import Any

import pytest
import sqlalchemy as sa
from settee.store import Store
from settee.store.changes import db_state
from settee.store.db_updates import diff
from settee.store.notify import ANY, APPLICATION_NAME, Notifier

DB = "watched"
POSTGRES_ONLY = pytest.mark.parametrize("store_url", ["postgres"], indirect=True)


@pytest.fixture
def watched(store: Store) -> Store:
    store.create_db(DB)
    return store


def _baseline(store: Store) -> Any:
    with store.engine.transaction() as conn:
        state = db_state(conn, DB)
    return state.instance, state.update_seq


def _write(store: Store, doc_id: str) -> None:
    store.db(DB).save(doc_id, {})  # the write path announces itself (store.notify.announce)


def test_a_write_wakes_a_watcher(watched: Store) -> None:
    notifier = Notifier(watched.engine, linger=0.2)
    with notifier.watching(DB, _baseline(watched)) as watch:
        ticket = watch.ticket()
        assert not watch.wait(ticket, 0.1)  # nothing happened yet
        _write(watched, "a")
        start = time.monotonic()
        assert watch.wait(ticket, 5)
        assert time.monotonic() - start < 1


def test_an_old_baseline_wakes_at_once(watched: Store) -> None:
    notifier = Notifier(watched.engine, linger=0.5)
    old = _baseline(watched)
    with notifier.watching(DB, old):
        time.sleep(0.1)  # the thread now knows the current state
    _write(watched, "a")
    with notifier.watching(DB, _baseline(watched)):
        time.sleep(0.1)
    with notifier.watching(DB, old) as watch:  # a feed whose read is older than what is known
        assert watch.wait(watch.ticket(), 0.01)


def test_any_wakes_on_creation_and_deletion(watched: Store) -> None:
    notifier = Notifier(watched.engine, linger=0.2)
    with notifier.watching(ANY) as watch:
        assert watch.wait(watch.ticket(), 1)  # no baseline: the first wait re-reads at once
        time.sleep(0.1)
        ticket = watch.ticket()
        watched.create_db("another")
        assert watch.wait(ticket, 5)
        time.sleep(0.1)
        ticket = watch.ticket()
        watched.delete_db("another")
        assert watch.wait(ticket, 5)


def test_the_thread_lingers_then_stops(watched: Store) -> None:
    notifier = Notifier(watched.engine, linger=0.2)
    with notifier.watching(DB, _baseline(watched)):
        assert notifier.running
    deadline = time.monotonic() + 5
    while notifier.running and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not notifier.running


@POSTGRES_ONLY
def test_postgres_notify_wakes_when_polling_has_slowed(watched: Store) -> None:
    notifier = Notifier(watched.engine, tick=0.02, safety_tick=60, linger=0.2)
    with notifier.watching(DB, _baseline(watched)) as watch:
        deadline, n = time.monotonic() + 5, 0
        while not notifier.announced and time.monotonic() < deadline:
            _write(watched, f"first{n}")  # the first ones may come before LISTEN does
            n += 1
            time.sleep(0.05)
        assert notifier.announced  # writers announce: polling drops to the safety interval
        time.sleep(0.1)
        ticket = watch.ticket()
        _write(watched, "announced")
        start = time.monotonic()
        assert watch.wait(ticket, 5)
        assert time.monotonic() - start < 0.5


@POSTGRES_ONLY
def test_postgres_listener_reconnects_and_wakes_everyone(watched: Store,
                                                         pg_admin: sa.Engine) -> None:
    notifier = Notifier(watched.engine, linger=0.2)
    database = watched.engine.url.database
    with notifier.watching(DB, _baseline(watched)) as watch:
        time.sleep(0.2)  # connected and listening
        ticket = watch.ticket()
        with pg_admin.connect() as conn:
            killed = conn.exec_driver_sql(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %(db)s AND application_name = %(app)s",
                {"db": database, "app": APPLICATION_NAME}).fetchall()
        assert killed
        assert watch.wait(ticket, 10)  # NOTIFYs may have been lost: everyone re-reads


# -- the _db_updates log, as a pure function ---------------------------------------------------

def test_db_updates_diff() -> None:
    live = {"a": ("i1", 0), "b": ("i2", 5)}
    assert diff(live, {}) == [("a", "created", "i1", 0), ("b", "created", "i2", 0),
                              ("b", "updated", "i2", 5)]
    recorded = {"a": {"created": (1, "i1", 0)},
                "b": {"created": (2, "i2", 0), "updated": (3, "i2", 5)}}
    assert diff(live, recorded) == []
    assert diff({"a": ("i1", 2)}, recorded) == [("a", "updated", "i1", 2),
                                                ("b", "deleted", "i2", 0)]
    recreated = {"a": ("i9", 0), "b": ("i2", 5)}
    assert diff(recreated, recorded) == [("a", "deleted", "i1", 0), ("a", "created", "i9", 0)]
    gone = {"b": {"created": (2, "i2", 0), "deleted": (4, "i2", 0)}}
    assert diff({}, gone) == []
    assert diff({"b": ("i3", 0)}, gone) == [("b", "created", "i3", 0)]
