"""Mango indexes: the `_all_docs` special index and json indexes read from `language: query` ddocs.

A json index lives in a design document the way CouchDB stores it, so replication, `_all_docs`
and `_view` see the same thing CouchDB would:

    {"_id": "_design/<ddoc>", "language": "query",
     "views": {"<name>": {"map": {"fields": {"a": "asc"}, "partial_filter_selector": {}},
                          "reduce": "_count", "options": {"def": {"fields": ["a"]}}}}}

The view's map object is indexed natively (`views.mapper.run_query`): one row per document
that has every field, keyed by the array of their values. `request_index` validates a `POST
/_index` body as `mango_opts:validate_idx_create` and `mango_idx_view` do and names it; `list_for`
reads a database's indexes, parsing each design doc once per revision (revision ids hash the
body, so a revision names its content).
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, field
from typing import Any

from ...store import reads, sql
from ...store.engine import Tx
from ...store.errors import DbNotFound
from .. import design
from ..design import DesignDoc, ViewDef
from ..reduce import loads
from ..selector_norm import SelectorError, erl, normalize
from .errors import MangoError, bad, invalid_key, missing_key, not_string
from .sort import Sort, parse_sort, sort_json


@dataclass(frozen=True)
class MangoIndex:
    """One index `_find` can use."""

    ddoc: str | None
    name: str
    type: str
    fields: Sort
    partial: dict[str, Any] | None = None
    def_json: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    view: ViewDef | None = field(default=None, compare=False, repr=False)
    design: DesignDoc | None = field(default=None, compare=False, repr=False)

    @property
    def columns(self) -> list[str]:
        """The indexed field names, in key order."""
        return [name for name, _ in self.fields]

    @property
    def special(self) -> bool:
        """Whether this is `_all_docs`."""
        return self.type == "special"

    def sort_key(self) -> tuple[str, str]:
        """CouchDB's order of indexes (`lists:sort` of its records): ddoc id, then name."""
        return (self.ddoc or "", self.name)

    def to_json(self) -> dict[str, Any]:
        """The index as `GET /_index` and `_explain` show it."""
        if self.special:
            return {"ddoc": None, "name": "_all_docs", "type": "special",
                    "def": {"fields": [{"_id": "asc"}]}}
        return {"ddoc": self.ddoc, "name": self.name, "type": self.type, "partitioned": False,
                "def": self.def_json}


ALL_DOCS = MangoIndex(None, "_all_docs", "special", [("_id", "asc")])


def from_design(ddoc: DesignDoc) -> list[MangoIndex]:
    """The json indexes of a design doc (none unless its language is `query`); a view whose
    definition CouchDB would not accept is skipped, as `mango_idx_view:from_ddoc` does."""
    if ddoc.language != "query":
        return []
    views = ddoc.body.get("views")
    if not isinstance(views, dict):
        return []
    out = []
    for name, spec in views.items():
        view = ddoc.views.get(name)
        if view is None or not isinstance(spec, dict) or not isinstance(spec.get("map"), dict):
            continue
        try:
            fields, partial = _index_def(spec["map"])
        except MangoError:
            continue
        def_json: dict[str, Any] = {"fields": sort_json(fields)}
        if partial:
            def_json["partial_filter_selector"] = partial
        out.append(MangoIndex(ddoc.id, name, "json", fields, partial or None, def_json, view,
                              ddoc))
    return out


def _index_def(value: Any) -> tuple[Sort, dict[str, Any]]:
    """A json index definition `{"fields": [...], "partial_filter_selector"?: {...}}`."""
    if not isinstance(value, dict):
        raise bad("invalid_index", f"JSON indexes must be an object, not: {erl(value)}")
    for key in value:
        if key not in ("fields", "partial_filter_selector"):
            raise invalid_key(key)
    if "fields" not in value:
        raise missing_key("fields")
    raw = value["fields"]
    if isinstance(raw, dict):  # the stored form: an object of field -> direction
        raw = [{k: v} for k, v in raw.items()]
    fields = parse_sort(raw)
    if not fields:
        raise bad("invalid_index", "Index definitions must name at least one field.")
    partial = value.get("partial_filter_selector", {})
    if not isinstance(partial, dict):
        raise bad("invalid_selector_json", f"Selector must be a JSON object, not: {erl(partial)}")
    try:
        normalize(partial)
    except SelectorError as exc:
        raise bad(exc.error, exc.reason) from None
    return fields, partial


@dataclass(frozen=True)
class IndexRequest:
    """A validated `POST /_index`: where the index goes and the view that holds it."""

    ddoc_id: str
    name: str
    view: dict[str, Any]


_CREATE_KEYS = ("index", "type", "name", "ddoc", "w", "partitioned")


def request_index(body: dict[str, Any]) -> IndexRequest:
    """Validate a `POST /_index` body and name its design doc and view."""
    for key in body:
        if key not in _CREATE_KEYS:
            raise invalid_key(key)
    if "index" not in body:
        raise missing_key("index")
    kind = body.get("type", "json")
    if not isinstance(kind, str):
        raise not_string(kind)
    for key in ("name", "ddoc"):
        if key in body and not isinstance(body[key], str):
            raise not_string(body[key])
    w = body.get("w", 2)
    if not isinstance(w, int) or isinstance(w, bool) or w <= 0:
        raise bad("invalid_pos_integer", f"{erl(w)} is not an integer greater than zero")
    partitioned = body.get("partitioned", False)
    if not isinstance(partitioned, bool):
        raise bad("invalid_partitioned_value", f"Invalid partitioned value: {erl(partitioned)}")
    if kind in ("text", "nouveau"):
        raise MangoError(503, "required index service unavailable", kind)
    if kind != "json":
        raise bad("invalid_index", f"Invalid type for index: {kind}")
    if partitioned:
        raise bad("invalid_partitioned_option", "Partitioned indexes need a partitioned "
                  "database, and settee has none")
    fields, partial = _index_def(body["index"])
    digest = _auto_name(body["index"])
    ddoc = body.get("ddoc") or digest
    ddoc_id = ddoc if ddoc.startswith("_design/") else "_design/" + ddoc
    name = body.get("name") or digest
    view = {"map": {"fields": {f: d for f, d in fields}, "partial_filter_selector": partial},
            "reduce": "_count", "options": {"def": body["index"]}}
    return IndexRequest(ddoc_id, name, view)


def _auto_name(definition: Any) -> str:
    """The name CouchDB would make up: a SHA-1 of the definition, as hex."""
    canonical = json.dumps(["json", definition], sort_keys=True, separators=(",", ":"))
    return hashlib.sha1(canonical.encode()).hexdigest()


_cache: dict[tuple[str, str], list[MangoIndex]] = {}
_cache_lock = threading.Lock()
_CACHE_SIZE = 512


def list_for(conn: Tx, db_name: str, body_of: Any) -> list[MangoIndex]:
    """Every json index of the database, in CouchDB's order (`_all_docs` not included); one
    statement finds the database (`DbNotFound`) and its design docs' revisions."""
    rows = sql.fetchall(conn, "SELECT b.id, d.doc_id, d.winner FROM settee_dbs b LEFT JOIN "
                        "settee_docs d ON d.db_id = b.id AND d.doc_id >= ? AND d.doc_id < ? "
                        "AND d.deleted = ? WHERE b.name = ?",
                        ("_design/", "_design0", False, db_name))
    if not rows:
        raise DbNotFound()
    dbid = int(rows[0][0])
    rows = [(doc_id, rev) for _, doc_id, rev in rows if doc_id is not None]
    found: list[MangoIndex] = []
    missing: list[tuple[str, str]] = []
    with _cache_lock:
        for doc_id, rev in rows:
            cached = _cache.get((doc_id, rev))
            if cached is None:
                missing.append((doc_id, rev))
            else:
                found.extend(cached)
    if missing:
        bodies = reads.bodies_for(conn, dbid, missing)
        for doc_id, rev in missing:
            packed = bodies.get((doc_id, rev))
            parsed = _parse(doc_id, rev, body_of(packed)) if packed is not None else []
            found.extend(parsed)
            with _cache_lock:
                if len(_cache) >= _CACHE_SIZE:
                    _cache.clear()  # design docs change rarely: starting over is fine
                _cache[(doc_id, rev)] = parsed
    return sorted(found, key=MangoIndex.sort_key)


def _parse(doc_id: str, rev: str, body: bytes) -> list[MangoIndex]:
    try:
        value = loads(body)
        if not isinstance(value, dict) or value.get("language") != "query":
            return []
        return from_design(design.parse(doc_id, rev, value))
    except (design.DesignError, ValueError):
        return []
