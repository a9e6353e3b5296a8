"""One view query from start to finish: find the view, bring its index up to date, stream the JSON.

`prepare` does everything that can fail before the first byte is sent (design doc and view
lookup, validation, the index update the query asks for, the ETag) and reads the first page, so
that errors become proper HTTP answers; `Prepared.chunks` then streams the rest page by page.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..store.serialize import dumps
from . import map_rows, reduce_rows
from .design import DesignDoc, ViewDef
from .query import Resolved, ViewQuery, is_set, validate
from .storage import IndexState

if TYPE_CHECKING:
    from .service import ViewService

SEPARATOR = b",\r\n"


@dataclass
class Prepared:
    """A query ready to stream: its head, first page, the remaining pages, and its ETag."""

    etag: str
    head: bytes
    first: list[bytes]
    rest: Iterator[list[bytes]]
    after: Any = None

    def chunks(self) -> Iterator[bytes]:
        """The response body, one chunk per page."""
        try:
            yield self.head + (b"\r\n" + SEPARATOR.join(self.first) if self.first else b"")
            for page in self.rest:
                yield SEPARATOR + SEPARATOR.join(page)
            yield b"\r\n]}\n"
        finally:
            if self.after is not None:
                self.after()


def prepare(service: ViewService, db_name: str, ddoc_name: str, view_name: str,
            query: ViewQuery) -> Prepared:
    """Look up, validate, update (as `update` says), and start reading one view query."""
    ddoc = service.design(db_name, "_design/" + ddoc_name)
    view = ddoc.view(view_name)
    resolved = validate(query, view)
    if query.update == "true":
        snap = service.refresh(db_name, ddoc)
    else:
        snap = service.current(db_name, ddoc)
    service.watch(db_name, ddoc.id)
    state, dbid = snap.states[view.signature], snap.dbid
    etag = _etag(view, state, query, snap.db_seq)
    if resolved.reduce:
        prepared = _reduce(service, db_name, ddoc, view, state, resolved, etag)
    else:
        prepared = _map(service, view, state, resolved, dbid, etag)
    if query.update == "lazy":
        prepared.after = lambda: service.later(db_name, ddoc.id)
    return prepared


def _etag(view: ViewDef, state: IndexState, query: ViewQuery, db_seq: int) -> str:
    # Included docs can change without the index changing: then the db seq is part of it too.
    parts = [view.signature, str(state.id), str(state.seq),
             str(db_seq) if query.include_docs else "", query.cache_key()]
    return '"' + hashlib.md5("|".join(parts).encode()).hexdigest() + '"'


def _map(service: ViewService, view: ViewDef, state: IndexState, r: Resolved, dbid: int,
         etag: str) -> Prepared:
    q = r.query
    engine = service.store.engine
    per_key = view.reduce is not None
    before: list[int] = []
    if is_set(q.keys):
        pages = map_rows.keyed_pages(engine, state, r, view)
    else:
        conds, params = map_rows.range_where(r)
        pages = map_rows.pages(
            engine, state, conds, params, q.descending, q.skip, q.limit,
            first=lambda conn: before.append(map_rows.count_before(conn, state, r, per_key)))
    first = next(pages, [])
    head = b"{"
    if q.sorted:
        if not is_set(q.keys):
            offset = min(state.row_count, before[0] + q.skip)
        elif first:
            with engine.transaction() as conn:
                offset = map_rows.count_before_row(conn, state, first[0][:3], q.descending,
                                                   per_key)
        else:
            offset = state.row_count
        head += b'"total_rows":' + dumps(state.row_count) + b',"offset":' + dumps(offset) + b","
    if q.update_seq:
        head += b'"update_seq":' + dumps(state.seq) + b","
    head += b'"rows":['
    layer = service.store.layer
    conflicts = q.conflicts is True

    def render(page: map_rows.Page) -> list[bytes]:
        return map_rows.render(engine, layer, dbid, page, q.include_docs, conflicts)

    return Prepared(etag, head, render(first) if first else [], (render(p) for p in pages))


def _reduce(service: ViewService, db_name: str, ddoc: DesignDoc, view: ViewDef,
            state: IndexState, r: Resolved, etag: str) -> Prepared:
    reducer = service.reducer(ddoc, view, db_name)
    pages = reduce_rows.answer(service, reducer, view, state, r)
    first = next(pages, [])
    head = b"{"
    if r.query.update_seq:
        head += b'"update_seq":' + dumps(state.seq) + b","
    head += b'"rows":['
    return Prepared(etag, head, first, pages)
