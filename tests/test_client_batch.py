"""settee.client batches against a live settee: `_bulk_docs` with one result per item, `_bulk_get`,
and `_find` (SQLite, PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from live import LiveServer
from settee.client import (
    BadRequest,
    BatchCancelled,
    Conflict,
    Database,
    NotFound,
    Server,
)
from test_client import BACKENDS, counting, need, new_name, settee_server

pytestmark = pytest.mark.live
NAME = "batch"

@pytest.fixture(scope="module", params=BACKENDS)
def live(request: pytest.FixtureRequest,
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with settee_server(request, tmp_path_factory.mktemp(f"client-{NAME}-{request.param}"),
                       request.param) as server:
        yield server


@pytest.fixture
def server(live: LiveServer) -> Iterator[Server]:
    with Server(live.url, timeout=10.0) as client:
        yield client


@pytest.fixture
def db(server: Server) -> Database:
    return server.create(new_name())


# -- batches ------------------------------------------------------------------------------------


def test_batch_resolves_each_item_on_its_own(server: Server, db: Database) -> None:
    db["taken"] = {"v": 0}
    db["gone"] = {"v": 0}
    sent = counting(server)
    with db.batch(chunk_size=3) as batch:
        made = [batch.put({"_id": f"b{i}", "i": i}) for i in range(5)]
        clash = batch.put({"_id": "taken", "v": 1})  # no rev: conflicts
        generated = batch.put({"v": "no id"})
        assert made[0].done() and not generated.done()  # 6 items sent, the 7th queued
        removed = batch.delete("gone")  # rev looked up when sent
        missing = batch.delete("never-was")
    assert len([s for s in sent if "/_bulk_docs?" in s]) == 3  # 9 items, 3 a request
    assert all(r.rev.startswith("1-") for r in made)
    assert db["b3"]["i"] == 3
    error = clash.exception()
    assert isinstance(error, Conflict) and error.current_rev == db.rev("taken")
    with pytest.raises(Conflict):
        clash.result()
    assert generated.id and db[generated.id]["v"] == "no id"
    assert removed.rev.startswith("2-") and "gone" not in db
    assert isinstance(missing.exception(), NotFound)
    assert [r.done() for r in batch.results] == [True] * 9


def test_batch_sets_revs_and_sends_on_demand(db: Database) -> None:
    batch = db.batch()
    doc: dict[str, Any] = {"_id": "later", "n": 1}
    result = batch.put(doc)
    assert not result.done() and "later" not in db
    assert result.result() == doc["_rev"] and "later" in db  # asking sends the batch
    doc["n"] = 2
    update = batch.put(doc)
    stale = batch.put({"_id": "later", "_rev": result.rev, "n": 3})
    batch.flush()
    assert update.rev.startswith("2-") and isinstance(stale.exception(), Conflict)
    tomb = batch.delete(doc)
    batch.flush()
    assert tomb.rev.startswith("3-") and "later" not in db


def test_leaving_a_batch_by_an_exception_sends_nothing_more(db: Database) -> None:
    with pytest.raises(RuntimeError), db.batch(chunk_size=2) as batch:
        sent = [batch.put({"_id": f"s{i}"}) for i in range(3)]  # the first two are sent
        raise RuntimeError("stop")
    assert sent[0].rev and sent[1].rev
    assert isinstance(sent[2].exception(), BatchCancelled) and "s2" not in db


def test_a_refused_batch_fails_each_of_its_items(db: Database) -> None:
    with db.batch() as batch:
        items = [batch.put({"_id": "ok1"}), batch.put({"_id": "_bad"})]
    for item in items:
        assert isinstance(item.exception(), BadRequest)
    assert "ok1" not in db  # settee checks every document before writing any


def test_get_many_by_id_and_rev(db: Database) -> None:
    with db.batch() as batch:
        for i in range(7):
            batch.put({"_id": f"g{i}", "i": i})
    old = db["g1"]["_rev"]
    db.update("g1", lambda d: d.update(i=100))
    del db["g2"]
    results = db.get_many(["g0", ("g1", old), "g1", "g2", "nope", "g6"], chunk_size=4)
    assert results[0].result()["i"] == 0
    assert results[1].result()["i"] == 1 and results[2].result()["i"] == 100
    assert isinstance(results[3].exception(), NotFound)
    assert results[3].exception().reason == "deleted"  # type: ignore[union-attr]
    assert isinstance(results[4].exception(), NotFound)
    assert results[5].result()["_id"] == "g6"


def test_get_many_picks_couchdb_s_winner_among_conflicts(db: Database) -> None:
    docs = [{"_id": "cf", "_rev": "1-aaa", "side": "a"}, {"_id": "cf", "_rev": "1-bbb",
                                                        "side": "b"}]
    db.transport.json("POST", f"{db.path}/_bulk_docs", json_body={"docs": docs,
                                                                 "new_edits": False})
    (result,) = db.get_many(["cf"])
    assert result.result() == db["cf"] and result.result()["side"] == "b"


# -- Mango -------------------------------------------------------------------------------------


def test_find_pages_with_bookmarks(live: LiveServer, db: Database) -> None:
    need(live, "find")
    with db.batch() as batch:
        for i in range(12):
            batch.put({"_id": f"f{i:02d}", "n": i})
    found = db.find({"n": {"$gte": 3}}, fields=["_id", "n"], page_size=4)
    assert sorted(d["n"] for d in found) == list(range(3, 12))
    assert len(list(db.find({"n": {"$gte": 0}}, limit=5, page_size=2))) == 5
