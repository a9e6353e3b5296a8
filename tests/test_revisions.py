"""Rev ids match the ones printed in CouchDB's docs, and rev strings parse strictly."""

from __future__ import annotations

import collections
import enum
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from settee.store.revisions import InvalidRev, _encode_json, new_rev_id, parse_rev, revid_bytes

GOLDEN = json.loads((Path(__file__).parent / "data" / "revs.json").read_text("utf-8"))["cases"]


@pytest.mark.parametrize("case", GOLDEN, ids=[c["name"] for c in GOLDEN])
def test_rev_matches_couchdb_docs(case: dict[str, Any]) -> None:
    atts = [
        (a["name"], a["content_type"], hashlib.md5(a["data"].encode()).digest())
        for a in case.get("atts", [])
    ]
    rev = new_rev_id(case["body"], deleted=case["deleted"], parent=case["parent"], atts=atts)
    assert rev == case["rev"]


def test_empty_doc_rev() -> None:
    assert new_rev_id({}, deleted=False, parent=None) == "1-967a00dff5e02add41819138abb3284d"


FISH = {"servings": 4, "subtitle": "Delicious with fresh bread", "title": "Fish Stew"}


def test_underscore_members_and_doc_id_are_not_hashed() -> None:
    plain = new_rev_id(FISH, deleted=False, parent=None)
    assert new_rev_id({"_id": "a", **FISH, "_x": 1}, deleted=False, parent=None) == plain


def test_hash_depends_on_key_order_number_type_deleted_and_parent() -> None:
    base = new_rev_id({"a": 1, "b": 2}, deleted=False, parent=None)
    others = {
        new_rev_id({"b": 2, "a": 1}, deleted=False, parent=None),
        new_rev_id({"a": 1.0, "b": 2}, deleted=False, parent=None),
        new_rev_id({"a": 1, "b": 2}, deleted=True, parent=None),
        new_rev_id({"a": 1, "b": 2}, deleted=False, parent="1-967a00dff5e02add41819138abb3284d"),
        new_rev_id({"a": 1, "b": 2}, deleted=False, parent="1-abc"),
    }
    assert base not in others and len(others) == 5


def test_attachment_order_is_hashed() -> None:
    a = ("a.txt", "text/plain", hashlib.md5(b"a").digest())
    b = ("b.txt", "text/plain", hashlib.md5(b"b").digest())
    assert new_rev_id({}, deleted=False, parent=None, atts=[a, b]) != new_rev_id(
        {}, deleted=False, parent=None, atts=[b, a]
    )


def test_child_pos_follows_parent() -> None:
    assert new_rev_id({}, deleted=False, parent="41-abc").startswith("42-")


def _term(value: object) -> bytes:
    out = bytearray()
    _encode_json(value, out)
    return bytes(out)


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        # Expected bytes are Erlang's term_to_binary(V, [{minor_version, 1}]) without the 131.
        (0, b"a\x00"),
        (255, b"a\xff"),
        (256, b"b\x00\x00\x01\x00"),
        (-1, b"b\xff\xff\xff\xff"),
        (2**31 - 1, b"b\x7f\xff\xff\xff"),
        (-(2**31), b"b\x80\x00\x00\x00"),
        (2**31, b"n\x04\x00\x00\x00\x00\x80"),
        (-(2**31) - 1, b"n\x04\x01\x01\x00\x00\x80"),
        (2**64, b"n\x09\x00" + b"\x00" * 8 + b"\x01"),
        (2**2039, b"n\xff\x00" + b"\x00" * 254 + b"\x80"),
        (2**2040, b"o\x00\x00\x01\x00\x00" + b"\x00" * 255 + b"\x01"),
        (2**2048, b"o\x00\x00\x01\x01\x00" + b"\x00" * 256 + b"\x01"),
        (1.5, b"F\x3f\xf8" + b"\x00" * 6),
        (True, b"d\x00\x04true"),
        (False, b"d\x00\x05false"),
        (None, b"d\x00\x04null"),
        ("é", b"m\x00\x00\x00\x02\xc3\xa9"),
        ([], b"j"),
        ([1, [2]], b"l\x00\x00\x00\x02a\x01l\x00\x00\x00\x01a\x02jj"),
        ({}, b"h\x01j"),
        ({"k": "v"}, b"h\x01l\x00\x00\x00\x01h\x02m\x00\x00\x00\x01km\x00\x00\x00\x01vj"),
    ],
)
def test_term_encoding(value: object, encoded: bytes) -> None:
    assert _term(value) == encoded


def test_subclasses_of_json_types_hash_like_their_base() -> None:
    class Num(enum.IntEnum):
        FOUR = 4

    class Text(str):
        def __str__(self) -> str:
            return "something else"

    body = collections.OrderedDict(servings=Num.FOUR, subtitle=Text("Delicious with fresh bread"))
    body["title"] = "Fish Stew"
    assert new_rev_id(body, deleted=False, parent=None) == new_rev_id(
        FISH, deleted=False, parent=None
    )


def test_non_json_values_are_refused() -> None:
    with pytest.raises(ValueError):
        new_rev_id({"x": float("nan")}, deleted=False, parent=None)
    with pytest.raises(TypeError):
        new_rev_id({"x": {1, 2}}, deleted=False, parent=None)
    with pytest.raises(InvalidRev):
        new_rev_id({}, deleted=False, parent="nope")


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(st.dictionaries(st.text(), JSON, max_size=5), st.booleans())
def test_any_json_body_hashes_to_a_valid_rev(body: dict[str, Any], deleted: bool) -> None:
    rev = new_rev_id(body, deleted=deleted, parent="3-abc")
    assert parse_rev(rev)[0] == 4 and len(rev) == 34
    assert rev == new_rev_id(json.loads(json.dumps(body)), deleted=deleted, parent="3-abc")


@pytest.mark.parametrize(
    ("rev", "parsed"),
    [
        ("1-967a00dff5e02add41819138abb3284d", (1, "967a00dff5e02add41819138abb3284d")),
        ("1-abc", (1, "abc")),
        ("12-a-b", (12, "a-b")),
        ("9999999999-x", (9999999999, "x")),
    ],
)
def test_parse_rev_accepts(rev: str, parsed: tuple[int, str]) -> None:
    assert parse_rev(rev) == parsed


@pytest.mark.parametrize(
    "rev",
    [
        None,
        1,
        b"1-abc",
        ["1-abc"],
        "",
        "1",
        "1-",
        "-abc",
        "x-abc",
        "-1-abc",
        "+1-abc",
        "0-abc",
        "01-abc",
        " 1-abc",
        "1-abc ",
        "1-a c",
        "1-abc\n",
        "1-a\x00",
        "1.5-abc",
        "\u0661-abc",  # ARABIC-INDIC DIGIT ONE
        "12345678901-abc",
        "1-" + "a" * 257,
    ],
)
def test_parse_rev_rejects(rev: object) -> None:
    with pytest.raises(InvalidRev):
        parse_rev(rev)
    assert issubclass(InvalidRev, ValueError)


def test_revid_bytes() -> None:
    assert revid_bytes("967a00dff5e02add41819138abb3284d") == bytes.fromhex(
        "967a00dff5e02add41819138abb3284d"
    )
    assert revid_bytes("abc") == b"abc"
    assert revid_bytes("z" * 32) == b"z" * 32
    assert revid_bytes("ab cd" + "0" * 27) == b"ab cd" + b"0" * 27
