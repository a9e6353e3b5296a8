"""Compact JSON encoding for every stored body and response, exact for integers of any size.

orjson is the encoder: it is fast, compact and rejects what JSON cannot carry (lone surrogates,
non-string keys). It refuses integers beyond 64 bits, which CouchDB (Erlang bignums) stores exactly
and which the strict request parser keeps as exact Python ints, so only a value holding such an
integer takes a slower path: containers are encoded piecewise, reusing orjson for every subtree it
accepts, and the big integers are written digit for digit. The output bytes are the same as orjson
would produce if it knew big integers.

This lives in the store, not the HTTP layer, because the stored body bytes are defined here; the
server's `jsonbody.dumps` is this same function.
"""

from __future__ import annotations

from typing import Any

import orjson

__all__ = ["canonical_body", "dumps"]

# CPython refuses str(int) past 4,300 digits by default; below this many digits str() is used as is.
_STR_DIGITS = 4000


def dumps(value: Any) -> bytes:
    """Encode `value` as compact JSON bytes; integers of any size keep every digit."""
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError as exc:
        if "64-bit" not in str(exc):
            raise
    return b"".join(_encode_slow(value))


def canonical_body(doc: dict[str, Any]) -> bytes:
    """The stored body of `doc`: its JSON without the `_`-prefixed top-level keys, order kept."""
    for key in doc:
        if key[:1] == "_":
            return dumps({k: v for k, v in doc.items() if k[:1] != "_"})
    return dumps(doc)


def _encode_slow(value: Any) -> list[bytes]:
    """Encode a value orjson refused because it holds an integer beyond 64 bits."""
    try:
        return [orjson.dumps(value)]
    except orjson.JSONEncodeError as exc:
        if "64-bit" not in str(exc):
            raise
    # bool is an int subclass but orjson never refuses it, so it does not reach here.
    if isinstance(value, int):
        return [_int_digits(int(value)).encode("ascii")]
    parts: list[bytes] = []
    if isinstance(value, dict):
        parts.append(b"{")
        for i, (key, item) in enumerate(value.items()):
            if not isinstance(key, str):
                raise TypeError("Dict key must be str")
            if i:
                parts.append(b",")
            parts.append(orjson.dumps(key))
            parts.append(b":")
            parts.extend(_encode_slow(item))
        parts.append(b"}")
        return parts
    if isinstance(value, (list, tuple)):
        parts.append(b"[")
        for i, item in enumerate(value):
            if i:
                parts.append(b",")
            parts.extend(_encode_slow(item))
        parts.append(b"]")
        return parts
    raise TypeError(f"Type is not JSON serializable: {type(value).__name__}")


def _int_digits(n: int) -> str:
    """Decimal digits of `n`, without CPython's limit on int-to-str conversion length."""
    if n < 0:
        return "-" + _int_digits(-n)
    if n.bit_length() < _STR_DIGITS * 3:  # fewer than _STR_DIGITS digits (log2(10) > 3)
        return str(n)
    # Split in halves by a power of ten; the low half is zero-padded to its exact width.
    half = int(n.bit_length() * 0.30103) // 2
    high, low = divmod(n, 10**half)
    return _int_digits(high) + _int_digits(low).zfill(half)
