"""Two workers refreshing one stale index at once: the compare-and-set on the index seq lets one
apply each batch, the other discards its copy and re-reads; nothing is applied twice.

The workers are two `Store`s on the same database (two engines, two view services, as two
gunicorn processes would have), each refreshing from its own thread. The map function holds
both at a barrier during their first batch, so both have read and mapped the same changes
before either writes: the race is certain, not left to timing.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from settee.store import Store, StoreConfig, make_edit, sql
from settee.views import storage
from settee.views.service import ViewSettings, service_for

DB = "race"
DOCS = 400
_barrier = threading.Barrier(2, timeout=10)
_waited = threading.local()


def racing_map(doc: dict[str, Any]) -> Iterator[tuple[Any, Any]]:
    """Emit `doc.g` -> `doc.n`; each thread's first call waits for the other thread's."""
    if not getattr(_waited, "done", False):
        _waited.done = True
        _barrier.wait()
    yield doc["g"], doc["n"]


@pytest.fixture
def workers(store_url: str) -> Iterator[list[Store]]:
    stores = [Store(StoreConfig(url=store_url)) for _ in range(2)]
    for s in stores:
        s.setup()
    yield stores
    for s in stores:
        service_for(s).close()
        s.close()


def test_concurrent_refreshes_apply_each_batch_once(workers: list[Store],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    first = workers[0]
    first.create_db(DB)
    first.db(DB).write([make_edit(f"d{i:04d}", {"g": i % 10, "n": i}) for i in range(DOCS)])
    first.db(DB).write([make_edit("_design/r", {"language": "python", "views": {
        "sum": {"map": "test_view_concurrency:racing_map", "reduce": "_sum"}}})])
    settings = ViewSettings(python_functions="test_view_concurrency:racing_map", batch_size=50)
    services = [service_for(s, settings) for s in workers]

    lost: list[int] = []
    real_apply = storage.apply

    def counting_apply(conn: Any, plans: Any) -> None:
        try:
            real_apply(conn, plans)
        except storage.LostRace:
            lost.append(1)
            raise

    monkeypatch.setattr(storage, "apply", counting_apply)  # the module indexer calls
    errors: list[BaseException] = []

    def refresh(service: Any) -> None:
        try:
            service.refresh(DB, service.design(DB, "_design/r"))
        except BaseException as exc:  # noqa: BLE001  reported below, never swallowed
            errors.append(exc)

    threads = [threading.Thread(target=refresh, args=(s,)) for s in services]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert lost, "the two workers never raced for a batch"

    with first.engine.transaction() as conn:
        db_row = sql.fetchone(conn, "SELECT update_seq FROM settee_dbs WHERE name = ?", (DB,))
        assert db_row is not None
        db_seq = db_row[0]
        (index_id, seq, row_count), = sql.fetchall(
            conn, "SELECT id, seq, row_count FROM settee_view_indexes")
        rows = sql.fetchall(conn, "SELECT doc_id, dup FROM settee_view_rows WHERE index_id = ?",
                            (index_id,))
        reds = sql.fetchall(conn, "SELECT reduction, row_count FROM settee_view_reductions "
                            "WHERE index_id = ?", (index_id,))
    assert seq == db_seq
    assert sorted(r[0] for r in rows) == [f"d{i:04d}" for i in range(DOCS)]
    assert row_count == DOCS and all(dup == 0 for _, dup in rows)
    assert sum(int(bytes(r)) for r, _ in reds) == sum(range(DOCS))
    assert sum(n for _, n in reds) == DOCS
