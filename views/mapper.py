"""Running map functions over a batch of documents, outside any transaction, into view rows.

The indexer hands over documents as the changes feed gives them (id, winning rev, deleted flag,
seq, body JSON, conflicts); this module builds the document a map function sees
(`{"_id", "_rev", <body>, "_conflicts"?, "_local_seq"?}`), runs every view of one design doc over
the batch (Python functions and Mango json indexes here, JavaScript through the pool in one call
per batch), and turns
each emit into a row: key sort bytes, doc id, dup number, key JSON and value JSON. Deleted
documents and, unless a view sets `include_design`, design documents emit nothing. A map function
that fails on one document skips that document and logs, as CouchDB does.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..store.serialize import dumps
from .design import DesignDoc, DesignError, ViewDef
from .encoding import sort_key, sort_key_raw
from .fieldpath import BAD_PATH, MISSING, get_field, parse_field
from .reduce import loads
from .selector import SelectorError, compile_selector

log = logging.getLogger("settee.views")

KEY_BYTES_LIMIT = 1024
"""Longer sort keys are cut here and suffixed with a hash of the whole key (see `key_bytes`)."""


@dataclass(slots=True)
class SourceDoc:
    """One changed document as the indexer read it."""

    id: str
    rev: str
    deleted: bool
    seq: int
    body: bytes | None
    conflicts: list[str]


@dataclass(slots=True)
class Row:
    """One map output row: the stored columns plus the decoded key and value for reductions."""

    key_bytes: bytes
    doc_id: str
    dup: int
    key_json: bytes
    value_json: bytes
    key: Any
    value: Any


def key_bytes(view: ViewDef, key: Any) -> bytes:
    """The stored sort bytes of `key`.

    PostgreSQL refuses btree entries over ~2.7 kB, so a sort key longer than `KEY_BYTES_LIMIT` is
    cut there and followed by a 16-byte hash of the whole: byte order still follows collation
    whenever two keys differ within the first kilobyte, equal keys stay equal and different keys
    stay different; only keys sharing their first kilobyte of sort bytes order by hash.
    """
    data = (sort_key_raw if view.raw else sort_key)(key)
    if len(data) <= KEY_BYTES_LIMIT:
        return data
    import hashlib
    return data[:KEY_BYTES_LIMIT] + hashlib.md5(data).digest()


def plain(value: Any) -> Any:
    """A value as JSON would carry it: tuples become lists, NaN and infinities null."""
    t = type(value)
    if t is str or t is int or t is bool or value is None:
        return value
    if t is float:
        return value if math.isfinite(value) else None
    return loads(dumps(value))


def map_doc_json(doc: SourceDoc, view: ViewDef | None = None) -> dict[str, Any]:
    """The document a map function receives."""
    # One parse of the spliced JSON: stored bodies never hold `_`-prefixed members.
    head = b'{"_id":' + dumps(doc.id) + b',"_rev":' + dumps(doc.rev)
    body = doc.body
    out: dict[str, Any] = loads(head + b"," + body[1:] if body is not None and len(body) > 2
                                else head + b"}")
    if doc.conflicts:
        out["_conflicts"] = list(doc.conflicts)
    if view is not None and view.local_seq:
        out["_local_seq"] = doc.seq
    return out


def _wanted(view: ViewDef, doc: SourceDoc) -> bool:
    return not doc.deleted and (view.include_design or not doc.id.startswith("_design/"))


Emits = list[list[tuple[Any, Any]]]
"""Per document, the (key, value) pairs one view emitted."""


def run_python(ddoc: DesignDoc, views: Sequence[ViewDef], docs: Sequence[SourceDoc],
               resolve: Callable[[str], Callable[..., Any]]) -> list[Emits]:
    """Per view, per document, the emits of Python map functions."""
    fns = [resolve(v.map) for v in views]
    out: list[Emits] = [[] for _ in views]
    for doc in docs:
        # Several views get a dict each, so one function mutating its doc cannot affect another.
        single = (map_doc_json(doc, views[0])
                  if len(views) == 1 and _wanted(views[0], doc) else None)
        for i, (view, fn) in enumerate(zip(views, fns)):
            if not _wanted(view, doc):
                out[i].append([])
                continue
            src = single if single is not None else map_doc_json(doc, view)
            try:
                out[i].append(list(fn(src)))
            except Exception as exc:  # noqa: BLE001  one bad doc must not stop the index
                log.warning("map function %s failed on doc %r: %s", view.map, doc.id, exc)
                out[i].append([])
    return out


def run_js(ddoc: DesignDoc, views: Sequence[ViewDef], docs: Sequence[SourceDoc], pool: Any,
           ctx_key: str) -> list[Emits]:
    """Per view, per document, the emits of JavaScript map functions (one pool call)."""
    live = [d for d in docs if not d.deleted]
    local_seq = any(v.local_seq for v in views)
    payload = [map_doc_json(d) | ({"_local_seq": d.seq} if local_seq else {}) for d in live]
    results = pool.map_docs(ctx_key, ddoc.body, [v.map for v in views], payload) if live else []
    by_id = {d.id: r for d, r in zip(live, results)}
    out: list[Emits] = [[] for _ in views]
    for doc in docs:
        per_fn = by_id.get(doc.id) if not doc.deleted else None
        for i, view in enumerate(views):
            if per_fn is None or not _wanted(view, doc):
                out[i].append([])
            else:
                out[i].append([tuple(kv) for kv in per_fn[i]])
    return out


def run_query(views: Sequence[ViewDef], docs: Sequence[SourceDoc]) -> list[Emits]:
    """Per view, per document, the entry of a Mango json index (`mango_native_proc`): the key
    `[value of each field]`, value null, when every field exists and the document matches the
    index's `partial_filter_selector`; nothing otherwise (and never for design documents)."""
    specs = [_query_spec(v) for v in views]
    out: list[Emits] = [[] for _ in views]
    for doc in docs:
        src = (map_doc_json(doc) if not doc.deleted and not doc.id.startswith("_design/")
               else None)
        for i, (paths, partial) in enumerate(specs):
            out[i].append(_index_entry(src, paths, partial) if src is not None else [])
    return out


def _query_spec(view: ViewDef) -> tuple[list[list[str]], Callable[[Any], bool] | None]:
    """The field paths and compiled partial filter of a Mango index's map object."""
    spec = loads(view.map.encode())
    fields = spec.get("fields", []) if isinstance(spec, dict) else []
    names = list(fields) if isinstance(fields, dict) else [
        f if isinstance(f, str) else next(iter(f)) for f in fields
        if isinstance(f, str) or (isinstance(f, dict) and len(f) == 1)]
    partial = spec.get("partial_filter_selector") if isinstance(spec, dict) else None
    try:
        matcher = compile_selector(partial) if isinstance(partial, dict) and partial else None
        return [parse_field(n) for n in names], matcher
    except SelectorError as exc:  # a hand-written ddoc CouchDB would not have made: no rows
        log.warning("Mango index %s cannot be built: %s", view.name, exc.reason)
        return [], lambda _doc: False


def _index_entry(doc: dict[str, Any], paths: list[list[str]],
                 partial: Callable[[Any], bool] | None) -> list[tuple[Any, Any]]:
    if partial is not None and not partial(doc):
        return []
    key = []
    for path in paths:
        value = get_field(doc, path)
        if value is MISSING or value is BAD_PATH:
            return []
        key.append(value)
    return [(key, None)]


def to_rows(view: ViewDef, docs: Sequence[SourceDoc], emits: Emits) -> list[Row]:
    """Turn one view's emits into rows; a doc whose emits are not JSON is skipped and logged."""
    rows: list[Row] = []
    for doc, pairs in zip(docs, emits):
        if not pairs:
            continue
        try:
            made = _doc_rows(view, doc.id, pairs)
        except (TypeError, ValueError) as exc:
            log.warning("view %s: doc %r emitted a non-JSON key or value: %s",
                        view.name, doc.id, exc)
            continue
        rows.extend(made)
    return rows


def _doc_rows(view: ViewDef, doc_id: str, pairs: list[tuple[Any, Any]]) -> list[Row]:
    made: list[Row] = []
    dups: dict[bytes, int] = {}
    encode = sort_key_raw if view.raw else sort_key
    for pair in pairs:
        key, value = pair
        if type(key) not in _SCALARS or type(key) is float:
            key = plain(key)
        if type(value) not in _SCALARS or type(value) is float:
            value = plain(value)
        kb = encode(key)
        if len(kb) > KEY_BYTES_LIMIT:
            kb = key_bytes(view, key)
        dup = dups.get(kb, 0)
        dups[kb] = dup + 1
        made.append(Row(kb, doc_id, dup, dumps(key), dumps(value), key, value))
    return made


_SCALARS = (str, int, bool, type(None), float)


def check_language(ddoc: DesignDoc) -> None:
    """Refuse languages this build cannot index."""
    if ddoc.language not in ("javascript", "python", "query"):
        raise DesignError(400, "invalid_design_doc",
                          f"Views in language {ddoc.language!r} are not supported")
