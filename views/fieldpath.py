"""Mango field paths: `"a.b.0"` into its parts, looking a path up in a document, and projections.

A field name is split on dots; `\\.` escapes a dot inside one name (`"a\\\\.b"` is the single
field `a.b`) and every backslash is then dropped, as `mango_util:parse_field/1` does. A step into
an array takes a decimal position (`"tags.0"`); a step into anything but an object or an array,
or past the end of an array, is a bad path, which no condition matches, while a missing object
member is "not found", which `{"$exists": false}` matches.
"""

from __future__ import annotations

import re
from typing import Any

from .selector_norm import SelectorError

__all__ = ["BAD_PATH", "MISSING", "extract_fields", "get_field", "parse_field"]

MISSING = object()
"""`get_field`'s answer when an object on the path lacks the member."""

BAD_PATH = object()
"""`get_field`'s answer when the path steps into a scalar or outside an array."""

_INDEX = re.compile(r"[+-]?[0-9]+")
_UNESCAPED_DOT = re.compile(r"(?<!\\)\.")


def parse_field(name: str) -> list[str]:
    """A dotted field name as its path: `"a.b"` -> `["a", "b"]`, `"a\\\\.b"` -> `["a.b"]`."""
    if "\\" not in name:
        parts = name.split(".")
    else:
        parts = [p.replace("\\", "") if p else p for p in _UNESCAPED_DOT.split(name)]
    if "" in parts:
        raise SelectorError(f"Invalid field name: {name}", "invalid_field_name")
    return parts


def get_field(value: Any, path: list[str]) -> Any:
    """The value at `path` inside `value`, or `MISSING`, or `BAD_PATH`."""
    for name in path:
        if isinstance(value, dict):
            if name not in value:
                return MISSING
            value = value[name]
        elif isinstance(value, list):
            if not _INDEX.fullmatch(name) or not 0 <= int(name) < len(value):
                return BAD_PATH
            value = value[int(name)]
        else:
            return BAD_PATH
    return value


def extract_fields(doc: dict[str, Any], fields: list[str]) -> dict[str, Any]:
    """Only the named fields of `doc`, nested as in `doc` (`mango_fields:extract/2`)."""
    out: dict[str, Any] = {}
    for field in fields:
        path = parse_field(field)
        value = get_field(doc, path)
        if value is MISSING or value is BAD_PATH:
            continue
        target = out
        for name in path[:-1]:
            nested = target.get(name)
            if not isinstance(nested, dict):
                nested = target[name] = {}
            target = nested
        target[path[-1]] = value
    return out
