"""The write path: a batch of document edits applied to rev trees in one transaction.

Every write (one PUT or a whole `_bulk_docs`) runs as one transaction: the database's counter row
is locked first (serialising writers per database, so commit order equals seq order), the rev
trees of the touched documents are read, each edit is applied in request order with CouchDB's
rules, and the new trees, bodies, seqs and counters are written together. Interactive edits
(`new_edits=true`) must name a current leaf; replicated edits (`new_edits=false`) merge their
`_revisions` path into the tree and never conflict.

Attachments resolve in the same transaction (`attachments.resolve`): stubs against stored
revisions, new bytes saved as shared blobs only once the edit is known to succeed. Their rows and
stubs are written with the revision. A stub that cannot be resolved fails the whole write (412
`missing_stub`), as it fails CouchDB's whole request.

A large write without attachments is worked out before the lock (`prepare`: read the touched
documents, apply every edit, pack every body), so that a `_bulk_docs` of a thousand documents
holds the database's lock only to check that none of them changed meanwhile (one indexed read of
their seqs and trees) and to write; writers of one database then do their CPU work in parallel.
If anything it read has changed, the write is worked out again under the lock, as a small one is.
On PostgreSQL, the server's writes are worked out that way whatever their size, and stored by one
function call that checks and writes under the lock (`direct`); this module's transaction path is
what they fall back on, and what SQLite and writes with attachments always take.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from . import attachments, notify, revtree, sql
from .attachments import AttIn, AttMeta, EditAtts, MissingStub
from .engine import Tx
from .errors import Conflict, DbNotFound, StoreError
from .layers import Layer, Record
from .render import with_attachments
from .revisions import new_rev_id


@dataclass(slots=True)
class Edit:
    """One document write as the store receives it, already validated at the edge."""

    id: str
    fields: dict[str, Any]
    body: bytes
    deleted: bool = False
    rev: str | None = None
    revisions: list[str] | None = None
    atts: list[AttIn] | None = None
    planned_rev: str | None = None  # the new rev if its parent is `rev` and it has no atts


def plan_revs(edits: Sequence[Edit]) -> None:
    """Work out, before the write lock, the rev each interactive edit will most likely get
    (its parent is the `_rev` it names, or none for a new document, and it has no
    attachments): the hashing then runs in parallel with other writers' commits instead of
    under the database's lock. The write recomputes any plan whose assumption is wrong."""
    for edit in edits:
        if not edit.atts and edit.planned_rev is None:
            try:
                edit.planned_rev = new_rev_id(edit.fields, deleted=edit.deleted, parent=edit.rev)
            except (StoreError, TypeError, ValueError):
                pass  # the write raises it again, where it belongs


@dataclass(slots=True)
class WriteResult:
    """What happened to one edit: its new rev, or the error that refused it."""

    id: str
    rev: str | None = None
    error: StoreError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(slots=True)
class _DocState:
    tree: revtree.RevTree
    winner: str
    deleted: bool
    exists: bool
    created: float
    was_deleted: bool = False
    changed: bool = False
    stored: tuple[int, str] | None = None  # (seq, tree) as read: what `_unchanged` compares
    bodies: list[tuple[str, bytes, list[AttMeta]]] = field(default_factory=list)
    dropped: set[str] = field(default_factory=set)


@dataclass(slots=True)
class Prepared:
    """A write worked out before the lock against the documents as they were then read
    (`prepare`); `write_edits` uses it only if none of them has changed since."""

    db_id: int
    revs_limit: int | None  # None: not read, as no stored tree was (nothing can be stemmed)
    seen: dict[str, tuple[int, str] | None]  # doc id -> (seq, tree) as read; None: absent
    results: list[WriteResult]
    changed: list[tuple[str, _DocState]]


NO_STEMMING = 1 << 30
"""The revs limit a prepared write works with when it read no stored tree: new trees have one
revision, which no limit (at least 1) stems."""

PREPARE_MIN_EDITS = 16
"""A request of fewer edits is not prepared in its own thread: on the transaction path (SQLite,
and PostgreSQL's fallback) it is worked out under the lock, where for so few edits the extra
read costs more than the lock time it saves. PostgreSQL's one-statement writes prepare a
commit group of any size (`store.direct`)."""


def worth_preparing(edits: Sequence[Edit]) -> bool:
    """Whether `prepare` works `edits` out: a large write without attachments (they resolve
    and store their bytes in the write transaction)."""
    return len(edits) >= PREPARE_MIN_EDITS and not any(edit.atts for edit in edits)


@dataclass(slots=True)
class DbRow:
    """The locked counter row of the database being written."""

    id: int
    update_seq: int
    doc_count: int
    doc_del_count: int
    body_bytes: int
    revs_limit: int


@dataclass(slots=True)
class DesignState:
    """What write-time validation depends on: `_security` and the live design docs (id,
    winning rev) in id order, read with the lock."""

    security: str
    ddocs: tuple[tuple[str, str], ...]


DESIGN, DESIGN_END = "_design/", "_design0"  # "0" is the byte after "/": the `_design/` range


def lock_db(conn: Tx, name: str) -> DbRow:
    """Lock the database's counter row (PostgreSQL) and read it; the first statement of a write."""
    row = sql.fetchone(
        conn,
        "SELECT id, update_seq, doc_count, doc_del_count, body_bytes, revs_limit "
        "FROM settee_dbs WHERE name = ?" + sql.for_update(conn),
        (name,),
    )
    if row is None:
        raise DbNotFound()
    return DbRow(*row)


def db_with_design(conn: Tx, name: str, *, lock: bool) -> tuple[DbRow, DesignState]:
    """The database's row and `DesignState` in one statement; `lock` takes the row's lock on
    PostgreSQL as `lock_db` does (SQLite's BEGIN IMMEDIATE already holds writers off).

    On PostgreSQL a locking statement that had to wait for another writer returns the row as
    that writer committed it, but the design docs it joined as they were when the statement
    began (READ COMMITTED re-checks only the locked row): so when the row it locked is not the
    one its own snapshot saw, the design docs are read again, now that no writer can change
    them. Without that, a design doc added by the writer it waited for would not apply."""
    locking = lock and conn.dialect != "sqlite"
    rows = sql.fetchall(
        conn,
        "SELECT b.id, b.update_seq, b.doc_count, b.doc_del_count, b.body_bytes, b.revs_limit, "
        "b.security, d.doc_id, d.winner"
        + (", (SELECT s.update_seq FROM settee_dbs s WHERE s.id = b.id)" if locking else "")
        + " FROM settee_dbs b "
        "LEFT JOIN settee_docs d ON d.db_id = b.id AND d.doc_id >= ? AND d.doc_id < ? "
        "AND d.deleted = ? WHERE b.name = ? ORDER BY d.doc_id"
        + (" FOR UPDATE OF b" if locking else ""),
        (DESIGN, DESIGN_END, False, name),
    )
    if not rows:
        raise DbNotFound()
    row = DbRow(*rows[0][:6])
    if locking and rows[0][9] != row.update_seq:  # waited for a writer that committed
        return row, db_with_design(conn, name, lock=False)[1]
    ddocs = tuple((str(r[7]), str(r[8])) for r in rows if r[7] is not None)
    return row, DesignState(str(rows[0][6] or "{}"), ddocs)


def write_edits(
    conn: Tx, db_name: str, edits: Sequence[Edit], *, new_edits: bool, layer: Layer,
    locked: DbRow | None = None, prepared: Prepared | None = None,
) -> list[WriteResult]:
    """Apply `edits` in order inside the caller's write transaction; return one result each.
    `locked` is the database's row if the caller has locked it already; `prepared`, the same
    edits worked out before the lock (`prepare`), is used if what it read still stands."""
    db = locked if locked is not None else lock_db(conn, db_name)
    if prepared is not None and _unchanged(conn, db, prepared):
        results, changed = prepared.results, prepared.changed
    else:
        states = _load_states(conn, db.id, sorted({e.id for e in edits}))
        results, changed = _apply_edits(conn, db.id, db.revs_limit, states, edits,
                                        new_edits=new_edits, layer=layer)
    if changed:
        _persist(conn, db, db_name, changed)
    return results


def prepare(conn: Tx, db_id: int, edits: Sequence[Edit], *, new_edits: bool, layer: Layer
            ) -> Prepared | None:
    """Work out `edits` outside the lock, in any transaction (one without a snapshot will do:
    the write checks everything read here under its lock); None if an edit has attachments
    (they resolve and store their bytes in the write transaction), or if it reads and finds the
    database gone."""
    if any(edit.atts for edit in edits):
        return None
    # A document only created here (by interactive edits that name no rev) is not read: it is
    # taken to be absent, which the write checks under its lock as it checks what is read.
    read = sorted({edit.id for edit in edits if not new_edits or edit.rev is not None})
    revs_limit: int | None = None  # not read: no stored tree is, so none can be stemmed
    states: dict[str, _DocState] = {}
    if read:
        row = sql.fetchone(conn, "SELECT revs_limit FROM settee_dbs WHERE id = ?", (db_id,))
        if row is None:
            return None
        revs_limit = int(row[0])
        states = _load_states(conn, db_id, read)
    seen = {doc_id: state.stored for doc_id, state in states.items()}
    try:
        results, changed = _apply_edits(
            conn, db_id, revs_limit if revs_limit is not None else NO_STEMMING, states, edits,
            new_edits=new_edits, layer=layer)
    except StoreError:
        return None  # raised again under the lock, where it belongs
    for edit in edits:
        seen.setdefault(edit.id, None)
    return Prepared(db_id, revs_limit, seen, results, changed)


def join_prepared(parts: Sequence[Prepared | None]) -> Prepared | None:
    """One `Prepared` for writes joined into one call, if every part was prepared against the
    same database and no two touch the same document."""
    if not parts or any(p is None for p in parts):
        return None
    first = parts[0]
    assert first is not None
    if len(parts) == 1:
        return first
    seen: dict[str, tuple[int, str] | None] = {}
    results: list[WriteResult] = []
    changed: list[tuple[str, _DocState]] = []
    for part in parts:
        assert part is not None
        if part.db_id != first.db_id or part.revs_limit != first.revs_limit \
                or not seen.keys().isdisjoint(part.seen):
            return None
        seen.update(part.seen)
        results.extend(part.results)
        changed.extend(part.changed)
    return Prepared(first.db_id, first.revs_limit, seen, results, changed)


def _unchanged(conn: Tx, db: DbRow, prepared: Prepared) -> bool:
    """Under the lock: whether every document `prepared` read is as it was then (same seq and
    tree, or still absent), in the same database with the same `_revs_limit`."""
    if prepared.db_id != db.id or prepared.revs_limit not in (None, db.revs_limit):
        return False
    now = {doc_id: (int(seq), str(tree)) for doc_id, seq, tree in sql.by_keys(
        conn, "doc_id, seq, tree", "settee_docs", "db_id = ?", (db.id,), "doc_id",
        sorted(prepared.seen))}
    return all(now.get(doc_id) == was for doc_id, was in prepared.seen.items())


def _apply_edits(
    conn: Tx, db_id: int, revs_limit: int, states: dict[str, _DocState], edits: Sequence[Edit],
    *, new_edits: bool, layer: Layer,
) -> tuple[list[WriteResult], list[tuple[str, _DocState]]]:
    """Apply `edits` in order to `states` (changed in place): one result each, and the
    documents to write, in the order of their last edit."""
    results: list[WriteResult] = []
    order: dict[str, None] = {}
    now = time.time()
    for edit in edits:
        state = states.get(edit.id)
        if not new_edits and state is not None and _leaf_of(edit) in state.tree:
            results.append(WriteResult(edit.id, _leaf_of(edit)))  # a replayed replication
            continue
        atts = EditAtts(conn, db_id, edit.id, edit.atts, now)
        try:
            if new_edits:
                state, rev = _apply_interactive(state, edit, now, atts)
            else:
                state, rev = _apply_replicated(state, edit, now, atts)
        except MissingStub:
            raise
        except StoreError as exc:
            results.append(WriteResult(edit.id, error=exc))
            continue
        if state is not None and state.changed:
            if len(state.tree) > revs_limit:
                stemmed = revtree.stem(state.tree, revs_limit)
                state.dropped.update(set(state.tree) - set(stemmed))
                state.tree = stemmed
            states[edit.id] = state
            body = with_attachments(edit.body, atts.metas)
            state.bodies.append((rev, layer.pack(Record(body, {})), atts.metas))
            order.pop(edit.id, None)
            order[edit.id] = None
        results.append(WriteResult(edit.id, rev))
    return results, [(doc_id, states[doc_id]) for doc_id in order]


def _apply_interactive(
    state: _DocState | None, edit: Edit, now: float, atts: EditAtts
) -> tuple[_DocState, str]:
    if state is None or not state.tree:
        if edit.rev is not None:
            raise Conflict()
        hashed = atts.resolve(None, 1)
        rev = _new_rev(edit, None, hashed)
        tree: revtree.RevTree = {rev: (None, edit.deleted)}
        created, exists = now, state.exists if state else False
    else:
        if edit.rev is not None:
            if not revtree.is_leaf(state.tree, edit.rev):
                raise Conflict()
            parent = edit.rev
        elif state.deleted:
            parent = state.winner
        else:
            raise Conflict()
        hashed = atts.resolve(parent, revtree.pos(parent) + 1)
        rev = _new_rev(edit, parent, hashed)
        if rev in state.tree:
            raise Conflict()
        tree = revtree.add_edit(state.tree, parent, rev, edit.deleted)
        created, exists = state.created, state.exists
    atts.save_blobs()
    return _with_tree(state, tree, created, exists), rev


def _new_rev(edit: Edit, parent: str | None, hashed: list[tuple[str, str, bytes]]) -> str:
    """The edit's new rev: its plan when the plan's assumptions hold, else hashed now."""
    if edit.planned_rev is not None and parent == edit.rev and not hashed:
        return edit.planned_rev
    return new_rev_id(edit.fields, deleted=edit.deleted, parent=parent, atts=hashed)


def _apply_replicated(
    state: _DocState | None, edit: Edit, now: float, atts: EditAtts
) -> tuple[_DocState, str]:
    leaf = _leaf_of(edit)
    path = edit.revisions or [leaf]
    base = state.tree if state is not None else {}
    tree = revtree.merge_path(base, path, edit.deleted)
    atts.resolve_replicated(tree, leaf)
    atts.save_blobs()
    created = state.created if state is not None else now
    exists = state.exists if state is not None else False
    return _with_tree(state, tree, created, exists), leaf


def _leaf_of(edit: Edit) -> str:
    leaf = edit.revisions[0] if edit.revisions else edit.rev
    assert leaf is not None  # validated at the edge: `_rev` or `_revisions` is set
    return leaf


def _with_tree(
    state: _DocState | None, tree: revtree.RevTree, created: float, exists: bool
) -> _DocState:
    win = revtree.winner(tree)
    new = _DocState(tree, win, revtree.is_deleted(tree), exists, created, changed=True)
    if state is not None:
        new.bodies, new.dropped, new.was_deleted = state.bodies, state.dropped, state.was_deleted
    return new


def _load_states(conn: Tx, db_id: int, ids: list[str]) -> dict[str, _DocState]:
    states: dict[str, _DocState] = {}
    for doc_id, tree, win, deleted, created, seq in sql.by_keys(
            conn, "doc_id, tree, winner, deleted, created, seq", "settee_docs", "db_id = ?",
            (db_id,), "doc_id", ids):
        states[doc_id] = _DocState(
            revtree.from_json(orjson.loads(tree)), win, bool(deleted), True, created,
            was_deleted=bool(deleted), stored=(int(seq), str(tree)),
        )
    return states


@dataclass(slots=True)
class Rows:
    """What a write stores, before seqs are known: its documents in the order they take seqs
    (the database's update seq + 1, + 2, ...), their new bodies and attachment rows, the
    revisions stemmed away, and how the database's counters move."""

    # id, tree, winner, deleted, created, exists
    docs: list[tuple[str, str, str, bool, float, bool]]
    bodies: list[tuple[str, str, bytes]]  # doc id, rev, packed body
    atts: list[tuple[Any, ...]]  # `attachments.INSERT` rows
    dropped: list[tuple[str, str]]  # doc id, rev
    live: int = 0
    dead: int = 0
    added_bytes: int = 0


def rows_of(db_id: int, changed: list[tuple[str, _DocState]]) -> Rows:
    """The rows that store `changed` (as `_apply_edits` leaves them) in database `db_id`."""
    rows = Rows([], [], [], [])
    for doc_id, state in changed:
        tree_json = orjson.dumps(revtree.to_json(state.tree)).decode()
        rows.docs.append((doc_id, tree_json, state.winner, state.deleted, state.created,
                          state.exists))
        if state.exists:
            if state.was_deleted != state.deleted:
                step = -1 if state.deleted else 1
                rows.live, rows.dead = rows.live + step, rows.dead - step
        elif state.deleted:
            rows.dead += 1
        else:
            rows.live += 1
        for rev, packed, metas in state.bodies:
            if rev in state.tree:
                rows.bodies.append((doc_id, rev, packed))
                rows.atts.extend(attachments.rows(db_id, doc_id, rev, metas))
                rows.added_bytes += len(packed)
        rows.dropped.extend((doc_id, rev) for rev in state.dropped)
    return rows


def _persist(conn: Tx, db: DbRow, db_name: str, changed: list[tuple[str, _DocState]]) -> None:
    """Write trees, bodies, seqs and counters of the changed documents, and tell listeners."""
    rows = rows_of(db.id, changed)
    seq = db.update_seq + len(rows.docs)
    notify.count_and_announce(
        conn, db_name,
        "UPDATE settee_dbs SET update_seq = ?, doc_count = ?, doc_del_count = ?, "
        "body_bytes = body_bytes + ? WHERE id = ?",
        (seq, db.doc_count + rows.live, db.doc_del_count + rows.dead, rows.added_bytes, db.id),
    )
    sql.executemany(
        conn,
        "INSERT INTO settee_docs (db_id, doc_id, tree, winner, deleted, seq, created) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        [(db.id, doc_id, tree, winner, deleted, db.update_seq + n, created)
         for n, (doc_id, tree, winner, deleted, created, exists) in enumerate(rows.docs, 1)
         if not exists],
    )
    sql.executemany(
        conn,
        "UPDATE settee_docs SET tree = ?, winner = ?, deleted = ?, seq = ? "
        "WHERE db_id = ? AND doc_id = ?",
        [(tree, winner, deleted, db.update_seq + n, db.id, doc_id)
         for n, (doc_id, tree, winner, deleted, _, exists) in enumerate(rows.docs, 1)
         if exists],
    )
    sql.executemany(
        conn, "DELETE FROM settee_revs WHERE db_id = ? AND doc_id = ? AND rev = ?",
        [(db.id, doc_id, rev) for doc_id, rev in rows.dropped],
    )
    sql.executemany(
        conn, "INSERT INTO settee_revs (db_id, doc_id, rev, body) VALUES (?, ?, ?, ?)",
        [(db.id, doc_id, rev, packed) for doc_id, rev, packed in rows.bodies],
    )
    sql.executemany(conn, attachments.INSERT, rows.atts)
