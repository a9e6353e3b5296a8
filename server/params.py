"""Query strings (and JSON bodies of POSTed queries) parsed into typed dataclasses at the edge.

Handlers never read raw arguments: each endpoint's parameters become one frozen dataclass, with
CouchDB's spellings (`startkey`/`start_key`, `startkey_docid`/`start_key_doc_id`), defaults and
`query_parse_error` messages.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import QueryParseError
from .jsonbody import BadJson, parse_json

Args = Mapping[str, Any]

_UNSET = object()


def _raw(args: Args, *names: str) -> Any:
    for name in names:
        if name in args:
            return args[name]
    return _UNSET


def boolean(args: Args, name: str, default: bool = False) -> bool:
    """A `true`/`false` parameter (JSON booleans accepted in POSTed bodies)."""
    value = args.get(name, _UNSET)
    if value is _UNSET:
        return default
    if isinstance(value, bool):
        return value
    if value in ("true", "True"):
        return True
    if value in ("false", "False"):
        return False
    raise QueryParseError(f"Invalid boolean parameter: \"{value}\"")


def integer(args: Args, name: str, default: int | None = None, *, minimum: int = 0,
            message: str | None = None) -> int | None:
    """An integer parameter at least `minimum`, with CouchDB's `parse_int`/`parse_pos_int` reasons.

    A value from a query string is quoted in the reason; one from a POSTed JSON body is not.
    """
    value = args.get(name, _UNSET)
    if value is _UNSET:
        return default
    shown = f"\"{value}\"" if isinstance(value, str) else str(value)
    try:
        if isinstance(value, bool) or isinstance(value, float):
            raise ValueError
        number = value if isinstance(value, int) else int(value)
    except (TypeError, ValueError):
        raise QueryParseError(f"Invalid value for integer: {shown}") from None
    if number < minimum or number > 2**53:
        kind = "positive integer" if minimum >= 0 else "integer"
        raise QueryParseError(message or f"Invalid value for {kind}: {shown}")
    return number


def json_value(args: Args, *names: str, from_body: bool = False) -> Any:
    """A JSON-encoded parameter (`key`, `startkey`, `keys`, `open_revs`…), or `_UNSET`."""
    value = _raw(args, *names)
    if value is _UNSET or from_body:
        return value
    try:
        return parse_json(str(value).encode("utf-8"))
    except (BadJson, UnicodeError):
        raise QueryParseError(f"Invalid JSON in `{names[0]}`: {value!r}") from None


def is_set(value: Any) -> bool:
    """Whether a parameter was given."""
    return value is not _UNSET


@dataclass(frozen=True)
class RangeQuery:
    """`_all_docs`, `_design_docs`, `_local_docs` and `_all_dbs` parameters."""

    start: Any = _UNSET
    end: Any = _UNSET
    key: Any = _UNSET
    keys: Any = _UNSET
    inclusive_end: bool = True
    descending: bool = False
    limit: int | None = None
    skip: int = 0
    include_docs: bool = False
    conflicts: bool = False
    update_seq: bool = False
    start_docid: Any = _UNSET
    end_docid: Any = _UNSET


def range_query(args: Args, *, from_body: bool = False) -> RangeQuery:
    """Parse range parameters from a query string (JSON-encoded) or a POSTed JSON object."""
    query = RangeQuery(
        start=json_value(args, "startkey", "start_key", from_body=from_body),
        end=json_value(args, "endkey", "end_key", from_body=from_body),
        key=json_value(args, "key", from_body=from_body),
        keys=json_value(args, "keys", from_body=from_body),
        inclusive_end=boolean(args, "inclusive_end", True),
        descending=boolean(args, "descending"),
        limit=integer(args, "limit"),
        skip=integer(args, "skip", 0) or 0,
        include_docs=boolean(args, "include_docs"),
        conflicts=boolean(args, "conflicts"),
        update_seq=boolean(args, "update_seq"),
        start_docid=_raw(args, "startkey_docid", "start_key_doc_id"),
        end_docid=_raw(args, "endkey_docid", "end_key_doc_id"),
    )
    if is_set(query.keys) and not isinstance(query.keys, list):
        raise QueryParseError("`keys` member must be an array.")
    if is_set(query.keys) and (is_set(query.key) or is_set(query.start) or is_set(query.end)):
        raise QueryParseError("`keys` is incompatible with `key`, `start_key` and `end_key`")
    return query


@dataclass(frozen=True)
class DocQuery:
    """`GET /{db}/{docid}` parameters."""

    rev: str | None = None
    revs: bool = False
    revs_info: bool = False
    conflicts: bool = False
    deleted_conflicts: bool = False
    local_seq: bool = False
    latest: bool = False
    open_revs: Any = _UNSET


_PLAIN_DOC_QUERY = DocQuery()


def doc_query(args: Args) -> DocQuery:
    """Parse a document GET's parameters (`meta=true` is conflicts + deleted + revs_info)."""
    if not args:
        return _PLAIN_DOC_QUERY
    meta = boolean(args, "meta")
    open_revs: Any = _UNSET
    if "open_revs" in args:
        raw = args["open_revs"]
        if raw == "all":
            open_revs = "all"
        else:
            open_revs = json_value(args, "open_revs")
            if not isinstance(open_revs, list) or not all(isinstance(r, str) for r in open_revs):
                raise QueryParseError("`open_revs` must be a JSON array of revs or `all`")
    rev = args.get("rev")
    return DocQuery(
        rev=rev if rev else None,
        revs=boolean(args, "revs"),
        revs_info=boolean(args, "revs_info") or meta,
        conflicts=boolean(args, "conflicts") or meta,
        deleted_conflicts=boolean(args, "deleted_conflicts") or meta,
        local_seq=boolean(args, "local_seq"),
        latest=boolean(args, "latest"),
        open_revs=open_revs,
    )
