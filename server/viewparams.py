"""View query parameters (query string, POSTed body, `/queries` entries) parsed into a `ViewQuery`.

The parameters are folded in the order given, as CouchDB's `couch_mrview_http:parse_params/4`
does, so a later one wins (`key` sets both ends, a following `startkey` replaces the start).
Query-string values are JSON-encoded where CouchDB says so (`key`, `keys`, `startkey`, `endkey`)
and text otherwise; body values are already decoded. A POSTed body is read first and the query
string applied over it; each `/queries` entry is applied over the query string. Messages are
CouchDB's (`couch_mrview_http`); checks that depend on the view (map or reduce) are made by
`views.query.validate`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from ..store.serialize import dumps
from ..views.query import UNSET, ViewQuery
from .errors import BadRequest, QueryParseError
from .jsonbody import INVALID, BadJson, parse_json

_INT = re.compile(r"^[+-]?[0-9]+$")
_JSON_FIELDS = {"startkey": "start_key", "start_key": "start_key", "endkey": "end_key",
                "end_key": "end_key", "keys": "keys"}
_DOCID_FIELDS = {"startkey_docid": "start_docid", "start_key_doc_id": "start_docid",
                 "endkey_docid": "end_docid", "end_key_doc_id": "end_docid"}
_BOOL_FIELDS = ("descending", "inclusive_end", "include_docs", "update_seq", "sorted",
                "group", "reduce", "conflicts")
_IGNORED_BOOLS = ("attachments", "att_encoding_info")


def _shown(value: Any) -> str:
    """A value as Erlang's `~p` prints it in CouchDB's messages: strings quoted."""
    return f'"{value}"' if isinstance(value, str) else dumps(value).decode()


def parse_boolean(value: Any) -> bool:
    """`true`/`false` in any case, or a JSON boolean."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise QueryParseError(f"Invalid boolean parameter: {_shown(value)}")


def parse_pos_int(value: Any) -> int:
    """A non-negative integer."""
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and _INT.match(value):
        number = int(value)
    else:
        raise QueryParseError(f"Invalid value for integer: {_shown(value)}")
    if number < 0:
        raise QueryParseError(f"Invalid value for positive integer: {_shown(value)}")
    return number


def _json(value: Any, decoded: bool) -> Any:
    if decoded:
        return value
    try:
        return parse_json(str(value).encode("utf-8"))
    except (BadJson, UnicodeError):
        raise BadRequest(INVALID) from None


def _text(value: Any) -> str:
    return value if isinstance(value, str) else dumps(value).decode()


def _fold(fields: dict[str, Any], name: str, value: Any, decoded: bool) -> None:
    if name == "key":
        key = _json(value, decoded)
        fields["start_key"] = fields["end_key"] = key
    elif name in _JSON_FIELDS:
        fields[_JSON_FIELDS[name]] = _json(value, decoded)
    elif name in _DOCID_FIELDS:
        fields[_DOCID_FIELDS[name]] = _text(value)
    elif name in ("limit", "skip", "group_level"):
        fields[name] = parse_pos_int(value)
    elif name in _BOOL_FIELDS:
        fields[name] = parse_boolean(value)
    elif name in _IGNORED_BOOLS:
        parse_boolean(value)
    elif name == "stale":
        if value not in ("ok", "update_after"):
            raise QueryParseError("Invalid value for `stale`.")
        fields["stable"] = True
        fields["update"] = "false" if value == "ok" else "lazy"
    elif name == "stable":
        if value not in ("true", "false", True, False):
            raise QueryParseError("Invalid value for `stable`.")
        fields["stable"] = value in ("true", True)
    elif name == "update":
        if value not in ("true", "false", "lazy", True, False):
            raise QueryParseError("Invalid value for `update`.")
        fields["update"] = value if isinstance(value, str) else ("true" if value else "false")
    # Anything else is ignored, as CouchDB keeps unknown parameters as `extra`.


def parse(pairs: Iterable[tuple[str, Any]], *, decoded: bool = False,
          base: ViewQuery | None = None) -> ViewQuery:
    """Fold parameters over `base` (or the defaults) into a `ViewQuery`."""
    fields: dict[str, Any] = {}
    for name, value in pairs:
        _fold(fields, name, value, decoded)
    return replace(base or ViewQuery(), **fields)


def from_request_args(args: Any) -> ViewQuery:
    """A GET's query string (a werkzeug MultiDict, order kept)."""
    return parse(args.items(multi=True))


def from_body(body: dict[str, Any], args: Any) -> ViewQuery:
    """A POSTed view query: the body's parameters, then the query string's over them."""
    if "queries" in body:
        raise BadRequest("The `queries` parameter is no longer supported at this endpoint")
    if "keys" in body and not isinstance(body["keys"], list):
        raise BadRequest("`keys` member must be an array.")
    query = parse(body.items(), decoded=True)
    return parse(args.items(multi=True), base=query)


def queries(body: dict[str, Any], args: Any) -> list[ViewQuery]:
    """`/queries`: one `ViewQuery` per entry, each over the query string's parameters."""
    found = body.get("queries", UNSET)
    if found is UNSET:
        raise BadRequest("POST body must include `queries` parameter.")
    if not isinstance(found, list):
        raise BadRequest("`queries` member must be an array.")
    if not all(isinstance(q, dict) for q in found):
        raise BadRequest("`queries` member must be an array of objects")
    # CouchDB's parse_params/4 resets `keys`, `group` and `group_level` for each entry.
    base = replace(from_request_args(args), keys=UNSET, group=UNSET, group_level=UNSET)
    out = []
    for entry in found:
        if "keys" in entry and not isinstance(entry["keys"], list):
            raise BadRequest("`keys` member must be an array.")
        out.append(parse(entry.items(), decoded=True, base=base))
    return out
