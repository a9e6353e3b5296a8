"""Reduce answers from stored per-key reductions: whole view, `group=true`, `group_level=N`.

Nothing is reduced from map rows again except where a doc-id bound cuts through one key
(`startkey_docid`, `endkey_docid`): that key's rows on the right side are reduced on the spot.
- level 0 over the whole view: the stored total, or (when it is not kept exactly) every key's
  reduction rereduced, page by page, and remembered for the index's seq;
- level 0 over a range: the stored reductions of the range, rereduced;
- `group=true`: the stored reductions of the range (or of each of `keys`), one row each;
- `group_level=N`: consecutive stored reductions whose array keys share their first N elements
  are rereduced together (non-array keys group by themselves), shown under that prefix.
A failed reduction shows as an error row, as CouchDB shows `reduce_overflow_error`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ..store import sql
from ..store.serialize import dumps
from .design import ViewDef
from .mapper import key_bytes
from .query import EXACT, Resolved, is_set
from .reduce import Guarded, ReduceFailure, decode_state, loads
from .storage import IndexState

if TYPE_CHECKING:
    from .service import ViewService

PAGE = 1000
Item = tuple[bytes, bytes, Any]
"""(key sort bytes, key JSON, state) of one key, in the order of travel."""


def answer(service: ViewService, reducer: Guarded, view: ViewDef, state: IndexState,
           r: Resolved) -> Iterator[list[bytes]]:
    """Pages of reduce rows (JSON bytes) after `skip` and within `limit`."""
    q = r.query
    if r.group_level == 0:
        rows = _whole(service, reducer, view, state, r)
    elif r.group_level == EXACT and is_set(q.keys):
        rows = (_row(reducer, kj, st) for _, kj, st in _keyed(service, view, state, r))
    elif r.group_level == EXACT:
        rows = (_row(reducer, kj, st) for _, kj, st in _stored(service, reducer, state, r))
    else:
        rows = _levels(reducer, view, _stored(service, reducer, state, r), r.group_level)
    skip, remaining = q.skip, q.limit
    page: list[bytes] = []
    for row in rows:
        if remaining is not None and remaining <= 0:
            break
        if skip:
            skip -= 1
            continue
        page.append(row)
        if remaining is not None:
            remaining -= 1
        if len(page) >= PAGE:
            yield page
            page = []
    if page:
        yield page


def _row(reducer: Guarded, key_json: bytes, state: Any) -> bytes:
    value = reducer.finalize(state)
    if isinstance(value, ReduceFailure):
        return (b'{"key":' + key_json + b',"error":' + dumps(value.error) + b',"reason":'
                + dumps(value.reason) + b"}")
    return b'{"key":' + key_json + b',"value":' + dumps(value) + b"}"


def _whole(service: ViewService, reducer: Guarded, view: ViewDef, state: IndexState,
           r: Resolved) -> Iterator[bytes]:
    if r.start is None and r.end is None:
        if state.row_count == 0:
            return
        total = _total(service, reducer, state, r)
    else:
        states = [st for _, _, st in _stored(service, reducer, state, r)]
        if not states:
            return
        total = _rereduce_all(reducer, iter(states))
    yield _row(reducer, b"null", total)


def _total(service: ViewService, reducer: Guarded, state: IndexState, r: Resolved) -> Any:
    if state.total is not None:
        return decode_state(state.total)
    found = service.cached_total(state.id, state.seq)
    if found is not None:
        return found
    total = _rereduce_all(reducer, (st for _, _, st in _stored(service, reducer, state, r)))
    service.remember_total(state.id, state.seq, total)
    return total


def _rereduce_all(reducer: Guarded, states: Iterator[Any]) -> Any:
    acc: list[Any] = []
    for st in states:
        acc.append(st)
        if len(acc) >= PAGE:
            acc = [reducer.rereduce(acc)]
    return reducer.rereduce(acc)


def _levels(reducer: Guarded, view: ViewDef, items: Iterator[Item], level: int
            ) -> Iterator[bytes]:
    group_id: bytes | None = None
    shown = b""
    states: list[Any] = []
    for kb, key_json, st in items:
        key = loads(key_json)
        if isinstance(key, list):
            prefix = key[:level]
            gid, kj = b"a" + key_bytes(view, prefix), dumps(prefix)
        else:
            gid, kj = b"k" + kb, key_json
        if gid != group_id:
            if states:
                yield _row(reducer, shown, reducer.rereduce(states))
            group_id, shown, states = gid, kj, []
        states.append(st)
        if len(states) >= PAGE:
            states = [reducer.rereduce(states)]
    if states:
        yield _row(reducer, shown, reducer.rereduce(states))


def _keyed(service: ViewService, view: ViewDef, state: IndexState, r: Resolved
           ) -> Iterator[Item]:
    keys = list(r.query.keys)
    for i in range(0, len(keys), PAGE):
        chunk = [key_bytes(view, k) for k in keys[i:i + PAGE]]
        with service.store.engine.transaction() as conn:
            found = {}
            for part in sql.chunks(sorted(set(chunk)), 500):
                for kb, kj, red in sql.fetchall(
                        conn, "SELECT key_bytes, key_json, reduction FROM settee_view_reductions "
                        f"WHERE index_id = ? AND key_bytes IN ({sql.in_params(len(part))})",
                        (state.id, *part)):
                    found[_b(kb)] = (_b(kj), _b(red))
        for kb in chunk:
            if kb in found:
                yield kb, found[kb][0], decode_state(found[kb][1])


def _stored(service: ViewService, reducer: Guarded, state: IndexState, r: Resolved
            ) -> Iterator[Item]:
    """Stored reductions of the range in order of travel, with partial boundary keys."""
    q = r.query
    desc = q.descending
    cut_start = r.start is not None and is_set(q.start_docid)
    cut_end = r.end is not None and is_set(q.end_docid)
    conds: list[str] = []
    params: list[Any] = []
    if r.start is not None:
        # A doc-id bound makes the start key a partial one, reduced apart (below).
        op = ("<" if desc else ">") if cut_start else ("<=" if desc else ">=")
        conds.append(f"key_bytes {op} ?")
        params.append(r.start)
    if r.end is not None:
        inclusive = q.inclusive_end and not cut_end
        op = (">=" if desc else "<=") if inclusive else (">" if desc else "<")
        conds.append(f"key_bytes {op} ?")
        params.append(r.end)
    one_key = cut_start and cut_end and r.start == r.end
    if cut_start:
        assert r.start is not None
        docid_conds = [(("<=" if desc else ">="), str(q.start_docid))]
        if one_key:
            docid_conds.append((_end_op(desc, q.inclusive_end), str(q.end_docid)))
        yield from _partial(service, reducer, state, r.start, docid_conds)
        if one_key:
            return
    yield from _stored_range(service, state, conds, params, desc)
    if cut_end:
        assert r.end is not None
        yield from _partial(service, reducer, state, r.end,
                            [(_end_op(desc, q.inclusive_end), str(q.end_docid))])


def _end_op(desc: bool, inclusive: bool) -> str:
    return (">=" if desc else "<=") if inclusive else (">" if desc else "<")


def _stored_range(service: ViewService, state: IndexState, conds: list[str],
                  params: list[Any], desc: bool) -> Iterator[Item]:
    order = "DESC" if desc else "ASC"
    after: bytes | None = None
    while True:
        where = ["index_id = ?", *conds]
        args: list[Any] = [state.id, *params]
        if after is not None:
            where.append(f"key_bytes {'<' if desc else '>'} ?")
            args.append(after)
        with service.store.engine.transaction() as conn:
            rows = sql.fetchall(conn, "SELECT key_bytes, key_json, reduction FROM "
                                f"settee_view_reductions WHERE {' AND '.join(where)} "
                                f"ORDER BY key_bytes {order} LIMIT ?", (*args, PAGE))
        for kb, kj, red in rows:
            yield _b(kb), _b(kj), decode_state(_b(red))
        if len(rows) < PAGE:
            return
        after = _b(rows[-1][0])


def _partial(service: ViewService, reducer: Guarded, state: IndexState, kb: bytes,
             docid_conds: list[tuple[str, str]]) -> Iterator[Item]:
    """One key's reduction over only the rows on the near side of a doc-id bound."""
    where = " AND ".join(f"doc_id {op} ?" for op, _ in docid_conds)
    with service.store.engine.transaction() as conn:
        rows = sql.fetchall(conn, "SELECT doc_id, key_json, value_json FROM settee_view_rows "
                            f"WHERE index_id = ? AND key_bytes = ? AND {where} "
                            "ORDER BY doc_id, dup", (state.id, kb, *[v for _, v in docid_conds]))
    if not rows:
        return
    keys = [[loads(_b(kj)), doc_id] for doc_id, kj, _ in rows]
    values = [loads(_b(vj)) for _, _, vj in rows]
    yield kb, _b(rows[0][1]), reducer.reduce(keys, values)


def _b(value: Any) -> Any:
    return bytes(value) if isinstance(value, memoryview) else value
