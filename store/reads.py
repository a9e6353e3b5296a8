"""The read path: one document with its tree, revision bodies, id ranges and the changes feed."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from . import revtree, sql
from .engine import Tx
from .errors import DbNotFound


@dataclass(slots=True)
class DocInfo:
    """A document's rev tree and where it stands: winner, deleted flag, latest seq."""

    id: str
    tree: revtree.RevTree
    winner: str
    deleted: bool
    seq: int


@dataclass(slots=True)
class Row:
    """One `_all_docs`/`_changes` row: id, winning rev, deleted flag, seq."""

    id: str
    winner: str
    deleted: bool
    seq: int
    tree_json: str


def db_id(conn: Tx, name: str) -> int:
    """The id of the named database, or `DbNotFound`."""
    row = sql.fetchone(conn, "SELECT id FROM settee_dbs WHERE name = ?", (name,))
    if row is None:
        raise DbNotFound()
    return int(row[0])


def doc_with_winner(
    conn: Tx, db_name: str, doc_id: str, rev: str | None = None
) -> tuple[DocInfo | None, bytes | None]:
    """One query: the doc's info and the body of its winner, or of `rev` when given (None if
    that rev has no stored body); raises `DbNotFound`."""
    body_rev = "d.winner" if rev is None else "?"
    row = sql.fetchone(
        conn,
        "SELECT b.id, d.tree, d.winner, d.deleted, d.seq, r.body FROM settee_dbs b "
        "LEFT JOIN settee_docs d ON d.db_id = b.id AND d.doc_id = ? "
        f"LEFT JOIN settee_revs r ON r.db_id = b.id AND r.doc_id = d.doc_id AND r.rev = {body_rev} "
        "WHERE b.name = ?",
        (doc_id, db_name) if rev is None else (doc_id, rev, db_name),
    )
    if row is None:
        raise DbNotFound()
    if row[1] is None:
        return None, None
    info = DocInfo(doc_id, revtree.from_json(orjson.loads(row[1])), row[2], bool(row[3]), row[4])
    return info, _bytes(row[5])


def doc_info(conn: Tx, dbid: int, doc_id: str) -> DocInfo | None:
    """The doc's tree and state, or None."""
    row = sql.fetchone(
        conn,
        "SELECT tree, winner, deleted, seq FROM settee_docs WHERE db_id = ? AND doc_id = ?",
        (dbid, doc_id),
    )
    if row is None:
        return None
    return DocInfo(doc_id, revtree.from_json(orjson.loads(row[0])), row[1], bool(row[2]), row[3])


def doc_infos(conn: Tx, dbid: int, ids: Sequence[str]) -> dict[str, DocInfo]:
    """Trees and states of many docs at once."""
    rows = sql.by_keys(conn, "doc_id, tree, winner, deleted, seq", "settee_docs", "db_id = ?",
                       (dbid,), "doc_id", sorted(set(ids)))
    return {doc_id: DocInfo(doc_id, revtree.from_json(orjson.loads(tree)), win, bool(deleted), seq)
            for doc_id, tree, win, deleted, seq in rows}


def bodies(conn: Tx, dbid: int, doc_id: str, revs: Sequence[str]) -> dict[str, bytes]:
    """Stored (layer-packed) bodies of the given revs that still have one."""
    if not revs:
        return {}
    rows = sql.fetchall(
        conn,
        "SELECT rev, body FROM settee_revs WHERE db_id = ? AND doc_id = ? "
        f"AND rev IN ({sql.in_params(len(revs))})",
        (dbid, doc_id, *revs),
    )
    return {rev: _bytes(body) for rev, body in rows}


def has_body(conn: Tx, dbid: int, doc_id: str, rev: str) -> bool:
    """Whether the revision's body is still stored (not compacted away)."""
    return sql.fetchone(
        conn, "SELECT 1 FROM settee_revs WHERE db_id = ? AND doc_id = ? AND rev = ?",
        (dbid, doc_id, rev)) is not None


def bodies_for(conn: Tx, dbid: int, pairs: Sequence[tuple[str, str]]
               ) -> dict[tuple[str, str], bytes]:
    """Packed bodies for many (doc id, rev) pairs that still have one."""
    out: dict[tuple[str, str], bytes] = {}
    for chunk in sql.chunks(list(dict.fromkeys(pairs)), 400):
        cond = " OR ".join(["(doc_id = ? AND rev = ?)"] * len(chunk))
        params = [p for pair in chunk for p in pair]
        rows = sql.fetchall(
            conn, f"SELECT doc_id, rev, body FROM settee_revs WHERE db_id = ? AND ({cond})",
            (dbid, *params),
        )
        out.update(((doc_id, rev), _bytes(body)) for doc_id, rev, body in rows)
    return out


def id_range(
    conn: Tx,
    dbid: int,
    *,
    start: str | None,
    end: str | None,
    inclusive_end: bool,
    descending: bool,
    limit: int | None,
    skip: int,
    prefix: str | None = None,
    exclude_prefix: str | None = None,
    include_deleted: bool = False,
    with_tree: bool = True,
) -> list[Row]:
    """Docs in raw id order between `start` and `end` (in the direction of travel); without
    `with_tree` their rows carry an empty `tree_json` (the tree is the widest column)."""
    where = ["db_id = ?"]
    params: list[object] = [dbid]
    if not include_deleted:
        where.append("deleted = ?")
        params.append(False)
    lo_op, hi_op = (">=", "<=" if inclusive_end else "<")
    if descending:
        lo_op, hi_op = ("<=", ">=" if inclusive_end else ">")
    if start is not None:
        where.append(f"doc_id {lo_op} ?")
        params.append(start)
    if end is not None:
        where.append(f"doc_id {hi_op} ?")
        params.append(end)
    if prefix is not None:
        where.append("doc_id >= ? AND doc_id < ?")
        params += [prefix, prefix[:-1] + chr(ord(prefix[-1]) + 1)]
    if exclude_prefix is not None:
        where.append("NOT (doc_id >= ? AND doc_id < ?)")
        params += [exclude_prefix, exclude_prefix[:-1] + chr(ord(exclude_prefix[-1]) + 1)]
    order = "DESC" if descending else "ASC"
    tree = "tree" if with_tree else "''"
    query = (f"SELECT doc_id, winner, deleted, seq, {tree} FROM settee_docs "
             f"WHERE {' AND '.join(where)} ORDER BY doc_id {order}")
    if limit is not None:
        query += " LIMIT ? OFFSET ?"
        params += [limit, skip]
    elif skip:
        query += " LIMIT -1 OFFSET ?" if conn.dialect == "sqlite" else " OFFSET ?"
        params.append(skip)
    return [Row(r[0], r[1], bool(r[2]), r[3], r[4]) for r in sql.fetchall(conn, query, params)]


def count_range(conn: Tx, dbid: int, prefix: str | None, exclude_prefix: str | None,
                before: str | None = None, descending: bool = False) -> int:
    """How many live docs (optionally under a prefix) there are, or before an id."""
    where = ["db_id = ?", "deleted = ?"]
    params: list[object] = [dbid, False]
    if prefix is not None:
        where.append("doc_id >= ? AND doc_id < ?")
        params += [prefix, prefix[:-1] + chr(ord(prefix[-1]) + 1)]
    if exclude_prefix is not None:
        where.append("NOT (doc_id >= ? AND doc_id < ?)")
        params += [exclude_prefix, exclude_prefix[:-1] + chr(ord(exclude_prefix[-1]) + 1)]
    if before is not None:
        where.append("doc_id > ?" if descending else "doc_id < ?")
        params.append(before)
    row = sql.fetchone(conn, f"SELECT count(*) FROM settee_docs WHERE {' AND '.join(where)}",
                       params)
    return int(row[0]) if row else 0


def changes_since(
    conn: Tx, dbid: int, since: int, *, limit: int | None, descending: bool = False
) -> list[Row]:
    """Docs whose latest change is after `since`, in seq order (one row per doc)."""
    if descending:
        query = ("SELECT doc_id, winner, deleted, seq, tree FROM settee_docs "
                 "WHERE db_id = ? ORDER BY seq DESC")
        params: list[object] = [dbid]
    else:
        query = ("SELECT doc_id, winner, deleted, seq, tree FROM settee_docs "
                 "WHERE db_id = ? AND seq > ? ORDER BY seq ASC")
        params = [dbid, since]
    if limit is not None:
        query += " LIMIT ?"
        params.append(limit)
    return [Row(r[0], r[1], bool(r[2]), r[3], r[4]) for r in sql.fetchall(conn, query, params)]


def _bytes(value: Any) -> bytes:
    if value is None or isinstance(value, bytes):
        return value  # type: ignore[return-value]
    return bytes(value)  # memoryview from some drivers
