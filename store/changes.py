"""The changes feed as the store reads it: pages of documents in seq order, each in its own read.

Every document has one row in `settee_docs` at the seq of its latest change, so the feed is that
table in seq order, one row per document. A feed is read in pages, each its own short read
transaction, so a long or slow feed never holds a snapshot open while it talks to its client
(an open SQLite reader stops WAL checkpoints; reliability.md 3.1).

Pages are exact because seqs are allocated in commit order: once the database's `update_seq`
reads U, every change at or below U is committed, and none can appear there later. So each page
first reads U, then asks only for rows at or below it (`upper`); a page that comes back short
has seen everything up to U, and the next page can start after U. On PostgreSQL, where READ
COMMITTED gives each statement its own snapshot, reading U first is what makes this hold.

What a page loads is chosen per feed (`Want`): the rev tree (for `style=all_docs`, `conflicts`
and the previous winner), the JSON bodies of the winner or of every leaf (for `include_docs`
and for filters that look at documents), and the body of the previous winner (for
`include_previous`). The previous winner is read from the tree as the parent of the current
winner: exact for an edit or a delete on the winning branch, and `None` for a document's first
revision, once compaction has dropped that body, or once `_revs_limit` stemmed the parent away.
When a replicated conflict takes over as winner it is that branch's parent, not the old winner.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from . import revtree, sql
from .engine import Tx
from .errors import DbNotFound
from .layers import Layer

__all__ = ["Change", "DbState", "Page", "Want", "count_pending", "db_state", "read_page"]

NO_BODIES, WINNER, LEAVES = "none", "winner", "leaves"


@dataclass(frozen=True, slots=True)
class DbState:
    """A database's id, incarnation and latest seq, as one page saw them."""

    id: int
    instance: str
    update_seq: int


@dataclass(frozen=True, slots=True)
class Want:
    """What to load with each change beyond id, winning rev, deleted flag and seq."""

    tree: bool = False
    bodies: str = NO_BODIES  # NO_BODIES, WINNER or LEAVES
    previous: bool = False


@dataclass(slots=True)
class Change:
    """One row of the feed: a document at the seq of its latest change."""

    seq: int
    id: str
    winner: str
    deleted: bool
    tree: revtree.RevTree | None = None
    bodies: dict[str, bytes] = field(default_factory=dict)  # rev -> JSON body, where loaded
    previous: str | None = None  # the previous winner's rev, when asked for and known

    def leaves(self) -> list[str]:
        """Every leaf, winner first (the winner alone if the tree was not loaded)."""
        return revtree.leaves(self.tree) if self.tree is not None else [self.winner]


@dataclass(slots=True)
class Page:
    """One page of the feed and where the scan got to."""

    state: DbState
    changes: list[Change]
    last: int | None  # seq of the last row read, in the direction of travel
    exhausted: bool  # nothing more up to `upper` (ascending) or down to seq 1 (descending)
    upper: int  # the highest seq this page could see


def db_state(conn: Tx, name: str) -> DbState:
    """The database's id, instance and `update_seq` (`DbNotFound` if it is gone)."""
    row = sql.fetchone(conn, "SELECT id, instance, update_seq FROM settee_dbs WHERE name = ?",
                       (name,))
    if row is None:
        raise DbNotFound()
    return DbState(int(row[0]), str(row[1]), int(row[2]))


def read_page(
    conn: Tx,
    name: str,
    *,
    after: int,
    limit: int,
    layer: Layer,
    until: int | None = None,
    descending: bool = False,
    doc_ids: Sequence[str] | None = None,
    prefix: str | None = None,
    want: Want = Want(),
) -> Page:
    """Up to `limit` changes after seq `after` (before it, descending), never above `until`."""
    state = db_state(conn, name)
    upper = state.update_seq if until is None else min(until, state.update_seq)
    with_tree = want.tree or want.previous or want.bodies == LEAVES
    joined = want.bodies == WINNER  # the winner's body comes with the row, by primary key
    cols = "d.doc_id, d.winner, d.deleted, d.seq, " + ("d.tree" if with_tree else "NULL")
    source = "settee_docs d"
    if joined:
        cols += ", r.body"
        source += (" LEFT JOIN settee_revs r ON r.db_id = d.db_id AND r.doc_id = d.doc_id "
                   "AND r.rev = d.winner")
    where = ["d.db_id = ?"]
    params: list[object] = [state.id]
    if descending:
        where.append("d.seq < ?")
        params.append(min(after, upper + 1))
    else:
        where += ["d.seq > ?", "d.seq <= ?"]
        params += [after, upper]
    if prefix is not None:
        where.append("d.doc_id >= ? AND d.doc_id < ?")
        params += [prefix, prefix[:-1] + chr(ord(prefix[-1]) + 1)]
    order = f" ORDER BY d.seq {'DESC' if descending else 'ASC'} LIMIT ?"
    query = f"SELECT {cols} FROM {source} WHERE " + " AND ".join(where)
    if doc_ids is None:
        rows = sql.fetchall(conn, query + order, (*params, limit))
    else:
        rows = []
        for chunk in sql.chunks(sorted(set(doc_ids))):
            rows += sql.fetchall(conn, f"{query} AND d.doc_id IN ({sql.in_params(len(chunk))})"
                                 + order, (*params, *chunk, limit))
        rows.sort(key=lambda r: r[3], reverse=descending)
        rows = rows[:limit]
    changes = []
    for r in rows:
        change = Change(r[3], r[0], r[1], bool(r[2]),
                        revtree.from_json(orjson.loads(r[4])) if with_tree else None)
        if joined and r[5] is not None:
            change.bodies[change.winner] = layer.body_of(_bytes(r[5]))
        changes.append(change)
    if want.bodies == LEAVES or want.previous:
        _load_bodies(conn, state.id, changes, want, layer)
    last = changes[-1].seq if changes else None
    return Page(state, changes, last, len(rows) < limit, upper)


def _load_bodies(conn: Tx, dbid: int, changes: list[Change], want: Want, layer: Layer) -> None:
    """Bodies of every leaf (`LEAVES`) and of each previous winner, as far as still stored."""
    pairs: list[tuple[str, str]] = []
    for change in changes:
        if want.bodies == LEAVES:
            pairs += [(change.id, rev) for rev in change.leaves()]
        if want.previous and change.tree is not None:
            parent = change.tree[change.winner][0]
            if parent is not None and parent in change.tree:
                change.previous = parent
                pairs.append((change.id, parent))
    packed = bodies_of(conn, dbid, pairs)
    for change in changes:
        revs = set(change.leaves()) if want.bodies == LEAVES else set()
        if change.previous is not None:
            revs.add(change.previous)
        for rev in revs:
            data = packed.get((change.id, rev))
            if data is not None:
                change.bodies[rev] = layer.body_of(data)
        if change.previous is not None and change.previous not in change.bodies:
            change.previous = None  # its body is gone (compacted): no old image to give


def bodies_of(conn: Tx, dbid: int, pairs: Sequence[tuple[str, str]]
              ) -> dict[tuple[str, str], bytes]:
    """Packed bodies of many (doc id, rev) pairs, each found by primary key (a join on VALUES:
    an OR of pairs makes SQLite scan the database's revisions once per query)."""
    out: dict[tuple[str, str], bytes] = {}
    for chunk in sql.chunks(list(dict.fromkeys(pairs)), 400):
        values = ", ".join(["(?, ?)"] * len(chunk))
        rows = sql.fetchall(
            conn, f"WITH want(doc_id, rev) AS (VALUES {values}) "
            "SELECT r.doc_id, r.rev, r.body FROM want w JOIN settee_revs r "
            "ON r.db_id = ? AND r.doc_id = w.doc_id AND r.rev = w.rev",
            (*[p for pair in chunk for p in pair], dbid))
        out.update(((doc_id, rev), _bytes(body)) for doc_id, rev, body in rows)
    return out


def _bytes(value: Any) -> bytes:
    return value if isinstance(value, bytes) else bytes(value)  # memoryview from psycopg


def count_pending(conn: Tx, dbid: int, last: int, *, descending: bool = False) -> int:
    """How many documents changed after seq `last` (before it, descending)."""
    op = "<" if descending else ">"
    row = sql.fetchone(conn, f"SELECT count(*) FROM settee_docs WHERE db_id = ? AND seq {op} ?",
                       (dbid, last))
    return int(row[0]) if row else 0
