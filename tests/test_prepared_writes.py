"""Large writes prepared before the lock (`writes.prepare`): used only while what they read stands.

Each test prepares a write, lets something change (or not) between the prepare and the locked
write, as a concurrent writer would, and checks the outcome is the one a write worked out under
the lock gives: nothing lost, nothing stale let through. On every backend.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from settee.store import Store, catalog, make_edit, sql, writes
from settee.store.writes import Edit, Prepared, WriteResult

N = writes.PREPARE_MIN_EDITS


def _dbid(store: Store, name: str) -> int:
    with store.engine.transaction() as conn:
        row = sql.fetchone(conn, "SELECT id FROM settee_dbs WHERE name = ?", (name,))
    assert row is not None
    return int(row[0])


def _prepare(store: Store, name: str, edits: Sequence[Edit], new_edits: bool = True
             ) -> Prepared:
    with store.engine.transaction(snapshot=False) as conn:
        prepared = writes.prepare(conn, _dbid(store, name), edits, new_edits=new_edits,
                                  layer=store.layer)
    assert prepared is not None
    return prepared


def _write(store: Store, name: str, edits: Sequence[Edit], prepared: Prepared | None,
           monkeypatch: pytest.MonkeyPatch) -> tuple[list[WriteResult], int]:
    """Write `edits` with `prepared`; also how often the edits were worked out under the lock."""
    calls = []
    apply = writes._apply_edits

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return apply(*args, **kwargs)

    monkeypatch.setattr(writes, "_apply_edits", counted)
    results = store.engine.run(lambda tx: writes.write_edits(
        tx, name, edits, new_edits=True, layer=store.layer, prepared=prepared))
    monkeypatch.setattr(writes, "_apply_edits", apply)
    return results, len(calls)


def _seeded(store: Store, name: str) -> dict[str, str]:
    """A database with N documents; their revs."""
    store.create_db(name)
    written = store.db(name).write([make_edit(f"d{i:02d}", {"n": i}) for i in range(N)])
    return {r.id: r.rev for r in written if r.rev is not None}


def _updates(revs: dict[str, str], value: int) -> list[Edit]:
    return [make_edit(doc_id, {"_rev": rev, "n": value}) for doc_id, rev in sorted(revs.items())]


def _prepared_update(store: Store, name: str) -> tuple[dict[str, str], list[Edit], Prepared]:
    """A seeded database, and an update of every document in it prepared against it."""
    revs = _seeded(store, name)
    edits = _updates(revs, 1)
    return revs, edits, _prepare(store, name, edits)


def test_writes_with_attachments_or_without_their_database_are_not_prepared(
        store: Store) -> None:
    store.create_db("small")
    dbid = _dbid(store, "small")
    with store.engine.transaction(snapshot=False) as conn:
        many = [make_edit(f"a{i}", {"n": i}) for i in range(N)]
        many[3] = make_edit("a3", {"_attachments": {"t.txt": {
            "content_type": "text/plain", "data": "aGk="}}})
        assert writes.prepare(conn, dbid, many, new_edits=True, layer=store.layer) is None
        update = [make_edit("s", {"_rev": "1-" + "0" * 32, "n": 1})]
        assert writes.prepare(conn, dbid + 1000, update, new_edits=True,
                              layer=store.layer) is None  # no such database


def test_documents_only_created_are_not_read(store: Store) -> None:
    """A creation (an interactive edit without a rev) is worked out as if the document were
    absent, without reading it or the revs limit; the locked write checks that it is."""
    revs = _seeded(store, "created")
    edits = [make_edit("fresh", {"n": 1}), make_edit("d01", {"_rev": revs["d01"], "n": 2})]
    prepared = _prepare(store, "created", edits)
    assert prepared.seen["fresh"] is None and prepared.seen["d01"] is not None
    assert prepared.revs_limit == 1000
    only_new = _prepare(store, "created", edits[:1])
    assert only_new.revs_limit is None and only_new.seen == {"fresh": None}
    assert [r.ok for r in only_new.results] == [True]


def test_an_unchanged_prepared_write_is_used_as_it_is(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    revs = _seeded(store, "same")
    edits = _updates(revs, 1) + [make_edit("new", {"n": 1})]
    prepared = _prepare(store, "same", edits)
    results, worked_under_lock = _write(store, "same", edits, prepared, monkeypatch)
    assert worked_under_lock == 0
    assert results is prepared.results and all(r.ok for r in results)
    db = store.db("same")
    assert {doc_id: db[doc_id]["n"] for doc_id in revs} == {doc_id: 1 for doc_id in revs}
    info = store.db_info("same")
    assert (info.doc_count, info.update_seq) == (N + 1, 2 * N + 1)


def test_a_document_updated_meanwhile_makes_the_write_work_again(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """The concurrent update wins; the prepared edit of that document, which names the rev it
    replaced, is refused as a conflict; the others go through."""
    revs, edits, prepared = _prepared_update(store, "upd")
    assert all(r.ok for r in prepared.results)  # as it looked before the other writer
    store.db("upd").write([make_edit("d05", {"_rev": revs["d05"], "n": 99})])
    results, worked_under_lock = _write(store, "upd", edits, prepared, monkeypatch)
    assert worked_under_lock == 1
    assert [r.id for r in results if not r.ok] == ["d05"]
    db = store.db("upd")
    assert db["d05"]["n"] == 99 and db["d04"]["n"] == 1
    assert db["d05"]["_rev"].startswith("2-")


def test_a_document_created_meanwhile_makes_the_write_work_again(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    store.create_db("new")
    edits = [make_edit(f"n{i:02d}", {"n": i}) for i in range(N)]
    prepared = _prepare(store, "new", edits)
    first = store.db("new").write([make_edit("n07", {"n": 700})])[0]
    results, worked_under_lock = _write(store, "new", edits, prepared, monkeypatch)
    assert worked_under_lock == 1
    assert [r.id for r in results if not r.ok] == ["n07"]
    assert store.db("new")["n07"] == {"_id": "n07", "_rev": first.rev, "n": 700}
    assert store.db_info("new").doc_count == N


def test_a_document_deleted_and_recreated_meanwhile_is_noticed(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """Recreating gives the document a new seq even when its rev tree ends up as before."""
    revs, edits, prepared = _prepared_update(store, "again")
    db = store.db("again")
    gone = db.delete("d09", revs["d09"])
    db.write([make_edit("d09", {"_rev": gone, "n": 9})])
    results, worked_under_lock = _write(store, "again", edits, prepared, monkeypatch)
    assert worked_under_lock == 1
    assert [r.id for r in results if not r.ok] == ["d09"]
    assert db["d09"]["n"] == 9


def test_a_tree_changed_without_a_new_seq_is_noticed(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """Compaction stems trees in place, keeping their seqs: the tree itself is compared too."""
    _, edits, prepared = _prepared_update(store, "tree")
    with store.engine.transaction(write=True) as conn:
        row = sql.fetchone(conn, "SELECT tree FROM settee_docs WHERE doc_id = ?", ("d03",))
        assert row is not None
        sql.execute(conn, "UPDATE settee_docs SET tree = ? WHERE doc_id = ?",
                    (str(row[0]) + " ", "d03"))  # same JSON, other text: a changed tree
    results, worked_under_lock = _write(store, "tree", edits, prepared, monkeypatch)
    assert worked_under_lock == 1 and all(r.ok for r in results)


def test_a_revs_limit_changed_meanwhile_makes_the_write_work_again(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    _, edits, prepared = _prepared_update(store, "limit")
    with store.engine.transaction(write=True) as conn:
        catalog.set_field(conn, "limit", "revs_limit", 1)
    results, worked_under_lock = _write(store, "limit", edits, prepared, monkeypatch)
    assert worked_under_lock == 1 and all(r.ok for r in results)
    with store.engine.transaction() as conn:
        trees = sql.fetchall(conn, "SELECT tree FROM settee_docs")
    assert len(trees) == N and all(str(tree).count("-") == 1 for (tree,) in trees)


def test_a_database_recreated_meanwhile_is_not_written_with_the_old_plan(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    _, edits, prepared = _prepared_update(store, "re")
    store.delete_db("re")
    store.create_db("re")
    results, worked_under_lock = _write(store, "re", edits, prepared, monkeypatch)
    assert worked_under_lock == 1
    assert not any(r.ok for r in results)  # every edit names a rev the new database lacks
    assert store.db_info("re").doc_count == 0


def test_two_prepared_writes_of_the_same_documents_have_one_winner_each(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """Both writers prepare against the same revs; the second to lock finds them changed and
    gets a conflict for every document, so no update is lost."""
    revs = _seeded(store, "race")
    one, two = _updates(revs, 1), _updates(revs, 2)
    first, second = _prepare(store, "race", one), _prepare(store, "race", two)
    won, _ = _write(store, "race", one, first, monkeypatch)
    lost, worked_under_lock = _write(store, "race", two, second, monkeypatch)
    assert all(r.ok for r in won) and not any(r.ok for r in lost) and worked_under_lock == 1
    db = store.db("race")
    assert all(db[doc_id]["n"] == 1 for doc_id in revs)
    assert store.db_info("race").update_seq == 2 * N


def test_replicated_edits_are_prepared_and_stay_idempotent(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    store.create_db("repl")
    edits = [make_edit(f"r{i:02d}", {"_rev": f"1-{i:032x}", "n": i}, new_edits=False)
             for i in range(N)]
    prepared = _prepare(store, "repl", edits, new_edits=False)
    results = store.engine.run(lambda tx: writes.write_edits(
        tx, "repl", edits, new_edits=False, layer=store.layer, prepared=prepared))
    assert [r.rev for r in results] == [f"1-{i:032x}" for i in range(N)]
    again = _prepare(store, "repl", edits, new_edits=False)
    assert again.changed == [] and store.db_info("repl").update_seq == N


def test_joined_parts_merge_only_when_they_touch_different_documents(store: Store) -> None:
    store.create_db("join")
    a = [make_edit(f"a{i:02d}", {"n": i}) for i in range(N)]
    b = [make_edit(f"b{i:02d}", {"n": i}) for i in range(N)]
    pa, pb, pa2 = _prepare(store, "join", a), _prepare(store, "join", b), _prepare(store, "join", a)
    joined = writes.join_prepared([pa, pb])
    assert joined is not None
    assert [r.id for r in joined.results] == [e.id for e in a + b]
    assert writes.join_prepared([pa, pa2]) is None  # the same documents twice
    assert writes.join_prepared([pa, None]) is None  # a part worked out under the lock
    assert writes.join_prepared([pa]) is pa
    results = store.engine.run(lambda tx: writes.write_edits(
        tx, "join", a + b, new_edits=True, layer=store.layer, prepared=joined))
    assert all(r.ok for r in results) and store.db_info("join").doc_count == 2 * N
