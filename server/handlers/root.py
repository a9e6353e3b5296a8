"""Server endpoints: welcome, `_up`, `_all_dbs`, `_dbs_info` and `_uuids`."""

from __future__ import annotations

import hashlib
import os
import threading
from typing import TYPE_CHECKING, Any

from werkzeug.wrappers import Response

from ..errors import BadRequest, QueryParseError
from ..params import is_set, range_query
from ..wrappers import SetteeRequest, json_response
from .databases import db_info_json

if TYPE_CHECKING:
    from ..app import Settee

VERSION = "3.4.2"
FEATURES = ["access-ready", "partitioned", "pluggable-storage-engines", "reshard", "scheduler"]
MAX_DBS_INFO_KEYS = 100


def welcome(app: Settee, request: SetteeRequest) -> Response:
    """`GET /`: CouchDB's welcome with a uuid that survives restarts."""
    return json_response({
        "couchdb": "Welcome",
        "version": VERSION,
        "git_sha": "settee",
        "uuid": app.store.uuid,
        "features": FEATURES,
        "vendor": {"name": "settee", "version": "0.1.0"},
    })


def up(app: Settee, request: SetteeRequest) -> Response:
    """`GET /_up`: 200 when the store answers a trivial query (`seeds` as a lone CouchDB node)."""
    app.store.exists("_users")
    return json_response({"status": "ok", "seeds": {}})


def _name_range(request: SetteeRequest) -> dict[str, Any]:
    query = range_query(request.args)
    for value in (query.start, query.end):
        if is_set(value) and not isinstance(value, str):
            raise QueryParseError("Database names in a range must be strings")
    return {
        "start": query.start if is_set(query.start) else None,
        "end": query.end if is_set(query.end) else None,
        "inclusive_end": query.inclusive_end,
        "descending": query.descending,
        "limit": query.limit,
        "skip": query.skip,
    }


def all_dbs(app: Settee, request: SetteeRequest) -> Response:
    """`GET /_all_dbs`: names in byte order, with CouchDB's paging parameters."""
    return json_response(app.store.all_dbs(**_name_range(request)))


def dbs_info(app: Settee, request: SetteeRequest) -> Response:
    """`GET /_dbs_info` (a range) or `POST /_dbs_info` with `{"keys": [...]}`.

    Reasons as `chttpd_misc:handle_dbs_info_req/1`; a key naming no database (or not a name
    at all) gets `{"key": …, "error": "not_found"}` in its place.
    """
    names: list[Any]
    if request.method == "POST":
        body = request.json_object(require_type=True)
        if "keys" not in body:
            raise BadRequest("`keys` member must exist.")
        names = body["keys"]
        if not isinstance(names, list):
            raise BadRequest("`keys` member must be an array.")
        if len(names) > MAX_DBS_INFO_KEYS:
            raise BadRequest("too_many_keys")
    else:
        names = app.store.all_dbs(**_name_range(request))
    out: list[dict[str, Any]] = []
    for name in names:
        if isinstance(name, str) and app.store.exists(name):
            out.append({"key": name, "info": db_info_json(app, name)})
        else:
            out.append({"key": name, "error": "not_found"})
    return json_response(out)


class _Uuids:
    """CouchDB's `sequential` algorithm: a random 26-hex prefix and an increasing suffix."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.prefix = ""
        self.counter = 0
        self.pid = 0

    def take(self, count: int) -> list[str]:
        with self.lock:
            if self.pid != os.getpid():
                self._new_prefix()
            out = []
            for _ in range(count):
                self.counter += int.from_bytes(os.urandom(1), "big") % 0xFE + 1
                if self.counter >= 0xFFF000:
                    self._new_prefix()
                out.append(f"{self.prefix}{self.counter:06x}")
            return out

    def _new_prefix(self) -> None:
        self.prefix = os.urandom(13).hex()
        self.counter = int.from_bytes(os.urandom(2), "big") % 0xFFF
        self.pid = os.getpid()


UUIDS = _Uuids()


def _uuid_count(request: SetteeRequest, maximum: int) -> int:
    """`count` as `couch_httpd_misc_handlers:handle_uuids_req/1` reads it (0 is allowed)."""
    raw = request.args.get("count", "1")
    try:
        count = int(raw)
    except ValueError:
        raise BadRequest("count must be a positive integer") from None
    if count > maximum:
        raise BadRequest("count parameter too large")
    if count < 0:
        raise BadRequest("count must be a positive integer")
    return count


def uuids(app: Settee, request: SetteeRequest) -> Response:
    """`GET /_uuids?count=N`: fresh uuids, uncacheable (an ETag of the uuids, a past Expires)."""
    values = UUIDS.take(_uuid_count(request, app.settings.uuids_max_count))
    etag = hashlib.md5("".join(values).encode("ascii")).hexdigest()
    return json_response({"uuids": values}, headers={
        "Cache-Control": "must-revalidate, no-cache",
        "Pragma": "no-cache",
        "Expires": "Mon, 01 Jan 1990 00:00:00 GMT",  # in the past on purpose, as CouchDB
        "ETag": f'"{etag}"',
    })


def new_doc_id() -> str:
    """A fresh document id for POST and id-less `_bulk_docs` entries."""
    return UUIDS.take(1)[0]
