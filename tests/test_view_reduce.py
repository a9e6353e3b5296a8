"""Reduce views over HTTP on both backends: each built-in, grouping, ranges, incremental upkeep."""

from __future__ import annotations

from typing import Any

import pytest
from settee.views.builtin_reduce import SUM_ERROR

# `client_fixture` and `db_fixture` are the `c` and `db` fixtures of these tests.
from viewkit import bulk, client_fixture, db_fixture, ddoc, get  # noqa: F401

KEYED = [  # (doc id, key, value)
    ("a", ["x", 1], 1), ("b", ["x", 2], 2), ("c", ["x", 2], 3), ("d", ["y", 1], 4),
    ("e", "plain", 5), ("f", ["x"], 6), ("g", 7, 7),
]


@pytest.fixture
def keyed(c: Any, db: str) -> str:
    bulk(c, db, [{"_id": i, "k": k, "v": v} for i, k, v in KEYED])
    views = {name: {"map": "view_functions:by_key", "reduce": name}
             for name in ("_sum", "_count", "_stats", "_approx_count_distinct")}
    views["py"] = {"map": "view_functions:by_key", "reduce": "view_functions:total"}
    ddoc(c, db, "r", views)
    return db


def rows(c: Any, db: str, view: str, **params: Any) -> list[dict[str, Any]]:
    return list(get(c, db, f"r/_view/{view}", **params).json["rows"])


def test_whole_view_reduce_of_each_builtin(c: Any, keyed: str) -> None:
    assert rows(c, keyed, "_sum") == [{"key": None, "value": 28}]
    assert rows(c, keyed, "_count") == [{"key": None, "value": 7}]
    assert rows(c, keyed, "_stats") == [{"key": None, "value": {
        "sum": 28, "count": 7, "min": 1, "max": 7, "sumsqr": 140}}]
    assert rows(c, keyed, "_approx_count_distinct") == [{"key": None, "value": 6}]
    assert rows(c, keyed, "py") == [{"key": None, "value": 28}]


def test_group_true_and_group_level(c: Any, keyed: str) -> None:
    assert rows(c, keyed, "_sum", group="true") == [
        {"key": 7, "value": 7}, {"key": "plain", "value": 5}, {"key": ["x"], "value": 6},
        {"key": ["x", 1], "value": 1}, {"key": ["x", 2], "value": 5},
        {"key": ["y", 1], "value": 4}]
    assert rows(c, keyed, "_sum", group_level=1) == [
        {"key": 7, "value": 7}, {"key": "plain", "value": 5}, {"key": ["x"], "value": 12},
        {"key": ["y"], "value": 4}]
    assert rows(c, keyed, "_count", group_level=1, descending="true") == [
        {"key": ["y"], "value": 1}, {"key": ["x"], "value": 4},
        {"key": "plain", "value": 1}, {"key": 7, "value": 1}]
    assert rows(c, keyed, "_sum", group_level=1, skip=1, limit=2) == [
        {"key": "plain", "value": 5}, {"key": ["x"], "value": 12}]
    assert rows(c, keyed, "_sum", group_level=0) == [{"key": None, "value": 28}]


def test_reduce_over_ranges_and_keys(c: Any, keyed: str) -> None:
    assert rows(c, keyed, "_sum", startkey=["x"], endkey=["x", {}]) == \
        [{"key": None, "value": 12}]
    assert rows(c, keyed, "_sum", startkey=["x"], endkey=["x", 2], inclusive_end="false") == \
        [{"key": None, "value": 7}]
    assert rows(c, keyed, "_sum", group="true", keys=[["x", 2], "nope", 7]) == [
        {"key": ["x", 2], "value": 5}, {"key": 7, "value": 7}]
    assert rows(c, keyed, "_sum", key=["x", 2]) == [{"key": None, "value": 5}]
    assert rows(c, keyed, "_sum", startkey="zzz", endkey="zzzz") == []
    # a doc-id bound cuts through the rows of one key
    assert rows(c, keyed, "_sum", startkey=["x", 2], startkey_docid="c",
                endkey=["x", 2]) == [{"key": None, "value": 3}]
    assert rows(c, keyed, "_sum", group="true", startkey=["x", 1], endkey=["x", 2],
                endkey_docid="b") == [{"key": ["x", 1], "value": 1},
                                      {"key": ["x", 2], "value": 2}]


def test_sum_of_arrays_and_objects_and_its_error_value(c: Any, db: str) -> None:
    bulk(c, db, [{"_id": "a", "k": "arr", "v": [1, 2]}, {"_id": "b", "k": "arr", "v": [3]},
                 {"_id": "c", "k": "arr", "v": 10}, {"_id": "d", "k": "obj", "v": {"b": 1}},
                 {"_id": "e", "k": "obj", "v": {"a": 2, "b": 3}},
                 {"_id": "h", "k": "mixed", "v": {"b": 1}}, {"_id": "i", "k": "mixed", "v": 2},
                 {"_id": "f", "k": "bad", "v": "nope"}, {"_id": "g", "k": "bad", "v": 1}])
    ddoc(c, db, "r", {"s": {"map": "view_functions:by_key", "reduce": "_sum"}})
    got = {r["key"]: r["value"] for r in get(c, db, "r/_view/s", group="true").json["rows"]}
    assert got["arr"] == [14, 2]
    assert got["bad"] == {"error": "builtin_reduce_error", "reason": SUM_ERROR,
                          "caused_by": "nope"}
    assert got["obj"] == {"a": 2, "b": 4}
    assert got["mixed"]["error"] == "builtin_reduce_error"  # objects cannot mix with numbers
    assert get(c, db, "r/_view/s").json["rows"][0]["value"]["error"] == "builtin_reduce_error"


def test_stats_of_arrays_and_bad_input(c: Any, db: str) -> None:
    bulk(c, db, [{"_id": "a", "k": 1, "v": [1, 10]}, {"_id": "b", "k": 1, "v": [3, 20]},
                 {"_id": "c", "k": 2, "v": "x"}])
    ddoc(c, db, "r", {"s": {"map": "view_functions:by_key", "reduce": "_stats"}})
    out = get(c, db, "r/_view/s", group="true").json["rows"]
    assert out[0] == {"key": 1, "value": [
        {"sum": 4, "count": 2, "min": 1, "max": 3, "sumsqr": 10},
        {"sum": 30, "count": 2, "min": 10, "max": 20, "sumsqr": 500}]}
    assert out[1]["key"] == 2 and out[1]["error"] == "builtin_reduce_error"


def test_reductions_follow_updates_and_deletes(c: Any, keyed: str) -> None:
    assert rows(c, keyed, "_sum", group="true", key=["x", 2]) == [{"key": ["x", 2], "value": 5}]
    doc = c.get(f"/{keyed}/c").json
    c.put_json(f"/{keyed}/c", {**doc, "v": 30}, status=201)
    assert rows(c, keyed, "_sum", group="true", key=["x", 2]) == [{"key": ["x", 2], "value": 32}]
    assert rows(c, keyed, "_stats", group="true", key=["x", 2])[0]["value"]["max"] == 30
    doc = c.get(f"/{keyed}/c").json
    c.delete(f"/{keyed}/c?rev={doc['_rev']}", status=200)
    doc = c.get(f"/{keyed}/b").json
    c.put_json(f"/{keyed}/b", {**doc, "k": ["z"]}, status=201)
    assert rows(c, keyed, "_sum", group="true", key=["x", 2]) == []
    assert rows(c, keyed, "_count") == [{"key": None, "value": 6}]
    assert rows(c, keyed, "_sum") == [{"key": None, "value": 25}]
    assert rows(c, keyed, "_stats")[0]["value"]["max"] == 7
    assert rows(c, keyed, "_approx_count_distinct") == [{"key": None, "value": 6}]
    assert rows(c, keyed, "_sum", group_level=1)[-2:] == [
        {"key": ["y"], "value": 4}, {"key": ["z"], "value": 2}]


def test_float_sums_stay_right_through_updates(c: Any, db: str) -> None:
    bulk(c, db, [{"_id": f"d{i}", "k": i % 2, "v": 0.5 + i} for i in range(6)])
    ddoc(c, db, "r", {"s": {"map": "view_functions:by_key", "reduce": "_sum"}})
    assert rows(c, db, "s") == [{"key": None, "value": 18.0}]
    doc = c.get(f"/{db}/d0").json
    c.put_json(f"/{db}/d0", {**doc, "v": 100.25}, status=201)
    assert rows(c, db, "s") == [{"key": None, "value": 117.75}]
    assert rows(c, db, "s", group="true") == [{"key": 0, "value": 107.25},
                                              {"key": 1, "value": 10.5}]


def test_empty_view_reduces_to_no_rows(c: Any, db: str) -> None:
    ddoc(c, db, "r", {"s": {"map": "view_functions:by_key", "reduce": "_count"}})
    assert get(c, db, "r/_view/s").json == {"rows": []}
    assert get(c, db, "r/_view/s", group="true").json == {"rows": []}
    assert get(c, db, "r/_view/s", reduce="false").json == \
        {"total_rows": 0, "offset": 0, "rows": []}


def test_a_failing_custom_reduce_answers_an_error(c: Any, db: str) -> None:
    bulk(c, db, [{"_id": "a", "k": 1}])
    ddoc(c, db, "r", {"b": {"map": "view_functions:by_key", "reduce": "view_functions:boom"}})
    resp = get(c, db, "r/_view/b", status=500)
    assert resp.json["error"] == "reduce_error" and "boom" in resp.json["reason"]
    assert get(c, db, "r/_view/b", reduce="false", update="false").json["total_rows"] == 0


def test_queries_are_all_checked_before_answering(c: Any, keyed: str) -> None:
    resp = c.post_json(f"/{keyed}/_design/r/_view/_sum/queries",
                       {"queries": [{}, {"group": True, "include_docs": True}]}, status=400)
    assert resp.json == {"error": "query_parse_error",
                         "reason": "`include_docs` is invalid for reduce"}
    resp = c.post_json(f"/{keyed}/_design/r/_view/nope/queries", {"queries": [{}]}, status=404)
    assert resp.json["reason"] == "missing_named_view"
