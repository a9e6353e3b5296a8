"""Strict request-body JSON: every rejection, exact numbers, order, depth, speed, round trips."""

from __future__ import annotations

import math
import time
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from settee.server.jsonbody import (
    INVALID,
    MAX_INT_DIGITS,
    BadJson,
    check_depth,
    dumps,
    parse_json,
)


def same(a: Any, b: Any) -> bool:
    """Equal with types, key order and the sign of zero (Python's == ignores all three)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float):
        return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)
    return bool(a == b)


def reject(data: bytes, **kwargs: Any) -> BadJson:
    with pytest.raises(BadJson) as info:
        parse_json(data, **kwargs)
    return info.value


# --- what is refused ------------------------------------------------------------------------------


@pytest.mark.parametrize("data", [
    b"{", b"}", b"[1,]", b"[,1]", b'{"a":}', b'{"a" 1}', b"{'a':1}", b'{a:1}', b"01", b"[01]",
    b"tru", b"nul", b"[1 2]", b'["a\\x"]', b'["\x01"]', b'["\t"]', b"+1", b".5", b"1.", b"0x10",
    b'"abc', b"[\x0c]", b"\xc2\xa0[]", b"//\n[]", b"[] //",
])
def test_invalid_json_is_refused_with_couchdb_reason(data: bytes) -> None:
    assert reject(data).reason == INVALID


@pytest.mark.parametrize("data", [
    b'["\xff"]',               # never valid in UTF-8
    b'["\xc0\xaf"]',           # overlong "/"
    b'["\xe0\x80\xaf"]',       # overlong, three bytes
    b'["\xed\xa0\x80"]',       # an encoded surrogate (CESU-8)
    b'["\xf4\x90\x80\x80"]',   # above U+10FFFF
    b'["\xe2\x82"]',           # truncated sequence
    b'{"\xff":1}',
])
def test_invalid_utf8_is_refused(data: bytes) -> None:
    error = reject(data)
    assert error.reason == INVALID
    assert "UTF-8" in error.detail


@pytest.mark.parametrize("data", [
    b'["\\ud800"]', b'["\\uDBFF"]', b'["\\udc00"]', b'["\\uDFFF"]', b'["\\ud800x"]',
    b'["\\ud800\\u0041"]', b'["\\udc00\\ud800"]', b'["\\ud800\\ud800"]', b'{"\\ud800":1}',
    b'["ok", "\\ud83d\\ude00", "\\ud83d"]', b'["\\\\\\ud800"]', b'["\\ud800", "\\udc00"]',
])
def test_lone_surrogate_escapes_are_refused(data: bytes) -> None:
    error = reject(data)
    assert error.reason == INVALID
    assert "surrogate" in error.detail


def test_surrogate_pairs_and_lookalikes_are_accepted() -> None:
    assert parse_json(b'["\\ud83d\\ude00", "\\uD83D\\uDE00"]') == ["\U0001f600", "\U0001f600"]
    # An escaped backslash followed by "ud800" is six plain characters, not an escape.
    assert parse_json(b'["\\\\ud800"]') == ["\\ud800"]
    assert parse_json(b'["\\\\\\ud83d\\ude00"]') == ["\\\U0001f600"]


@pytest.mark.parametrize("data", [b"\xef\xbb\xbf{}", b"\xef\xbb\xbf[1]"])
def test_byte_order_mark_is_refused(data: bytes) -> None:
    assert reject(data).reason == INVALID


@pytest.mark.parametrize("data", [b"", b" ", b"\n\t\r "])
def test_empty_body_is_refused(data: bytes) -> None:
    assert reject(data).reason == INVALID


@pytest.mark.parametrize("data", [b"{} x", b"{}{}", b"[1] 2", b'{"a":1}}', b"[]\x00", b"1 2"])
def test_trailing_data_is_refused(data: bytes) -> None:
    assert reject(data).reason == INVALID


def test_surrounding_json_whitespace_is_accepted() -> None:
    assert parse_json(b' \r\n\t{"a" : [ 1 , 2 ] }\n ') == {"a": [1, 2]}


@pytest.mark.parametrize("data", [
    b"[NaN]", b"[Infinity]", b"[-Infinity]", b'{"a":{"b":[NaN]}}', b"NaN", b"[nan]", b"[inf]",
])
def test_non_finite_constants_are_refused(data: bytes) -> None:
    assert reject(data).reason == INVALID


@pytest.mark.parametrize("data", [b"[1e400]", b"[-1e400]", b"[1.5E+999]", b'{"a":1e309}',
                                  b"[" + b"9" * 400 + b".0]"])
def test_numbers_overflowing_a_double_are_refused(data: bytes) -> None:
    error = reject(data)
    assert error.reason == INVALID
    assert "out of range" in error.detail


def test_tiny_numbers_underflow_to_zero() -> None:
    assert same(parse_json(b"[1e-400, -1e-400]"), [0.0, -0.0])


# --- duplicate keys (CVE-2017-12635) --------------------------------------------------------------


@pytest.mark.parametrize(("data", "key"), [
    (b'{"a":1,"a":2}', "a"),
    (b'{"_id":"x","a":1,"a":2}', "a"),
    (b'{"_id":"x","_rev":"1-a","_rev":"2-b"}', "_rev"),
    (b'{"_id":"x","_id":"y"}', "_id"),
    (b'{"name":"u","roles":[],"type":"user","roles":["_admin"]}', "roles"),
    (b'{"a":{"b":{"c":{"d":1,"d":2}}}}', "d"),                     # three deep
    (b'{"a":[{"b":[{"c":1,"x":0,"c":1}]}]}', "c"),                 # through arrays, same value
    (b'{"docs":[{"_id":"1"},{"_id":"2","v":1,"v":2}]}', "v"),      # inside _bulk_docs
    (b'{"a":1,"\\u0061":2}', "a"),                                 # same key once unescaped
    (b'{"\xc3\xa9":1,"\\u00e9":2}', "\u00e9"),
    (b'[{"":1,"":2}]', ""),
])
def test_duplicate_keys_are_refused_at_any_depth(data: bytes, key: str) -> None:
    error = reject(data)
    assert "Duplicate key" in error.reason
    assert orjson.dumps(key).decode() in error.reason


def test_same_key_in_sibling_objects_is_fine() -> None:
    assert parse_json(b'[{"a":1},{"a":2},{"b":{"a":3},"a":4}]') == [
        {"a": 1}, {"a": 2}, {"b": {"a": 3}, "a": 4}]


def test_nfc_and_nfd_keys_are_different_keys() -> None:
    body = '{"caf\u00e9":1,"cafe\u0301":2}'.encode()
    assert list(parse_json(body)) == ["caf\u00e9", "cafe\u0301"]


def test_duplicate_key_reason_is_short() -> None:
    key = "k" * 10_000
    error = reject(orjson.dumps({key: 1})[:-1] + b',"' + key.encode() + b'":2}')
    assert len(error.reason) < 150


# --- nesting --------------------------------------------------------------------------------------


def nested(kind: str, depth: int, closed: bool = True) -> bytes:
    opener, inner, closer = {
        "array": (b"[", b"1", b"]"),
        "object": (b'{"a":', b"1", b"}"),
        "mixed": (b'[1,{"a":', b"1", b"}]"),
    }[kind]
    if kind == "mixed":  # two levels per opener
        depth = (depth + 1) // 2
    return opener * depth + inner + (closer * depth if closed else b"")


@pytest.mark.parametrize("kind", ["array", "object"])
def test_nesting_at_the_limit_is_accepted(kind: str) -> None:
    value = parse_json(nested(kind, 64))
    check_depth(value, 64)
    assert dumps(value) == nested(kind, 64)


@pytest.mark.parametrize("kind", ["array", "object", "mixed"])
@pytest.mark.parametrize("depth", [65, 66, 255, 1_025, 10_000, 1_000_000])
@pytest.mark.parametrize("closed", [True, False])
def test_deep_nesting_is_refused_fast(kind: str, depth: int, closed: bool) -> None:
    data = nested(kind, depth, closed)
    start = time.perf_counter()
    error = reject(data)
    elapsed = time.perf_counter() - start
    assert "nested deeper than 64" in error.reason
    # A hang guard, not a speed goal (those live in bench/): refusal must not be pathological.
    assert elapsed < 2.0, f"{depth} levels took {elapsed * 1000:.1f} ms"


def test_a_million_levels_in_two_megabytes() -> None:
    data = b"[" * 1_000_000 + b"]" * 1_000_000
    assert len(data) == 2_000_000
    start = time.perf_counter()
    reject(data)
    assert time.perf_counter() - start < 2.0  # hang guard


@pytest.mark.parametrize("data", [
    b'[[],' * 300_000 + b"1" + b"]" * 300_000,     # side branches hide the run of openers
    b'[[[]],' * 300_000 + b"1" + b"]" * 300_000,
    b'{"[":' * 300_000 + b"1" + b"}" * 300_000,    # brackets in keys
])
def test_deep_nesting_in_disguise_is_refused_fast(data: bytes) -> None:
    start = time.perf_counter()
    assert "nested deeper" in reject(data).reason
    assert time.perf_counter() - start < 2.0  # hang guard


def test_max_depth_is_a_parameter() -> None:
    assert parse_json(b"[[[1]]]", max_depth=3) == [[[1]]]
    assert "deeper than 2" in reject(b"[[[1]]]", max_depth=2).reason
    assert parse_json(b"[1]", max_depth=1) == [1]
    reject(b"[]", max_depth=0)
    assert parse_json(b"1", max_depth=0) == 1
    assert parse_json(nested("array", 200), max_depth=200)


def test_brackets_inside_strings_do_not_count() -> None:
    value = ["[" * 100, "{" * 100, '\\"[[[' * 50, '"' * 30 + "[" * 70, "]" * 80, ["\\", "[["]]
    body = orjson.dumps([value] * 30)
    assert parse_json(body) == [value] * 30
    assert parse_json(orjson.dumps({"[" * 100: "{" * 100, "k": "]]]" * 40})) == {
        "[" * 100: "{" * 100, "k": "]]]" * 40}


def test_unbalanced_brackets_are_invalid_json() -> None:
    body = orjson.dumps({"docs": [{"a": [1, {"b": 2}]} for _ in range(100)]})
    assert reject(body[:-40]).reason == INVALID
    assert reject(b"[" + b"[]," * 100 + b"[]]]").reason == INVALID


def test_check_depth_on_values() -> None:
    check_depth({"a": [1, {"b": []}]}, 4)
    check_depth(1, 0)
    with pytest.raises(BadJson):
        check_depth({"a": [1, {"b": []}]}, 3)
    with pytest.raises(BadJson):
        check_depth([], 0)


# --- numbers --------------------------------------------------------------------------------------


@pytest.mark.parametrize("number", [
    2**53 + 1, -(2**53) - 1, 2**63 - 1, -(2**63), 2**64, 2**64 + 1, -(2**63) - 1, 10**30 + 7,
    -(10**100) + 1,
])
def test_integers_are_exact(number: int) -> None:
    body = b'{"n":' + str(number).encode() + b"}"
    value = parse_json(body)
    assert type(value["n"]) is int and value["n"] == number
    assert dumps(value) == body


@pytest.mark.parametrize("sign", ["", "-"])
def test_ten_thousand_digit_integer_round_trips_exactly(sign: str) -> None:
    digits = sign + "9" + "1234567890" * 999 + "876543210"
    assert len(digits.lstrip("-")) == MAX_INT_DIGITS
    body = ('{"a":[1,' + digits + ',2.5],"b":' + digits + "}").encode()
    value = parse_json(body)
    assert type(value["b"]) is int and value["a"][1] == value["b"]
    assert abs(value["b"]) % 10**9 == 876543210
    assert (value["b"] < 0) == (sign == "-")
    assert dumps(value) == body
    assert dumps(value["b"]).decode() == digits


def test_integers_beyond_the_digit_limit_are_refused() -> None:
    error = reject(b"[" + b"7" * (MAX_INT_DIGITS + 1) + b"]")
    assert error.reason == "integer out of range"


def test_ints_and_floats_keep_their_type() -> None:
    value = parse_json(b"[1, 1.0, 1e2, 10, -0, -0.0, 0.5, 1E-2, 123456789012345678901234567890]")
    assert same(value, [1, 1.0, 100.0, 10, 0, -0.0, 0.5, 0.01, 123456789012345678901234567890])
    assert dumps(value) == b"[1,1.0,100.0,10,0,-0.0,0.5,0.01,123456789012345678901234567890]"


def test_nul_escape_is_accepted_and_kept_escaped() -> None:
    value = parse_json(b'{"a":"x\\u0000y"}')
    assert value == {"a": "x\x00y"}
    assert dumps(value) == b'{"a":"x\\u0000y"}'


def test_key_order_is_kept() -> None:
    body = b'{"z":1,"a":2,"m":{"y":1,"b":2},"_id":"x"}'
    value = parse_json(body)
    assert list(value) == ["z", "a", "m", "_id"]
    assert list(value["m"]) == ["y", "b"]
    assert dumps(value) == body


def test_top_level_scalars_parse() -> None:
    assert [parse_json(b) for b in (b"1", b'"s"', b"null", b"true", b"2.5")] == [
        1, "s", None, True, 2.5]


# --- the error and the encoder --------------------------------------------------------------------


def test_bad_json_carries_its_status() -> None:
    error = reject(b"{")
    assert isinstance(error, ValueError)
    assert (error.status, error.error, error.reason) == (400, "bad_request", INVALID)
    assert error.detail and error.reason in str(error)


def test_dumps_is_compact_and_utf8() -> None:
    value = {"a": [1, 2.5, None, True], "é": "☃"}
    assert dumps(value) == '{"a":[1,2.5,null,true],"é":"☃"}'.encode()


def test_dumps_refuses_what_json_cannot_carry() -> None:
    with pytest.raises(TypeError):
        dumps({1: "a"})
    with pytest.raises(TypeError):
        dumps({1: 2**70})
    with pytest.raises(TypeError):
        dumps([2**70, object()])
    with pytest.raises(TypeError):
        dumps(["\ud800"])


def test_dumps_big_ints_anywhere() -> None:
    value = {"a": [1, {"b": 2**70, "c": [-(2**64)]}], "d": "x", "e": (2**65, 3)}
    assert dumps(value) == (
        b'{"a":[1,{"b":1180591620717411303424,"c":[-18446744073709551616]}],"d":"x",'
        b'"e":[36893488147419103232,3]}')


# --- properties -----------------------------------------------------------------------------------

_text = st.text(st.characters(codec="utf-8"), max_size=12)
_scalars = (
    st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**64)
    | st.integers() | st.integers(min_value=-(10**60), max_value=10**60)
    | st.floats(allow_nan=False, allow_infinity=False) | _text
)
json_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(_text, inner, max_size=5),
    max_leaves=40,
)


@given(json_values)
@settings(max_examples=400)
def test_round_trip_is_exact(value: Any) -> None:
    body = dumps(value)
    parsed = parse_json(body, max_depth=250)
    assert same(parsed, value)
    assert dumps(parsed) == body


@given(json_values, st.data())
@settings(max_examples=300)
def test_mutated_bodies_parse_or_raise_bad_json(value: Any, data: st.DataObject) -> None:
    body = bytearray(dumps(value))
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(0, len(body)))
        action = data.draw(st.sampled_from(["flip", "insert", "delete", "truncate"]))
        if action == "flip" and at < len(body):
            body[at] = data.draw(st.integers(0, 255))
        elif action == "insert":
            body[at:at] = data.draw(st.sampled_from(
                [b"[", b"]", b"{", b"}", b'"', b"\\", b",", b":", b"\\u", b"\\ud800", b"\xff",
                 b"NaN", b"1e999", b'"a":1', b"\x00"]))
        elif action == "delete":
            del body[at:at + 1]
        elif action == "truncate":
            del body[at:]
    try:
        parsed = parse_json(bytes(body))
    except BadJson:
        return
    # Whatever strict parsing accepts, orjson (strict too, but lenient about duplicates) accepts.
    orjson.loads(bytes(body))
    assert parse_json(dumps(parsed)) == parsed
