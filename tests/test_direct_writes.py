"""PostgreSQL's one-statement writes (`store.direct`): the same rows as a write transaction stores,
and nothing at all whenever what the write was worked out against has changed.

Each check test prepares a write, lets a concurrent writer change one thing the write depends on,
and checks the function stores nothing (the caller then writes in a transaction, worked out again
under the lock, as `test_prepared_writes` covers). The last tests go through the HTTP app.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest
from conftest import Client
from lockkit import lock_held, wait_for_lock_wait
from settee.store import Store, StoreConfig, catalog, direct, make_edit, sql, writes
from settee.store.engine import Tx
from settee.store.layers import build_stack
from settee.store.writes import DESIGN, DESIGN_END, Edit, Prepared, WriteResult

pytestmark = pytest.mark.parametrize("store_url", ["postgres"], indirect=True)


def _dbid(store: Store, name: str) -> int:
    with store.engine.transaction() as conn:
        row = sql.fetchone(conn, "SELECT id FROM settee_dbs WHERE name = ?", (name,))
    assert row is not None
    return int(row[0])


def _prepare(store: Store, name: str, edits: Sequence[Edit], new_edits: bool = True) -> Prepared:
    with store.engine.transaction(snapshot=False) as conn:
        prepared = writes.prepare(conn, _dbid(store, name), edits, new_edits=new_edits,
                                  layer=store.layer)
    assert prepared is not None
    return prepared


def _design(store: Store, name: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    """The database's `_security` text and live design docs, as validation sees them."""
    with store.engine.transaction() as conn:
        _, state = writes.db_with_design(conn, name, lock=False)
    return state.security, state.ddocs


def _direct(store: Store, name: str, prepared: Prepared,
            design: tuple[str, tuple[tuple[str, str], ...]] | None = None) -> Any:
    security, ddocs = design or _design(store, name)
    with store.engine.transaction(write=True, snapshot=False) as conn:
        return direct.write(conn, name, prepared, security, ddocs)


def _rows(store: Store, name: str) -> dict[str, Any]:
    """Everything a write stores in a database, without its id or the created times."""
    dbid = _dbid(store, name)
    with store.engine.transaction() as conn:
        counters = sql.fetchone(conn, "SELECT update_seq, doc_count, doc_del_count, body_bytes "
                                      "FROM settee_dbs WHERE id = ?", (dbid,))
        docs = sql.fetchall(conn, "SELECT doc_id, tree, winner, deleted, seq FROM settee_docs "
                                  "WHERE db_id = ? ORDER BY doc_id", (dbid,))
        revs = sql.fetchall(conn, "SELECT doc_id, rev FROM settee_revs WHERE db_id = ? "
                                  "ORDER BY doc_id, rev", (dbid,))
    db = store.db(name)
    bodies = {doc[0]: db[doc[0]] for doc in docs if not doc[3]}
    return {"counters": counters, "docs": docs, "revs": revs, "bodies": bodies}


def _steps(revs: dict[str, str]) -> Iterator[tuple[list[Edit], bool, bool]]:
    """A history of writes, each step given the revs the steps before it wrote: its edits,
    `new_edits`, and whether a direct write stores it (a recreation is prepared as if the
    document were absent, and the function finds its tombstone)."""
    def update(doc_id: str, n: int) -> Edit:
        return make_edit(doc_id, {"_rev": revs[doc_id], "n": n})

    yield [make_edit(f"d{i}", {"n": i}) for i in range(5)], True, True
    yield [make_edit("r", {"_rev": "1-" + "a" * 32, "n": 0}, new_edits=False),
           make_edit("r", {"_rev": "2-" + "b" * 32, "_revisions": {
               "start": 2, "ids": ["b" * 32, "a" * 32]}, "n": 1}, new_edits=False)], False, True
    for n in range(3):  # past the revs limit: trees stemmed, bodies dropped
        yield [update("d0", 10 + n), update("d1", 10 + n)], True, True
    yield [make_edit("d2", {"_rev": revs["d2"], "_deleted": True})], True, True
    yield [make_edit("d2", {"again": True})], True, False


def test_a_direct_write_stores_the_rows_a_transaction_stores(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """Creations, updates, a deletion, a recreation, replicated edits, and stemming (revs
    limit 2) that drops revisions: rows, bodies, seqs and counters all agree (bodies packed
    without the time they were written, so that their sizes agree too)."""
    monkeypatch.setattr(store, "layer", build_stack(4096, timestamps=False))
    for name in ("txn", "direct"):
        store.create_db(name)
        with store.engine.transaction(write=True) as conn:
            catalog.set_field(conn, name, "revs_limit", 2)
        revs: dict[str, str] = {}
        for edits, new_edits, stored in _steps(revs):
            if name == "direct":
                results = _direct(store, name, _prepare(store, name, edits, new_edits))
                assert (results is not None) == stored
            if name == "txn" or not stored:
                def write(tx: Tx, e: list[Edit] = edits, ne: bool = new_edits,
                          n: str = name) -> list[WriteResult]:
                    return writes.write_edits(tx, n, e, new_edits=ne, layer=store.layer)
                results = store.engine.run(write)
            assert results is not None and all(r.ok for r in results)
            revs.update({r.id: r.rev for r in results if r.rev is not None})
    written = _rows(store, "direct")
    assert written == _rows(store, "txn")
    d0 = [rev for doc_id, rev in written["revs"] if doc_id == "d0"]
    assert revs["d0"] in d0 and not any(rev.startswith(("1-", "2-")) for rev in d0)  # stemmed
    assert written["counters"][1:3] == (6, 0) and written["bodies"]["d0"]["n"] == 12


def _seeded(store: Store, name: str) -> dict[str, str]:
    store.create_db(name)
    written = store.db(name).write([make_edit(f"d{i}", {"n": i}) for i in range(4)])
    return {r.id: r.rev for r in written if r.rev is not None}


def _update_d1(store: Store, name: str, revs: dict[str, str]) -> None:
    store.db(name).write([make_edit("d1", {"_rev": revs["d1"], "n": 99})])


def _create_new(store: Store, name: str, revs: dict[str, str]) -> None:
    store.db(name).write([make_edit("new", {"n": "theirs"})])


def _restem_d2(store: Store, name: str, revs: dict[str, str]) -> None:
    with store.engine.transaction(write=True) as conn:
        sql.execute(conn, "UPDATE settee_docs SET tree = tree || ' ' WHERE doc_id = ?", ("d2",))


def _limit(store: Store, name: str, revs: dict[str, str]) -> None:
    with store.engine.transaction(write=True) as conn:
        catalog.set_field(conn, name, "revs_limit", 7)


def _security(store: Store, name: str, revs: dict[str, str]) -> None:
    with store.engine.transaction(write=True) as conn:
        catalog.set_field(conn, name, "security", '{"members":{"names":["x"]}}')


def _add_design(store: Store, name: str, revs: dict[str, str]) -> None:
    store.db(name).write([make_edit("_design/v", {"validate_doc_update": "function(){}"})])


def _recreate(store: Store, name: str, revs: dict[str, str]) -> None:
    store.delete_db(name)
    store.create_db(name)


MEANWHILE: dict[str, Callable[[Store, str, dict[str, str]], None]] = {
    "a document read is updated": _update_d1,
    "a document taken to be absent is created": _create_new,
    "a tree is changed in place with its seq": _restem_d2,
    "the revs limit changes": _limit,
    "the security object changes": _security,
    "a design document is added": _add_design,
    "the database is deleted and created again": _recreate,
}


@pytest.mark.parametrize("change", list(MEANWHILE))
def test_a_direct_write_stores_nothing_once_what_it_read_has_changed(
        store: Store, change: str) -> None:
    revs = _seeded(store, "db")
    edits = [make_edit(f"d{i}", {"_rev": revs[f"d{i}"], "n": -i}) for i in range(4)]
    edits.append(make_edit("new", {"n": "ours"}))
    design = _design(store, "db")
    prepared = _prepare(store, "db", edits)
    MEANWHILE[change](store, "db", revs)
    before = _rows(store, "db")
    assert _direct(store, "db", prepared, design) is None
    assert _rows(store, "db") == before


def test_an_unchanged_write_with_a_design_doc_and_security_is_stored(store: Store) -> None:
    """The checks compare like with like: a database with design docs (one deleted) and a
    security object takes direct writes while they stay as they were."""
    revs = _seeded(store, "db")
    gone = store.db("db").write([make_edit("_design/a", {"views": {}}),
                                 make_edit("_design/b", {"views": {}})])
    gone_rev = gone[0].rev
    assert gone_rev is not None
    store.db("db").delete("_design/a", gone_rev)
    _security(store, "db", revs)
    security, ddocs = _design(store, "db")
    assert [doc_id for doc_id, _ in ddocs] == ["_design/b"] and "names" in security
    prepared = _prepare(store, "db", [make_edit("d3", {"_rev": revs["d3"], "n": 3})])
    assert _direct(store, "db", prepared) is not None
    assert store.db("db")["d3"]["_rev"].startswith("2-")
    with store.engine.transaction() as conn:
        rows = sql.fetchall(conn, "SELECT doc_id FROM settee_docs WHERE doc_id >= ? "
                                  "AND doc_id < ?", (DESIGN, DESIGN_END))
    assert len(rows) == 2


def test_a_write_waiting_for_the_lock_sees_what_the_holder_committed(store: Store) -> None:
    """The function's checks run after its lock is granted, each on a fresh snapshot: a
    document another writer created while holding the lock is seen, and the write stores
    nothing (a check on the snapshot from before the wait would let a duplicate through)."""
    store.create_db("db")
    prepared = _prepare(store, "db", [make_edit("x", {"n": "ours"})])
    design = _design(store, "db")
    outcome: list[Any] = []
    waiter = threading.Thread(target=lambda: outcome.append(_direct(store, "db", prepared,
                                                                    design)))
    with lock_held(store, "db", [make_edit("x", {"n": "theirs"})]):
        waiter.start()
        if not wait_for_lock_wait(store, f"%{direct.FUNCTION}%"):
            pytest.fail("the direct write never waited for the lock")
    waiter.join(10)
    assert outcome == [None]
    assert store.db("db")["x"]["n"] == "theirs" and store.db_info("db").doc_count == 1


def test_a_put_is_stored_by_one_statement_and_a_conflict_is_not(
        client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    """Through the app: a creation and an update take the direct path; a PUT that conflicts
    gets its 409 from the transaction path, and an attachment PUT takes that path too."""
    stored: list[bool] = []
    real = direct.write

    def counted(*args: Any, **kwargs: Any) -> Any:
        result = real(*args, **kwargs)
        stored.append(result is not None)
        return result

    monkeypatch.setattr(direct, "write", counted)
    client.put("/db", status=201)
    rev = client.put_json("/db/a", {"n": 1}, status=201).json["rev"]
    client.put_json("/db/a", {"n": 2, "_rev": rev}, status=201)
    assert stored == [True, True]
    client.put_json("/db/a", {"n": 3, "_rev": rev}, status=409)  # every edit refused
    client.put_json("/db/a", {"n": 3}, status=409)  # taken to be absent: it is not
    assert stored == [True, True, False, False]
    client.put_json("/db/b", {"_attachments": {"t": {"content_type": "text/plain",
                                                    "data": "aGk="}}}, status=201)
    assert stored == [True, True, False, False]  # not even tried: it has attachments
    assert client.get("/db").json["doc_count"] == 2


def test_concurrent_increments_through_the_app_lose_no_update(client: Client) -> None:
    """Threads read, increment and PUT one counter, retrying on 409: every acknowledged
    increment is in the final value, and the rev's generation counts them."""
    client.put("/db", status=201)
    client.put_json("/db/counter", {"n": 0}, status=201)
    done: list[int] = []

    def bump(times: int) -> None:
        for _ in range(times):
            while True:
                doc = client.get("/db/counter").json
                answer = client.put_json("/db/counter", {"n": doc["n"] + 1, "_rev": doc["_rev"]},
                                         expect_errors=True)
                if answer.status_int == 201:
                    done.append(1)
                    break
                assert answer.status_int == 409

    threads = [threading.Thread(target=bump, args=(15,)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    doc = client.get("/db/counter").json
    assert len(done) == 60 and doc["n"] == 60 and doc["_rev"].startswith("61-")


def test_a_start_leaves_an_installed_function_as_it_is(store: Store, store_url: str) -> None:
    """A node's start creates the function only where it is missing: rewriting it would need
    disk space (a node must start on a full disk) and would race the other nodes' starts."""
    def version() -> Any:
        with store.engine.transaction() as conn:
            row = sql.fetchone(conn, f"SELECT xmin::text FROM pg_proc "
                                     f"WHERE oid = to_regprocedure('{direct.SIGNATURE}')")
        return row and row[0]

    before = version()
    assert before is not None
    again = Store(StoreConfig(store_url))
    try:
        again.setup()
    finally:
        again.close()
    assert version() == before
