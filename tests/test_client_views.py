"""settee.client views against a live settee (SQLite, PostgreSQL): paged rows = the unpaged answer.

The truth for each query is one unpaged request sent by hand; the client must return the same
rows in the same order for page sizes from 1 up, paging with `startkey`/`startkey_docid` and never
`skip`, including documents that emit the same key twice (equal key and doc id) and descending
grouped reduces, where a page boundary must not cut a group.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from live import LiveServer
from settee.client import Database, NotFound, Server
from test_client import BACKENDS, counting, need, settee_server

pytestmark = pytest.mark.live

DDOC = {
    "views": {
        "by_k": {"map": "function(doc) { if (doc.k !== undefined) { emit(doc.k, doc.v);"
                        " if (doc.twice) { emit(doc.k, doc.v); } } }",
                 "reduce": "_sum"},
        "tree": {"map": "function(doc) { if (doc.path) { emit(doc.path, 1); } }",
                 "reduce": "_count"},
        "plain": {"map": "function(doc) { if (doc.k !== undefined) { emit([doc.k, doc.v],"
                         " null); } }"},
    }
}
KEYS: list[Any] = [None, False, 1, 2, 2.5, "a", "B", "b", ["x"], ["x", 1], {"o": 1}]


@pytest.fixture(scope="module", params=BACKENDS)
def live(request: pytest.FixtureRequest,
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with settee_server(request, tmp_path_factory.mktemp(f"client-views-{request.param}"),
                       request.param) as server:
        yield server


@pytest.fixture(scope="module")
def db(live: LiveServer) -> Database:
    need(live, "views")
    database = Server(live.url).create("v_" + uuid.uuid4().hex[:8])
    database["_design/app"] = json.loads(json.dumps(DDOC))
    with database.batch() as batch:
        for i in range(40):
            batch.put({"_id": f"d{i:02d}", "k": KEYS[i % len(KEYS)], "v": i, "twice": i % 3 == 0})
        paths = [["a"], ["a", "x"], ["a", "x", 1], ["a", "y"], ["b"], ["b", "x"], ["b", "x", 2],
                 ["b", "y"], ["c", "z"]]
        for i in range(27):
            batch.put({"_id": f"t{i:02d}", "path": paths[i % len(paths)]})
    return database


def truth(live: LiveServer, db: Database, view: str, **params: Any) -> list[dict[str, Any]]:
    """The rows of one unpaged request, encoded by hand."""
    query = urlencode({name: json.dumps(value) if name in ("key", "startkey", "endkey")
                       else str(value).lower() if isinstance(value, bool) else str(value)
                       for name, value in params.items()}, quote_via=quote)
    reply = live.request("GET", f"/{db.name}/_design/app/_view/{view}?{query}")
    assert reply.status == 200, reply.body
    rows: list[dict[str, Any]] = reply.json()["rows"]
    return rows


@pytest.mark.parametrize("params", [
    {"reduce": False},
    {"reduce": False, "descending": True},
    {"reduce": False, "startkey": 1, "endkey": "b"},
    {"reduce": False, "startkey": "b", "endkey": 1, "descending": True},
    {"reduce": False, "startkey": 2, "endkey": ["x"], "inclusive_end": False},
    {"reduce": False, "key": "a"},
    {"reduce": False, "include_docs": True, "startkey": ["x"]},
    {"reduce": False, "startkey": "a", "startkey_docid": "d16"},
], ids=lambda p: ",".join(f"{k}={v}" for k, v in p.items()))
def test_map_rows_equal_the_unpaged_answer(live: LiveServer, db: Database,
                                           params: dict[str, Any]) -> None:
    expected = truth(live, db, "by_k", **params)
    assert len(expected) > 2
    for page_size in (1, 2, 3, 5, 8, 1000):
        assert list(db.view("app/by_k", page_size=page_size, **params)) == expected


def test_duplicate_emits_are_paged_exactly(live: LiveServer, db: Database) -> None:
    expected = truth(live, db, "by_k", reduce=False, key=1)
    ids = [r["id"] for r in expected]
    assert len(ids) > len(set(ids))  # the same (key, id) twice in a row
    for page_size in (1, 2, 3):
        assert list(db.view("app/by_k", key=1, reduce=False, page_size=page_size)) == expected


@pytest.mark.parametrize("params", [
    {"group": True},
    {"group": True, "descending": True},
    {"group_level": 1},
    {"group_level": 1, "descending": True},
    {"group_level": 2},
    {"group_level": 2, "descending": True},
    {"group_level": 1, "startkey": ["a", "x"], "endkey": ["b", "x"]},
    {},
], ids=lambda p: ",".join(f"{k}={v}" for k, v in p.items()) or "no-group")
def test_grouped_reduce_rows_equal_the_unpaged_answer(live: LiveServer, db: Database,
                                                      params: dict[str, Any]) -> None:
    expected = truth(live, db, "tree", **params)
    for page_size in (1, 2, 3, 1000):
        assert list(db.view("app/tree", page_size=page_size, **params)) == expected


def test_reduce_over_scalar_keys_and_limit(live: LiveServer, db: Database) -> None:
    expected = truth(live, db, "by_k", group=True)
    assert list(db.view("app/by_k", group=True, page_size=2)) == expected
    assert list(db.view("app/by_k", group=True, page_size=2, limit=5)) == expected[:5]
    (total,) = db.view("app/by_k")
    assert total["value"] == sum(r["value"] for r in expected)


def test_pages_never_skip_and_start_at_the_last_row(live: LiveServer,
                                                    server_db: tuple[Server, Database]) -> None:
    server, db = server_db
    sent = counting(server)
    rows = list(db.view("app/plain", page_size=7))
    assert len(rows) == 40 and len(sent) == 6  # 7, then 7 new rows after the repeated one
    assert not any("skip" in s for s in sent)
    assert all("startkey=" in s and "startkey_docid=" in s for s in sent[1:])
    assert rows == truth(live, db, "plain")


@pytest.fixture
def server_db(live: LiveServer, db: Database) -> tuple[Server, Database]:
    server = Server(live.url)
    return server, server.database(db.name)


def test_keys_limit_and_first_page_metadata(live: LiveServer, db: Database) -> None:
    result = db.view("app/plain", limit=3, page_size=2)
    assert result.total_rows is None
    rows = list(result)
    assert len(rows) == 3 and result.total_rows == 40 and result.offset == 0
    keyed = list(db.view("app/by_k", keys=["b", 404, 1], reduce=False, page_size=1))
    assert keyed == truth(live, db, "by_k", key="b", reduce=False) + \
        truth(live, db, "by_k", key=1, reduce=False)
    groups = {json.dumps(r["key"]): r for r in truth(live, db, "by_k", group=True)}
    assert list(db.view("app/by_k", keys=["b", 1], group=True)) == [groups['"b"'], groups["1"]]


def test_view_names_and_missing_views(db: Database) -> None:
    with pytest.raises(ValueError):
        db.view("no-slash")
    with pytest.raises(NotFound) as exc:
        list(db.view("app/nope"))
    assert exc.value.reason == "missing_named_view"
    with pytest.raises(NotFound):
        list(db.view("nope/nope"))
    with pytest.raises(ValueError):
        db.view("app/by_k", key=1, startkey=0)
