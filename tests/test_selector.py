"""Mango selectors: every operator, CouchDB's normalization, its error reasons and a model check."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from settee.views.fieldpath import parse_field
from settee.views.selector import SelectorError, compile_selector, extract_fields, normalize

DOC = {
    "_id": "doc-1", "name": "Ann", "age": 30, "score": 4.5, "ok": True, "none": None,
    "tags": ["a", "b", "c"], "nums": [1, 5, 9],
    "addr": {"city": "Paris", "zip": "75001", "geo": {"lat": 48.8}},
    "people": [{"name": "x", "age": 1}, {"name": "y", "age": 50}],
    "dotted.key": 7, "map": {"k1": 1, "zz": 2}, "empty": [],
}


def matches(selector: dict[str, Any], doc: dict[str, Any] = DOC) -> bool:
    return compile_selector(selector)(doc)


@pytest.mark.parametrize("selector,expected", [
    ({}, True),
    ({"name": "Ann"}, True),                       # implicit $eq
    ({"name": "ann"}, False),
    ({"age": {"$eq": 30}}, True), ({"age": {"$eq": 30.0}}, True),  # collation: 30 == 30.0
    ({"age": {"$ne": 31}}, True), ({"age": {"$ne": 30}}, False),
    ({"age": {"$gt": 29}}, True), ({"age": {"$gt": 30}}, False),
    ({"age": {"$gte": 30}}, True), ({"age": {"$lt": 30}}, False),
    ({"age": {"$lte": 30}}, True),
    ({"age": {"$gt": "1"}}, False),                # numbers sort before strings
    ({"none": {"$lt": False}}, True),               # null < false
    ({"name": {"$gt": "ann"}}, True),               # ICU: "ann" < "Ann"
    ({"name": {"$in": ["Bob", "Ann"]}}, True), ({"name": {"$in": []}}, False),
    ({"tags": {"$in": ["z", "b"]}}, True),          # $in on an array looks at elements
    ({"tags": {"$in": [["a", "b", "c"]]}}, False),
    ({"name": {"$nin": ["Bob"]}}, True), ({"tags": {"$nin": ["b"]}}, False),
    ({"name": {"$nin": []}}, True),
    ({"name": {"$exists": True}}, True), ({"nope": {"$exists": False}}, True),
    ({"name": {"$exists": False}}, False), ({"nope": {"$exists": True}}, False),
    ({"none": {"$exists": True}}, True),            # null exists
    ({"none": {"$type": "null"}}, True), ({"ok": {"$type": "boolean"}}, True),
    ({"age": {"$type": "number"}}, True), ({"name": {"$type": "string"}}, True),
    ({"tags": {"$type": "array"}}, True), ({"addr": {"$type": "object"}}, True),
    ({"age": {"$type": "string"}}, False),
    ({"age": {"$mod": [7, 2]}}, True), ({"age": {"$mod": [7, 3]}}, False),
    ({"score": {"$mod": [2, 0]}}, False),           # integers only
    ({"name": {"$regex": "^A"}}, True), ({"name": {"$regex": "n$"}}, True),
    ({"name": {"$regex": "^n"}}, False), ({"age": {"$regex": "3"}}, False),
    ({"name": {"$beginsWith": "An"}}, True), ({"name": {"$beginsWith": "an"}}, False),
    ({"age": {"$beginsWith": "3"}}, False),
    ({"tags": {"$size": 3}}, True), ({"tags": {"$size": 2}}, False),
    ({"name": {"$size": 3}}, False),
    ({"tags": {"$all": ["c", "a"]}}, True), ({"tags": {"$all": ["a", "z"]}}, False),
    ({"tags": {"$all": []}}, False), ({"tags": {"$all": [["a", "b", "c"]]}}, True),
    ({"nums": {"$all": [1.0]}}, False),             # exact term equality: 1 and 1.0 differ
    ({"nums": {"$elemMatch": {"$gt": 8}}}, True), ({"nums": {"$elemMatch": {"$gt": 9}}}, False),
    ({"people": {"$elemMatch": {"name": "y", "age": {"$gt": 40}}}}, True),
    ({"people": {"$elemMatch": {"name": "x", "age": {"$gt": 40}}}}, False),
    ({"empty": {"$elemMatch": {"$exists": True}}}, False),
    ({"nums": {"$allMatch": {"$gt": 0}}}, True), ({"nums": {"$allMatch": {"$gt": 1}}}, False),
    ({"empty": {"$allMatch": {"$gt": 0}}}, False),
    ({"map": {"$keyMapMatch": {"$eq": "zz"}}}, True),
    ({"map": {"$keyMapMatch": {"$eq": "q"}}}, False),
    ({"$and": [{"name": "Ann"}, {"age": 30}]}, True),
    ({"$and": [{"name": "Ann"}, {"age": 1}]}, False),
    ({"$and": []}, True), ({"$or": []}, True),
    ({"$or": [{"name": "Bob"}, {"age": 30}]}, True),
    ({"$or": [{"name": "Bob"}, {"age": 1}]}, False),
    ({"$nor": [{"name": "Bob"}, {"age": 1}]}, True), ({"$nor": [{"name": "Ann"}]}, False),
    ({"$not": {"name": "Bob"}}, True), ({"$not": {"name": "Ann"}}, False),
    ({"name": {"$not": {"$eq": "Bob"}}}, True),
    ({"name": "Ann", "age": {"$gt": 20, "$lt": 40}}, True),       # implicit $and
    ({"addr.city": "Paris"}, True), ({"addr": {"city": "Paris"}}, True),  # nested = dotted
    ({"addr": {"geo": {"lat": {"$gt": 48}}}}, True),
    ({"addr": {"$eq": {"city": "Paris"}}}, False),                # explicit $eq: whole object
    ({"people.1.name": "y"}, True), ({"people.5.name": "y"}, False),
    ({"dotted\\.key": 7}, True), ({"dotted.key": 7}, False),
    ({"tags": ["a", "b", "c"]}, True), ({"tags": ["a", "b"]}, False),  # arrays compare whole
    ({"_id": {"$gt": "Doc-1"}}, True),              # _id compares raw: "d" > "D"
    ({"$text": "anything"}, True),                  # needs a text index; CouchDB trusts it
])
def test_operator(selector: dict[str, Any], expected: bool) -> None:
    assert matches(selector) is expected


@pytest.mark.parametrize("selector", [
    {"nope": {"$ne": 1}}, {"nope": {"$nin": [1]}}, {"nope": {"$lt": 1}}, {"nope": None},
    {"$not": {"nope": {"$gt": 1}}},        # normalized to {"nope": {"$lte": 1}}: needs the field
    {"name.first": {"$exists": False}},    # stepping into a string is a bad path, not "missing"
    {"tags.x": {"$exists": True}},
])
def test_missing_fields_and_bad_paths_match_nothing(selector: dict[str, Any]) -> None:
    assert matches(selector) is False


def test_negations_are_pushed_down_with_de_morgan() -> None:
    assert normalize({"$not": {"a": {"$gt": 1}}}) == {"a": {"$lte": 1}}
    assert normalize({"$nor": [{"a": 1}, {"b": {"$in": [2]}}]}) == \
        {"$and": [{"a": {"$ne": 1}}, {"b": {"$nin": [2]}}]}
    assert normalize({"$not": {"$and": [{"a": {"$exists": True}}, {"b": {"$regex": "x"}}]}}) == \
        {"$or": [{"a": {"$exists": False}}, {"b": {"$not": {"$regex": "x"}}}]}
    assert normalize({"a": {"b": {"$gt": 1}}, "c": 2}) == \
        {"$and": [{"a.b": {"$gt": 1}}, {"c": {"$eq": 2}}]}


def test_mod_takes_the_sign_of_the_dividend() -> None:
    assert matches({"n": {"$mod": [3, -1]}}, {"n": -7})
    assert not matches({"n": {"$mod": [3, 2]}}, {"n": -7})
    assert not matches({"n": {"$mod": [3, 1]}}, {"n": True})


@pytest.mark.parametrize("selector,error,reason", [
    ({"a": {"$in": 5}}, "bad_arg", "Bad argument for operator $in: 5"),
    ({"a": {"$nin": "x"}}, "bad_arg", 'Bad argument for operator $nin: <<"x">>'),
    ({"$and": {"a": 1}}, "bad_arg", 'Bad argument for operator $and: {[{<<"a">>,1}]}'),
    ({"$or": 1}, "bad_arg", "Bad argument for operator $or: 1"),
    ({"$nor": None}, "bad_arg", "Bad argument for operator $nor: null"),
    ({"$not": [1]}, "bad_arg", "Bad argument for operator $not: [1]"),
    ({"a": {"$exists": "yes"}}, "bad_arg", 'Bad argument for operator $exists: <<"yes">>'),
    ({"a": {"$type": 1}}, "bad_arg", "Bad argument for operator $type: 1"),
    ({"a": {"$mod": [2]}}, "bad_arg", "Bad argument for operator $mod: [2]"),
    ({"a": {"$mod": [2.0, 1]}}, "bad_arg", "Bad argument for operator $mod: [2.0,1]"),
    ({"a": {"$mod": [0, 1]}}, "bad_arg", "Bad argument for operator $mod: [0,1]"),
    ({"a": {"$regex": "("}}, "bad_arg", 'Bad argument for operator $regex: <<"(">>'),
    ({"a": {"$regex": 1}}, "bad_arg", "Bad argument for operator $regex: 1"),
    ({"a": {"$all": {}}}, "bad_arg", "Bad argument for operator $all: {[]}"),
    ({"a": {"$elemMatch": 1}}, "bad_arg", "Bad argument for operator $elemMatch: 1"),
    ({"a": {"$allMatch": []}}, "bad_arg", "Bad argument for operator $allMatch: []"),
    ({"a": {"$keyMapMatch": True}}, "bad_arg", "Bad argument for operator $keyMapMatch: true"),
    ({"a": {"$size": -1}}, "bad_arg", "Bad argument for operator $size: -1"),
    ({"a": {"$size": 1.5}}, "bad_arg", "Bad argument for operator $size: 1.5"),
    ({"a": {"$text": []}}, "bad_arg", "Bad argument for operator $text: []"),
    ({"a": {"$beginsWith": 1}}, "invalid_operator", "Invalid operator: $beginsWith"),
    ({"a": {"$foo": 1}}, "invalid_operator", "Invalid operator: $foo"),
    ({"a": {"$where": "x"}}, "not_supported", "Unsupported operator: $where"),
    ({"a": {"$near": 1}}, "not_supported", "Unsupported operator: $near"),
    ({"$gt": 1}, "invalid_selector", "One or more conditions is missing a field name."),
    ({"a": {"$text": "x"}}, "bad_field",
     'Invalid field normalization on selector: {[{<<"$default">>,{[{<<"$text">>,<<"x">>}]}}]}'),
    ({"a..b": 1}, "invalid_field_name", "Invalid field name: a..b"),
    ([1], "invalid_selector_json", "Selector must be a JSON object, not: [1]"),
])
def test_invalid_selectors_raise_couchdbs_reasons(selector: Any, error: str, reason: str) -> None:
    with pytest.raises(SelectorError) as info:
        compile_selector(selector)
    assert (info.value.error, info.value.reason) == (error, reason)


def test_field_paths_and_projection() -> None:
    assert parse_field("a.b.0") == ["a", "b", "0"]
    assert parse_field("a\\.b.c") == ["a.b", "c"]
    assert extract_fields(DOC, ["addr.city", "age", "missing", "name.x"]) == \
        {"addr": {"city": "Paris"}, "age": 30}


# -- model check: the compiled selector agrees with a brute-force reading of the rules ----------

FIELDS = ["a", "b", "c"]
VALUES = st.one_of(st.none(), st.booleans(), st.integers(-5, 5),
                   st.text(alphabet="abc", max_size=3))
DOCS = st.dictionaries(st.sampled_from(FIELDS), VALUES, max_size=3)
OPS = ["$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$exists", "$type"]


def _rank(v: Any) -> tuple[int, Any]:
    if v is None:
        return (0, 0)
    if isinstance(v, bool):
        return (1 + int(v), 0)
    if isinstance(v, int):
        return (3, v)
    return (4, v)  # lowercase a-c: ICU order is code-point order here


def _reference(field: str, op: str, arg: Any, doc: dict[str, Any]) -> bool:
    if field not in doc:
        return op == "$exists" and arg is False
    v = doc[field]
    c = (_rank(v) > _rank(arg)) - (_rank(v) < _rank(arg)) if op not in ("$in", "$nin") else 0
    holds: bool = {
        "$eq": c == 0, "$ne": c != 0, "$gt": c > 0, "$gte": c >= 0, "$lt": c < 0, "$lte": c <= 0,
        "$in": any(_rank(v) == _rank(x) for x in (arg if isinstance(arg, list) else [])),
        "$nin": all(_rank(v) != _rank(x) for x in (arg if isinstance(arg, list) else [])),
        "$exists": arg is True,
        "$type": arg == ("null" if v is None else "boolean" if isinstance(v, bool)
                         else "number" if isinstance(v, int) else "string"),
    }[op]
    return holds


@st.composite
def conditions(draw: st.DrawFn) -> tuple[str, str, Any]:
    op = draw(st.sampled_from(OPS))
    if op in ("$in", "$nin"):
        arg: Any = draw(st.lists(VALUES, max_size=3))
    elif op == "$exists":
        arg = draw(st.booleans())
    elif op == "$type":
        arg = draw(st.sampled_from(["null", "boolean", "number", "string"]))
    else:
        arg = draw(VALUES)
    return draw(st.sampled_from(FIELDS)), op, arg


def _negated(field: str, op: str, arg: Any, doc: dict[str, Any]) -> bool:
    """A negated terminal (CouchDB pushes `$not`/`$nor` down to it) still needs its field."""
    if field not in doc:
        return op == "$exists" and arg is True  # `{"$exists": true}` negates to `false`
    return not _reference(field, op, arg, doc)


@settings(max_examples=400, deadline=None)
@given(st.lists(conditions(), min_size=1, max_size=3), st.sampled_from(["$and", "$or", "$nor"]),
       st.booleans(), DOCS)
def test_compiled_selector_agrees_with_a_brute_force_reference(
        conds: list[tuple[str, str, Any]], logic: str, negate: bool, doc: dict[str, Any]) -> None:
    parts = [{field: {op: arg}} for field, op, arg in conds]
    plain = [_reference(field, op, arg, doc) for field, op, arg in conds]
    negated = [_negated(field, op, arg, doc) for field, op, arg in conds]
    selector: dict[str, Any] = {logic: parts}
    expected = {"$and": all(plain), "$or": any(plain), "$nor": all(negated)}[logic]
    if negate and logic != "$nor":  # De Morgan: the negation of $and is $or of the negations
        selector = {"$not": selector}
        expected = any(negated) if logic == "$and" else all(negated)
    assert compile_selector(selector)(doc) is expected
