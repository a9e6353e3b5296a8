"""PostgreSQL connections per process are capped, waited for, and never multiplied by threads.

A worker's first requests arrive on many threads at once: the engine (and so its pool) must be
built once, not once per thread (four pools of 8 were seen in one worker before the fix). A
request that finds every connection of its process busy waits for one, and after the bounded
wait (the busy timeout) gets `StoreBusy` (503), never a PostgreSQL "too many clients".
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import reliability
from settee.store import sql
from settee.store.engine import Engine
from settee.store.errors import StoreBusy

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with reliability.store_url_for("postgres", request, tmp_path) as url:
        yield url


def _hold(engine: Engine, seconds: float, started: threading.Barrier) -> None:
    with engine.transaction() as conn:
        sql.fetchone(conn, "SELECT 1")
        started.wait()
        time.sleep(seconds)


def test_first_use_on_many_threads_builds_one_pool(pg_url: str) -> None:
    engine = Engine(pg_url, pool_size=2)
    seen: list[object] = []
    gate = threading.Barrier(16)

    def first_request() -> None:
        gate.wait()
        seen.append(engine.sa)

    threads = [threading.Thread(target=first_request) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert len({id(e) for e in seen}) == 1
    finally:
        engine.dispose()


@contextmanager
def both_connections_busy(engine: Engine, seconds: float) -> Iterator[None]:
    """Two threads hold the engine's two connections for `seconds` while the block runs."""
    started = threading.Barrier(3)
    holders = [threading.Thread(target=_hold, args=(engine, seconds, started)) for _ in range(2)]
    for t in holders:
        t.start()
    started.wait()
    try:
        yield
    finally:
        for t in holders:
            t.join()


def test_a_busy_pool_is_waited_for(pg_url: str) -> None:
    engine = Engine(pg_url, pool_size=2, busy_timeout_ms=5000)
    with both_connections_busy(engine, 0.5):
        began = time.monotonic()
        with engine.transaction() as conn:  # a third: waits for one of the two to come back
            assert sql.fetchone(conn, "SELECT 1") == (1,)
        waited = time.monotonic() - began
        assert 0.2 < waited < 4.0, waited
        assert engine.sa.pool.checkedout() <= 2  # type: ignore[attr-defined]
    engine.dispose()


def test_a_pool_busy_too_long_is_store_busy(pg_url: str) -> None:
    engine = Engine(pg_url, pool_size=2, busy_timeout_ms=300)
    with both_connections_busy(engine, 1.5):
        began = time.monotonic()
        with pytest.raises(StoreBusy):
            with engine.transaction():
                pass
        assert 0.25 < time.monotonic() - began < 1.4
    with engine.transaction() as conn:  # the next request, once they are back, just works
        assert sql.fetchone(conn, "SELECT 1") == (1,)
    engine.dispose()
