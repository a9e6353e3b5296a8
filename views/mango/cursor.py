"""Running a planned `_find`: scan the chosen index in pages, match, skip, limit, project.

A json index is read from `view_rows` between the plan's key bounds, joined in the same SQL
statement to each row's document (its winning body, and tree when `conflicts` is asked), so a
page is one round trip. `_all_docs` reads `settee_docs` in raw id order the same way, design
documents left out. Every document read is matched against the whole selector (the bounds may
let in more), the first `skip` matches are dropped and at most `limit` are kept; the scan stops
there. The bookmark is the last match's `[key, doc id]` (CouchDB updates it for skipped matches
too), base64url-encoded JSON; a later query with it resumes strictly after that row.
"""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from ...store import revtree, sql
from ...store.engine import Engine
from ...store.render import doc_bytes
from ...store.serialize import dumps
from .. import storage
from ..collate import compare
from ..encoding import sort_key
from ..fieldpath import extract_fields
from ..mapper import key_bytes
from ..selector import compile_normal
from .errors import bad
from .planner import Plan
from .query import FindQuery
from .ranges import MAX, MIN, key_bounds

if TYPE_CHECKING:
    from ..service import ViewService

PAGE = 500
SCAN_WARNING_RATIO = 10
NO_INDEX = "No matching index found, create an index to optimize query time."
HIGH_SCAN = ("The number of documents examined is high in proportion to the number of results "
             "returned. Consider adding a more specific index to improve this.")


@dataclass
class Stats:
    """`execution_stats`."""

    keys: int = 0
    docs: int = 0
    quorum: int = 0
    results: int = 0
    started: float = field(default_factory=time.perf_counter)

    def to_json(self) -> dict[str, Any]:
        """As CouchDB reports them."""
        return {"total_keys_examined": self.keys, "total_docs_examined": self.docs,
                "total_quorum_docs_examined": self.quorum, "results_returned": self.results,
                "execution_time_ms": round((time.perf_counter() - self.started) * 1000, 3)}


@dataclass
class Result:
    """Matching documents as JSON bytes, the next bookmark, warnings and stats."""

    docs: list[bytes]
    bookmark: str
    warnings: list[str]
    stats: Stats

    def body(self, with_stats: bool) -> bytes:
        """The `_find` response body."""
        out = b'{"docs":[' + b",\r\n".join(self.docs) + b'],\r\n"bookmark":' + dumps(
            self.bookmark)
        if self.warnings:
            out += b',\r\n"warning":' + dumps("\n".join(self.warnings))
        if with_stats:
            out += b',\r\n"execution_stats":' + dumps(self.stats.to_json())
        return out + b"}\r\n"


def encode_bookmark(key_json: bytes, doc_id: str) -> str:
    """An opaque bookmark for the row `(key, doc_id)`, from the key's JSON."""
    raw = b"[" + key_json + b"," + dumps(doc_id) + b"]"
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_bookmark(mark: str) -> tuple[Any, str]:
    """The row a bookmark names, or CouchDB's `invalid_bookmark`."""
    try:
        raw = base64.urlsafe_b64decode(mark + "=" * (-len(mark) % 4))
        value = orjson.loads(raw)
        if isinstance(value, list) and len(value) == 2 and isinstance(value[1], str):
            sort_key(value[0])  # a key the index can seek to
            return value[0], value[1]
    except (binascii.Error, ValueError, TypeError, RecursionError):
        pass
    raise bad("invalid_bookmark", f"Invalid bookmark value: {dumps(mark).decode()}")


Row = tuple[bytes, bytes, str, str, Any, Any]
"""(key bytes for paging, key JSON, doc id, winning rev, tree JSON or None, packed body)."""


def execute(service: ViewService, db_name: str, query: FindQuery, plan: Plan) -> Result:
    """Run the plan; the index is brought up to date first unless `update` is false."""
    stats = Stats()
    after = decode_bookmark(query.bookmark) if query.bookmark else None
    warnings = list(plan.warnings)
    engine = service.store.engine
    if plan.index.special:
        warnings.append(NO_INDEX)
        rows = _all_docs_rows(engine, service, db_name, plan, query, after)
    else:
        rows = _index_rows(engine, service, db_name, plan, query, after)
    docs, bookmark = _collect(service, query, _residual(query, plan), rows, stats)
    ratio = (stats.docs + stats.quorum) / (stats.results or 1)
    if ratio > SCAN_WARNING_RATIO:
        warnings.append(HIGH_SCAN)
    return Result(docs, bookmark or query.bookmark or "nil", warnings, stats)


def _residual(query: FindQuery, plan: Plan) -> Callable[[Any], bool] | None:
    """The selector without the `$eq` terms the scan already guarantees; None when nothing is
    left to check."""
    fixed = plan.fixed_columns()
    normal = query.normal
    if not normal:
        return None
    if not fixed:
        return query.matcher
    (op, arg), = normal.items()
    terms = arg if op == "$and" else [normal]
    kept = [t for t in terms if not _implied(t, fixed)]
    if not kept:
        return None
    return query.matcher if len(kept) == len(terms) else compile_normal({"$and": kept})


def _implied(term: dict[str, Any], fixed: dict[str, Any]) -> bool:
    (name, cond), = term.items()
    if name not in fixed or not isinstance(cond, dict) or list(cond) != ["$eq"]:
        return False
    return compare(cond["$eq"], fixed[name]) == 0


def _collect(service: ViewService, query: FindQuery, match: Callable[[Any], bool] | None,
             rows: Iterator[Row], stats: Stats) -> tuple[list[bytes], str | None]:
    body_of = service.store.layer.body_of
    skip, limit, fields = query.skip, query.limit, query.fields
    out: list[bytes] = []
    last = None
    if limit == 0:
        return out, None
    for _, key, doc_id, rev, tree_json, packed in rows:
        stats.keys += 1
        if packed is None:
            continue
        extra: list[tuple[str, Any]] = []
        if tree_json is not None:
            found = revtree.conflicts(revtree.from_json(orjson.loads(tree_json)))
            if found:
                extra.append(("_conflicts", found))
        text = doc_bytes(doc_id, rev, body_of(packed), extra=extra)
        if query.r > 1:
            stats.quorum += 1
        else:
            stats.docs += 1
        doc = orjson.loads(text) if match is not None or fields is not None else None
        if match is not None and not match(doc):
            continue
        last = (key, doc_id)
        if skip:
            skip -= 1
            continue
        out.append(dumps(extract_fields(doc, fields)) if doc is not None and fields is not None
                   else text)
        stats.results += 1
        if len(out) >= limit:
            break
    return out, encode_bookmark(*last) if last is not None else None


def _pages(engine: Engine, run: Callable[[Any, int, Any], list[Row]], first: int,
           rows: list[Row] | None = None) -> Iterator[Row]:
    """Rows page after page, each page its own short read transaction (keyset paging);
    `rows`, when given, is the first page, already read."""
    after = None
    size = first
    while True:
        if rows is None:
            with engine.transaction(snapshot=False) as conn:  # one statement per page
                rows = run(conn, size, after)
        yield from rows
        if len(rows) < size:
            return
        after, rows = rows[-1], None
        size = PAGE


def _first_page(query: FindQuery) -> int:
    return max(16, min(PAGE, query.skip + query.limit + 1))


def _index_rows(engine: Engine, service: ViewService, db_name: str, plan: Plan,
                query: FindQuery, bookmark: tuple[Any, str] | None) -> Iterator[Row]:
    index = plan.index
    view, ddoc = index.view, index.design
    assert ddoc is not None and view is not None
    service.watch(db_name, ddoc.id)
    if plan.ranges is None:
        return iter(())
    start, end = key_bounds(plan.ranges)
    desc = query.descending
    order = "DESC" if desc else "ASC"
    op = "<" if desc else ">"
    cols = "v.key_bytes, v.key_json, v.doc_id, d.winner, " + (
        "d.tree" if query.conflicts else "NULL") + ", r.body"
    base = (f"SELECT {cols} FROM settee_view_rows v JOIN settee_docs d ON d.db_id = ? AND "
            "d.doc_id = v.doc_id LEFT JOIN settee_revs r ON r.db_id = d.db_id AND "
            "r.doc_id = d.doc_id AND r.rev = d.winner WHERE v.index_id = ? AND "
            "v.key_bytes >= ? AND v.key_bytes <= ? AND d.deleted = ?")
    fixed: list[Any] = [start, end, False]
    if bookmark is not None:
        base += f" AND (v.key_bytes, v.doc_id) {op} (?, ?)"
        fixed += [key_bytes(view, bookmark[0]), bookmark[1]]
    ids: list[Any] = []  # the db id and index id, once known

    def run(conn: Any, size: int, after: Row | None) -> list[Row]:
        text, params = base, [*ids, *fixed]
        if after is not None:
            text += f" AND (v.key_bytes, v.doc_id) {op} (?, ?)"
            params += [after[0], after[2]]
        text += f" ORDER BY v.key_bytes {order}, v.doc_id {order} LIMIT ?"
        params.append(size)
        return [(_b(kb), _b(kj), doc_id, rev, tree, _b(body))
                for kb, kj, doc_id, rev, tree, body in sql.fetchall(conn, text, params)]

    size = _first_page(query)
    first = None
    with engine.transaction() as conn:  # an index already up to date is read right away
        dbid, db_seq = storage.db_state(conn, db_name)
        state = storage.find_indexes(conn, dbid, [view.signature]).get(view.signature)
        if state is not None and (state.seq >= db_seq or not query.update):
            ids[:] = [dbid, state.id]
            first = run(conn, size, None)
    if first is None:
        snap = (service.refresh(db_name, ddoc) if query.update
                else service.current(db_name, ddoc))
        ids[:] = [snap.dbid, snap.states[view.signature].id]
    return _pages(engine, run, size, first)


def _all_docs_rows(engine: Engine, service: ViewService, db_name: str, plan: Plan,
                   query: FindQuery, bookmark: tuple[Any, str] | None) -> Iterator[Row]:
    if plan.ranges is None:
        return iter(())
    with engine.transaction(snapshot=False) as conn:
        row = sql.fetchone(conn, "SELECT id FROM settee_dbs WHERE name = ?", (db_name,))
    if row is None:
        from ...store.errors import DbNotFound
        raise DbNotFound()
    dbid = int(row[0])
    desc = query.descending
    order = "DESC" if desc else "ASC"
    op = "<" if desc else ">"
    cols = "d.doc_id, d.winner, " + ("d.tree" if query.conflicts else "NULL") + ", r.body"
    base = (f"SELECT {cols} FROM settee_docs d LEFT JOIN settee_revs r ON r.db_id = d.db_id "
            "AND r.doc_id = d.doc_id AND r.rev = d.winner WHERE d.db_id = ? AND d.deleted = ? "
            "AND NOT (d.doc_id >= ? AND d.doc_id < ?)")
    fixed: list[Any] = [dbid, False, "_design/", "_design0"]
    if plan.ranges:
        lop, low, hop, high = plan.ranges[0]
        if isinstance(low, str) and low is not MIN:
            base += " AND d.doc_id >= ?"
            fixed.append(low)
        if high is not MAX and not isinstance(high, str):
            return iter(())  # every id is a string, and strings sort after everything else
        if isinstance(high, str):
            base += " AND d.doc_id <= ?"
            fixed.append(high)
    if bookmark is not None:
        base += f" AND d.doc_id {op} ?"
        fixed.append(bookmark[1])

    def run(conn: Any, size: int, after: Row | None) -> list[Row]:
        text, params = base, list(fixed)
        if after is not None:
            text += f" AND d.doc_id {op} ?"
            params.append(after[2])
        text += f" ORDER BY d.doc_id {order} LIMIT ?"
        params.append(size)
        return [(b"", dumps(doc_id), doc_id, rev, tree, _b(body))
                for doc_id, rev, tree, body in sql.fetchall(conn, text, params)]

    return _pages(engine, run, _first_page(query))


def _b(value: Any) -> Any:
    return bytes(value) if isinstance(value, memoryview) else value
