"""Sort specs and field lists as `mango_sort` and `mango_fields` read them.

A sort (and an index's `fields`) is an array whose items are a field name (ascending) or a
one-member object `{"field": "asc" | "desc"}`; every item must go the same direction, as CouchDB
requires. `fields` in `_find` is an array of field names (dotted paths) to project.
"""

from __future__ import annotations

from typing import Any

from ..fieldpath import parse_field
from ..selector_norm import SelectorError, erl
from .errors import MangoError, bad

Sort = list[tuple[str, str]]


def parse_sort(value: Any) -> Sort:
    """`[(field, "asc" | "desc"), ...]`, or CouchDB's 400."""
    if not isinstance(value, list):
        raise bad("invalid_sort_json", f"Sort must be an array of sort specs, not: {erl(value)}")
    out: Sort = []
    for spec in value:
        if isinstance(spec, str):
            out.append((spec, "asc"))
        elif isinstance(spec, dict) and len(spec) == 1:
            (field, direction), = spec.items()
            if direction not in ("asc", "desc"):
                raise bad("invalid_sort_dir", f"Invalid sort direction: {erl(spec)}")
            out.append((field, direction))
        else:
            raise bad("invalid_sort_field", f"Invalid sort field: {erl(spec)}")
        check_field(out[-1][0])
    if len({direction for _, direction in out}) > 1:
        raise MangoError(400, "unsupported_mixed_sort",
                         "Sorts currently only support a single direction for all fields.")
    return out


def sort_json(sort: Sort) -> list[dict[str, str]]:
    """The sort as CouchDB shows it: `[{"field": "asc"}, ...]`."""
    return [{field: direction} for field, direction in sort]


def parse_fields(value: Any) -> list[str] | None:
    """The fields to project, or None for the whole document (absent or `[]`)."""
    if not isinstance(value, list):
        raise bad("invalid_fields", f"Fields must be an array of strings, not: {erl(value)}")
    for field in value:
        if not isinstance(field, str):
            raise bad("invalid_field", f"Invalid JSON for field spec: {erl(field)}")
        check_field(field)
    return list(value) or None


def check_field(name: str) -> None:
    """A field name that parses as a path (`a..b` does not), else CouchDB's 400."""
    try:
        parse_field(name)
    except SelectorError as exc:
        raise bad(exc.error, exc.reason) from None
