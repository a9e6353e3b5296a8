"""Property test: `_find` answers exactly what a brute-force filter of every document answers.

Random documents (with updates and deletes between queries), random json indexes (or none) and
random selectors, sorts, limits, skips and bookmark paging, on both backends. The reference
filters the winning documents read back from `_all_docs` with the selector matcher, keeps (when
a json index serves the query, as `_explain` reports) only documents that have every indexed
field, orders them as that index does (its key in CouchDB collation, then the doc id; `_id`
alone for `_all_docs`), reverses for a descending sort, and slices. It checks the planner and
the executor (ranges pushed into SQL, paging, bookmarks, incremental index updates); the
matcher's own semantics are checked operator by operator in `test_selector.py`.
"""

from __future__ import annotations

import functools
import os
import uuid
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from settee.views.collate import compare
from settee.views.fieldpath import BAD_PATH, MISSING, get_field, parse_field
from settee.views.selector import compile_selector

EXAMPLES = int(os.environ.get("SETTEE_FIND_EXAMPLES", "100"))
IDS = [f"d{i}" for i in range(12)]
VALUES = [None, False, True, 0, 1, 1.0, 2, -3, 2.5, "", "a", "A", "b", "B", "ab", ["a"], [1, 2],
          {"x": 1}]
FIELDS = ["a", "b", "c.d"]
INDEXES = [["a"], ["b"], ["a", "b"], ["b", "a"], ["c.d"], ["a", "c.d"]]

value = st.sampled_from(VALUES)
doc_body = st.fixed_dictionaries({}, optional={"a": value, "b": value,
                                               "c": st.sampled_from([{"d": 1}, {"d": "a"},
                                                                     {"e": 1}, 3])})
put_op = st.tuples(st.just("put"), st.sampled_from(IDS), doc_body)
delete_op = st.tuples(st.just("delete"), st.sampled_from(IDS))


def _cond(draw: Any, broad: bool = False) -> Any:
    kind = "any" if broad else draw(st.sampled_from(
        ["eq", "cmp", "cmp", "ne", "in", "nin", "exists", "type", "regex", "size", "elem",
         "plain", "any", "any"]))
    v = draw(value)
    if kind == "any":  # conditions most documents meet, so answers are not mostly empty
        return draw(st.sampled_from([{"$exists": True}, {"$gt": None}, {"$lte": "z"},
                                     {"$ne": "a"}]))
    if kind == "eq":
        return {"$eq": v}
    if kind == "plain" and not isinstance(v, dict):
        return v
    if kind == "cmp":
        return {draw(st.sampled_from(["$gt", "$gte", "$lt", "$lte"])): v}
    if kind == "ne":
        return {"$ne": v}
    if kind in ("in", "nin"):
        return {"$" + kind: draw(st.lists(value, max_size=3))}
    if kind == "exists":
        return {"$exists": draw(st.booleans())}
    if kind == "type":
        return {"$type": draw(st.sampled_from(["null", "boolean", "number", "string",
                                               "array", "object"]))}
    if kind == "regex":
        return {"$regex": draw(st.sampled_from(["^a", "b", "^$", "(?i)a"]))}
    if kind == "size":
        return {"$size": draw(st.integers(0, 2))}
    return {"$elemMatch": {"$gte": draw(value)}}


@st.composite
def selector(draw: Any, depth: int = 0) -> dict[str, Any]:
    parts: dict[str, Any] = {}
    broad = depth == 0 and draw(st.booleans())
    # a nested selector needs a field: `{"$or": [{}]}` is refused
    for name in draw(st.lists(st.sampled_from(FIELDS), min_size=1 if depth else 0, max_size=2,
                              unique=True)):
        parts[name] = _cond(draw, broad)
    if depth < 1 and draw(st.integers(0, 3)) == 0:
        op = draw(st.sampled_from(["$or", "$and", "$nor", "$not"]))
        if op == "$not":
            parts[op] = draw(selector(depth + 1))
        else:
            parts[op] = draw(st.lists(selector(depth + 1), min_size=1, max_size=2))
    return parts


@st.composite
def query(draw: Any) -> dict[str, Any]:
    q: dict[str, Any] = {"selector": draw(selector())}
    if draw(st.booleans()):
        fields = draw(st.sampled_from(INDEXES + [["_id"]]))
        direction = draw(st.sampled_from(["asc", "desc", None]))
        q["sort"] = [f if direction is None else {f: direction} for f in fields]
        if fields == ["_id"] and draw(st.booleans()):
            q["selector"]["_id"] = {"$gt": None}
    if draw(st.booleans()):
        q["limit"] = draw(st.integers(0, 5))
    if draw(st.booleans()):
        q["skip"] = draw(st.integers(0, 4))
    return q


query_op = st.tuples(st.just("query"), query(), st.booleans())
OPS = st.lists(st.one_of(put_op, put_op, put_op, delete_op, query_op), min_size=3, max_size=14)


@settings(max_examples=EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(indexes=st.lists(st.sampled_from(INDEXES), max_size=2, unique_by=tuple),
       first=st.dictionaries(st.sampled_from(IDS), doc_body, max_size=len(IDS)), ops=OPS,
       final=query_op)
def test_find_equals_a_brute_force_filter(module_client: Any, indexes: list[list[str]],
                                          first: dict[str, Any], ops: list[Any],
                                          final: Any) -> None:
    c = module_client
    db = "f_" + uuid.uuid4().hex[:10]
    c.put(f"/{db}", status=201)
    c.post_json(f"/{db}/_bulk_docs", {"docs": [{"_id": k, **v} for k, v in first.items()]},
                status=201)
    for i, fields in enumerate(indexes):
        c.post_json(f"/{db}/_index", {"index": {"fields": fields}, "ddoc": f"i{i}",
                                      "name": "x"}, status=200)
    for op in [*ops, final]:
        if op[0] == "query":
            check(c, db, op[1], indexes, op[2])
        elif op[0] == "put":
            current = c.get(f"/{db}/{op[1]}", status="*")
            body = dict(op[2])
            if current.status_int == 200:
                body["_rev"] = current.json["_rev"]
            c.put_json(f"/{db}/{op[1]}", body, status=201)
        else:
            current = c.get(f"/{db}/{op[1]}", status="*")
            if current.status_int == 200:
                c.delete(f"/{db}/{op[1]}?rev={current.json['_rev']}", status=200)


def check(c: Any, db: str, q: dict[str, Any], indexes: list[list[str]], page: bool) -> None:
    answer = c.post_json(f"/{db}/_find", q, status="*")
    if answer.status_int == 400:
        assert answer.json["error"] == "no_usable_index", answer.json
        assert "sort" in q
        sort_fields = [f if isinstance(f, str) else next(iter(f)) for f in q["sort"]]
        assert sort_fields not in indexes, "an index on exactly the sort fields always serves"
        return
    assert answer.status_int == 200, answer.json
    plan = c.post_json(f"/{db}/_explain", q, status=200).json
    columns = [next(iter(f)) for f in plan["index"]["def"]["fields"]]
    special = plan["index"]["type"] == "special"
    every = expected(c, db, q["selector"], columns, special, _descending(q))
    skip, limit = q.get("skip", 0), q.get("limit", 25)
    got = [d["_id"] for d in answer.json["docs"]]
    assert got == every[skip:skip + limit], (q, plan["index"], every)
    if page and limit > 0:
        pages = dict(q, limit=2, skip=0)
        seen: list[str] = []
        for _ in range(len(every) + 2):
            found = c.post_json(f"/{db}/_find", pages, status=200).json
            if not found["docs"]:
                break
            seen += [d["_id"] for d in found["docs"]]
            pages["bookmark"] = found["bookmark"]
        assert seen == every, (q, plan["index"])


def _descending(q: dict[str, Any]) -> bool:
    return any(isinstance(f, dict) and "desc" in f.values() for f in q.get("sort", []))


def expected(c: Any, db: str, sel: dict[str, Any], columns: list[str], special: bool,
             descending: bool) -> list[str]:
    rows = c.get(f"/{db}/_all_docs?include_docs=true").json["rows"]
    match = compile_selector(sel)
    docs = [r["doc"] for r in rows if not r["id"].startswith("_design/") and match(r["doc"])]
    if special:
        ordered = sorted(docs, key=lambda d: d["_id"].encode())
    else:
        paths = [parse_field(f) for f in columns]
        keyed = []
        for d in docs:
            key = [get_field(d, p) for p in paths]
            if any(k is MISSING or k is BAD_PATH for k in key):
                continue
            keyed.append((key, d["_id"]))
        ordered_keys = sorted(keyed, key=functools.cmp_to_key(_row_cmp))
        ordered = [{"_id": i} for _, i in ordered_keys]
    ids = [d["_id"] for d in ordered]
    return ids[::-1] if descending else ids


def _row_cmp(x: tuple[list[Any], str], y: tuple[list[Any], str]) -> int:
    c = compare(x[0], y[0])
    if c:
        return c
    return (x[1] > y[1]) - (x[1] < y[1])
