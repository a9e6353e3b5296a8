"""`_compact`, `_revs_limit` and `_purge`, checked against CouchDB 3.x."""

from __future__ import annotations

from typing import Any

A1, B1 = "1-" + "a" * 32, "1-" + "b" * 32
MISSING = {"error": "not_found", "reason": "missing"}
EMPTY_REV = "1-967a00dff5e02add41819138abb3284d"


def _bulk(client: Any, db: str, docs: list[dict[str, Any]], **extra: Any) -> Any:
    resp = client.post_json(f"/{db}/_bulk_docs", {"docs": docs, **extra}, status="*")
    assert resp.status_int == 201, resp.body
    return resp.json


def _edits(client: Any, db: str, doc_id: str, count: int) -> list[str]:
    """Create `doc_id` and update it until it has `count` revs; return them oldest first."""
    revs: list[str] = []
    for n in range(count):
        doc: dict[str, Any] = {"_id": doc_id, "n": n}
        if revs:
            doc["_rev"] = revs[-1]
        revs.append(_bulk(client, db, [doc])[0]["rev"])
    return revs


def _doc(client: Any, db: str, doc_id: str, **params: str) -> Any:
    return client.get(f"/{db}/{doc_id}", params=params, status="*")


def _compact(client: Any, db: str) -> Any:
    return client.post(f"/{db}/_compact", "", content_type="application/json", status="*")


def _purge(client: Any, db: str, body: dict[str, list[str]]) -> Any:
    return client.post_json(f"/{db}/_purge", body, status="*")


def _info(client: Any, db: str) -> dict[str, Any]:
    return dict(client.get(f"/{db}").json)


def _ids(revs: list[str]) -> list[str]:
    return [r.split("-", 1)[1] for r in revs]


# -- _compact --------------------------------------------------------------------------------

def test_compact_answers_202_ok(client: Any, fresh_db: str) -> None:
    resp = _compact(client, fresh_db)
    assert resp.status_int == 202
    assert resp.json == {"ok": True}


def test_compact_needs_a_json_content_type(client: Any, fresh_db: str) -> None:
    resp = client.post(f"/{fresh_db}/_compact", "", content_type="text/plain", status="*")
    assert resp.status_int == 415
    assert resp.json == {"error": "bad_content_type",
                         "reason": "Content-Type must be application/json"}


def test_compact_of_missing_db_is_404(client: Any) -> None:
    resp = _compact(client, "no_such_db")
    assert resp.status_int == 404
    assert resp.json == {"error": "not_found", "reason": "Database does not exist."}


def test_compaction_forgets_old_bodies_but_keeps_leaves_and_tree(client: Any,
                                                                 fresh_db: str) -> None:
    r1, r2, r3 = _edits(client, fresh_db, "a", 3)
    assert _doc(client, fresh_db, "a", rev=r1).json == {"_id": "a", "_rev": r1, "n": 0}
    assert _compact(client, fresh_db).status_int == 202

    for old in (r1, r2):
        resp = _doc(client, fresh_db, "a", rev=old)
        assert resp.status_int == 404
        assert resp.json == MISSING
    assert _doc(client, fresh_db, "a").json == {"_id": "a", "_rev": r3, "n": 2}
    assert _doc(client, fresh_db, "a", rev=r3).json == {"_id": "a", "_rev": r3, "n": 2}
    info = _doc(client, fresh_db, "a", revs_info="true").json
    assert info["_revs_info"] == [{"rev": r3, "status": "available"},
                                  {"rev": r2, "status": "missing"},
                                  {"rev": r1, "status": "missing"}]
    revs = _doc(client, fresh_db, "a", revs="true").json["_revisions"]
    assert revs == {"start": 3, "ids": _ids([r3, r2, r1])}


def test_compaction_keeps_losing_leaves_and_tombstones(client: Any, fresh_db: str) -> None:
    _bulk(client, fresh_db, [{"_id": "c", "_rev": A1, "v": "a"},
                             {"_id": "c", "_rev": B1, "v": "b"}], new_edits=False)
    d1, d2 = _edits(client, fresh_db, "d", 2)
    tomb = _bulk(client, fresh_db, [{"_id": "d", "_rev": d2, "_deleted": True}])[0]["rev"]
    before = _info(client, fresh_db)
    assert _compact(client, fresh_db).status_int == 202

    assert _doc(client, fresh_db, "c", rev=A1).json == {"_id": "c", "_rev": A1, "v": "a"}
    assert _doc(client, fresh_db, "c", conflicts="true").json == {
        "_id": "c", "_rev": B1, "v": "b", "_conflicts": [A1]}
    assert _doc(client, fresh_db, "d", rev=tomb).json == {"_id": "d", "_rev": tomb,
                                                          "_deleted": True}
    assert _doc(client, fresh_db, "d", rev=d1).json == MISSING
    after = _info(client, fresh_db)
    assert (after["doc_count"], after["doc_del_count"]) == (before["doc_count"],
                                                            before["doc_del_count"]) == (1, 1)


def test_compaction_stems_trees_to_the_revs_limit(client: Any, fresh_db: str) -> None:
    revs = _edits(client, fresh_db, "a", 5)
    assert client.put(f"/{fresh_db}/_revs_limit", "2", status="*").json == {"ok": True}
    assert _compact(client, fresh_db).status_int == 202
    got = _doc(client, fresh_db, "a", revs="true", revs_info="true").json
    assert got["_revisions"] == {"start": 5, "ids": _ids(revs[:2:-1])}
    assert got["_revs_info"] == [{"rev": revs[4], "status": "available"},
                                 {"rev": revs[3], "status": "missing"}]


# -- _revs_limit -----------------------------------------------------------------------------

def test_revs_limit_defaults_to_1000_and_can_be_set(client: Any, fresh_db: str) -> None:
    resp = client.get(f"/{fresh_db}/_revs_limit", status="*")
    assert resp.status_int == 200
    assert resp.json == 1000
    resp = client.put(f"/{fresh_db}/_revs_limit", "3", content_type="application/json",
                      status="*")
    assert resp.status_int == 200
    assert resp.json == {"ok": True}
    assert client.get(f"/{fresh_db}/_revs_limit").json == 3


def test_updates_after_revs_limit_keep_at_most_limit_revisions(client: Any,
                                                               fresh_db: str) -> None:
    client.put(f"/{fresh_db}/_revs_limit", "3", content_type="application/json", status=200)
    revs = _edits(client, fresh_db, "a", 6)
    got = _doc(client, fresh_db, "a", revs="true").json
    assert got["_rev"] == revs[-1]
    assert got["_revisions"] == {"start": 6, "ids": _ids(revs[:2:-1])}
    # The stemmed revisions are gone for replication too.
    diff = client.post_json(f"/{fresh_db}/_revs_diff", {"a": revs}).json
    assert diff == {"a": {"missing": revs[:3]}}


def test_lowering_revs_limit_stems_history_on_the_next_update(client: Any,
                                                              fresh_db: str) -> None:
    revs = _edits(client, fresh_db, "a", 5)
    client.put(f"/{fresh_db}/_revs_limit", "2", content_type="application/json", status=200)
    assert len(_doc(client, fresh_db, "a", revs="true").json["_revisions"]["ids"]) == 5
    new = _bulk(client, fresh_db, [{"_id": "a", "_rev": revs[-1], "n": 5}])[0]["rev"]
    got = _doc(client, fresh_db, "a", revs="true").json
    assert got["_revisions"] == {"start": 6, "ids": _ids([new, revs[-1]])}


# -- _purge ----------------------------------------------------------------------------------

def test_purge_answers_201_with_null_purge_seq_and_purged_revs(client: Any,
                                                               fresh_db: str) -> None:
    (r1,) = _edits(client, fresh_db, "a", 1)
    resp = _purge(client, fresh_db, {"a": [r1]})
    assert resp.status_int == 201
    assert resp.content_type == "application/json"
    assert resp.json == {"purge_seq": None, "purged": {"a": [r1]}}


def test_purging_the_only_leaf_removes_the_doc_entirely(client: Any, fresh_db: str) -> None:
    revs = _edits(client, fresh_db, "a", 2)
    _edits(client, fresh_db, "b", 1)
    assert _info(client, fresh_db)["doc_count"] == 2
    assert _purge(client, fresh_db, {"a": [revs[-1]]}).json == {"purge_seq": None,
                                                                "purged": {"a": [revs[-1]]}}
    assert _info(client, fresh_db)["doc_count"] == 1
    rows = client.get(f"/{fresh_db}/_all_docs").json
    assert (rows["total_rows"], [r["id"] for r in rows["rows"]]) == (1, ["b"])
    assert _doc(client, fresh_db, "a").json == MISSING
    assert _doc(client, fresh_db, "a", rev=revs[0]).json == MISSING
    diff = client.post_json(f"/{fresh_db}/_revs_diff", {"a": revs}).json
    assert diff == {"a": {"missing": revs}}
    # A purged id starts afresh, as if it never existed.
    assert client.put_json(f"/{fresh_db}/a", {}, status="*").json["rev"] == EMPTY_REV


def test_purging_one_conflict_leaf_keeps_the_other(client: Any, fresh_db: str) -> None:
    _bulk(client, fresh_db, [{"_id": "c", "_rev": A1, "v": "a"},
                             {"_id": "c", "_rev": B1, "v": "b"}], new_edits=False)
    resp = _purge(client, fresh_db, {"c": [B1]})
    assert resp.status_int == 201
    assert resp.json == {"purge_seq": None, "purged": {"c": [B1]}}
    assert _doc(client, fresh_db, "c", conflicts="true").json == {"_id": "c", "_rev": A1,
                                                                  "v": "a"}
    assert _doc(client, fresh_db, "c", rev=B1).json == MISSING
    assert _info(client, fresh_db)["doc_count"] == 1


def test_purging_a_tombstone_forgets_the_deleted_doc(client: Any, fresh_db: str) -> None:
    (r1,) = _edits(client, fresh_db, "d", 1)
    tomb = _bulk(client, fresh_db, [{"_id": "d", "_rev": r1, "_deleted": True}])[0]["rev"]
    assert _info(client, fresh_db)["doc_del_count"] == 1
    assert _purge(client, fresh_db, {"d": [tomb]}).json["purged"] == {"d": [tomb]}
    info = _info(client, fresh_db)
    assert (info["doc_count"], info["doc_del_count"]) == (0, 0)
    assert _doc(client, fresh_db, "d").json == MISSING


def test_purge_ignores_unknown_and_non_leaf_revs(client: Any, fresh_db: str) -> None:
    r1, r2 = _edits(client, fresh_db, "a", 2)
    before = _info(client, fresh_db)
    resp = _purge(client, fresh_db, {"a": [r1, "9-" + "f" * 32], "nope": [A1]})
    assert resp.status_int == 201
    assert resp.json == {"purge_seq": None, "purged": {"a": [], "nope": []}}
    assert _doc(client, fresh_db, "a").json == {"_id": "a", "_rev": r2, "n": 1}
    assert _doc(client, fresh_db, "a", rev=r1).json == {"_id": "a", "_rev": r1, "n": 0}
    assert _info(client, fresh_db)["doc_count"] == before["doc_count"] == 1


def test_purge_needs_a_json_content_type(client: Any, fresh_db: str) -> None:
    resp = client.post(f"/{fresh_db}/_purge", "{}", content_type="text/plain", status="*")
    assert resp.status_int == 415
    assert resp.json == {"error": "bad_content_type",
                         "reason": "Content-Type must be application/json"}
