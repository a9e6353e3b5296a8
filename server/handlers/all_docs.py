"""`_all_docs`, `_design_docs` and `_local_docs`: documents in raw id order, view-shaped."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

import orjson
from werkzeug.wrappers import Response

from ...store import catalog, local, positions, reads, revtree
from ...store.render import doc_bytes
from ...store.serialize import dumps
from ..errors import BadRequest, QueryParseError
from ..params import RangeQuery, is_set, json_value, range_query
from ..wrappers import SetteeRequest, json_response

if TYPE_CHECKING:
    from ...store.engine import Tx
    from ..app import Settee

DESIGN = "_design/"


def all_docs(app: Settee, request: SetteeRequest, db: str) -> Response:
    """`GET/POST /{db}/_all_docs`."""
    return json_response(_answer(app, db, _query(request), None))


def design_docs(app: Settee, request: SetteeRequest, db: str) -> Response:
    """`GET/POST /{db}/_design_docs`: only `_design/` ids."""
    return json_response(_answer(app, db, _query(request), DESIGN))


def local_docs(app: Settee, request: SetteeRequest, db: str) -> Response:
    """`GET/POST /{db}/_local_docs`: `_local/` docs with their `0-N` revs."""
    return json_response(_local_answer(app, db, _query(request)))


def all_docs_queries(app: Settee, request: SetteeRequest, db: str) -> Response:
    """`POST /{db}/_all_docs/queries`: several queries, one result each."""
    return _queries(app, request, lambda q: _answer(app, db, q, None))


def design_docs_queries(app: Settee, request: SetteeRequest, db: str) -> Response:
    """`POST /{db}/_design_docs/queries`."""
    return _queries(app, request, lambda q: _answer(app, db, q, DESIGN))


def local_docs_queries(app: Settee, request: SetteeRequest, db: str) -> Response:
    """`POST /{db}/_local_docs/queries`."""
    return _queries(app, request, lambda q: _local_answer(app, db, q))


def _queries(app: Settee, request: SetteeRequest, run: Any) -> Response:
    """Each query's parameters override the query string's, as CouchDB's `multi_all_docs_view`."""
    body = request.json_object()
    queries = body.get("queries")
    if queries is None:
        raise BadRequest("POST body must include `queries` parameter.")
    if not isinstance(queries, list):
        raise BadRequest("`queries` member must be an array.")
    if not all(isinstance(q, dict) for q in queries):
        raise BadRequest("`queries` member must be an array of objects")
    base = range_query_args(request.args)
    parsed = [range_query({**base, **q}, from_body=True) for q in queries]
    results = [run(q) for q in parsed]
    return json_response(b'{"results":[' + b",".join(results) + b"]}")


def _query(request: SetteeRequest) -> RangeQuery:
    if request.method != "POST":
        if "keys" in request.args and not isinstance(json_value(request.args, "keys"), list):
            raise BadRequest("`keys` parameter must be an array.")
        return range_query(request.args)
    body = request.json_object(require_type=True)
    if "keys" in body and not isinstance(body["keys"], list):
        raise BadRequest("`keys` body member must be an array.")
    merged: dict[str, Any] = {}
    merged.update(range_query_args(request.args))
    merged.update(body)
    return range_query(merged, from_body=True)


def range_query_args(args: Any) -> dict[str, Any]:
    """Query-string parameters decoded to values, so they can merge with a POSTed body."""
    parsed = range_query(args)
    out: dict[str, Any] = {}
    for name in ("startkey", "endkey", "key", "keys"):
        value = getattr(parsed, {"startkey": "start", "endkey": "end"}.get(name, name))
        if is_set(value):
            out[name] = value
    for name in ("inclusive_end", "descending", "limit", "skip", "include_docs",
                 "conflicts", "update_seq"):
        if name in args:
            out[name] = getattr(parsed, name)
    return out


def _bounds(query: RangeQuery) -> tuple[str | None, str | None]:
    start = query.key if is_set(query.key) else query.start
    end = query.key if is_set(query.key) else query.end
    start = None if not is_set(start) or start is None else start
    end = None if not is_set(end) or end is None else end
    for value in (start, end):
        if value is not None and not isinstance(value, str):
            raise QueryParseError("Document ids in a key range must be strings")
    if start is not None and end is not None:
        if not query.descending and start > end:
            raise QueryParseError("No rows can match your key range, reverse your start_key and "
                                  "end_key or set descending=true")
        if query.descending and start < end:
            raise QueryParseError("No rows can match your key range, reverse your start_key and "
                                  "end_key or set descending=false")
    return start, end


def _row_doc(conn: Tx, app: Settee, dbid: int, rows: list[reads.Row],
             conflicts: bool) -> dict[str, bytes]:
    packed = reads.bodies_for(conn, dbid, [(r.id, r.winner) for r in rows])
    out = {}
    for row in rows:
        body = packed.get((row.id, row.winner))
        if body is None:
            continue
        extra: list[tuple[str, Any]] = []
        if conflicts:
            found = revtree.conflicts(revtree.from_json(orjson.loads(row.tree_json)))
            if found:
                extra.append(("_conflicts", found))
        out[row.id] = doc_bytes(row.id, row.winner, app.store.layer.body_of(body),
                                deleted=row.deleted, extra=extra)
    return out


def _answer(app: Settee, db: str, query: RangeQuery, prefix: str | None) -> bytes:
    """One view-shaped response. With `keys`, CouchDB reports `offset` and `update_seq` as null
    (`fabric_view_all_docs`); otherwise `offset` is the rows before the range plus `skip`,
    capped at `total_rows`. Totals, offset and rows come from one snapshot."""
    with app.store.engine.transaction(consistent=True) as conn:
        info = catalog.db_info(conn, db)
        dbid = reads.db_id(conn, db)
        if prefix is None:
            total = info.doc_count
        else:
            total = reads.count_range(conn, dbid, prefix, None)
        offset: int | None
        update_seq: int | None
        if is_set(query.keys):
            rows_json = _keyed_rows(conn, app, dbid, query, prefix)
            offset, update_seq = None, None
        else:
            start, end = _bounds(query)
            with_tree = query.include_docs and query.conflicts
            rows = reads.id_range(conn, dbid, start=start, end=end,
                                  inclusive_end=query.inclusive_end, descending=query.descending,
                                  limit=query.limit, skip=query.skip, prefix=prefix,
                                  with_tree=with_tree)
            if query.include_docs:
                docs = _row_doc(conn, app, dbid, rows, query.conflicts)
                rows_json = [_row_bytes(r, docs, True) for r in rows]
            else:
                rows_json = [_plain_rows(rows)]
            place = partial(positions.Where, dbid, info.instance, info.update_seq,
                            info.purge_seq, prefix, query.descending)
            before = _before(conn, place, start)
            if rows:
                positions.remember(place(rows[-1].id), before + query.skip + len(rows) - 1)
            offset, update_seq = min(total, before + query.skip), info.update_seq
    head = b'{"total_rows":' + dumps(total) + b',"offset":' + dumps(offset)
    if query.update_seq:
        head += b',"update_seq":' + dumps(update_seq)
    return head + b',"rows":[' + b",".join(rows_json) + b"]}"


def _before(conn: Tx, place: Callable[[str], positions.Where], start: str | None) -> int:
    """How many live docs sort before `start`: remembered from the page that ended there, or
    counted."""
    if start is None:
        return 0
    where = place(start)
    known = positions.before(where)
    if known is None:
        known = reads.count_range(conn, where.db_id, where.prefix, None, before=start,
                                  descending=where.descending)
        positions.remember(where, known)
    return known


def _plain_rows(rows: list[reads.Row]) -> bytes:
    """The rows without docs, comma-separated, in one encoder call (for a page of 1,000 rows,
    0.3 ms instead of 0.8 ms encoding each row's parts on its own)."""
    live, gone = {"rev": None}, {"rev": None, "deleted": True}
    return dumps([{"id": r.id, "key": r.id, "value": {**(gone if r.deleted else live),
                                                       "rev": r.winner}} for r in rows])[1:-1]


def _row_bytes(row: reads.Row, docs: dict[str, bytes], include_docs: bool) -> bytes:
    value = b'{"rev":' + dumps(row.winner) + (b',"deleted":true}' if row.deleted else b"}")
    out = b'{"id":' + dumps(row.id) + b',"key":' + dumps(row.id) + b',"value":' + value
    if include_docs:
        out += b',"doc":' + (docs.get(row.id, b"null") if not row.deleted else b"null")
    return out + b"}"


def _keyed_rows(conn: Tx, app: Settee, dbid: int, query: RangeQuery,
                prefix: str | None) -> list[bytes]:
    """Rows for `keys`, in the order given (reversed if descending), after `skip` and `limit`;
    keys outside the namespace are dropped, as CouchDB's `filter_keys_by_namespace`."""
    keys = list(query.keys)
    if query.descending:
        keys.reverse()
    keys = keys[query.skip:]
    if query.limit is not None:
        keys = keys[:query.limit]
    if prefix is not None:
        keys = [k for k in keys if isinstance(k, str) and k.startswith(prefix)]
    infos = reads.doc_infos(conn, dbid, [k for k in keys if isinstance(k, str)])
    with_tree = query.include_docs and query.conflicts
    rows_by_id = {
        doc_id: reads.Row(doc_id, info.winner, info.deleted, info.seq,
                          _tree_json(info) if with_tree else "")
        for doc_id, info in infos.items()
    }
    docs: dict[str, bytes] = {}
    if query.include_docs:
        live = [r for r in rows_by_id.values() if not r.deleted]
        docs = _row_doc(conn, app, dbid, live, query.conflicts)
    out = []
    for key in keys:
        row = rows_by_id.get(key) if isinstance(key, str) else None
        if row is None:
            out.append(b'{"key":' + dumps(key) + b',"error":"not_found"}')
        else:
            out.append(_row_bytes(row, docs, query.include_docs))
    return out


def _tree_json(info: reads.DocInfo) -> str:
    return dumps(revtree.to_json(info.tree)).decode()


def _local_answer(app: Settee, db: str, query: RangeQuery) -> bytes:
    prefix = "_local/"
    with app.store.engine.transaction() as conn:
        dbid = reads.db_id(conn, db)
        start, end = _bounds(query)

        def strip(key: str | None) -> str | None:
            return key[len(prefix):] if key is not None and key.startswith(prefix) else key
        docs = local.listing(conn, dbid, start=strip(start), end=strip(end),
                             inclusive_end=query.inclusive_end, descending=query.descending,
                             limit=query.limit, skip=query.skip)
    rows = []
    for found in docs:
        full = prefix + found.id
        rev = f"0-{found.rev}"
        row = (b'{"id":' + dumps(full) + b',"key":' + dumps(full) + b',"value":{"rev":'
               + dumps(rev) + b"}")
        if query.include_docs:
            row += b',"doc":' + doc_bytes(full, rev, found.body)
        rows.append(row + b"}")
    return b'{"total_rows":null,"offset":null,"rows":[' + b",".join(rows) + b"]}"
