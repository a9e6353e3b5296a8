"""Strict JSON decoding of request bodies, and the one encoder for responses and stored bodies.

A body is parsed once, and that same object is validated, authorised and stored, so the parser must
never guess. It rejects (with `BadJson`, a 400 `bad_request`) anything two JSON parsers could read
differently: duplicate keys at any depth (CVE-2017-12635, where Erlang and JavaScript kept different
copies of `roles`), invalid or BOM-prefixed UTF-8, lone surrogate escapes, NaN and Infinity, numbers
that overflow a double, trailing data, and nesting deeper than `max_depth`. Integers stay exact
Python ints of any size (CouchDB keeps bignums; orjson would silently turn 2**64 into a float),
floats stay floats and object keys keep their order.

The work is split for speed: cheap byte-level checks first (encoding, BOM, a bracket scan for depth
that never recurses, so 10**6 levels are refused in milliseconds), then the stdlib's C scanner with
small hooks for duplicate keys and non-finite numbers.
"""

from __future__ import annotations

import json
import math
import re
import sys
from typing import Any, ClassVar

from settee.store.serialize import dumps

__all__ = ["MAX_DEPTH", "MAX_INT_DIGITS", "BadJson", "check_depth", "dumps", "parse_json"]

MAX_DEPTH = 64
"""Default nesting limit for objects and arrays; orjson cannot write beyond 254 levels."""

MAX_INT_DIGITS = 10_000
"""Longest integer kept exactly; longer ones are refused, since decimal conversion is quadratic."""

INVALID = "invalid UTF-8 JSON"
"""CouchDB's reason for a body it cannot read as JSON."""


class BadJson(ValueError):
    """A request body that is not strict JSON; `reason` is the client-facing text."""

    status: ClassVar[int] = 400
    error: ClassVar[str] = "bad_request"

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason} ({detail})" if detail else reason)
        self.reason = reason
        self.detail = detail


def parse_json(data: bytes, *, max_depth: int = MAX_DEPTH) -> Any:
    """Decode a request body strictly, or raise `BadJson` saying why not."""
    if not data:
        raise BadJson(INVALID, "empty body")
    if data[:3] == b"\xef\xbb\xbf":
        raise BadJson(INVALID, "byte order mark")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadJson(INVALID, f"invalid UTF-8 at byte {exc.start}") from None
    if "\\u" in text and _has_lone_surrogate(text):
        raise BadJson(INVALID, "lone surrogate escape")
    problem = _nesting_problem(data, max_depth)
    if problem == "deep":
        raise BadJson(_too_deep_reason(max_depth))
    if problem:
        raise BadJson(INVALID, "unbalanced brackets")
    try:
        if 0 < sys.get_int_max_str_digits() <= MAX_INT_DIGITS:
            try:
                return _DECODER.decode(text)
            except (json.JSONDecodeError, BadJson):
                raise
            except ValueError:
                pass  # an integer longer than CPython converts: decode again, keeping it exact
        return _BIG_INT_DECODER.decode(text)
    except json.JSONDecodeError as exc:
        raise BadJson(INVALID, str(exc)) from None
    except RecursionError:
        raise BadJson(_too_deep_reason(max_depth)) from None


def check_depth(value: Any, max_depth: int = MAX_DEPTH) -> None:
    """Raise `BadJson` if objects and arrays in `value` nest deeper than `max_depth`."""
    if _depth_exceeds(value, max_depth):
        raise BadJson(_too_deep_reason(max_depth))


# --- decoding hooks -------------------------------------------------------------------------------


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                # Surrogates were refused before parsing, so the key encodes; keep the reason short.
                shown = key if len(key) <= 100 else key[:100] + "..."
                raise BadJson(f"Duplicate key {json.dumps(shown, ensure_ascii=False)}")
            seen.add(key)
    return obj


def _float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise BadJson(INVALID, f"number out of range: {text[:40]}")
    return value


def _constant(name: str) -> Any:
    raise BadJson(INVALID, f"{name} is not JSON")


def _big_int(text: str) -> int:
    digits = len(text) - (text[0] == "-")
    if digits > MAX_INT_DIGITS:
        raise BadJson("integer out of range", f"{digits} digits, at most {MAX_INT_DIGITS}")
    return _int_from_digits(text)


def _int_from_digits(text: str) -> int:
    """Exact int of a decimal string, past CPython's int-from-str length limit, in O(n**1.6)."""
    if len(text) <= 4000:
        return int(text)
    if text[0] == "-":
        return -_int_from_digits(text[1:])
    low = len(text) // 2
    scale: int = 10**low
    return _int_from_digits(text[:-low]) * scale + _int_from_digits(text[-low:])


_DECODER = json.JSONDecoder(
    object_pairs_hook=_object, parse_float=_float, parse_constant=_constant
)
_BIG_INT_DECODER = json.JSONDecoder(
    object_pairs_hook=_object, parse_float=_float, parse_constant=_constant, parse_int=_big_int
)


# --- byte-level checks ----------------------------------------------------------------------------

_SURROGATE_HINT = re.compile(r"\\u[dD][89a-fA-F]")
_ESCAPE = re.compile(r"\\(?:u([0-9a-fA-F]{4})|.)", re.DOTALL)


def _has_lone_surrogate(text: str) -> bool:
    """Whether a `\\uD800`-`\\uDFFF` escape lacks its partner (the stdlib would accept it)."""
    if not _SURROGATE_HINT.search(text):
        return False
    high_end = -1  # where the pending high surrogate escape ended, or -1
    for match in _ESCAPE.finditer(text):
        hex_digits = match.group(1)
        code = int(hex_digits, 16) if hex_digits else -1
        if high_end >= 0:
            if match.start() == high_end and 0xDC00 <= code <= 0xDFFF:
                high_end = -1
                continue
            return True
        if 0xD800 <= code <= 0xDBFF:
            high_end = match.end()
        elif 0xDC00 <= code <= 0xDFFF:
            return True
    return high_end >= 0


# Everything but `"[]{}` is deleted; then brackets of both kinds become parentheses.
_NOT_STRUCTURAL = bytes(b for b in range(256) if b not in b'"[]{}')
_TO_PARENS = bytes.maketrans(b"[]{}", b"()()")


def _nesting_problem(data: bytes, max_depth: int) -> str | None:
    """Why the brackets of a JSON text cannot be parsed within `max_depth`, found without recursion.

    Answers "deep" or "unbalanced" (never so for valid JSON), else None; exact for valid JSON.
    """
    if data.count(b"[") + data.count(b"{") <= max_depth:
        return None
    skeleton = data
    if b"\\" in skeleton:
        # Backslashes occur only in strings, where escapes pair up left to right: dropping `\\`
        # and then `\"` leaves exactly the quotes that open and close strings.
        skeleton = skeleton.replace(b"\\\\", b"").replace(b'\\"', b"")
    skeleton = skeleton.translate(None, _NOT_STRUCTURAL)
    # Drop string contents. Removing adjacent quotes first keeps quote parity (it empties a
    # string or joins two), and leaves few quotes to split on: most strings hold no brackets.
    skeleton = skeleton.replace(b'""', b"")
    if b'"' in skeleton:
        skeleton = b"".join(skeleton.split(b'"')[::2])
    skeleton = skeleton.translate(_TO_PARENS)
    # Each pass removes the innermost level, so a nest left after max_depth passes is too deep.
    # A run of more than max_depth openers is too deep at once: deep input ends in a pass or two.
    run = b"(" * (max_depth + 1)
    for _ in range(max_depth):
        if run in skeleton:
            return "deep"
        reduced = skeleton.replace(b"()", b"")
        if not reduced:
            return None
        if len(reduced) == len(skeleton):
            return "unbalanced"
        skeleton = reduced
    return "deep" if b"()" in skeleton else "unbalanced"


def _too_deep_reason(max_depth: int) -> str:
    return f"JSON nested deeper than {max_depth} levels"


def _depth_exceeds(value: Any, budget: int) -> bool:
    if isinstance(value, dict):
        children: Any = value.values()
    elif isinstance(value, list):
        children = value
    else:
        return False
    if budget <= 0:
        return True
    return any(_depth_exceeds(child, budget - 1) for child in children)
