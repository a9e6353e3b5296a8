"""View collation: CouchDB's golden orders, sort keys against `compare`, and SQL ORDER BY."""

from __future__ import annotations

import functools
import itertools
import json
import math
import os
import random
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st
from settee.views.collate import Json, compare, compare_raw, compare_rows
from settee.views.encoding import MAX_KEY, MIN_KEY, sort_key, sort_key_raw

GOLDEN = json.loads((Path(__file__).parent / "data" / "collation.json").read_text())
MODES: dict[str, tuple[Callable[[Json, Json], int], Callable[[Json], bytes]]] = {
    "icu": (compare, sort_key),
    "raw": (compare_raw, sort_key_raw),
}


def sign(x: int) -> int:
    return (x > 0) - (x < 0)


def bytes_cmp(a: bytes, b: bytes) -> int:
    return (a > b) - (a < b)


def shuffled_rows(values: list[Json], seed: int) -> list[tuple[Json, str]]:
    """`(value, doc id)` rows in random order; ids ("000", "001"...) sort as the list does."""
    rows = [(value, f"{i:03d}") for i, value in enumerate(values)]
    random.Random(seed).shuffle(rows)
    return rows


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("seed", range(5))
def test_golden_order_by_compare_and_by_sort_key(mode: str, seed: int) -> None:
    golden = GOLDEN[mode]["values"]
    _, key = MODES[mode]
    rows = shuffled_rows(golden, seed)
    by_compare = sorted(rows, key=functools.cmp_to_key(
        functools.partial(compare_rows, raw=mode == "raw")))
    by_bytes = sorted(rows, key=lambda row: (key(row[0]), row[1]))
    assert [value for value, _ in by_compare] == golden
    assert [value for value, _ in by_bytes] == golden


@pytest.mark.parametrize("mode", MODES)
def test_golden_neighbours_tie_exactly_where_couchdb_ties(mode: str) -> None:
    values, ties = GOLDEN[mode]["values"], set(GOLDEN[mode]["same_as_previous"])
    cmp, key = MODES[mode]
    for i in range(1, len(values)):
        expected = 0 if i in ties else -1
        assert cmp(values[i - 1], values[i]) == expected, values[i - 1:i + 1]
        assert cmp(values[i], values[i - 1]) == -expected
        assert bytes_cmp(key(values[i - 1]), key(values[i])) == expected


@pytest.mark.parametrize(("mode", "ordered"), [
    ("icu", [None, False, True, -1e300, -1, 0, 0.5, 1, 10, "", "a", "A", "aa", "b", "B", "ba"]),
    ("icu", ["abc", "Abc", "ABC", "abc1", "AbcZZZZZ"]),
    ("icu", ["-", "~", "$", "0", "9", "a", "A", "é", "z", "Z", "\ufff0"]),
    ("icu", [["b"], ["b", "c"], ["b", "c", "a"], ["b", "d"]]),
    ("icu", [{"a": 1}, {"a": 2}, {"b": 1}, {"b": 2}, {"b": 2, "a": 1}, {"b": 2, "c": 2}]),
    ("icu", [[], [None], [1], ["x"], [[]], [{}], {}, {"": None}]),
    ("raw", [1, False, None, True, {"a": "a"}, ["a"], "a"]),
    ("raw", [-1, 0.5, 2, False, {}, {"": 1}, [], [1], "", "A", "B", "Z", "a", "a\x00", "a\x01",
             "ab", "é", "\ufff0", "\U0001f600"]),
])
def test_reference_examples(mode: str, ordered: list[Json]) -> None:
    cmp, key = MODES[mode]
    for earlier, later in itertools.pairwise(ordered):
        assert cmp(earlier, later) == -1 and cmp(later, earlier) == 1, (earlier, later)
        assert key(earlier) < key(later), (earlier, later)


@pytest.mark.parametrize(("a", "b"), [
    (1, 1.0), (0, -0.0), (2**60, 2.0**60), (-(2**70), -(2.0**70)), ("c", "c\u200b"),
    ("\u00e9", "e\u0301"), ([1, "c"], [1.0, "c\u200b"]), ({"a": 1}, {"a\u200b": 1.0}),
])
def test_equal_keys_encode_identically(a: Json, b: Json) -> None:
    assert compare(a, b) == 0
    assert sort_key(a) == sort_key(b)


def test_high_sentinels_bound_their_ranges() -> None:
    """endkey="abc\\ufff0" and endkey=["foo", {}] are CouchDB's prefix-range idioms."""
    for value in ["abc", "abcdef", "ABCzzz", "abc\U0001f600"]:
        assert sort_key("abc") <= sort_key(value) <= sort_key("abc\ufff0")
    assert sort_key("abd") > sort_key("abc\ufff0")
    arrays: list[Json] = [["foo"], ["foo", "bar"], ["foo", ["bar", "baz"]], ["foo", 1, {}]]
    for array in arrays:
        assert sort_key(["foo"]) <= sort_key(array) <= sort_key(["foo", {}])
    assert sort_key(["foo", {"an": "object"}]) > sort_key(["foo", {}])
    assert compare_raw(["foo", {}], ["foo", "a"]) < 0  # why raw views need "\ufff0" instead
    extremes: list[Json] = [None, "\ufff0" * 3, {"\ufff0": "\ufff0"}, -math.inf, math.inf, 10**400]
    for extreme in extremes:
        assert MIN_KEY < sort_key(extreme) < MAX_KEY and MIN_KEY < sort_key_raw(extreme) < MAX_KEY


def test_rows_with_equal_keys_order_by_doc_id_bytes() -> None:
    # ICU would put "é" before "z"; doc ids compare as UTF-8 bytes, where 0xC3 > "z".
    assert compare_rows(("k", "z"), ("k", "é")) == -1
    assert compare_rows(("c", "b"), ("c\u200b", "a")) == 1
    assert compare_rows(("a", "z"), ("A", "a")) == -1
    assert compare_rows(("a", "x"), ("a", "x"), raw=True) == 0
    assert compare_rows(("B", "z"), ("a", "a"), raw=True) == -1


BIG_NUMBERS: list[float] = sorted([
    -math.inf, -(2**1100), -(2**1024) - 1, -(2**1024), -1.7976931348623157e308,
    -(2**53) - 1, -(2.0**53), -1, -0.5, 0, 5e-324, 1, 2**53 - 1, 2.0**53, 2**53 + 1, 2**53 + 2,
    2**53 + 3, 2.0**60 + 2**8, 2**60 + 2**8 + 1, 1.7976931348623157e308,
    int(1.7976931348623157e308) + 2**969 + 1, 2**1024 - 1, 2**1024, 2**1024 + 1, 10**400,
    math.inf,
])


def test_big_ints_order_exactly_against_floats() -> None:
    for i, a in enumerate(BIG_NUMBERS):
        for b in BIG_NUMBERS[i + 1:]:
            assert a < b and compare(a, b) == -1 and compare_raw(b, a) == 1, (a, b)
            assert sort_key(a) < sort_key(b) and sort_key_raw(a) < sort_key_raw(b), (a, b)
            assert sort_key([a, "x"]) < sort_key([b]) and sort_key([a]) < sort_key([a, None])


def test_nan_and_non_json_values_are_refused() -> None:
    nans: list[Json] = [math.nan, [1, math.nan], {"a": math.nan}]
    for bad in nans:
        with pytest.raises(ValueError):
            sort_key(bad)
        with pytest.raises(ValueError):
            sort_key_raw(bad)
    with pytest.raises(ValueError):
        compare(1, math.nan)
    not_json: list[Any] = [object(), (1, 2), b"bytes", {1, 2}]
    for bad_value in not_json:
        with pytest.raises(TypeError):
            sort_key(bad_value)
        with pytest.raises(TypeError):
            compare(bad_value, 1)


def test_each_thread_gets_its_own_collator() -> None:
    words = [f"{word}{i}" for i in range(300) for word in ("Apple", "apple", "été")]
    expected = [sort_key([word, i]) for i, word in enumerate(words)]
    with ThreadPoolExecutor(4) as pool:
        chunks = list(pool.map(lambda _: [sort_key([w, i]) for i, w in enumerate(words)], range(8)))
    assert all(chunk == expected for chunk in chunks)


# Property tests. Small alphabets make ICU ties ("a" vs "a\u200b", "é" vs "e\u0301") common.
TRICKY = ["a", "A", "b", "B", "é", "e\u0301", "\u200b", "\x00", "\x01", " ", "-", "1", "ß",
          "ss", "\ufff0", "\U0001f600", "\ud800"]
texts = st.lists(st.sampled_from(TRICKY), max_size=4).map("".join) | st.text(max_size=6)
numbers = (st.integers(-(2**1100), 2**1100) | st.integers(-1000, 1000)
           | st.floats(allow_nan=False) | st.sampled_from(BIG_NUMBERS))
scalars = st.none() | st.booleans() | numbers | texts
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=10,
)


@settings(max_examples=600, deadline=None)
@given(json_values, json_values)
def test_sort_key_order_is_compare_order(a: Json, b: Json) -> None:
    assert bytes_cmp(sort_key(a), sort_key(b)) == compare(a, b)
    assert bytes_cmp(sort_key_raw(a), sort_key_raw(b)) == compare_raw(a, b)


@settings(max_examples=300, deadline=None)
@given(json_values, json_values)
def test_compare_is_antisymmetric(a: Json, b: Json) -> None:
    for cmp in (compare, compare_raw):
        assert cmp(a, b) == -cmp(b, a) and cmp(a, b) in (-1, 0, 1)
        assert cmp(a, a) == 0


@settings(max_examples=300, deadline=None)
@given(json_values, json_values, json_values)
def test_compare_is_transitive(a: Json, b: Json, c: Json) -> None:
    for cmp in (compare, compare_raw):
        low, mid, high = sorted([a, b, c], key=functools.cmp_to_key(cmp))
        assert cmp(low, mid) <= 0 and cmp(mid, high) <= 0 and cmp(low, high) <= 0
        if cmp(low, mid) == 0 and cmp(mid, high) == 0:
            assert cmp(low, high) == 0


@settings(max_examples=500, deadline=None)
@given(numbers, numbers)
def test_numbers_order_exactly(a: float, b: float) -> None:
    expected = (a > b) - (a < b)  # Python compares ints and floats exactly
    assert compare(a, b) == expected == bytes_cmp(sort_key(a), sort_key(b))


@settings(max_examples=300, deadline=None)
@given(texts)
def test_icu_sort_keys_end_in_their_only_zero_byte(text: str) -> None:
    icu_part = sort_key(text)[1:]
    assert icu_part.endswith(b"\x00") and icu_part.index(b"\x00") == len(icu_part) - 1


# The encoded keys in real indexed columns: SQLite compares BLOBs with memcmp, PostgreSQL bytea
# bytewise; doc ids need the "C" collation on PostgreSQL to compare as bytes too.
DOC_ID = sa.String().with_variant(sa.String(collation="C"), "postgresql")


def _view_table(metadata: sa.MetaData) -> sa.Table:
    table = sa.Table(
        "view_rows", metadata,
        sa.Column("mode", sa.String(8), nullable=False),
        sa.Column("key", sa.LargeBinary, nullable=False),
        sa.Column("doc_id", DOC_ID, nullable=False),
        sa.Column("key_json", sa.Text, nullable=False),
    )
    sa.Index("view_rows_order", table.c.mode, table.c.key, table.c.doc_id)
    return table


@pytest.fixture
def view_engine(store_url: str) -> Any:
    if store_url.startswith("sqlite:///"):
        os.makedirs(os.path.dirname(store_url.removeprefix("sqlite:///")), exist_ok=True)
    engine = sa.create_engine(store_url)
    yield engine
    engine.dispose()


def test_sql_order_by_and_ranges_follow_collation(view_engine: sa.Engine) -> None:
    metadata = sa.MetaData()
    rows = _view_table(metadata)
    metadata.create_all(view_engine)
    with view_engine.begin() as conn:
        for mode, (_, key) in MODES.items():
            conn.execute(rows.insert(), [
                {"mode": mode, "key": key(value), "doc_id": doc_id, "key_json": json.dumps(value)}
                for value, doc_id in shuffled_rows(GOLDEN[mode]["values"], seed=7)
            ])

    def select(mode: str, low: bytes = MIN_KEY, high: bytes = MAX_KEY,
               descending: bool = False) -> list[Json]:
        order = [rows.c.key.desc(), rows.c.doc_id.desc()] if descending else [rows.c.key,
                                                                              rows.c.doc_id]
        query = (sa.select(rows.c.key_json)
                 .where(rows.c.mode == mode, rows.c.key >= low, rows.c.key <= high)
                 .order_by(*order))
        with view_engine.connect() as conn:
            return [json.loads(text) for text in conn.scalars(query)]

    for mode in MODES:
        golden = GOLDEN[mode]["values"]
        assert select(mode) == golden
        assert select(mode, descending=True) == golden[::-1]
    assert select("icu", sort_key("b"), sort_key("b")) == ["b"]
    assert select("icu", sort_key("c"), sort_key("c")) == ["c", "c\u200b", "c\u200b\u200b"]
    assert select("icu", sort_key(["b"]), sort_key(["b", {}])) == [
        ["b"], ["b", "c"], ["b", "c", "a"], ["b", "d"], ["b", "d", "e"]]
    assert select("icu", sort_key(2), sort_key(3)) == [2, 3.0]
    assert select("raw", sort_key_raw("Z"), sort_key_raw("a")) == ["a"]
    assert select("raw", sort_key_raw(True), sort_key_raw({"b": 2, "a": 1})) == [
        True, {"a": 1}, {"a": 2}, {"b": 1}, {"b": 2}, {"b": 2, "a": 1}]
