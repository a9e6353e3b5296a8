"""The SQL of view indexes: index rows, a batch of changes with winning bodies, rows and reductions.

Plain SQL in qmark style through the store's `sql` helpers (the same driver-cursor path as the
store's hot reads); every function runs inside the caller's transaction. `apply` is the whole
write of one indexer batch and starts with the compare-and-set on each index's seq, so a worker
that lost the race changes nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from ..store import revtree, sql
from ..store.engine import Tx
from ..store.errors import DbNotFound
from .mapper import SourceDoc


class LostRace(Exception):
    """Another worker advanced an index first: this batch is discarded and re-read."""


@dataclass(slots=True)
class IndexState:
    """One index row."""

    id: int
    signature: str
    seq: int
    row_count: int
    size: int
    total: bytes | None


@dataclass(slots=True)
class OldRow:
    """A stored row of a document that changed."""

    doc_id: str
    key_bytes: bytes
    dup: int
    key_json: bytes
    value_json: bytes


@dataclass(slots=True)
class Reduction:
    """A stored per-key reduction."""

    key_bytes: bytes
    key_json: bytes
    state: bytes
    row_count: int
    uniform: bool


@dataclass
class Plan:
    """Everything one batch writes to one index."""

    index_id: int
    old_seq: int
    new_seq: int
    row_delta: int = 0
    bytes_delta: int = 0
    total: bytes | None = None
    delete_docs: list[str] = field(default_factory=list)
    insert: list[tuple[Any, ...]] = field(default_factory=list)
    red_delete: list[bytes] = field(default_factory=list)
    red_upsert: list[tuple[Any, ...]] = field(default_factory=list)
    reread_first: list[bytes] = field(default_factory=list)


_STATE_COLS = "id, signature, seq, row_count, bytes, total"


def _bytes(value: Any) -> Any:
    return bytes(value) if isinstance(value, memoryview) else value


def db_state(conn: Tx, name: str) -> tuple[int, int]:
    """(db id, update seq) of the named database, or `DbNotFound`."""
    row = sql.fetchone(conn, "SELECT id, update_seq FROM settee_dbs WHERE name = ?", (name,))
    if row is None:
        raise DbNotFound()
    return int(row[0]), int(row[1])


def _state(row: tuple[Any, ...]) -> IndexState:
    return IndexState(int(row[0]), row[1], int(row[2]), int(row[3]), int(row[4]),
                      _bytes(row[5]))


def find_indexes(conn: Tx, dbid: int, signatures: Sequence[str]) -> dict[str, IndexState]:
    """The existing indexes of these signatures."""
    if not signatures:
        return {}
    rows = sql.fetchall(conn, f"SELECT {_STATE_COLS} FROM settee_view_indexes WHERE db_id = ? "
                        f"AND signature IN ({sql.in_params(len(signatures))})",
                        (dbid, *signatures))
    return {r[1]: _state(r) for r in rows}


def index_state(conn: Tx, index_id: int) -> IndexState | None:
    """One index as it stands in this transaction (None: cleaned up meanwhile)."""
    row = sql.fetchone(conn, f"SELECT {_STATE_COLS} FROM settee_view_indexes WHERE id = ?",
                       (index_id,))
    return _state(row) if row is not None else None


def create_indexes(conn: Tx, dbid: int, signatures: Sequence[str]) -> None:
    """Create empty indexes (a concurrent creator is fine: the unique constraint keeps one)."""
    now = time.time()
    sql.executemany(conn, "INSERT INTO settee_view_indexes (db_id, signature, seq, row_count, "
                    "bytes, total, created) VALUES (?, ?, 0, 0, 0, NULL, ?) "
                    "ON CONFLICT (db_id, signature) DO NOTHING",
                    [(dbid, sig, now) for sig in signatures])


def all_indexes(conn: Tx, dbid: int) -> list[IndexState]:
    """Every index of a database."""
    rows = sql.fetchall(conn, f"SELECT {_STATE_COLS} FROM settee_view_indexes WHERE db_id = ?",
                        (dbid,))
    return [_state(r) for r in rows]


def read_changes(conn: Tx, dbid: int, after: int, upto: int, limit: int,
                 body_of: Callable[[bytes], bytes]) -> list[SourceDoc]:
    """Docs whose latest change is in (after, upto], in seq order, with winning body JSON."""
    rows = sql.fetchall(
        conn,
        "SELECT d.doc_id, d.winner, d.deleted, d.seq, d.tree, r.body FROM settee_docs d "
        "LEFT JOIN settee_revs r ON r.db_id = d.db_id AND r.doc_id = d.doc_id "
        "AND r.rev = d.winner WHERE d.db_id = ? AND d.seq > ? AND d.seq <= ? "
        "ORDER BY d.seq LIMIT ?",
        (dbid, after, upto, limit),
    )
    out = []
    for doc_id, winner, deleted, seq, tree_json, body in rows:
        conflicts: list[str] = []
        if not deleted and tree_json.count('"') > 2:  # more than one revision: maybe branched
            tree = orjson.loads(tree_json)
            parents = {node[0] for node in tree.values()}
            if len(tree) - len(parents & tree.keys()) > 1:  # more than one leaf
                conflicts = revtree.conflicts(revtree.from_json(tree))
        json_body = body_of(_bytes(body)) if body is not None and not deleted else None
        out.append(SourceDoc(doc_id, winner, bool(deleted), int(seq), json_body, conflicts))
    return out


def purged_ids(conn: Tx, dbid: int, after: int, upto: int) -> list[str]:
    """Docs purged by a change in (after, upto]: their rows must go even if the doc is gone."""
    rows = sql.fetchall(conn, "SELECT doc_id FROM settee_purges WHERE db_id = ? "
                        "AND update_seq > ? AND update_seq <= ?", (dbid, after, upto))
    return [r[0] for r in rows]


def old_rows(conn: Tx, index_id: int, doc_ids: Sequence[str]) -> list[OldRow]:
    """The stored rows of these docs, through the back-index."""
    out: list[OldRow] = []
    for chunk in sql.chunks(list(doc_ids), 500):
        rows = sql.fetchall(
            conn, "SELECT doc_id, key_bytes, dup, key_json, value_json FROM settee_view_rows "
            f"WHERE index_id = ? AND doc_id IN ({sql.in_params(len(chunk))})",
            (index_id, *chunk))
        out.extend(OldRow(r[0], _bytes(r[1]), r[2], _bytes(r[3]), _bytes(r[4])) for r in rows)
    return out


def reductions(conn: Tx, index_id: int, keys: Sequence[bytes]) -> dict[bytes, Reduction]:
    """Stored reductions of these keys."""
    out: dict[bytes, Reduction] = {}
    for chunk in sql.chunks(list(keys), 500):
        rows = sql.fetchall(
            conn, "SELECT key_bytes, key_json, reduction, row_count, uniform FROM "
            f"settee_view_reductions WHERE index_id = ? AND key_bytes IN "
            f"({sql.in_params(len(chunk))})", (index_id, *chunk))
        for kb, kj, red, count, uniform in rows:
            kb = _bytes(kb)
            out[kb] = Reduction(kb, _bytes(kj), _bytes(red), int(count), bool(uniform))
    return out


def key_rows(conn: Tx, index_id: int, key: bytes) -> list[tuple[str, int, bytes, bytes]]:
    """(doc id, dup, key JSON, value JSON) of every row of one key, in row order."""
    rows = sql.fetchall(conn, "SELECT doc_id, dup, key_json, value_json FROM settee_view_rows "
                        "WHERE index_id = ? AND key_bytes = ? ORDER BY doc_id, dup",
                        (index_id, key))
    return [(r[0], r[1], _bytes(r[2]), _bytes(r[3])) for r in rows]


def apply(conn: Tx, plans: Sequence[Plan]) -> None:
    """Write one batch to its indexes; `LostRace` (before any other write) if one moved on."""
    for plan in sorted(plans, key=lambda p: p.index_id):  # one lock order: no deadlocks on PG
        moved = sql.execute(
            conn, "UPDATE settee_view_indexes SET seq = ?, row_count = row_count + ?, "
            "bytes = bytes + ?, total = ? WHERE id = ? AND seq = ?",
            (plan.new_seq, plan.row_delta, plan.bytes_delta, plan.total, plan.index_id,
             plan.old_seq))
        if moved != 1:
            raise LostRace()
    for plan in plans:
        for chunk in sql.chunks(plan.delete_docs, 500):
            sql.execute(conn, "DELETE FROM settee_view_rows WHERE index_id = ? AND doc_id IN "
                        f"({sql.in_params(len(chunk))})", (plan.index_id, *chunk))
        # In key order: b-tree inserts then walk the pages once instead of hopping at random.
        _insert_rows(conn, sorted(plan.insert, key=lambda r: (r[1], r[2], r[3])))
        sql.executemany(conn, "DELETE FROM settee_view_reductions WHERE index_id = ? "
                        "AND key_bytes = ?", [(plan.index_id, k) for k in plan.red_delete])
        sql.executemany(
            conn, "INSERT INTO settee_view_reductions (index_id, key_bytes, key_json, "
            "reduction, row_count, uniform) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT "
            "(index_id, key_bytes) DO UPDATE SET key_json = excluded.key_json, "
            "reduction = excluded.reduction, row_count = excluded.row_count, "
            "uniform = excluded.uniform", sorted(plan.red_upsert, key=lambda r: r[1]))
        for key in plan.reread_first:
            # A key whose rows do not all carry the same key JSON shows its first row's.
            first = sql.fetchone(conn, "SELECT key_json FROM settee_view_rows WHERE "
                                 "index_id = ? AND key_bytes = ? ORDER BY doc_id, dup LIMIT 1",
                                 (plan.index_id, key))
            if first is not None:
                sql.execute(conn, "UPDATE settee_view_reductions SET key_json = ? "
                            "WHERE index_id = ? AND key_bytes = ?",
                            (_bytes(first[0]), plan.index_id, key))


_ROW_COLUMNS = "index_id, key_bytes, doc_id, dup, key_json, value_json"


def _insert_rows(conn: Tx, rows: list[tuple[Any, ...]]) -> None:
    """Insert map rows: PostgreSQL takes a batch fastest through COPY (half the time of
    `executemany` here); SQLite's prepared INSERT is already as fast as it gets."""
    if not rows:
        return
    if conn.dialect == "postgresql" and len(rows) > 16:
        sql.copy_rows(conn, f"settee_view_rows ({_ROW_COLUMNS})", rows)
        return
    sql.executemany(conn, f"INSERT INTO settee_view_rows ({_ROW_COLUMNS}) "
                    "VALUES (?, ?, ?, ?, ?, ?)", rows)


def delete_index(conn: Tx, index_id: int, page: int = 5000) -> bool:
    """Delete up to `page` rows of an index; the index itself once it is empty. True when gone.

    Large indexes go in pages, each its own short transaction, so the write lock is never held
    for a whole index (the cascade would do it in one statement)."""
    cut = sql.fetchone(conn, "SELECT key_bytes, doc_id, dup FROM settee_view_rows WHERE "
                       "index_id = ? ORDER BY key_bytes, doc_id, dup LIMIT 1 OFFSET ?",
                       (index_id, page))
    if cut is not None:
        sql.execute(conn, "DELETE FROM settee_view_rows WHERE index_id = ? AND "
                    "(key_bytes, doc_id, dup) < (?, ?, ?)",
                    (index_id, _bytes(cut[0]), cut[1], cut[2]))
        return False
    cut = sql.fetchone(conn, "SELECT key_bytes FROM settee_view_reductions WHERE index_id = ? "
                       "ORDER BY key_bytes LIMIT 1 OFFSET ?", (index_id, page))
    if cut is not None:
        sql.execute(conn, "DELETE FROM settee_view_reductions WHERE index_id = ? AND "
                    "key_bytes < ?", (index_id, _bytes(cut[0])))
        return False
    sql.execute(conn, "DELETE FROM settee_view_indexes WHERE id = ?", (index_id,))
    return True
