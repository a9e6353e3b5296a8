"""`_find`, `_explain` and `_index` over HTTP: every operator, options, warnings and errors.

Error names, reasons and statuses are CouchDB's (`mango_error.erl`, `mango_opts.erl`).
"""

from __future__ import annotations

from typing import Any

import pytest

DOCS = [
    {"_id": "ann", "name": "Ann", "age": 30, "tags": ["a", "b"], "addr": {"city": "Paris"},
     "pets": [{"kind": "cat", "age": 2}], "map": {"k1": 1}, "dotted.key": 1},
    {"_id": "bob", "name": "Bob", "age": 41, "tags": ["b"], "addr": {"city": "Rome"},
     "pets": [{"kind": "dog", "age": 9}, {"kind": "cat", "age": 4}], "map": {"zz": 2}},
    {"_id": "cid", "name": "cid", "age": 17.5, "tags": [], "none": None},
    {"_id": "dan", "name": "Dan", "age": "old", "tags": ["a", "c", "d"]},
]


@pytest.fixture
def db(client: Any, fresh_db: str) -> str:
    client.post_json(f"/{fresh_db}/_bulk_docs", {"docs": DOCS}, status=201)
    return fresh_db


def ids(client: Any, db: str, body: dict[str, Any]) -> list[str]:
    answer = client.post_json(f"/{db}/_find", body, status=200).json
    return [d["_id"] for d in answer["docs"]]


@pytest.mark.parametrize("selector,expected", [
    ({}, ["ann", "bob", "cid", "dan"]),
    ({"name": "Ann"}, ["ann"]),
    ({"age": {"$eq": 30}}, ["ann"]),
    ({"age": {"$ne": 30}}, ["bob", "cid", "dan"]),
    ({"age": {"$gt": 30}}, ["bob", "dan"]),                 # "old": strings sort after numbers
    ({"age": {"$gte": 30, "$lt": 100}}, ["ann", "bob"]),
    ({"age": {"$lt": 30}}, ["cid"]),
    ({"age": {"$lte": 30}}, ["ann", "cid"]),
    ({"name": {"$in": ["Bob", "Dan"]}}, ["bob", "dan"]),
    ({"tags": {"$in": ["c"]}}, ["dan"]),
    ({"name": {"$nin": ["Bob", "Dan"]}}, ["ann", "cid"]),
    ({"none": {"$exists": True}}, ["cid"]),
    ({"none": {"$exists": False}}, ["ann", "bob", "dan"]),
    ({"age": {"$type": "string"}}, ["dan"]),
    ({"age": {"$mod": [10, 1]}}, ["bob"]),
    ({"name": {"$regex": "^[AB]"}}, ["ann", "bob"]),
    ({"name": {"$beginsWith": "D"}}, ["dan"]),
    ({"tags": {"$size": 0}}, ["cid"]),
    ({"tags": {"$all": ["a", "b"]}}, ["ann"]),
    ({"pets": {"$elemMatch": {"kind": "cat", "age": {"$gt": 3}}}}, ["bob"]),
    ({"pets": {"$allMatch": {"kind": "cat"}}}, ["ann"]),
    ({"map": {"$keyMapMatch": {"$eq": "zz"}}}, ["bob"]),
    ({"$and": [{"age": {"$gt": 20}}, {"tags": {"$size": 1}}]}, ["bob"]),
    ({"$or": [{"name": "Ann"}, {"age": "old"}]}, ["ann", "dan"]),
    ({"$nor": [{"name": "Ann"}, {"age": "old"}]}, ["bob", "cid"]),
    ({"$not": {"name": "Ann"}}, ["bob", "cid", "dan"]),
    ({"addr.city": "Rome"}, ["bob"]),                        # dotted path
    ({"addr": {"city": "Paris"}}, ["ann"]),                  # nested object = sub-fields
    ({"tags.1": "b"}, ["ann"]),                              # array position
    ({"dotted\\.key": 1}, ["ann"]),                          # escaped dot: one field
    ({"_id": {"$gt": "bob"}}, ["cid", "dan"]),
])
def test_every_operator_through_find(client: Any, db: str, selector: dict[str, Any],
                                     expected: list[str]) -> None:
    assert ids(client, db, {"selector": selector}) == expected


def test_the_same_answers_through_a_json_index(client: Any, db: str) -> None:
    client.post_json(f"/{db}/_index", {"index": {"fields": ["age"]}, "name": "by-age"},
                     status=200)
    body = {"selector": {"age": {"$gt": 0}}, "execution_stats": True}
    answer = client.post_json(f"/{db}/_find", body, status=200).json
    assert [d["_id"] for d in answer["docs"]] == ["cid", "ann", "bob", "dan"]  # index order
    assert "warning" not in answer
    stats = answer["execution_stats"]
    assert stats["results_returned"] == 4 and stats["total_docs_examined"] == 4
    assert set(stats) == {"total_keys_examined", "total_docs_examined",
                          "total_quorum_docs_examined", "results_returned",
                          "execution_time_ms"}


def test_sort_limit_skip_fields_and_bookmarks(client: Any, db: str) -> None:
    client.post_json(f"/{db}/_index", {"index": {"fields": ["name"]}}, status=200)
    body = {"selector": {"name": {"$gt": None}}, "sort": [{"name": "desc"}],
            "fields": ["name", "addr.city"], "limit": 2}
    first = client.post_json(f"/{db}/_find", body, status=200).json
    assert first["docs"] == [{"name": "Dan"}, {"name": "cid"}]  # ICU: cid < Dan
    body["bookmark"] = first["bookmark"]
    second = client.post_json(f"/{db}/_find", body, status=200).json
    assert second["docs"] == [{"name": "Bob", "addr": {"city": "Rome"}},
                              {"name": "Ann", "addr": {"city": "Paris"}}]
    body["bookmark"] = second["bookmark"]
    third = client.post_json(f"/{db}/_find", body, status=200).json
    assert third["docs"] == [] and third["bookmark"] == second["bookmark"]
    assert ids(client, db, {"selector": {"name": {"$gt": None}}, "sort": ["name"],
                            "skip": 1, "limit": 2}) == ["bob", "cid"]


def test_default_limit_is_25(client: Any, fresh_db: str) -> None:
    docs = [{"_id": f"{i:03}", "n": i} for i in range(30)]
    client.post_json(f"/{fresh_db}/_bulk_docs", {"docs": docs}, status=201)
    assert len(ids(client, fresh_db, {"selector": {}})) == 25


def test_sort_by_id_uses_all_docs_and_other_sorts_need_an_index(client: Any, db: str) -> None:
    assert ids(client, db, {"selector": {"_id": {"$gt": None}},
                            "sort": [{"_id": "desc"}]}) == ["dan", "cid", "bob", "ann"]
    answer = client.post_json(f"/{db}/_find", {"selector": {}, "sort": ["age"]}, status=400)
    assert answer.json == {"error": "no_usable_index", "reason":
                           "No index exists for this sort, try indexing by the sort fields."}


def test_warnings(client: Any, db: str) -> None:
    answer = client.post_json(f"/{db}/_find", {"selector": {"name": "Ann"}}, status=200).json
    assert answer["warning"] == ("No matching index found, create an index to optimize "
                                 "query time.")
    client.post_json(f"/{db}/_index", {"index": {"fields": ["name"]}, "ddoc": "n",
                                       "name": "n"}, status=200)
    answer = client.post_json(f"/{db}/_find", {"selector": {"name": "Ann"},
                                               "use_index": "nope"}, status=200).json
    assert answer["warning"] == ("_design/nope was not used because it does not contain a "
                                 "valid index for this query.")
    assert [d["_id"] for d in answer["docs"]] == ["ann"]
    answer = client.post_json(f"/{db}/_find", {"selector": {"name": "Ann"},
                                               "use_index": ["n", "other"]}, status=200).json
    assert answer["warning"] == ("_design/n, other was not used because it is not a valid "
                                 "index for this query.")
    answer = client.post_json(f"/{db}/_find", {"selector": {"name": "Ann"},
                                               "use_index": "_design/n"}, status=200).json
    assert "warning" not in answer
    refused = client.post_json(f"/{db}/_find", {"selector": {"name": "Ann"}, "use_index": "x",
                                                "allow_fallback": False}, status=400)
    assert refused.json["error"] == "no_usable_index"


def test_partial_index_used_only_when_named(client: Any, db: str) -> None:
    client.post_json(f"/{db}/_index", {"index": {"fields": ["age"], "partial_filter_selector":
                                                 {"name": {"$ne": "Bob"}}},
                                       "ddoc": "p", "name": "p"}, status=200)
    body: dict[str, Any] = {"selector": {"age": {"$gt": 0}}}
    plan = client.post_json(f"/{db}/_explain", body, status=200).json
    assert plan["index"]["name"] == "_all_docs"
    body["use_index"] = "p"
    assert ids(client, db, body) == ["cid", "ann", "dan"]


def test_update_false_reads_the_index_as_it_is(client: Any, db: str) -> None:
    client.post_json(f"/{db}/_index", {"index": {"fields": ["age"]}}, status=200)
    assert ids(client, db, {"selector": {"age": 99}}) == []
    client.put_json(f"/{db}/eve", {"age": 99}, status=201)
    assert ids(client, db, {"selector": {"age": 99}, "update": False}) == []
    assert ids(client, db, {"selector": {"age": 99}, "stale": "ok"}) == []
    assert ids(client, db, {"selector": {"age": 99}}) == ["eve"]


def test_conflicts(client: Any, db: str) -> None:
    client.post_json(f"/{db}/_bulk_docs", {"new_edits": False, "docs": [
        {"_id": "ann", "_rev": "1-" + "f" * 32, "name": "Ann2"}]}, status=201)
    docs = client.post_json(f"/{db}/_find", {"selector": {"_id": "ann"}, "conflicts": True},
                            status=200).json["docs"]
    assert len(docs[0]["_conflicts"]) == 1


def test_explain_shape(client: Any, db: str) -> None:
    client.post_json(f"/{db}/_index", {"index": {"fields": ["age", "name"]}, "ddoc": "an",
                                       "name": "an"}, status=200)
    client.post_json(f"/{db}/_index", {"index": {"fields": ["age"]}, "ddoc": "a", "name": "a"},
                     status=200)
    plan = client.post_json(f"/{db}/_explain", {"selector": {"age": {"$gte": 18, "$lt": 65},
                                                             "name": {"$exists": True}},
                                                "limit": 3}, status=200).json
    assert plan["dbname"] == db and plan["index"]["ddoc"] == "_design/a"  # fewer columns
    assert plan["limit"] == 3 and plan["skip"] == 0 and plan["fields"] == []
    assert plan["selector"] == {"$and": [{"$and": [{"age": {"$gte": 18}}, {"age": {"$lt": 65}}]},
                                         {"name": {"$exists": True}}]}
    assert plan["mrargs"]["start_key"] == [18] and plan["mrargs"]["end_key"] == [65, "<MAX>"]
    assert plan["mrargs"]["direction"] == "fwd" and plan["opts"]["limit"] == 3
    reasons = {c["index"]["name"]: c["analysis"]["reasons"][0]["name"]
               for c in plan["index_candidates"]}
    assert reasons == {"_all_docs": "unfavored_type", "an": "too_many_fields"}


def test_index_create_list_delete(client: Any, db: str) -> None:
    made = client.post_json(f"/{db}/_index", {"index": {"fields": [{"age": "desc"}]}},
                            status=200).json
    assert made["result"] == "created" and made["id"].startswith("_design/")
    again = client.post_json(f"/{db}/_index", {"index": {"fields": [{"age": "desc"}]}},
                             status=200).json
    assert again == {**made, "result": "exists"}
    ddoc = client.get(f"/{db}/{made['id']}", status=200).json
    assert ddoc["language"] == "query"
    assert ddoc["views"][made["name"]]["map"] == {"fields": {"age": "desc"},
                                                   "partial_filter_selector": {}}
    listed = client.get(f"/{db}/_index", status=200).json
    assert listed["total_rows"] == 2
    assert listed["indexes"][0]["name"] == "_all_docs"
    assert listed["indexes"][1] == {"ddoc": made["id"], "name": made["name"], "type": "json",
                                    "partitioned": False, "def": {"fields": [{"age": "desc"}]}}
    assert client.get(f"/{db}/_index?limit=1&skip=1").json["indexes"][0]["name"] == made["name"]
    short = made["id"][len("_design/"):]
    client.delete(f"/{db}/_index/{short}/json/{made['name']}", status=200)
    client.delete(f"/{db}/_index/{short}/json/{made['name']}", status=404)
    client.get(f"/{db}/{made['id']}", status=404)  # nothing but its language was left


def test_bulk_delete(client: Any, db: str) -> None:
    client.post_json(f"/{db}/_index", {"index": {"fields": ["a"]}, "ddoc": "x", "name": "a"})
    client.post_json(f"/{db}/_index", {"index": {"fields": ["b"]}, "ddoc": "x", "name": "b"})
    answer = client.post_json(f"/{db}/_index/_bulk_delete", {"docids": ["x", "_design/y"]},
                              status=200).json
    assert answer == {"success": [{"id": "_design/x", "ok": True}],
                      "fail": [{"id": "_design/y", "error": "not_found"}]}
    assert client.get(f"/{db}/_index").json["total_rows"] == 1


def test_index_in_a_javascript_ddoc_is_refused(client: Any, db: str) -> None:
    client.put_json(f"/{db}/_design/js", {"views": {"v": {"map": "function(d){}"}}}, status=201)
    answer = client.post_json(f"/{db}/_index", {"index": {"fields": ["a"]}, "ddoc": "js"},
                              status=400)
    assert answer.json == {"error": "invalid_ddoc_lang", "reason":
                           'Existing design doc has an invalid language: <<"javascript">>'}


@pytest.mark.parametrize("body,error,reason", [
    ({}, "missing_required_key", "Missing required key: selector"),
    ({"selector": []}, "invalid_selector_json", "Selector must be a JSON object, not: []"),
    ({"selector": {"a": {"$bogus": 1}}}, "invalid_operator", "Invalid operator: $bogus"),
    ({"selector": {"a": {"$in": 1}}}, "bad_arg", "Bad argument for operator $in: 1"),
    ({"selector": {"a": {"$beginsWith": 1}}}, "invalid_operator",
     "Invalid operator: $beginsWith"),
    ({"selector": {"a": {"$where": "x"}}}, "not_supported", "Unsupported operator: $where"),
    ({"selector": {}, "limit": -1}, "invalid_non_neg_integer",
     "-1 is not an integer greater than or equal to zero"),
    ({"selector": {}, "skip": "1"}, "invalid_non_neg_integer",
     '<<"1">> is not an integer greater than or equal to zero'),
    ({"selector": {}, "r": 0}, "invalid_pos_integer", "0 is not an integer greater than zero"),
    ({"selector": {}, "conflicts": "yes"}, "invalid_boolean",
     'Invalid boolean value: <<"yes">>'),
    ({"selector": {}, "sort": "a"}, "invalid_sort_json",
     'Sort must be an array of sort specs, not: <<"a">>'),
    ({"selector": {}, "sort": [{"a": "up"}]}, "invalid_sort_dir",
     'Invalid sort direction: {[{<<"a">>,<<"up">>}]}'),
    ({"selector": {}, "sort": [1]}, "invalid_sort_field", "Invalid sort field: 1"),
    ({"selector": {}, "sort": ["a", {"b": "desc"}]}, "unsupported_mixed_sort",
     "Sorts currently only support a single direction for all fields."),
    ({"selector": {}, "fields": "a"}, "invalid_fields",
     'Fields must be an array of strings, not: <<"a">>'),
    ({"selector": {}, "fields": [1]}, "invalid_field", "Invalid JSON for field spec: 1"),
    ({"selector": {}, "fields": ["a..b"]}, "invalid_field_name", "Invalid field name: a..b"),
    ({"selector": {}, "sort": ["a..b"]}, "invalid_field_name", "Invalid field name: a..b"),
    ({"selector": {}, "use_index": 5}, "invalid_index_name", "Invalid index name: 5"),
    ({"selector": {}, "bookmark": "!!"}, "invalid_bookmark", 'Invalid bookmark value: "!!"'),
    ({"selector": {}, "bookmark": 3}, "invalid_bookmark", "Invalid bookmark value: 3"),
    ({"selector": {}, "bookmark": "W1sxLDJdXQ"}, "invalid_bookmark",  # [[1,2]]: no doc id
     'Invalid bookmark value: "W1sxLDJdXQ"'),
    ({"selector": {}, "frobnicate": 1}, "invalid_key",
     "Invalid key frobnicate for this request."),
])
def test_find_errors(client: Any, db: str, body: dict[str, Any], error: str,
                     reason: str) -> None:
    # `_explain` never decodes a bookmark (CouchDB's neither): only its type is checked there
    endpoints = ["_find"] if isinstance(body.get("bookmark"), str) else ["_find", "_explain"]
    for endpoint in endpoints:
        answer = client.post_json(f"/{db}/{endpoint}", body, status=400)
        assert answer.json == {"error": error, "reason": reason}


@pytest.mark.parametrize("body,status,error,reason", [
    ({}, 400, "missing_required_key", "Missing required key: index"),
    ({"index": []}, 400, "invalid_index", "JSON indexes must be an object, not: []"),
    ({"index": {}}, 400, "missing_required_key", "Missing required key: fields"),
    ({"index": {"fields": []}}, 400, "invalid_index",
     "Index definitions must name at least one field."),
    ({"index": {"fields": ["a..b"]}}, 400, "invalid_field_name", "Invalid field name: a..b"),
    ({"index": {"fields": ["a"]}, "type": "geo"}, 400, "invalid_index",
     "Invalid type for index: geo"),
    ({"index": {"fields": ["a"]}, "name": 1}, 400, "invalid_string", "Invalid string: 1"),
    ({"index": {"fields": ["a"]}, "x": 1}, 400, "invalid_key", "Invalid key x for this request."),
    ({"index": {"fields": ["a"], "partial_filter_selector": {"a": {"$nope": 1}}}}, 400,
     "invalid_operator", "Invalid operator: $nope"),
])
def test_index_errors(client: Any, db: str, body: dict[str, Any], status: int, error: str,
                      reason: str) -> None:
    answer = client.post_json(f"/{db}/_index", body, status=status)
    assert answer.json == {"error": error, "reason": reason}


def test_missing_database_and_content_type(client: Any) -> None:
    assert client.post_json("/nope/_find", {"selector": {}}, status=404).json["error"] == \
        "not_found"
    client.get("/nope/_index", status=404)
    client.post_json("/nope/_index", {"index": {"fields": ["a"]}}, status=404)
    client.put("/ct", status=201)
    client.post("/ct/_find", '{"selector": {}}', content_type="text/plain", status=415)
    client.get("/ct/_index?limit=0", status=400)


def test_view_cleanup_keeps_mango_indexes_and_view_reads_them(client: Any, db: str) -> None:
    client.post_json(f"/{db}/_index", {"index": {"fields": ["age"]}, "ddoc": "a", "name": "a"},
                     status=200)
    assert ids(client, db, {"selector": {"age": 30}}) == ["ann"]
    client.post_json(f"/{db}/_view_cleanup", {}, status=202)
    stats = client.post_json(f"/{db}/_find", {"selector": {"age": 30}, "execution_stats": True},
                             status=200).json["execution_stats"]
    assert stats["total_docs_examined"] == 1  # the index is still there, not rebuilt empty
    rows = client.get(f"/{db}/_design/a/_view/a?reduce=false", status=200).json["rows"]
    assert [r["key"] for r in rows] == [[17.5], [30], [41], ["old"]]
    assert client.get(f"/{db}/_design/a/_view/a", status=200).json["rows"] == [
        {"key": None, "value": 4}]
    assert client.get(f"/{db}/_design/a/_info", status=200).json["name"] == "a"


def test_a_hand_written_index_with_a_bad_field_builds_nothing(client: Any, db: str) -> None:
    client.put_json(f"/{db}/_design/bad", {"language": "query", "views": {"v": {
        "map": {"fields": {"a..b": "asc"}}, "reduce": "_count"}}}, status=201)
    assert client.get(f"/{db}/_design/bad/_view/v?reduce=false").json["rows"] == []
    assert ids(client, db, {"selector": {"name": "Ann"}}) == ["ann"]
