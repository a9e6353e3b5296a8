"""`_bulk_docs`, `_bulk_get`, `_revs_diff` and `_missing_revs`, checked against CouchDB 3.x."""

from __future__ import annotations

from typing import Any

import pytest

CONFLICT = "Document update conflict."
NEEDS_REV = "When `new_edits: false`, the document needs `_rev` or `_revisions` specified"
A1, A2, A3 = ("1-" + "a" * 32, "2-" + "a" * 32, "3-" + "a" * 32)
B1, B2 = ("1-" + "b" * 32, "2-" + "b" * 32)
C2 = "2-" + "c" * 32


def _post(client: Any, url: str, body: Any) -> Any:
    return client.post_json(url, body, status="*")


def _bulk(client: Any, db: str, docs: list[Any], **extra: Any) -> Any:
    return _post(client, f"/{db}/_bulk_docs", {"docs": docs, **extra})


def _info(client: Any, db: str) -> dict[str, Any]:
    return dict(client.get(f"/{db}").json)


def _doc(client: Any, db: str, doc_id: str, **params: str) -> Any:
    return client.get(f"/{db}/{doc_id}", params=params, status="*")


def _rev_pos(rev: str) -> int:
    return int(rev.split("-", 1)[0])


# -- _bulk_docs ------------------------------------------------------------------------------

def test_bulk_docs_answers_201_with_results_in_input_order(client: Any, fresh_db: str) -> None:
    resp = _bulk(client, fresh_db, [{"_id": "z", "v": 1}, {"_id": "a", "v": 2},
                                    {"_id": "m", "v": 3}])
    assert resp.status_int == 201
    assert [r["id"] for r in resp.json] == ["z", "a", "m"]
    for result in resp.json:
        assert set(result) == {"ok", "id", "rev"}
        assert result["ok"] is True
        assert _rev_pos(result["rev"]) == 1
        assert _doc(client, fresh_db, result["id"]).json["_rev"] == result["rev"]
    assert _info(client, fresh_db)["doc_count"] == 3


def test_bulk_docs_generates_ids_for_docs_without_one(client: Any, fresh_db: str) -> None:
    resp = _bulk(client, fresh_db, [{"v": 1}, {"v": 2}])
    assert resp.status_int == 201
    ids = [r["id"] for r in resp.json]
    assert len(set(ids)) == 2
    for value, result in enumerate(resp.json, start=1):
        doc_id = result["id"]
        assert len(doc_id) == 32 and int(doc_id, 16) >= 0
        assert _doc(client, fresh_db, doc_id).json == {"_id": doc_id, "_rev": result["rev"],
                                                       "v": value}


def test_bulk_docs_reports_conflicts_per_doc_and_writes_the_rest(client: Any,
                                                                 fresh_db: str) -> None:
    first = _bulk(client, fresh_db, [{"_id": "a"}, {"_id": "b"}]).json
    resp = _bulk(client, fresh_db, [{"_id": "a", "v": 2}, {"_id": "b", "_rev": first[1]["rev"],
                                                          "v": 2}, {"_id": "c"}])
    assert resp.status_int == 201
    assert resp.json[0] == {"id": "a", "error": "conflict", "reason": CONFLICT}
    assert resp.json[1]["ok"] is True and _rev_pos(resp.json[1]["rev"]) == 2
    assert resp.json[2]["ok"] is True and resp.json[2]["id"] == "c"
    assert _doc(client, fresh_db, "a").json["_rev"] == first[0]["rev"]


def test_bulk_docs_stale_rev_is_a_conflict(client: Any, fresh_db: str) -> None:
    rev1 = _bulk(client, fresh_db, [{"_id": "a"}]).json[0]["rev"]
    _bulk(client, fresh_db, [{"_id": "a", "_rev": rev1, "v": 2}])
    resp = _bulk(client, fresh_db, [{"_id": "a", "_rev": rev1, "v": 3}])
    assert resp.status_int == 201
    assert resp.json == [{"id": "a", "error": "conflict", "reason": CONFLICT}]


def test_bulk_docs_same_id_twice_second_one_conflicts(client: Any, fresh_db: str) -> None:
    resp = _bulk(client, fresh_db, [{"_id": "0", "a": 0}, {"_id": "1", "a": 1},
                                    {"_id": "1", "a": 2}, {"_id": "3", "a": 3}])
    assert resp.status_int == 201
    assert [r.get("ok") for r in resp.json] == [True, True, None, True]
    assert resp.json[2] == {"id": "1", "error": "conflict", "reason": CONFLICT}
    assert _doc(client, fresh_db, "1").json["a"] == 1


def test_bulk_docs_update_and_delete_of_same_rev_one_conflicts(client: Any,
                                                               fresh_db: str) -> None:
    rev = _bulk(client, fresh_db, [{"_id": "id", "val": "val"}]).json[0]["rev"]
    resp = _bulk(client, fresh_db, [{"_id": "id", "_rev": rev, "val": "new"},
                                    {"_id": "id", "_rev": rev, "_deleted": True}])
    assert resp.status_int == 201
    assert resp.json[0]["ok"] is True
    assert resp.json[1] == {"id": "id", "error": "conflict", "reason": CONFLICT}


def test_bulk_docs_deleted_true_writes_a_tombstone(client: Any, fresh_db: str) -> None:
    rev = _bulk(client, fresh_db, [{"_id": "a", "v": 1}]).json[0]["rev"]
    resp = _bulk(client, fresh_db, [{"_id": "a", "_rev": rev, "_deleted": True}])
    assert resp.status_int == 201
    tomb = resp.json[0]["rev"]
    assert resp.json == [{"ok": True, "id": "a", "rev": tomb}]
    assert _rev_pos(tomb) == 2
    got = _doc(client, fresh_db, "a")
    assert got.status_int == 404
    assert got.json == {"error": "not_found", "reason": "deleted"}
    assert _doc(client, fresh_db, "a", rev=tomb).json == {"_id": "a", "_rev": tomb,
                                                          "_deleted": True}
    info = _info(client, fresh_db)
    assert (info["doc_count"], info["doc_del_count"]) == (0, 1)


def test_bulk_docs_deleted_doc_without_rev_can_be_created_and_recreated(client: Any,
                                                                       fresh_db: str) -> None:
    resp = _bulk(client, fresh_db, [{"_id": "t", "_deleted": True}])
    tomb = resp.json[0]["rev"]
    assert resp.json == [{"ok": True, "id": "t", "rev": tomb}] and _rev_pos(tomb) == 1
    assert _info(client, fresh_db)["doc_del_count"] == 1
    again = _bulk(client, fresh_db, [{"_id": "t", "v": 1}]).json
    assert again[0]["ok"] is True and _rev_pos(again[0]["rev"]) == 2
    assert _doc(client, fresh_db, "t").json == {"_id": "t", "_rev": again[0]["rev"], "v": 1}


def test_bulk_docs_mixed_local_and_normal_docs_keep_input_order(client: Any,
                                                                fresh_db: str) -> None:
    resp = _bulk(client, fresh_db, [{"_id": "_local/l", "v": 1}, {"_id": "n", "v": 2}])
    assert resp.status_int == 201
    assert [r["id"] for r in resp.json] == ["_local/l", "n"]
    assert resp.json[0] == {"ok": True, "id": "_local/l", "rev": "0-1"}


def test_new_edits_false_returns_empty_list_and_creates_conflicts(client: Any,
                                                                  fresh_db: str) -> None:
    resp = _bulk(client, fresh_db, [
        {"_id": "x", "_rev": A1, "v": "a"},
        {"_id": "x", "_rev": B1, "v": "b"},
    ], new_edits=False)
    assert resp.status_int == 201
    assert resp.json == []
    got = _doc(client, fresh_db, "x", conflicts="true")
    assert got.json == {"_id": "x", "_rev": B1, "v": "b", "_conflicts": [A1]}
    assert _doc(client, fresh_db, "x", rev=A1).json == {"_id": "x", "_rev": A1, "v": "a"}


def test_new_edits_false_merges_revisions_history(client: Any, fresh_db: str) -> None:
    resp = _bulk(client, fresh_db, [
        {"_id": "x", "_rev": A2, "_revisions": {"start": 2, "ids": ["a" * 32, "a" * 32]},
         "v": 2},
        {"_id": "x", "_rev": C2, "_revisions": {"start": 2, "ids": ["c" * 32, "a" * 32]},
         "v": 3},
    ], new_edits=False)
    assert resp.status_int == 201 and resp.json == []
    got = _doc(client, fresh_db, "x", revs="true", conflicts="true").json
    assert got["_rev"] == C2
    assert got["_revisions"] == {"start": 2, "ids": ["c" * 32, "a" * 32]}
    assert got["_conflicts"] == [A2]


def test_replaying_a_new_edits_false_batch_is_a_no_op(client: Any, fresh_db: str) -> None:
    batch = [
        {"_id": "x", "_rev": A1, "v": "a"},
        {"_id": "x", "_rev": B1, "v": "b"},
        {"_id": "y", "_rev": A2, "_revisions": {"start": 2, "ids": ["a" * 32, "b" * 32]}},
    ]
    _bulk(client, fresh_db, batch, new_edits=False)
    before = _info(client, fresh_db)
    resp = _bulk(client, fresh_db, batch, new_edits=False)
    assert resp.status_int == 201 and resp.json == []
    after = _info(client, fresh_db)
    assert after["update_seq"] == before["update_seq"]
    assert after["doc_count"] == before["doc_count"] == 2


def test_new_edits_false_without_rev_is_400_and_writes_nothing(client: Any,
                                                              fresh_db: str) -> None:
    resp = _bulk(client, fresh_db, [{"_id": "ok", "_rev": A1}, {"_id": "norev", "v": 1}],
                 new_edits=False)
    assert resp.status_int == 400
    assert resp.json == {"error": "bad_request", "reason": NEEDS_REV}
    assert _info(client, fresh_db)["doc_count"] == 0


def test_non_boolean_new_edits_is_400(client: Any, fresh_db: str) -> None:
    value: object
    for value in (0, "false", None, []):
        resp = _bulk(client, fresh_db, [{"_id": "a"}], new_edits=value)
        assert resp.status_int == 400, value
        assert resp.json == {"error": "bad_request",
                             "reason": "`new_edits` parameter must be a boolean."}
    assert _info(client, fresh_db)["doc_count"] == 0


def test_missing_docs_member_is_400(client: Any, fresh_db: str) -> None:
    resp = _post(client, f"/{fresh_db}/_bulk_docs", {"doc": [{"foo": "bar"}]})
    assert resp.status_int == 400
    assert resp.json == {"error": "bad_request",
                         "reason": "POST body must include `docs` parameter."}


def test_docs_member_not_an_array_is_400(client: Any, fresh_db: str) -> None:
    resp = _post(client, f"/{fresh_db}/_bulk_docs", {"docs": "foo"})
    assert resp.status_int == 400
    assert resp.json == {"error": "bad_request", "reason": "`docs` parameter must be an array."}


def test_bulk_docs_with_wrong_content_type_is_415(client: Any, fresh_db: str) -> None:
    resp = client.post(f"/{fresh_db}/_bulk_docs", '{"docs":[{"_id":"a"}]}',
                       content_type="text/plain", status="*")
    assert resp.status_int == 415
    assert resp.json == {"error": "bad_content_type",
                         "reason": "Content-Type must be application/json"}
    assert _info(client, fresh_db)["doc_count"] == 0


BAD_DOCS = [
    ({"_id": "bad", "_foo": 1}, "doc_validation", "Bad special document member: _foo"),
    ({"_id": "_bad"}, "illegal_docid", "Only reserved document ids may start with underscore."),
    ("not an object", "bad_request", "Document must be a JSON object"),
]


def test_one_bad_doc_fails_the_whole_batch_and_writes_nothing(client: Any,
                                                              fresh_db: str) -> None:
    for bad, error, reason in BAD_DOCS:
        resp = _bulk(client, fresh_db, [{"_id": "good1"}, bad, {"_id": "good2"}])
        assert resp.status_int == 400, bad
        assert resp.json == {"error": error, "reason": reason}
    info = _info(client, fresh_db)
    assert (info["doc_count"], info["update_seq"]) == (0, 0)


def test_bulk_docs_on_missing_db_is_404(client: Any) -> None:
    resp = _bulk(client, "no_such_db", [{"_id": "a"}])
    assert resp.status_int == 404
    assert resp.json == {"error": "not_found", "reason": "Database does not exist."}


# -- _bulk_get -------------------------------------------------------------------------------

@pytest.fixture
def history_db(client: Any, fresh_db: str) -> dict[str, Any]:
    """`a` with three linear revs; `c` with two conflicting leaves; `d` deleted."""
    r1 = _bulk(client, fresh_db, [{"_id": "a", "v": 1}]).json[0]["rev"]
    r2 = _bulk(client, fresh_db, [{"_id": "a", "_rev": r1, "v": 2}]).json[0]["rev"]
    r3 = _bulk(client, fresh_db, [{"_id": "a", "_rev": r2, "v": 3}]).json[0]["rev"]
    _bulk(client, fresh_db, [{"_id": "c", "_rev": A1, "v": "a"},
                             {"_id": "c", "_rev": B1, "v": "b"}], new_edits=False)
    d1 = _bulk(client, fresh_db, [{"_id": "d"}]).json[0]["rev"]
    d2 = _bulk(client, fresh_db, [{"_id": "d", "_rev": d1, "_deleted": True}]).json[0]["rev"]
    return {"db": fresh_db, "a": [r1, r2, r3], "d": [d1, d2]}


def _bulk_get(client: Any, db: str, docs: list[Any], query: str = "") -> Any:
    return _post(client, f"/{db}/_bulk_get{query}", {"docs": docs})


def _missing(doc_id: str, rev: str) -> dict[str, Any]:
    return {"error": {"id": doc_id, "rev": rev, "error": "not_found", "reason": "missing"}}


def test_bulk_get_with_rev_returns_that_rev(client: Any, history_db: dict[str, Any]) -> None:
    db, (r1, _, r3) = history_db["db"], history_db["a"]
    resp = _bulk_get(client, db, [{"id": "a", "rev": r1}, {"id": "a", "rev": r3}])
    assert resp.status_int == 200
    assert resp.json == {"results": [
        {"id": "a", "docs": [{"ok": {"_id": "a", "_rev": r1, "v": 1}}]},
        {"id": "a", "docs": [{"ok": {"_id": "a", "_rev": r3, "v": 3}}]},
    ]}


def test_bulk_get_without_rev_returns_every_leaf(client: Any, history_db: dict[str, Any]) -> None:
    db = history_db["db"]
    body = _bulk_get(client, db, [{"id": "c"}, {"id": "a"}]).json
    assert body["results"][0]["id"] == "c"
    leaves = sorted((d["ok"]["_rev"], d["ok"]["v"]) for d in body["results"][0]["docs"])
    assert leaves == [(A1, "a"), (B1, "b")]
    assert body["results"][1] == {"id": "a", "docs": [
        {"ok": {"_id": "a", "_rev": history_db["a"][2], "v": 3}}]}


def test_bulk_get_of_deleted_doc_returns_the_tombstone(client: Any,
                                                      history_db: dict[str, Any]) -> None:
    body = _bulk_get(client, history_db["db"], [{"id": "d"}]).json
    assert body == {"results": [{"id": "d", "docs": [
        {"ok": {"_id": "d", "_rev": history_db["d"][1], "_deleted": True}}]}]}


def test_bulk_get_revs_true_adds_revisions(client: Any, history_db: dict[str, Any]) -> None:
    r1, r2, r3 = history_db["a"]
    body = _bulk_get(client, history_db["db"], [{"id": "a", "rev": r2}], "?revs=true").json
    doc = body["results"][0]["docs"][0]["ok"]
    assert doc == {"_id": "a", "_rev": r2, "v": 2,
                   "_revisions": {"start": 2, "ids": [r2[2:], r1[2:]]}}
    body = _bulk_get(client, history_db["db"], [{"id": "a"}], "?revs=true").json
    assert body["results"][0]["docs"][0]["ok"]["_revisions"] == {
        "start": 3, "ids": [r[2:] for r in (r3, r2, r1)]}


def test_bulk_get_latest_true_answers_with_the_leaf(client: Any,
                                                   history_db: dict[str, Any]) -> None:
    r1, _, r3 = history_db["a"]
    body = _bulk_get(client, history_db["db"], [{"id": "a", "rev": r1}], "?latest=true").json
    assert body == {"results": [{"id": "a", "docs": [{"ok": {"_id": "a", "_rev": r3, "v": 3}}]}]}


def test_bulk_get_missing_doc_and_missing_rev_are_error_entries(
        client: Any, history_db: dict[str, Any]) -> None:
    db, r3 = history_db["db"], history_db["a"][2]
    gone = "9-" + "f" * 32
    body = _bulk_get(client, db, [{"id": "nope"}, {"id": "nope", "rev": A1},
                                  {"id": "a", "rev": gone}, {"id": "a", "rev": r3}]).json
    assert body == {"results": [
        {"id": "nope", "docs": [_missing("nope", "undefined")]},
        {"id": "nope", "docs": [_missing("nope", A1)]},
        {"id": "a", "docs": [_missing("a", gone)]},
        {"id": "a", "docs": [{"ok": {"_id": "a", "_rev": r3, "v": 3}}]},
    ]}


def test_bulk_get_keeps_request_order_with_repeats(client: Any,
                                                   history_db: dict[str, Any]) -> None:
    body = _bulk_get(client, history_db["db"], [{"id": "d"}, {"id": "a"}, {"id": "d"},
                                                {"id": "zz"}]).json
    assert [r["id"] for r in body["results"]] == ["d", "a", "d", "zz"]
    assert body["results"][0] == body["results"][2]


def test_bulk_get_bad_entries_answer_error_entries(client: Any,
                                                   history_db: dict[str, Any]) -> None:
    db, r3 = history_db["db"], history_db["a"][2]
    resp = _bulk_get(client, db, ["x", {"rev": A1}, {"id": "_bad"}, {"id": "a", "rev": "junk"},
                                  {"id": 5}, {"id": "a", "rev": r3}])
    assert resp.status_int == 200

    def err(doc_id: Any, rev: Any, error: str, reason: str) -> dict[str, Any]:
        return {"id": doc_id, "docs": [{"error": {"id": doc_id, "rev": rev, "error": error,
                                                  "reason": reason}}]}

    assert resp.json == {"results": [
        err(None, None, "bad_request", "document must be a JSON object"),
        err(None, None, "bad_request", "document id missed"),
        err("_bad", None, "illegal_docid", "Only reserved document ids may start with underscore."),
        err("a", "junk", "bad_request", "Invalid rev format"),
        err(5, None, "illegal_docid", "Document id must be a string"),
        {"id": "a", "docs": [{"ok": {"_id": "a", "_rev": r3, "v": 3}}]},
    ]}


def test_bulk_get_without_docs_is_400(client: Any, fresh_db: str) -> None:
    resp = _post(client, f"/{fresh_db}/_bulk_get", {"doc": []})
    assert resp.status_int == 400
    assert resp.json == {"error": "bad_request", "reason": "Missing JSON list of 'docs'."}


def test_bulk_get_with_wrong_content_type_is_415(client: Any, fresh_db: str) -> None:
    resp = client.post(f"/{fresh_db}/_bulk_get", '{"docs":[]}', content_type="text/plain",
                       status="*")
    assert resp.status_int == 415
    assert resp.json["error"] == "bad_content_type"


def test_bulk_get_is_post_only(client: Any, fresh_db: str) -> None:
    resp = client.get(f"/{fresh_db}/_bulk_get", status="*")
    assert resp.status_int == 405
    assert resp.json == {"error": "method_not_allowed", "reason": "Only POST allowed"}


# -- _revs_diff and _missing_revs ------------------------------------------------------------

def test_revs_diff_lists_missing_and_possible_ancestors(client: Any,
                                                        history_db: dict[str, Any]) -> None:
    db, (r1, _, r3) = history_db["db"], history_db["a"]
    resp = _post(client, f"/{db}/_revs_diff", {
        "a": [r1, r3, "4-" + "e" * 32],
        "new": [A1, B2],
    })
    assert resp.status_int == 200
    assert resp.json == {
        "a": {"missing": ["4-" + "e" * 32], "possible_ancestors": [r3]},
        "new": {"missing": [A1, B2]},
    }


def test_revs_diff_possible_ancestors_are_leaves_below_a_missing_pos(
        client: Any, history_db: dict[str, Any]) -> None:
    # "c" has leaves 1-a and 1-b: a missing 2- rev may descend from either; a missing
    # 1- rev descends from neither.
    db = history_db["db"]
    body = _post(client, f"/{db}/_revs_diff", {"c": [C2]}).json
    assert body["c"]["missing"] == [C2]
    assert sorted(body["c"]["possible_ancestors"]) == [A1, B1]
    body = _post(client, f"/{db}/_revs_diff", {"c": ["1-" + "e" * 32]}).json
    assert body == {"c": {"missing": ["1-" + "e" * 32]}}


def test_revs_diff_omits_fully_known_docs(client: Any, history_db: dict[str, Any]) -> None:
    db, revs = history_db["db"], history_db["a"]
    resp = _post(client, f"/{db}/_revs_diff", {"a": revs, "c": [A1, B1], "d": history_db["d"]})
    assert resp.status_int == 200
    assert resp.json == {}


def test_revs_diff_with_an_invalid_rev_is_400(client: Any, fresh_db: str) -> None:
    resp = _post(client, f"/{fresh_db}/_revs_diff", {"a": ["junk"]})
    assert resp.status_int == 400
    assert resp.json == {"error": "bad_request", "reason": "Invalid rev format"}


def test_revs_diff_with_wrong_content_type_is_415(client: Any, fresh_db: str) -> None:
    resp = client.post(f"/{fresh_db}/_revs_diff", "{}", content_type="text/plain", status="*")
    assert resp.status_int == 415
    assert resp.json["error"] == "bad_content_type"


def test_missing_revs_lists_only_unknown_revs(client: Any, history_db: dict[str, Any]) -> None:
    db, (r1, _, r3) = history_db["db"], history_db["a"]
    resp = _post(client, f"/{db}/_missing_revs", {"a": [r1, "5-" + "e" * 32], "c": [A1],
                                                  "new": [B1]})
    assert resp.status_int == 200
    assert resp.json == {"missing_revs": {"a": ["5-" + "e" * 32], "new": [B1]}}
    assert _post(client, f"/{db}/_missing_revs", {"a": [r3]}).json == {"missing_revs": {}}
