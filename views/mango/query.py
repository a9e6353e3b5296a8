"""A `_find` (or `_explain`) body validated into a `FindQuery`, as `mango_opts:validate_find`.

Members are checked in CouchDB's order, each with CouchDB's error, and a member the request does
not take is refused last (`invalid_key`). The selector is normalized here (`views.selector_norm`)
and compiled once for the whole scan.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..selector import compile_selector
from ..selector_norm import SelectorError, erl, is_int, normalize
from .errors import bad, invalid_key, missing_key, not_bool
from .sort import Sort, parse_fields, parse_sort

DEFAULT_LIMIT = 25


@dataclass
class FindQuery:
    """Every `_find` option, validated (CouchDB's defaults where absent)."""

    selector: dict[str, Any]
    normal: dict[str, Any]
    matcher: Callable[[Any], bool] = field(repr=False)
    use_index: list[str] = field(default_factory=list)
    bookmark: str | None = None
    limit: int = DEFAULT_LIMIT
    skip: int = 0
    sort: Sort = field(default_factory=list)
    fields: list[str] | None = None
    r: int = 1
    conflicts: bool = False
    stale: bool = False
    update: bool = True
    stable: bool = False
    execution_stats: bool = False
    allow_fallback: bool = True

    @property
    def descending(self) -> bool:
        """Whether the sort (hence the scan) goes down."""
        return bool(self.sort) and self.sort[0][1] == "desc"

    @property
    def sort_fields(self) -> list[str]:
        """The sort's field names."""
        return [name for name, _ in self.sort]

    def opts_json(self) -> dict[str, Any]:
        """The options as `_explain` shows them."""
        return {"use_index": self.use_index, "bookmark": self.bookmark or "nil",
                "limit": self.limit, "skip": self.skip,
                "sort": {name: d for name, d in self.sort}, "fields": self.fields or [],
                "partition": "", "r": self.r, "conflicts": self.conflicts,
                "stale": self.stale, "update": self.update, "stable": self.stable,
                "execution_stats": self.execution_stats, "allow_fallback": self.allow_fallback}


def parse_find(body: dict[str, Any]) -> FindQuery:
    """Validate a `_find` body."""
    if "selector" not in body:
        raise missing_key("selector")
    selector = body["selector"]
    try:
        normal = normalize(selector)
        matcher = compile_selector(selector)
    except SelectorError as exc:
        raise bad(exc.error, exc.reason) from None
    q = FindQuery(selector, normal, matcher)
    if "use_index" in body:
        q.use_index = parse_use_index(body["use_index"])
    if "bookmark" in body:
        mark = body["bookmark"]
        if mark is not None and not isinstance(mark, str):
            raise bad("invalid_bookmark", f"Invalid bookmark value: {erl(mark)}")
        q.bookmark = mark or None
    for key in ("limit", "skip"):
        if key in body:
            value = body[key]
            if not is_int(value) or value < 0:
                raise bad("invalid_non_neg_integer",
                          f"{erl(value)} is not an integer greater than or equal to zero")
            setattr(q, key, value)
    if "sort" in body:
        q.sort = parse_sort(body["sort"])
    if "fields" in body:
        q.fields = parse_fields(body["fields"])
    if "partition" in body and body["partition"] not in ("", None):
        raise bad("bad_request", "`partition` is not supported on this database")
    if "r" in body:
        r = body["r"]
        if not is_int(r) or r <= 0:
            raise bad("invalid_pos_integer", f"{erl(r)} is not an integer greater than zero")
        q.r = r
    for key in ("conflicts", "update", "stable", "execution_stats", "allow_fallback"):
        if key in body:
            if not isinstance(body[key], bool):
                raise not_bool(body[key])
            setattr(q, key, body[key])
    if "stale" in body:
        stale = body["stale"]
        if stale not in ("ok", False, "false"):
            raise bad("invalid_ok_or_false_value", f"Invalid value for stale: {erl(stale)}")
        if stale == "ok":  # CouchDB's `stale=ok` is `update=false` plus `stable=true`
            q.stale, q.update, q.stable = True, False, True
    known = {"selector", "use_index", "bookmark", "limit", "skip", "sort", "fields",
             "partition", "r", "conflicts", "stale", "update", "stable", "execution_stats",
             "allow_fallback"}
    for key in body:
        if key not in known:
            raise invalid_key(key)
    return q


def parse_use_index(value: Any) -> list[str]:
    """`use_index` as `[ddoc]` or `[ddoc, name]` (`mango_opts:validate_use_index`)."""
    if value is None or value == []:
        return []
    if isinstance(value, str):  # split at the first slash only, as `binary:split/2`
        parts = value.split("/", 1)
        return parts[1:] if parts[0] == "_design" and len(parts) == 2 else parts
    elif (isinstance(value, list) and 1 <= len(value) <= 2
          and all(isinstance(v, str) for v in value)):
        return list(value)
    raise bad("invalid_index_name", f"Invalid index name: {erl(value)}")
