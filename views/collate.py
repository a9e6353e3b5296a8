"""CouchDB's view key collation, default (ICU) and raw, as pure comparison functions.

The default order
-----------------
A view sorts its rows by key, and CouchDB defines one total order over JSON values
(`couch_ejson_compare`). Values of different types order by type:

    null < false < true < numbers < strings < arrays < objects

and within a type:

* numbers compare numerically, so 1 == 1.0; Python ints are exact at any size and an int
  compares exactly against a float (2**53 + 1 > 2.0**53), as Erlang compares bignums;
* strings compare with the ICU root collator at its default (tertiary) strength, the UCA order
  CouchDB gets from `ucol_open("")`: punctuation and symbols before digits before letters,
  different letters case-insensitively, the same letters lowercase first, so
  "a" < "A" < "aa" < "b" and abc < Abc < ABC < abc1 < AbcZZZZZ. Characters ICU ignores make
  no difference: "c" and "c\\u200b" (zero-width space) are equal keys. CouchDB's docs list
  "`" and "^" first among ASCII symbols, an older ICU's order; ICU 77 puts them after "%";
* arrays compare element by element, and a prefix sorts first: ["b"] < ["b","c"] < ["b","d"];
* objects compare member by member in their stored order, the key by ICU and then the value,
  and with fewer members first: {a:1} < {a:2} < {b:1} < {b:2} < {b:2,a:1} < {b:2,c:2}.

Rows whose keys compare equal are ordered by document id as raw bytes (`compare_rows`);
Python compares str by code point, which is the order of the ids' UTF-8 bytes.

The raw order
-------------
A view with `"options": {"collation": "raw"}` uses Erlang's term order on CouchDB's internal
form of JSON (numbers, atoms, `{Props}` tuples, lists, binaries), which gives

    numbers < false < null < true < objects < arrays < strings

(the atoms in alphabetical order), strings as raw UTF-8 bytes ("A" < "B" < "a"), objects as
lists of (key bytes, value) pairs, and arrays element by element, prefix first.

ICU collators are not thread-safe, so each thread lazily gets its own (`root_collator`).
Numbers must be finite: NaN has no place in the order and JSON cannot carry it.
"""

from __future__ import annotations

import math
import threading
from typing import Any, TypeAlias

import icu

__all__ = [
    "Json",
    "collation_version",
    "compare",
    "compare_raw",
    "compare_rows",
    "kind",
    "root_collator",
]

Json: TypeAlias = None | bool | int | float | str | list["Json"] | dict[str, "Json"]
"""A decoded JSON value as settee holds it: ints exact, object members in stored order."""

_local = threading.local()


def root_collator() -> icu.Collator:
    """This thread's ICU root-locale collator (default attributes, tertiary strength)."""
    try:
        collator: icu.Collator = _local.collator
        return collator
    except AttributeError:
        collator = icu.Collator.createInstance(icu.Locale.getRoot())
        _local.collator = collator
        return collator


def collation_version() -> str:
    """The ICU and Unicode versions behind the collation; sort keys are valid only under the same.

    PyICU does not expose the collator's own version, so any ICU upgrade counts as a change.
    """
    return f"icu-{icu.ICU_VERSION}/unicode-{icu.UNICODE_VERSION}"


# Type ranks of the default order; bools are looked up by value, everything else by type.
_NULL, _FALSE, _TRUE, _NUMBER, _STRING, _ARRAY, _OBJECT = range(7)
_RANKS: dict[type, int] = {
    type(None): _NULL, int: _NUMBER, float: _NUMBER, str: _STRING, list: _ARRAY, dict: _OBJECT,
}
# The raw (Erlang term) order ranks the same kinds differently.
_RAW_RANKS = {_NUMBER: 0, _FALSE: 1, _NULL: 2, _TRUE: 3, _OBJECT: 4, _ARRAY: 5, _STRING: 6}


def kind(value: object) -> int:
    """The rank of `value`'s type in the default order (null 0 ... object 6); TypeError if none."""
    if value is True:
        return _TRUE
    if value is False:
        return _FALSE
    rank = _RANKS.get(type(value))
    if rank is not None:
        return rank
    for cls, rank in ((dict, _OBJECT), (list, _ARRAY), (str, _STRING), (int, _NUMBER),
                      (float, _NUMBER)):
        if isinstance(value, cls):
            return rank
    raise TypeError(f"not a JSON value: {type(value).__name__}")


def _sign(a: Any, b: Any) -> int:
    if (isinstance(a, float) and math.isnan(a)) or (isinstance(b, float) and math.isnan(b)):
        raise ValueError("NaN has no place in the collation order")
    result: int = (a > b) - (a < b)
    return result


def compare(a: Json, b: Json) -> int:
    """-1, 0 or 1 as `a` sorts before, with, or after `b` in CouchDB's default view order."""
    return _compare(a, b, root_collator())


def _compare(a: Json, b: Json, collator: icu.Collator) -> int:
    rank_a, rank_b = kind(a), kind(b)
    if rank_a != rank_b:
        return -1 if rank_a < rank_b else 1
    if isinstance(a, str) and isinstance(b, str):
        result: int = collator.compare(a, b)  # ICU answers -1, 0 or 1
        return result
    if isinstance(a, list) and isinstance(b, list):
        for x, y in zip(a, b):
            result = _compare(x, y, collator)
            if result:
                return result
        return _sign(len(a), len(b))
    if isinstance(a, dict) and isinstance(b, dict):
        for (key_a, value_a), (key_b, value_b) in zip(a.items(), b.items()):
            result = collator.compare(key_a, key_b) or _compare(value_a, value_b, collator)
            if result:
                return result
        return _sign(len(a), len(b))
    if rank_a == _NUMBER:
        return _sign(a, b)
    return 0  # null, false, true: the rank is the value


def compare_raw(a: Json, b: Json) -> int:
    """-1, 0 or 1 as `a` sorts before, with, or after `b` under `"collation": "raw"`."""
    rank_a, rank_b = _RAW_RANKS[kind(a)], _RAW_RANKS[kind(b)]
    if rank_a != rank_b:
        return -1 if rank_a < rank_b else 1
    if isinstance(a, str) and isinstance(b, str):
        return _sign(a, b)  # code points: the order of UTF-8 bytes
    if isinstance(a, list) and isinstance(b, list):
        for x, y in zip(a, b):
            result = compare_raw(x, y)
            if result:
                return result
        return _sign(len(a), len(b))
    if isinstance(a, dict) and isinstance(b, dict):
        for (key_a, value_a), (key_b, value_b) in zip(a.items(), b.items()):
            result = _sign(key_a, key_b) or compare_raw(value_a, value_b)
            if result:
                return result
        return _sign(len(a), len(b))
    if rank_a == _RAW_RANKS[_NUMBER]:
        return _sign(a, b)
    return 0  # false, null, true


def compare_rows(a: tuple[Json, str], b: tuple[Json, str], *, raw: bool = False) -> int:
    """Order view rows `(key, doc id)`: by key, then by doc id as raw bytes."""
    result = (compare_raw if raw else compare)(a[0], b[0])
    return result or _sign(a[1], b[1])
