"""Order-preserving byte encodings of view keys, so SQL `ORDER BY` on a BLOB is CouchDB collation.

`sort_key(a) < sort_key(b)` as bytes exactly when `collate.compare(a, b) < 0`, and the two keys
are equal exactly when the values compare equal (1 and 1.0, "c" and "c\\u200b"). `sort_key_raw`
does the same for `collate.compare_raw`. A key is stored in an indexed BLOB (SQLite compares
with memcmp) or bytea (PostgreSQL compares bytewise), so `ORDER BY key, doc_id` lists a view and
`key BETWEEN sort_key(startkey) AND sort_key(endkey)` answers a range. The encoding is one-way:
the key's JSON is stored beside it.

Layout
------
Every value starts with a type byte in collation order, and every variable-length part ends in
a way that sorts below anything that could continue it, so a prefix sorts first:

    null 01 | false 02 | true 03 | number 04 N | string 05 S
    array 06 V* 00 | object 07 (05 S V)* 00

* N, numbers: the IEEE-754 double with the sign bit flipped (negatives: all bits flipped), the
  usual trick that makes unsigned big-endian bytes sort like the doubles; -0.0 is written as 0.0.
  An int is written as the double it equals when there is one (so 1, 1.0 and 2**60, 2.0**60
  share a key). Any other int n lies strictly between two adjacent doubles lo < n < hi; it is
  written as lo's 8 bytes, then FF, then n - lo as a length-prefixed (4 bytes) big-endian
  unsigned int. FF sorts above every byte that can follow a number (00..07), so n sorts after
  lo and, differing within the 8 bytes, before hi; within one gap, a longer remainder is a
  larger one. Below -1.8e308 there is no finite lo: such ints follow -inf's bytes and FF with
  the magnitude stored descending (inverted length, inverted bytes). So numbers are exact at
  any size, and infinities work too; NaN is refused.
* S, strings: ICU's sort key from the root collator (default attributes, tertiary strength),
  which orders exactly as `Collator.compare`, is equal for strings ICU finds equal, ends in 00
  and holds no other 00 (checked by the tests), so it needs no escaping and no prefix of one
  key continues another. Object member keys are strings with their type byte.
* Arrays and objects end in 00, below any type byte, so ["b"] < ["b", "c"] and {} < {"": 1}.

Raw collation uses the same frame with the raw type order (number 01, false 02, null 03,
true 04, object 05, array 06, string 07) and strings as their UTF-8 bytes with 00 written as
01 01, 01 as 01 02 and a terminating 00.

The library: PyICU from `pyicu-wheels`, which bundles ICU (77.1 here) in pip-installable
wheels, so no system ICU is needed. Nothing in the order is approximate. What can differ from a
given CouchDB is its ICU: CouchDB links the system's, and two ICU versions can order characters
new in one Unicode version differently. Stored keys are valid only under the ICU collation
version that made them (`collate.collation_version()`): an index must be rebuilt when it changes.
"""

from __future__ import annotations

import math
import struct
import threading
from collections.abc import Callable

from settee.views.collate import Json, root_collator

__all__ = ["MAX_KEY", "MIN_KEY", "VERSION", "sort_key", "sort_key_raw"]

VERSION = "1"
"""The layout's version: part of a view's signature, so changing the layout rebuilds indexes."""

MIN_KEY = b""
"""Bytes that sort before every encoded key (an open lower bound)."""

MAX_KEY = b"\xff"
"""Bytes that sort after every encoded key: no key starts with FF (an open upper bound)."""

_local = threading.local()
_END = b"\x00"
_BIG = b"\xff"  # after a number's 8 bytes: an int between two doubles
_pack = struct.Struct(">d").pack
_INVERT = bytes(range(255, -1, -1))
_ZERO = _pack(-0.0)
_EXACT = 2**53  # every int of at most this size is a double
_NEG_INF = -math.inf

# Type bytes: default order, then raw order.
_NULL, _FALSE, _TRUE, _NUMBER, _STRING, _ARRAY, _OBJECT = (bytes([i]) for i in range(1, 8))
_RAW_NUMBER, _RAW_FALSE, _RAW_NULL, _RAW_TRUE, _RAW_OBJECT, _RAW_ARRAY, _RAW_STRING = (
    bytes([i]) for i in range(1, 8)
)


def _double(x: float) -> bytes:
    # For x >= 0 the wanted bits are x's with the sign bit set, which are -x's bits; for x < 0
    # they are x's bits inverted. Both zeros take 0.0's key. NaN fails every test.
    if x > 0:
        return _pack(-x)
    if x < 0:
        return _pack(x).translate(_INVERT)
    if x == 0:
        return _ZERO
    raise ValueError("NaN cannot be a view key")


def _number(n: float) -> bytes:
    """The 8 (or, for an int between two doubles, more) bytes of a number."""
    if type(n) is float or -_EXACT <= n <= _EXACT:
        return _double(float(n))
    try:
        lo = float(n)
    except OverflowError:
        lo = math.inf if n > 0 else _NEG_INF
    if lo == n:
        return _double(lo)
    if lo > n:
        lo = math.nextafter(lo, _NEG_INF)
    if lo == _NEG_INF:
        magnitude = -int(n)
        size = (magnitude.bit_length() + 7) // 8
        inverted = (1 << (8 * size)) - 1 - magnitude
        return _double(lo) + _BIG + (0xFFFFFFFF - size).to_bytes(4, "big") + inverted.to_bytes(
            size, "big")
    rest = int(n) - int(lo)
    size = (rest.bit_length() + 7) // 8
    return _double(lo) + _BIG + size.to_bytes(4, "big") + rest.to_bytes(size, "big")


def _icu_sort_key() -> Callable[[str], bytes]:
    """This thread's `getSortKey`, bound to this thread's collator."""
    try:
        bound: Callable[[str], bytes] = _local.icu_sort_key
    except AttributeError:
        bound = _local.icu_sort_key = root_collator().getSortKey
    return bound


def sort_key(value: Json) -> bytes:
    """The bytes whose order is CouchDB's default collation of `value`."""
    if isinstance(value, str):
        return _STRING + _icu_sort_key()(value)
    if type(value) is float or type(value) is int:
        return _NUMBER + _number(value)
    icu_key = _icu_sort_key()
    out: list[bytes] = []
    _append(value, out, icu_key)
    return b"".join(out)


def _append(value: Json, out: list[bytes], icu_key: Callable[[str], bytes]) -> None:
    # Arrays first (sort_key answers lone strings and numbers itself), then the common kinds;
    # the identity tests keep bools out of the number branch.
    if isinstance(value, list):
        out.append(_ARRAY)
        for item in value:
            # Strings and doubles inline: they are most elements of most keys, and a call costs.
            if type(item) is str:
                out.append(_STRING + icu_key(item))
            elif type(item) is int and -_EXACT <= item <= _EXACT:
                out.append(_NUMBER + _double(float(item)))
            elif type(item) is float:
                out.append(_NUMBER + _double(item))
            else:
                _append(item, out, icu_key)
        out.append(_END)
    elif isinstance(value, str):
        out.append(_STRING + icu_key(value))
    elif value is True:
        out.append(_TRUE)
    elif value is False:
        out.append(_FALSE)
    elif isinstance(value, (int, float)):
        out.append(_NUMBER + _number(value))
    elif value is None:
        out.append(_NULL)
    elif isinstance(value, dict):
        out.append(_OBJECT)
        for key, item in value.items():
            out.append(_STRING + icu_key(key))
            _append(item, out, icu_key)
        out.append(_END)
    else:
        raise TypeError(f"not a JSON value: {type(value).__name__}")


def _raw_string(text: str) -> bytes:
    data = text.encode("utf-8", "surrogatepass")
    if b"\x00" in data or b"\x01" in data:
        data = data.replace(b"\x01", b"\x01\x02").replace(b"\x00", b"\x01\x01")
    return _RAW_STRING + data + _END


def sort_key_raw(value: Json) -> bytes:
    """The bytes whose order is CouchDB's raw collation (Erlang term order) of `value`."""
    if isinstance(value, str):
        return _raw_string(value)
    if type(value) is float or type(value) is int:
        return _RAW_NUMBER + _number(value)
    out: list[bytes] = []
    _append_raw(value, out)
    return b"".join(out)


def _append_raw(value: Json, out: list[bytes]) -> None:
    if isinstance(value, list):
        out.append(_RAW_ARRAY)
        for item in value:
            if type(item) is str:
                out.append(_raw_string(item))
            elif type(item) is int and -_EXACT <= item <= _EXACT:
                out.append(_RAW_NUMBER + _double(float(item)))
            elif type(item) is float:
                out.append(_RAW_NUMBER + _double(item))
            else:
                _append_raw(item, out)
        out.append(_END)
    elif isinstance(value, str):
        out.append(_raw_string(value))
    elif value is True:
        out.append(_RAW_TRUE)
    elif value is False:
        out.append(_RAW_FALSE)
    elif isinstance(value, (int, float)):
        out.append(_RAW_NUMBER + _number(value))
    elif value is None:
        out.append(_RAW_NULL)
    elif isinstance(value, dict):
        out.append(_RAW_OBJECT)
        for key, item in value.items():
            out.append(_raw_string(key))
            _append_raw(item, out)
        out.append(_END)
    else:
        raise TypeError(f"not a JSON value: {type(value).__name__}")
