"""The store's Python face: databases and the versioned mapping, on every backend."""

from __future__ import annotations

from typing import Any

import pytest
from settee.store import (
    Conflict,
    DbExists,
    DbNotFound,
    NotFound,
    Store,
    errors,
    make_edit,
    reads,
    sql,
)


def test_create_list_delete_databases(store: Store) -> None:
    store.create_db("b")
    store.create_db("a")
    assert store.all_dbs() == ["a", "b"]
    with pytest.raises(DbExists):
        store.create_db("a")
    store.delete_db("a")
    assert store.all_dbs() == ["b"]
    with pytest.raises(DbNotFound):
        store.delete_db("a")


def test_server_uuid_is_stable_across_store_instances(store: Store) -> None:
    first = store.uuid
    again = Store(store.config)
    assert again.uuid == first
    again.close()


def test_mapping_reads_writes_and_conflicts(store: Store) -> None:
    store.create_db("m")
    db = store["m"]
    db["x"] = {"n": 1}
    doc = db["x"]
    assert doc == {"_id": "x", "_rev": doc["_rev"], "n": 1}
    assert doc["_rev"].startswith("1-")
    with pytest.raises(Conflict):
        db["x"] = {"n": 2}  # no _rev on a live doc
    with pytest.raises(Conflict):
        db["x"] = {"n": 2, "_rev": "1-0000000000000000000000000000dead"}
    db["x"] = {"n": 2, "_rev": doc["_rev"]}
    assert db["x"]["n"] == 2
    assert db["x"]["_rev"].startswith("2-")


def test_missing_and_deleted_raise_not_found_with_reason(store: Store) -> None:
    store.create_db("m")
    db = store["m"]
    with pytest.raises(NotFound) as missing:
        db["nope"]
    assert missing.value.reason == "missing"
    db["gone"] = {}
    del db["gone"]
    with pytest.raises(NotFound) as deleted:
        db["gone"]
    assert deleted.value.reason == "deleted"
    assert "gone" not in db
    assert db.get("gone", 42) == 42


def test_iteration_in_raw_id_order_and_len(store: Store) -> None:
    store.create_db("m")
    db = store["m"]
    ids = ["b", "a", "B", "é", "_design/z", "a/b"]
    for doc_id in ids:
        db[doc_id] = {}
    assert list(db) == sorted(ids, key=lambda s: s.encode())
    assert len(db) == len(ids)
    del db["a"]
    assert "a" not in list(db)
    assert len(db) == len(ids) - 1


def test_iteration_pages_through_many_documents(store: Store) -> None:
    store.create_db("m")
    db = store["m"]
    edits = [make_edit(f"d{i:05d}", {"i": i}) for i in range(2500)]
    assert all(r.ok for r in db.write(edits))
    seen = list(db)
    assert seen == [f"d{i:05d}" for i in range(2500)]


def test_big_integers_and_key_order_survive(store: Store) -> None:
    store.create_db("m")
    db = store["m"]
    db["n"] = {"z": 2**70, "a": 1.0, "m": -0.5}
    doc = db["n"]
    assert list(doc) == ["_id", "_rev", "z", "a", "m"]
    assert doc["z"] == 2**70 and isinstance(doc["a"], float)


def test_replicated_edits_create_conflicts_and_are_idempotent(store: Store) -> None:
    store.create_db("m")
    db = store["m"]
    a = make_edit("c", {"_rev": "1-aaaa", "v": "a"}, new_edits=False)
    b = make_edit("c", {"_rev": "1-bbbb", "v": "b"}, new_edits=False)
    assert all(r.ok for r in db.write([a, b], new_edits=False))
    seq = store.db_info("m").update_seq
    assert db["c"]["v"] == "b"  # higher rev id wins
    assert all(r.ok for r in db.write([a, b], new_edits=False))
    assert store.db_info("m").update_seq == seq


def test_compressed_and_plain_bodies_read_back(store: Store) -> None:
    store.create_db("m")
    db = store["m"]
    big = {"text": "x" * 20000}
    db["big"] = big
    assert db["big"]["text"] == big["text"]
    with store.engine.transaction() as conn:
        row = sql.fetchone(conn, "SELECT body FROM settee_revs WHERE doc_id = 'big'")
    assert row is not None and len(bytes(row[0])) < 2000  # zstd above the threshold


def test_counts_follow_deletes_and_recreates(store: Store) -> None:
    store.create_db("m")
    db = store["m"]
    db["a"] = {}
    db["b"] = {}
    del db["a"]
    info = store.db_info("m")
    assert (info.doc_count, info.doc_del_count) == (1, 1)
    db["a"] = {"back": True}  # recreate without a rev on a deleted doc
    assert db["a"]["_rev"].startswith("3-")
    info = store.db_info("m")
    assert (info.doc_count, info.doc_del_count, info.update_seq) == (2, 0, 4)


def test_sqlite_connections_are_durable(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from settee.store import StoreConfig, sqlite_url
    s = Store(StoreConfig(url=sqlite_url(str(tmp_path))))
    s.setup()
    conns = [s.engine.sa.connect() for _ in range(5)]
    try:
        for conn in conns:
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2
            busy_timeout = conn.exec_driver_sql("PRAGMA busy_timeout").scalar()
            assert busy_timeout is not None and busy_timeout > 0
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    finally:
        for conn in conns:
            conn.close()
        s.close()


def test_write_to_missing_database_raises(store: Store) -> None:
    with pytest.raises(errors.DbNotFound):
        store.db("nope").save("x", {})


@pytest.mark.parametrize("store_url", ["postgres"], indirect=True)
def test_a_pooled_connection_cut_while_idle_is_replaced(
        store: Store, pg_admin: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """PostgreSQL: a connection the server dropped while it sat in the pool is pinged at
    checkout and replaced, so the next request does not fail (hot connections skip the ping)."""
    from settee.store import engine as engine_module

    store.create_db("idle")
    store["idle"]["a"] = {"n": 1}
    with store.engine.transaction() as conn:
        pid = sql.fetchone(conn, "SELECT pg_backend_pid()")[0]  # type: ignore[index]
    with pg_admin.connect() as admin:
        admin.exec_driver_sql(f"SELECT pg_terminate_backend({int(pid)})")
    monkeypatch.setattr(engine_module, "PING_AFTER_IDLE", 0.0)
    assert store["idle"]["a"]["n"] == 1
    store["idle"]["b"] = {"n": 2}
    assert len(store["idle"]) == 2


def test_planned_revs_are_used_only_when_their_assumption_holds(store: Store) -> None:
    """`plan_revs` hashes before the lock assuming the parent is the `_rev` named (or none);
    recreating a deleted doc has the deleted leaf as parent, so the plan is not used."""
    from settee.store.revisions import new_rev_id
    from settee.store.writes import Edit, plan_revs

    store.create_db("plan")
    db = store.db("plan")
    fresh = Edit("a", {"n": 1}, b'{"n":1}')
    plan_revs([fresh])
    assert db.write([fresh])[0].rev == fresh.planned_rev == new_rev_id({"n": 1}, deleted=False,
                                                                     parent=None)
    gone = db.delete("a", fresh.planned_rev)
    again = Edit("a", {"n": 1}, b'{"n":1}')
    plan_revs([again])
    written = db.write([again])[0].rev
    assert written != again.planned_rev
    assert written == new_rev_id({"n": 1}, deleted=False, parent=gone)
    assert db["a"]["_rev"] == written


def test_a_write_of_new_updated_and_deleted_docs_stores_each(store: Store) -> None:
    """One write that creates, updates and deletes documents, and has one stale edit refused,
    leaves each at its new rev with its own seq, and the counters right."""
    store.create_db("mix")
    db = store.db("mix")
    first = db.write([make_edit(f"d{i}", {"n": i}) for i in range(4)])
    revs = {r.id: r.rev for r in first}
    second = db.write([
        make_edit("d0", {"_rev": revs["d0"], "n": 10}),
        make_edit("d1", {"_rev": revs["d1"], "_deleted": True}),
        make_edit("new", {"n": 5}),
        make_edit("d2", {"_rev": "1-" + "0" * 32, "n": 12}),  # stale: refused, nothing written
    ])
    assert [r.ok for r in second] == [True, True, True, False]
    assert db["d0"] == {"_id": "d0", "_rev": second[0].rev, "n": 10}
    with pytest.raises(NotFound):
        db["d1"]
    assert db["new"]["n"] == 5 and db["d2"]["_rev"] == revs["d2"]
    info = store.db_info("mix")
    assert (info.doc_count, info.doc_del_count, info.update_seq) == (4, 1, 7)
    with store.engine.transaction() as conn:
        dbid = sql.fetchone(conn, "SELECT id FROM settee_dbs WHERE name = ?", ("mix",))[0]  # type: ignore[index]
        seqs = {row.id: row.seq for row in reads.changes_since(conn, dbid, 4, limit=None)}
    assert seqs == {"d0": 5, "d1": 6, "new": 7}
