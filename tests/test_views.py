"""Views over HTTP on both backends: rows, every query parameter, errors, docs, POST, ETags."""

from __future__ import annotations

from typing import Any

import pytest

# `client_fixture` and `db_fixture` are the `c` and `db` fixtures of these tests.
from viewkit import bulk, client_fixture, db_fixture, ddoc, get, keys_of, query_error  # noqa: F401

# CouchDB's collation order (reference §3.1), one key per doc.
ORDERED_KEYS: list[Any] = [
    None, False, True, -2, 1, 2.5, 3, "a", "A", "aa", "b", "B", "ba", ["a"], ["b"],
    ["b", "c"], ["b", "c", "a"], ["b", "d"], {"a": 1}, {"a": 2}, {"b": 1}, {"b": 2},
    {"b": 2, "a": 1}, {"b": 2, "c": 2},
]
RANGE_ERROR = ("No rows can match your key range, reverse your start_key and end_key or set "
               "descending={}")


@pytest.fixture
def ordered(c: Any, db: str) -> str:
    """A db whose docs `d00`.. emit ORDERED_KEYS (inserted shuffled), views `m` and `sum`."""
    docs = [{"_id": f"d{i:02d}", "k": k, "v": i} for i, k in enumerate(ORDERED_KEYS)]
    bulk(c, db, docs[::2] + docs[1::2])
    ddoc(c, db, "d", {"m": {"map": "view_functions:by_key"},
                      "sum": {"map": "view_functions:by_key", "reduce": "_sum"}})
    return db


# -- map rows -------------------------------------------------------------------------------------

def test_rows_follow_couchdb_collation_with_shape_and_totals(c: Any, ordered: str) -> None:
    resp = get(c, ordered, "d/_view/m")
    assert resp.content_type == "application/json"
    body = resp.json
    assert body["total_rows"] == len(ORDERED_KEYS) and body["offset"] == 0
    assert keys_of(body) == ORDERED_KEYS
    assert body["rows"][0] == {"id": "d00", "key": None, "value": 0}
    assert all(set(r) == {"id", "key", "value"} for r in body["rows"])


def test_equal_keys_tie_break_on_raw_doc_id(c: Any, db: str) -> None:
    bulk(c, db, [{"_id": i, "k": "same"} for i in ("b", "B", "a", "Z", "é")])
    ddoc(c, db, "d", {"m": {"map": "view_functions:by_key"}})
    assert [r["id"] for r in get(c, db, "d/_view/m").json["rows"]] == ["B", "Z", "a", "b", "é"]


def test_key_keys_and_ranges(c: Any, ordered: str) -> None:
    assert keys_of(get(c, ordered, "d/_view/m", key="a").json) == ["a"]
    assert keys_of(get(c, ordered, "d/_view/m", key=3.0).json) == [3]
    assert keys_of(get(c, ordered, "d/_view/m", keys=["b", None, "zz", "b"]).json) == \
        ["b", None, "b"]
    assert keys_of(get(c, ordered, "d/_view/m", startkey="a", endkey="b").json) == \
        ["a", "A", "aa", "b"]
    assert keys_of(get(c, ordered, "d/_view/m", startkey="a", endkey="b",
                       inclusive_end="false").json) == ["a", "A", "aa"]
    assert keys_of(get(c, ordered, "d/_view/m", startkey=["b"], endkey=["b", {}]).json) == \
        [["b"], ["b", "c"], ["b", "c", "a"], ["b", "d"]]
    assert keys_of(get(c, ordered, "d/_view/m", start_key=True, end_key=2.5).json) == \
        [True, -2, 1, 2.5]


def test_descending_swaps_start_and_end(c: Any, ordered: str) -> None:
    assert keys_of(get(c, ordered, "d/_view/m", descending="true").json) == ORDERED_KEYS[::-1]
    body = get(c, ordered, "d/_view/m", descending="true", startkey="b", endkey="a").json
    assert keys_of(body) == ["b", "aa", "A", "a"]
    assert body["offset"] == ORDERED_KEYS[::-1].index("b")
    body = get(c, ordered, "d/_view/m", descending="true", startkey="b", endkey="a",
               inclusive_end="false").json
    assert keys_of(body) == ["b", "aa", "A"]


def test_limit_skip_and_offset(c: Any, ordered: str) -> None:
    body = get(c, ordered, "d/_view/m", startkey="a", limit=2, skip=1).json
    assert keys_of(body) == ["A", "aa"]
    assert body["offset"] == ORDERED_KEYS.index("a") + 1
    assert get(c, ordered, "d/_view/m", limit=0).json["rows"] == []
    body = get(c, ordered, "d/_view/m", skip=100).json
    assert body["rows"] == [] and body["offset"] == len(ORDERED_KEYS)


def test_docid_tie_breaks(c: Any, db: str) -> None:
    bulk(c, db, [{"_id": i, "k": k} for i, k in
                 (("a", 1), ("b", 1), ("c", 1), ("d", 2), ("e", 2))])
    ddoc(c, db, "d", {"m": {"map": "view_functions:by_key"}})

    def ids(**params: Any) -> list[str]:
        return [r["id"] for r in get(c, db, "d/_view/m", **params).json["rows"]]

    assert ids(startkey=1, startkey_docid="b") == ["b", "c", "d", "e"]
    assert ids(startkey=1, startkey_docid="b", endkey=2, endkey_docid="d") == ["b", "c", "d"]
    assert ids(startkey=1, start_key_doc_id="b", endkey=2, end_key_doc_id="d",
               inclusive_end="false") == ["b", "c"]
    assert ids(descending="true", startkey=2, startkey_docid="d", endkey=1,
               endkey_docid="b") == ["d", "c", "b"]
    assert ids(startkey_docid="c") == ["a", "b", "c", "d", "e"]  # ignored without startkey


def test_many_rows_stream_in_pages(c: Any, db: str) -> None:
    bulk(c, db, [{"_id": f"{i:05d}", "k": i % 7} for i in range(1300)])
    ddoc(c, db, "d", {"m": {"map": "view_functions:by_key"}})
    rows = get(c, db, "d/_view/m").json["rows"]
    assert len(rows) == 1300
    assert [(r["key"], r["id"]) for r in rows] == sorted((r["key"], r["id"]) for r in rows)
    assert len(get(c, db, "d/_view/m", skip=520, limit=600).json["rows"]) == 600


def test_identical_emits_of_one_doc_are_all_rows(c: Any, db: str) -> None:
    bulk(c, db, [{"_id": "a", "ks": ["x", "x", 1, 1.0], "v": 2}])
    ddoc(c, db, "d", {"m": {"map": "view_functions:each_key"},
                      "n": {"map": "view_functions:each_key", "reduce": "_count"}})
    assert keys_of(get(c, db, "d/_view/m").json) == [1, 1.0, "x", "x"]
    assert get(c, db, "d/_view/n", group="true").json["rows"] == [
        {"key": 1, "value": 2}, {"key": "x", "value": 2}]


# -- errors ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("params,reason", [
    ({"startkey": "b", "endkey": "a"}, RANGE_ERROR.format("true")),
    ({"startkey": "a", "endkey": "b", "descending": "true"}, RANGE_ERROR.format("false")),
    ({"keys": ["a"], "key": "a", "reduce": "false"},
     "`keys` is incompatible with `key`, `start_key` and `end_key`"),
    ({"keys": ["a", "b"]}, "Multi-key fetches for reduce views must use `group=true`"),
    ({"include_docs": "true"}, "`include_docs` is invalid for reduce"),
    ({"conflicts": "true"}, "`conflicts` is invalid for reduce views."),
    ({"group": "false", "group_level": 1},
     "Can't specify group=false and group_level>0 at the same time"),
    ({"limit": "abc"}, 'Invalid value for integer: "abc"'),
    ({"limit": -1}, 'Invalid value for positive integer: "-1"'),
    ({"skip": -3}, 'Invalid value for positive integer: "-3"'),
    ({"descending": "maybe"}, 'Invalid boolean parameter: "maybe"'),
    ({"stale": "later"}, "Invalid value for `stale`."),
    ({"update": "sometimes"}, "Invalid value for `update`."),
    ({"stable": "yes"}, "Invalid value for `stable`."),
    ({"keys": {"a": 1}}, "`keys` must be an array of strings."),
])
def test_reduce_view_query_parse_errors(c: Any, ordered: str, params: dict[str, Any],
                                        reason: str) -> None:
    assert query_error(get(c, ordered, "d/_view/sum", status="*", **params)) == reason


@pytest.mark.parametrize("params,reason", [
    ({"group": "true"}, "Invalid use of grouping on a map view."),
    ({"group_level": 1}, "Invalid use of grouping on a map view."),
    ({"reduce": "true"}, "Reduce is invalid for map-only views."),
])
def test_map_view_query_parse_errors(c: Any, ordered: str, params: dict[str, Any],
                                     reason: str) -> None:
    assert query_error(get(c, ordered, "d/_view/m", status="*", **params)) == reason


def test_grouping_a_reduce_view_with_reduce_false_is_a_map_view(c: Any, ordered: str) -> None:
    resp = get(c, ordered, "d/_view/sum", status="*", reduce="false", group="true")
    assert query_error(resp) == "Invalid use of grouping on a map view."
    assert get(c, ordered, "d/_view/sum", reduce="false", group_level=0).json["total_rows"]


def test_missing_things_are_404s(c: Any, ordered: str) -> None:
    resp = get(c, ordered, "d/_view/nope", status=404)
    assert resp.json == {"error": "not_found", "reason": "missing_named_view"}
    assert get(c, ordered, "nope/_view/m", status=404).json == \
        {"error": "not_found", "reason": "missing"}
    assert c.get("/no_such_db/_design/d/_view/m", status=404).json["reason"] == \
        "Database does not exist."
    rev = c.get(f"/{ordered}/_design/d").json["_rev"]
    c.delete(f"/{ordered}/_design/d?rev={rev}", status=200)
    assert get(c, ordered, "d/_view/m", status=404).json == \
        {"error": "not_found", "reason": "deleted"}


def test_invalid_json_parameter_is_a_bad_request(c: Any, ordered: str) -> None:
    resp = c.get(f"/{ordered}/_design/d/_view/m?key=nope", status=400)
    assert resp.json == {"error": "bad_request", "reason": "invalid UTF-8 JSON"}


def test_unregistered_python_function_is_refused(c: Any, db: str) -> None:
    bulk(c, db, [{"_id": "a", "k": 1}])
    ddoc(c, db, "d", {"m": {"map": "view_functions:not_registered"}})
    resp = get(c, db, "d/_view/m", status=400)
    assert resp.json["error"] == "invalid_design_doc"


def test_a_map_function_failing_on_one_doc_skips_only_that_doc(c: Any, db: str) -> None:
    bulk(c, db, [{"_id": "a"}, {"_id": "b", "bad": True}, {"_id": "c"}])
    ddoc(c, db, "d", {"m": {"map": "view_functions:fails_on_bad"}})
    assert [r["id"] for r in get(c, db, "d/_view/m").json["rows"]] == ["a", "c"]


# -- documents, POST, /queries, response options ---------------------------------------------------

def test_include_docs_joins_row_docs_and_linked_docs(c: Any, db: str) -> None:
    revs = bulk(c, db, [{"_id": "a", "k": 1}, {"_id": "t", "n": 5},
                        {"_id": "link", "k": 2, "v": {"_id": "t"}},
                        {"_id": "gone", "k": 3, "v": {"_id": "missing"}}])
    ddoc(c, db, "d", {"m": {"map": "view_functions:by_key"}})
    rows = get(c, db, "d/_view/m", include_docs="true").json["rows"]
    assert rows[0]["doc"] == {"_id": "a", "_rev": revs["a"], "k": 1}
    assert rows[1]["doc"] == {"_id": "t", "_rev": revs["t"], "n": 5}
    assert rows[1]["id"] == "link" and rows[1]["value"] == {"_id": "t"}
    assert rows[2]["doc"] is None
    new_t = c.put_json(f"/{db}/t", {"_rev": revs["t"], "n": 6}, status=201).json["rev"]
    bulk(c, db, [{"_id": "pinned", "k": 4, "v": {"_id": "t", "_rev": revs["t"]}}])
    rows = get(c, db, "d/_view/m", include_docs="true").json["rows"]
    assert rows[1]["doc"]["_rev"] == new_t
    assert rows[3]["doc"] == {"_id": "t", "_rev": revs["t"], "n": 5}


def test_include_docs_with_conflicts(c: Any, db: str) -> None:
    bulk(c, db, [{"_id": "a", "k": 1, "_rev": "1-" + "a" * 32},
                 {"_id": "a", "k": 1, "_rev": "1-" + "b" * 32}], new_edits=False)
    ddoc(c, db, "d", {"m": {"map": "view_functions:by_key"},
                      "c": {"map": "view_functions:conflicts"}})
    doc = get(c, db, "d/_view/m", include_docs="true", conflicts="true").json["rows"][0]["doc"]
    assert doc["_rev"] == "1-" + "b" * 32 and doc["_conflicts"] == ["1-" + "a" * 32]
    assert "_conflicts" not in get(c, db, "d/_view/m", include_docs="true").json["rows"][0]["doc"]
    # map functions see `_conflicts`, as in CouchDB's classic conflicts view
    assert get(c, db, "d/_view/c").json["rows"] == [
        {"id": "a", "key": "a", "value": ["1-" + "a" * 32]}]


def test_post_with_keys_and_parameters_in_the_body(c: Any, ordered: str) -> None:
    resp = c.post_json(f"/{ordered}/_design/d/_view/m",
                       {"keys": ["b", "a"], "limit": 1}, status=200)
    assert keys_of(resp.json) == ["b"]
    resp = c.post_json(f"/{ordered}/_design/d/_view/sum?group=true", {"keys": ["b", "a"]})
    assert resp.json["rows"] == [{"key": "b", "value": 10}, {"key": "a", "value": 7}]
    resp = c.post_json(f"/{ordered}/_design/d/_view/m", {"queries": [{}]}, status=400)
    assert resp.json["reason"] == "The `queries` parameter is no longer supported at this endpoint"
    assert c.post_json(f"/{ordered}/_design/d/_view/m", {"keys": "a"}, status=400).json == \
        {"error": "bad_request", "reason": "`keys` member must be an array."}
    c.post(f"/{ordered}/_design/d/_view/m", "{}", status=415)


def test_queries_answers_each_query_in_order(c: Any, ordered: str) -> None:
    resp = c.post_json(f"/{ordered}/_design/d/_view/sum/queries?group=true", {"queries": [
        {"keys": ["a"]}, {"reduce": False, "limit": 2}, {"group": True, "startkey": "b",
                                                        "endkey": "B"}]})
    results = resp.json["results"]
    assert results[0]["rows"] == [{"key": None, "value": 7}]
    assert keys_of(results[1]) == [None, False] and results[1]["total_rows"] == 24
    assert results[2]["rows"] == [{"key": "b", "value": 10}, {"key": "B", "value": 11}]
    bad = c.post_json(f"/{ordered}/_design/d/_view/sum/queries", {"q": []}, status=400)
    assert bad.json["reason"] == "POST body must include `queries` parameter."
    bad = c.post_json(f"/{ordered}/_design/d/_view/sum/queries",
                      {"queries": [{"include_docs": True}]}, status=400)
    assert bad.json["reason"] == "`include_docs` is invalid for reduce"


def test_update_seq_and_sorted_false(c: Any, ordered: str) -> None:
    seq = c.get(f"/{ordered}").json["update_seq"]
    body = get(c, ordered, "d/_view/m", update_seq="true", limit=1).json
    assert body["update_seq"] == seq and list(body) == ["total_rows", "offset", "update_seq",
                                                        "rows"]
    body = get(c, ordered, "d/_view/m", sorted="false", limit=1).json
    assert list(body) == ["rows"]
    body = get(c, ordered, "d/_view/sum", update_seq="true").json
    assert body == {"update_seq": seq, "rows": [{"key": None, "value": sum(range(24))}]}


def test_etag_and_if_none_match(c: Any, ordered: str) -> None:
    first = get(c, ordered, "d/_view/m", limit=3)
    etag = first.headers["ETag"]
    assert etag.startswith('"') and etag.endswith('"')
    again = c.get(f"/{ordered}/_design/d/_view/m?limit=3", headers={"If-None-Match": etag},
                  status=304)
    assert again.body == b"" and again.headers["ETag"] == etag
    assert get(c, ordered, "d/_view/m", limit=4).headers["ETag"] != etag
    bulk(c, ordered, [{"_id": "new", "k": "zz"}])
    assert get(c, ordered, "d/_view/m", limit=3).headers["ETag"] != etag
