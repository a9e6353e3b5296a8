"""A typed view query, its validation against the view (CouchDB's `validate_args`), and its bounds.

The HTTP edge parses query strings and bodies into a `ViewQuery`; `validate` applies CouchDB's
rules that depend on the view (map or reduce) and resolves the effective reduce and group level;
`bounds` turns keys into sort bytes in the direction of travel, refusing a reversed range with
CouchDB's messages. `map_rows` and `reduce_rows` then stream the answer.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from ..store.serialize import dumps
from .design import ViewDef
from .mapper import key_bytes


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()
"""A parameter that was not given (JSON null is a valid key, so None cannot mean that)."""

EXACT = -1
"""`group_level` meaning `group=true`: group by the whole key."""


class InvalidQuery(Exception):
    """A query CouchDB refuses with 400 `query_parse_error`; `reason` is CouchDB's text."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class ViewQuery:
    """Every view query parameter, as given (UNSET when absent)."""

    keys: Any = UNSET
    start_key: Any = UNSET
    end_key: Any = UNSET
    start_docid: Any = UNSET
    end_docid: Any = UNSET
    inclusive_end: bool = True
    descending: bool = False
    limit: int | None = None
    skip: int = 0
    group: Any = UNSET
    group_level: Any = UNSET
    reduce: Any = UNSET
    include_docs: bool = False
    conflicts: Any = UNSET
    update: str = "true"
    stable: bool = False
    update_seq: bool = False
    sorted: bool = True

    def cache_key(self) -> str:
        """The parameters that shape the answer, for the ETag."""
        fields = {k: v for k, v in self.__dict__.items() if k not in ("update", "stable")}
        return repr(sorted((k, repr(v)) for k, v in fields.items()))


@dataclass(frozen=True)
class Resolved:
    """A validated query: whether it reduces, at which group level, and its sort-byte bounds."""

    query: ViewQuery
    reduce: bool
    group_level: int
    start: bytes | None
    end: bytes | None


def validate(query: ViewQuery, view: ViewDef) -> Resolved:
    """CouchDB's checks of a query against its view, in CouchDB's order."""
    level = _group_level(query)
    has_reduce = view.reduce is not None
    is_red = has_reduce and query.reduce is not False
    if query.reduce is True and not has_reduce:
        raise InvalidQuery("Reduce is invalid for map-only views.")
    keys = query.keys
    if is_set(keys) and isinstance(keys, list) and len(keys) == 1 and not _has_range(query):
        # CouchDB 3.3.1: a single-element `keys` is the same query as `key`.
        query = replace(query, keys=UNSET, start_key=keys[0], end_key=keys[0])
        keys = UNSET
    if is_red and level != EXACT and isinstance(keys, list):
        raise InvalidQuery("Multi-key fetches for reduce views must use `group=true`")
    if is_set(keys) and not isinstance(keys, list):
        raise InvalidQuery("`keys` must be an array of strings.")
    if is_set(keys) and keys and _has_range(query):
        raise InvalidQuery("`keys` is incompatible with `key`, `start_key` and `end_key`")
    if level != 0 and not is_red:
        raise InvalidQuery("Invalid use of grouping on a map view.")
    if is_red and query.include_docs:
        raise InvalidQuery("`include_docs` is invalid for reduce")
    if is_red and is_set(query.conflicts):
        raise InvalidQuery("`conflicts` is invalid for reduce views.")
    start, end = _bounds(query, view)
    return Resolved(query, is_red, level, start, end)


def is_set(value: Any) -> bool:
    """Whether a parameter was given."""
    return value is not UNSET


def _has_range(query: ViewQuery) -> bool:
    return is_set(query.start_key) or is_set(query.end_key)


def _group_level(query: ViewQuery) -> int:
    group, level = query.group, query.group_level
    if not is_set(level):
        return EXACT if group is True else 0
    if group is False and level > 0:
        raise InvalidQuery("Can't specify group=false and group_level>0 at the same time")
    return int(level)


_NO_ROWS = ("No rows can match your key range, reverse your start_key and end_key or set "
            "descending={}")


def _bounds(query: ViewQuery, view: ViewDef) -> tuple[bytes | None, bytes | None]:
    """Sort bytes of the start and end keys; a range that cannot match is refused."""
    start = key_bytes(view, query.start_key) if is_set(query.start_key) else None
    end = key_bytes(view, query.end_key) if is_set(query.end_key) else None
    if start is None or end is None or dumps(query.start_key) == dumps(query.end_key):
        return start, end
    # CouchDB compares {key, docid} pairs, the doc ids defaulting to the ends of the range.
    high = None  # stands for <<255>>, above every UTF-8 doc id
    sd = query.start_docid if is_set(query.start_docid) else (high if query.descending else "")
    ed = query.end_docid if is_set(query.end_docid) else ("" if query.descending else high)
    less = _pair_less((start, sd), (end, ed))
    if not query.descending and not less and (start, sd) != (end, ed):
        raise InvalidQuery(_NO_ROWS.format("true"))
    if query.descending and less:
        raise InvalidQuery(_NO_ROWS.format("false"))
    return start, end


def _pair_less(a: tuple[bytes, str | None], b: tuple[bytes, str | None]) -> bool:
    if a[0] != b[0]:
        return a[0] < b[0]
    if a[1] == b[1]:
        return False
    if a[1] is None:
        return False
    return b[1] is None or a[1] < b[1]
