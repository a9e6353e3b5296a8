"""View indexes over HTTP on both backends: incremental upkeep, signatures, cleanup, updates."""

from __future__ import annotations

import time
from typing import Any

import pytest
from settee.views.service import ViewSettings, service_for

# `client_fixture` and `db_fixture` are the `c` and `db` fixtures of these tests.
from viewkit import bulk, client_fixture, db_fixture, ddoc, get, indexes, keys_of  # noqa: F401

M = {"map": "view_functions:by_key"}


def test_updates_and_deletes_are_applied_incrementally(c: Any, db: str) -> None:
    revs = bulk(c, db, [{"_id": "a", "k": 1}, {"_id": "b", "k": 2}, {"_id": "c", "k": 3}])
    ddoc(c, db, "d", {"m": M})
    assert keys_of(get(c, db, "d/_view/m").json) == [1, 2, 3]
    c.put_json(f"/{db}/a", {"_rev": revs["a"], "k": 9}, status=201)
    c.delete(f"/{db}/b?rev={revs['b']}", status=200)
    c.put_json(f"/{db}/c", {"_rev": revs["c"], "other": True}, status=201)
    bulk(c, db, [{"_id": "d", "k": 0}])
    body = get(c, db, "d/_view/m").json
    assert [(r["id"], r["key"]) for r in body["rows"]] == [("d", 0), ("a", 9)]
    assert body["total_rows"] == 2
    seq = c.get(f"/{db}").json["update_seq"]
    assert next(iter(indexes(c.app, db).values()))[1] == seq


def test_conflicting_replays_change_the_winner_the_view_shows(c: Any, db: str) -> None:
    ddoc(c, db, "d", {"m": M})
    bulk(c, db, [{"_id": "a", "k": "first", "_rev": "1-" + "1" * 32}], new_edits=False)
    assert keys_of(get(c, db, "d/_view/m").json) == ["first"]
    bulk(c, db, [{"_id": "a", "k": "winner", "_rev": "1-" + "9" * 32}], new_edits=False)
    assert keys_of(get(c, db, "d/_view/m").json) == ["winner"]
    c.delete(f"/{db}/a?rev=1-{'9' * 32}", status=200)
    assert keys_of(get(c, db, "d/_view/m").json) == ["first"]


def test_purged_docs_leave_the_view(c: Any, db: str) -> None:
    revs = bulk(c, db, [{"_id": "a", "k": 1}, {"_id": "b", "k": 2}])
    ddoc(c, db, "d", {"m": M})
    assert keys_of(get(c, db, "d/_view/m").json) == [1, 2]
    c.post_json(f"/{db}/_purge", {"a": [revs["a"]]}, status=201)
    assert keys_of(get(c, db, "d/_view/m").json) == [2]


def test_design_docs_and_local_seq_options(c: Any, db: str) -> None:
    bulk(c, db, [{"_id": "a", "k": 1}])
    ddoc(c, db, "plain", {"m": {"map": "view_functions:meta"}})
    ddoc(c, db, "all", {"m": {"map": "view_functions:meta"}},
         options={"include_design": True, "local_seq": True})
    assert [r["id"] for r in get(c, db, "plain/_view/m").json["rows"]] == ["a"]
    rows = get(c, db, "all/_view/m").json["rows"]
    assert [r["id"] for r in rows] == ["_design/all", "_design/plain", "a"]
    assert rows[2]["value"] == 1 and all(isinstance(r["value"], int) for r in rows)


def test_an_identical_view_keeps_its_index_and_a_changed_one_gets_a_new_one(
        c: Any, db: str) -> None:
    bulk(c, db, [{"_id": "a", "k": 1}])
    ddoc(c, db, "d", {"m": M})
    get(c, db, "d/_view/m")
    before = indexes(c.app, db)
    info = c.get(f"/{db}/_design/d/_info").json
    ddoc(c, db, "d", {"m": M}, note="edited, same view")
    bulk(c, db, [{"_id": "b", "k": 2}])
    get(c, db, "d/_view/m")
    after = indexes(c.app, db)
    assert list(after) == list(before) and after[next(iter(after))][0] == before[next(
        iter(before))][0]
    assert c.get(f"/{db}/_design/d/_info").json["view_index"]["signature"] == \
        info["view_index"]["signature"]
    ddoc(c, db, "d", {"m": {"map": "view_functions:by_key", "reduce": "_count"}})
    assert get(c, db, "d/_view/m").json["rows"] == [{"key": None, "value": 2}]
    assert len(indexes(c.app, db)) == 2
    resp = c.post(f"/{db}/_view_cleanup", "", headers={"Content-Type": "application/json"},
                  status=202)
    assert resp.json == {"ok": True}
    assert len(indexes(c.app, db)) == 1
    c.post(f"/{db}/_view_cleanup", "", headers={"Content-Type": "text/plain"}, status=415)


def test_cleanup_keeps_every_view_of_every_design_doc(c: Any, db: str) -> None:
    bulk(c, db, [{"_id": f"x{i}", "k": i} for i in range(30)])
    ddoc(c, db, "one", {"m": M, "n": {"map": "view_functions:by_key", "reduce": "_sum"}})
    ddoc(c, db, "two", {"m": {"map": "view_functions:each_key"}})
    get(c, db, "one/_view/m")
    get(c, db, "two/_view/m")
    ddoc(c, db, "gone", {"m": {"map": "view_functions:meta"}})
    get(c, db, "gone/_view/m")
    rev = c.get(f"/{db}/_design/gone").json["_rev"]
    c.delete(f"/{db}/_design/gone?rev={rev}", status=200)
    assert len(indexes(c.app, db)) == 4
    c.post(f"/{db}/_view_cleanup", "", headers={"Content-Type": "application/json"}, status=202)
    assert len(indexes(c.app, db)) == 3
    assert get(c, db, "one/_view/n").json["rows"] == [{"key": None, "value": 30}]


def test_info_reports_the_index(c: Any, db: str) -> None:
    bulk(c, db, [{"_id": "a", "k": 1}])
    ddoc(c, db, "d", {"m": M})
    info = c.get(f"/{db}/_design/d/_info").json
    assert info["name"] == "d"
    assert info["view_index"]["update_seq"] == 0 and info["view_index"]["language"] == "python"
    get(c, db, "d/_view/m")
    view_index = c.get(f"/{db}/_design/d/_info").json["view_index"]
    assert view_index["update_seq"] == c.get(f"/{db}").json["update_seq"]
    assert set(view_index["sizes"]) == {"active", "external", "file"}
    assert view_index["sizes"]["active"] > 0 and len(view_index["signature"]) == 32
    assert c.get(f"/{db}/_design/nope/_info", status=404).json["reason"] == "missing"


def test_compact_views(c: Any, db: str) -> None:
    ddoc(c, db, "d", {"m": M})
    headers = {"Content-Type": "application/json"}
    assert c.post(f"/{db}/_compact/d", "", headers=headers, status=202).json == {"ok": True}
    c.post(f"/{db}/_compact/nope", "", headers=headers, status=404)
    c.post(f"/{db}/_compact/d", "", headers={"Content-Type": "text/plain"}, status=415)


def test_update_false_stale_ok_and_lazy(c: Any, db: str) -> None:
    bulk(c, db, [{"_id": "a", "k": 1}])
    ddoc(c, db, "d", {"m": M})
    assert get(c, db, "d/_view/m", update="false").json["rows"] == []  # never built
    assert keys_of(get(c, db, "d/_view/m").json) == [1]
    bulk(c, db, [{"_id": "b", "k": 2}])
    assert keys_of(get(c, db, "d/_view/m", stale="ok").json) == [1]
    assert keys_of(get(c, db, "d/_view/m", update="false", stable="true").json) == [1]
    assert keys_of(get(c, db, "d/_view/m", stale="update_after").json) == [1]
    deadline = time.monotonic() + 10
    while keys_of(get(c, db, "d/_view/m", update="false").json) != [1, 2]:
        assert time.monotonic() < deadline, "update=lazy never refreshed the index"
        time.sleep(0.02)


def test_deleting_a_database_drops_its_indexes(c: Any, db: str) -> None:
    bulk(c, db, [{"_id": "a", "k": 1}, {"_id": "b", "k": 2}])
    ddoc(c, db, "d", {"m": M})
    assert len(get(c, db, "d/_view/m").json["rows"]) == 2
    c.delete(f"/{db}", status=200)
    c.put(f"/{db}", status=201)
    bulk(c, db, [{"_id": "z", "k": 3}])
    ddoc(c, db, "d", {"m": M})
    assert keys_of(get(c, db, "d/_view/m").json) == [3]


def test_background_indexing_keeps_a_queried_view_warm(app: Any, client: Any) -> None:
    service_for(app.store, ViewSettings(background_indexing=True, background_interval_ms=20,
                                        python_functions="view_functions:by_key"))
    client.put("/warm", status=201)
    bulk(client, "warm", [{"_id": "a", "k": 1}])
    ddoc(client, "warm", "d", {"m": M})
    get(client, "warm", "d/_view/m")
    bulk(client, "warm", [{"_id": "b", "k": 2}])
    seq = client.get("/warm").json["update_seq"]
    deadline = time.monotonic() + 10
    while next(iter(indexes(app, "warm").values()))[1] != seq:
        assert time.monotonic() < deadline, "the background indexer never caught up"
        time.sleep(0.02)
    service_for(app.store).close()


JS = {
    "by_x": {"map": "function(doc) { if (doc.x !== undefined) emit(doc.x, doc.n); }",
             "reduce": "_sum"},
    "custom": {"map": "function(doc) { if (doc.x !== undefined) emit([doc.x, doc.n], doc.n); }",
               "reduce": "function(keys, values, rereduce) { return sum(values); }"},
    "lib": {"util": "exports.double = function(v) { return 2 * v; };"},
    "req": {"map": "function(doc) { var u = require('views/lib/util'); "
                   "if (doc.n) emit(doc._id, u.double(doc.n)); }"},
}


def test_javascript_views(c: Any, db: str) -> None:
    bulk(c, db, [{"_id": f"d{i}", "x": "ab"[i % 2], "n": i} for i in range(1, 7)])
    c.put_json(f"/{db}/_design/js", {"views": JS}, status=201)
    assert get(c, db, "js/_view/by_x", group="true").json["rows"] == [
        {"key": "a", "value": 12}, {"key": "b", "value": 9}]
    assert get(c, db, "js/_view/custom", group_level=1).json["rows"] == [
        {"key": ["a"], "value": 12}, {"key": ["b"], "value": 9}]
    assert get(c, db, "js/_view/custom").json["rows"] == [{"key": None, "value": 21}]
    assert get(c, db, "js/_view/req", limit=2).json["rows"] == [
        {"id": "d1", "key": "d1", "value": 2}, {"id": "d2", "key": "d2", "value": 4}]
    doc = c.get(f"/{db}/d1").json
    c.put_json(f"/{db}/d1", {**doc, "n": 100}, status=201)
    assert get(c, db, "js/_view/custom", group_level=1).json["rows"][1] == \
        {"key": ["b"], "value": 108}


@pytest.mark.parametrize("source,error", [
    ("function(doc) { while (true) {} }", "os_process_error"),
    ("this is not javascript", "compilation_error"),
])
def test_broken_javascript_answers_an_error_and_the_server_keeps_serving(
        c: Any, db: str, source: str, error: str) -> None:
    bulk(c, db, [{"_id": "a"}])
    c.put_json(f"/{db}/_design/bad", {"views": {"v": {"map": source}}}, status=201)
    resp = get(c, db, "bad/_view/v", status="*")
    assert resp.status_int in (400, 500) and resp.json["error"] == error
    c.put_json(f"/{db}/_design/ok", {"views": JS}, status=201)
    assert get(c, db, "ok/_view/by_x").json["rows"] == []
