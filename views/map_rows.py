"""Map rows of a view query, read in pages of short read transactions and rendered as JSON bytes.

Rows come from the `(index, key bytes, doc id, dup)` order of `view_rows`: a range is a SQL range
on those columns, `descending` reverses the order, and the next page continues after the last
row seen (keyset paging), so a large answer is never held in memory or in one transaction
(a long-open reader would starve SQLite's WAL checkpoints). Stored key and value JSON are spliced
into the response as they are. `include_docs` joins each page's documents: the row's own, or the
one an emitted `{"_id": ..., "_rev"?: ...}` value links to.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from ..store import reads, revtree, sql
from ..store.engine import Engine, Tx
from ..store.render import doc_bytes
from ..store.serialize import dumps
from .mapper import key_bytes
from .query import Resolved, is_set
from .reduce import loads
from .storage import IndexState

PAGE = 500
Page = list[tuple[bytes, str, int, bytes, bytes]]
"""(key bytes, doc id, dup, key JSON, value JSON) rows in order."""


def range_where(r: Resolved) -> tuple[list[str], list[Any]]:
    """SQL conditions and parameters of the query's key range, in its direction."""
    q = r.query
    desc = q.descending
    conds: list[str] = []
    params: list[Any] = []
    if r.start is not None:
        op = "<=" if desc else ">="
        conds.append(f"key_bytes {op} ?")
        params.append(r.start)
        if is_set(q.start_docid):
            conds.append(f"(key_bytes, doc_id) {op} (?, ?)")
            params += [r.start, str(q.start_docid)]
    if r.end is not None:
        op = (">=" if desc else "<=") if q.inclusive_end else (">" if desc else "<")
        if is_set(q.end_docid):
            conds.append(f"key_bytes {'>=' if desc else '<='} ?")
            conds.append(f"(key_bytes, doc_id) {op} (?, ?)")
            params += [r.end, r.end, str(q.end_docid)]
        else:
            conds.append(f"key_bytes {op} ?")
            params.append(r.end)
    return conds, params


def count_before(conn: Tx, state: IndexState, r: Resolved, per_key: bool) -> int:
    """Rows that precede the range's start in the direction of travel.

    SQL counts rows one by one; a view with a reduce keeps each key's row count, so there the
    whole keys before the start are summed from `view_reductions` (one row per key, not per
    emitted row) and only the start key's rows before a doc-id bound are counted one by one.
    """
    if r.start is None:
        return 0
    q = r.query
    op = ">" if q.descending else "<"
    docid = is_set(q.start_docid)
    if per_key:
        row = sql.fetchone(conn, "SELECT coalesce(sum(row_count), 0) FROM "
                           f"settee_view_reductions WHERE index_id = ? AND key_bytes {op} ?",
                           (state.id, r.start))
        count = int(row[0]) if row else 0
        if docid:
            row = sql.fetchone(conn, "SELECT count(*) FROM settee_view_rows WHERE index_id = ? "
                               f"AND key_bytes = ? AND doc_id {op} ?",
                               (state.id, r.start, str(q.start_docid)))
            count += int(row[0]) if row else 0
        return count
    if docid:
        where, params = f"(key_bytes, doc_id) {op} (?, ?)", [r.start, str(q.start_docid)]
    else:
        where, params = f"key_bytes {op} ?", [r.start]
    row = sql.fetchone(conn, f"SELECT count(*) FROM settee_view_rows WHERE index_id = ? "
                       f"AND {where}", (state.id, *params))
    return int(row[0]) if row else 0


def count_before_row(conn: Tx, state: IndexState, row: tuple[bytes, str, int],
                     descending: bool, per_key: bool) -> int:
    """Rows that precede one row in the direction of travel (see `count_before`)."""
    op = ">" if descending else "<"
    if not per_key:
        found = sql.fetchone(conn, "SELECT count(*) FROM settee_view_rows WHERE index_id = ? "
                             f"AND (key_bytes, doc_id, dup) {op} (?, ?, ?)", (state.id, *row))
        return int(found[0]) if found else 0
    keys = sql.fetchone(conn, "SELECT coalesce(sum(row_count), 0) FROM settee_view_reductions "
                        f"WHERE index_id = ? AND key_bytes {op} ?", (state.id, row[0]))
    same = sql.fetchone(conn, "SELECT count(*) FROM settee_view_rows WHERE index_id = ? AND "
                        f"key_bytes = ? AND (doc_id, dup) {op} (?, ?)", (state.id, *row))
    return (int(keys[0]) if keys else 0) + (int(same[0]) if same else 0)


def pages(engine: Engine, state: IndexState, conds: list[str], params: list[Any],
          descending: bool, skip: int, limit: int | None,
          first: Callable[[Tx, Page], None] | None = None) -> Iterator[Page]:
    """Rows matching `conds`, in order, after `skip`, at most `limit`, page by page.

    `first` runs in the first page's transaction, after its rows are read and given them; that
    transaction is one snapshot (`consistent`), so what `first` reads (the index's totals, the
    offset) describes the same index state as the first page, whatever other workers commit."""
    order = "DESC" if descending else "ASC"
    after: tuple[bytes, str, int] | None = None
    remaining = limit
    if first is not None and limit == 0:  # no page to read: `first` still runs
        with engine.transaction(consistent=True) as conn:
            first(conn, [])
    while remaining is None or remaining > 0:
        n = PAGE if remaining is None else min(PAGE, remaining)
        where = ["index_id = ?", *conds]
        args: list[Any] = [state.id, *params]
        if after is not None:
            where.append(f"(key_bytes, doc_id, dup) {'<' if descending else '>'} (?, ?, ?)")
            args += after
        query = (f"SELECT key_bytes, doc_id, dup, key_json, value_json FROM settee_view_rows "
                 f"WHERE {' AND '.join(where)} ORDER BY key_bytes {order}, doc_id {order}, "
                 f"dup {order} LIMIT ?")
        args.append(n)
        if after is None and skip:
            query += " OFFSET ?"
            args.append(skip)
        with engine.transaction(consistent=first is not None) as conn:
            rows = [(_b(r[0]), r[1], r[2], _b(r[3]), _b(r[4]))
                    for r in sql.fetchall(conn, query, args)]
            if first is not None:
                first(conn, rows)
                first = None
        if rows:
            yield rows
        if len(rows) < n:
            return
        after = rows[-1][:3]
        if remaining is not None:
            remaining -= len(rows)


def keyed_pages(engine: Engine, state: IndexState, r: Resolved, view: Any,
                first: Callable[[Tx, Page], None] | None = None) -> Iterator[Page]:
    """Rows for `keys`, key by key in the order given, after `skip` and within `limit`.

    `first` runs in the transaction of each key's first page, given the rows of it that the
    answer starts with, until one gives rows: the last call describes the answer's first page."""
    q = r.query
    skip, remaining = q.skip, q.limit
    hook: list[Callable[[Tx, Page], None]] = [first] if first is not None else []

    def first_of_key(conn: Tx, rows: Page) -> None:
        shown = rows[skip:] if remaining is None else rows[skip:skip + remaining]
        hook[0](conn, shown)
        if shown:
            hook.clear()

    for key in q.keys:
        if remaining is not None and remaining <= 0:
            return
        kb = key_bytes(view, key)
        for page in pages(engine, state, ["key_bytes = ?"], [kb], q.descending, 0, None,
                          first=first_of_key if hook else None):
            if skip >= len(page):
                skip -= len(page)
                continue
            page = page[skip:]
            skip = 0
            if remaining is not None:
                page = page[:remaining]
                remaining -= len(page)
            if page:
                yield page
            if remaining is not None and remaining <= 0:
                return


def render(engine: Engine, layer: Any, dbid: int, page: Page, include_docs: bool,
           conflicts: bool) -> list[bytes]:
    """JSON bytes of each row of a page, with its document when asked."""
    docs = _docs(engine, layer, dbid, page, conflicts) if include_docs else None
    out = []
    for i, (_, doc_id, _, key_json, value_json) in enumerate(page):
        row = b'{"id":' + dumps(doc_id) + b',"key":' + key_json + b',"value":' + value_json
        if docs is not None:
            row += b',"doc":' + docs[i]
        out.append(row + b"}")
    return out


def _docs(engine: Engine, layer: Any, dbid: int, page: Page, conflicts: bool) -> list[bytes]:
    targets: list[tuple[str, str | None]] = []
    for _, doc_id, _, _, value_json in page:
        target: tuple[str, str | None] = (doc_id, None)
        if value_json[:1] == b"{" and b'"_id"' in value_json:
            value = loads(value_json)
            linked = value.get("_id")
            if isinstance(linked, str):  # a linked document, as CouchDB joins it
                rev = value.get("_rev")
                target = (linked, rev if isinstance(rev, str) else None)
        targets.append(target)
    with engine.transaction() as conn:
        infos = reads.doc_infos(conn, dbid, [t[0] for t in targets])
        wanted: dict[tuple[str, str | None], str] = {}
        for doc_id, rev in targets:
            info = infos.get(doc_id)
            if info is None:
                continue
            chosen = rev if rev is not None else (None if info.deleted else info.winner)
            if chosen is not None and chosen in info.tree:
                wanted[(doc_id, rev)] = chosen
        bodies = reads.bodies_for(conn, dbid, [(d, r) for (d, _), r in wanted.items()])
    out = []
    for doc_id, rev in targets:
        chosen = wanted.get((doc_id, rev))
        packed = bodies.get((doc_id, chosen)) if chosen is not None else None
        if chosen is None or packed is None:
            out.append(b"null")
            continue
        info = infos[doc_id]
        extra: list[tuple[str, Any]] = []
        if conflicts and chosen == info.winner:
            found = revtree.conflicts(info.tree)
            if found:
                extra.append(("_conflicts", found))
        out.append(doc_bytes(doc_id, chosen, layer.body_of(packed),
                             deleted=info.tree[chosen][1], extra=extra))
    return out


def _b(value: Any) -> Any:
    return bytes(value) if isinstance(value, memoryview) else value
