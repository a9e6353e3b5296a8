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

from ..store.engine import Tx
from ..store.serialize import dumps
from . import map_rows, reduce_rows, storage
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
    if resolved.reduce:
        etag = _etag(view, state, query, snap.db_seq)
        prepared = _reduce(service, db_name, ddoc, view, state, resolved, etag)
    else:
        prepared = _map(service, view, state, resolved, dbid, snap.db_seq)
    if query.update == "lazy":
        prepared.after = lambda: service.later(db_name, ddoc.id)
    return prepared


def _etag(view: ViewDef, state: IndexState, query: ViewQuery, db_seq: int) -> str:
    # Included docs can change without the index changing: then the db seq is part of it too.
    parts = [view.signature, str(state.id), str(state.seq),
             str(db_seq) if query.include_docs else "", query.cache_key()]
    return '"' + hashlib.md5("|".join(parts).encode()).hexdigest() + '"'


@dataclass
class _Head:
    """What the answer's head reports, read with its first page: index state and offset."""

    state: IndexState
    offset: int | None = None


def _map(service: ViewService, view: ViewDef, state: IndexState, r: Resolved, dbid: int,
         db_seq: int) -> Prepared:
    """A map answer whose `total_rows`, `offset`, `update_seq` and ETag come from the same
    read transaction as its first page: another worker may apply an index batch between the
    refresh and the read, and one answer must not mix two index states (later pages are read
    in their own short transactions and may see newer batches, as CouchDB's streams do)."""
    q = r.query
    engine = service.store.engine
    per_key = view.reduce is not None
    head_of = _Head(state)

    def first_page(conn: Tx, rows: map_rows.Page) -> None:
        head_of.state = storage.index_state(conn, state.id) or state
        if not q.sorted:
            return
        if not is_set(q.keys):
            before = map_rows.count_before(conn, head_of.state, r, per_key)
            head_of.offset = min(head_of.state.row_count, before + q.skip)
        elif rows:
            head_of.offset = map_rows.count_before_row(conn, head_of.state, rows[0][:3],
                                                       q.descending, per_key)
        else:
            head_of.offset = head_of.state.row_count

    if is_set(q.keys):
        pages = map_rows.keyed_pages(engine, state, r, view, first=first_page)
    else:
        conds, params = map_rows.range_where(r)
        pages = map_rows.pages(engine, state, conds, params, q.descending, q.skip, q.limit,
                               first=first_page)
    first = next(pages, [])
    if head_of.offset is None and q.sorted:  # no key asked for: nothing read, nothing to agree
        with engine.transaction(consistent=True) as conn:
            first_page(conn, [])
    fresh = head_of.state
    head = b"{"
    if q.sorted:
        head += (b'"total_rows":' + dumps(fresh.row_count) + b',"offset":'
                 + dumps(head_of.offset) + b",")
    if q.update_seq:
        head += b'"update_seq":' + dumps(fresh.seq) + b","
    head += b'"rows":['
    layer = service.store.layer
    conflicts = q.conflicts is True

    def render(page: map_rows.Page) -> list[bytes]:
        return map_rows.render(engine, layer, dbid, page, q.include_docs, conflicts)

    etag = _etag(view, fresh, q, max(db_seq, fresh.seq))
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
