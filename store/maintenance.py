"""Compaction (drop non-leaf bodies, stem trees, collect unused blobs) and purge.

Attachment rows go with the bodies they belong to (a cascading foreign key), so after compaction
or a purge a blob may be named by no revision at all; compaction then removes such blobs, but
only those untouched for `BLOB_GRACE` seconds, so bytes a concurrent write is reusing stay.
Blobs are shared by all databases, so compacting any database collects them for all.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import partial

import orjson

from . import blobs, notify, reads, revtree, sql
from .engine import Engine, Tx
from .writes import lock_db

PAGE = 500

BLOB_GRACE = 3600.0
"""Seconds an unreferenced blob survives its last use before compaction may remove it."""


def compact(engine: Engine, db_name: str) -> None:
    """Stem every tree to the db's revs limit and drop the bodies of non-leaf revisions.

    Works in pages of documents, each its own short write transaction, so other writers and
    WAL checkpoints are never held up for the whole database.
    """
    after: str | None = None
    while True:
        after = engine.run(partial(_compact_page, db_name=db_name, after=after))
        if after is None:
            break
    engine.run(lambda conn: sql.execute(
        conn,
        "UPDATE settee_dbs SET body_bytes = (SELECT coalesce(sum(length(body)), 0) "
        "FROM settee_revs WHERE settee_revs.db_id = settee_dbs.id) WHERE name = ?",
        (db_name,),
    ))
    blobs.collect(engine, BLOB_GRACE)


def _compact_page(conn: Tx, db_name: str, after: str | None) -> str | None:
    db = lock_db(conn, db_name)
    rows = sql.fetchall(
        conn,
        "SELECT doc_id, tree FROM settee_docs WHERE db_id = ? AND doc_id > ? "
        "ORDER BY doc_id LIMIT ?",
        (db.id, after if after is not None else "", PAGE),
    )
    if not rows:
        return None
    drop: list[tuple[int, str, str]] = []
    retree: list[tuple[str, int, str]] = []
    ids = [r[0] for r in rows]
    stored: dict[str, list[str]] = {}
    for chunk in sql.chunks(ids):
        for doc_id, rev in sql.fetchall(
            conn,
            f"SELECT doc_id, rev FROM settee_revs WHERE db_id = ? AND doc_id IN "
            f"({sql.in_params(len(chunk))})",
            (db.id, *chunk),
        ):
            stored.setdefault(doc_id, []).append(rev)
    for doc_id, tree_json in rows:
        tree = revtree.from_json(orjson.loads(tree_json))
        stemmed = revtree.stem(tree, db.revs_limit)
        if len(stemmed) != len(tree):
            retree.append((orjson.dumps(revtree.to_json(stemmed)).decode(), db.id, doc_id))
        keep = set(revtree.leaves(stemmed))
        drop.extend((db.id, doc_id, rev) for rev in stored.get(doc_id, []) if rev not in keep)
    sql.executemany(conn, "DELETE FROM settee_revs WHERE db_id = ? AND doc_id = ? AND rev = ?",
                    drop)
    sql.executemany(conn, "UPDATE settee_docs SET tree = ? WHERE db_id = ? AND doc_id = ?",
                    retree)
    return ids[-1] if len(rows) == PAGE else None


def purge(conn: Tx, db_name: str, request: Mapping[str, Sequence[str]]
          ) -> dict[str, list[str]]:
    """Remove the named leaf revs (and ancestors only they used); return what was purged."""
    db = lock_db(conn, db_name)
    infos = reads.doc_infos(conn, db.id, list(request))
    purged: dict[str, list[str]] = {}
    seq, purge_seq = db.update_seq, _purge_seq(conn, db.id)
    live, dead = db.doc_count, db.doc_del_count
    for doc_id, revs in request.items():
        info = infos.get(doc_id)
        gone = [r for r in dict.fromkeys(revs)
                if info is not None and revtree.is_leaf(info.tree, r)]
        purged[doc_id] = gone
        if not gone or info is None:
            continue
        remaining = [leaf for leaf in revtree.leaves(info.tree) if leaf not in gone]
        keep = {rev for leaf in remaining for rev in revtree.ancestry(info.tree, leaf)}
        removed = [rev for rev in info.tree if rev not in keep]
        purge_seq += 1
        seq += 1
        sql.execute(conn, "INSERT INTO settee_purges (db_id, purge_seq, doc_id, revs, update_seq) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (db.id, purge_seq, doc_id, orjson.dumps(gone).decode(), seq))
        sql.executemany(conn, "DELETE FROM settee_revs WHERE db_id = ? AND doc_id = ? AND rev = ?",
                        [(db.id, doc_id, rev) for rev in removed])
        if info.deleted:
            dead -= 1
        else:
            live -= 1
        if not remaining:
            sql.execute(conn, "DELETE FROM settee_docs WHERE db_id = ? AND doc_id = ?",
                        (db.id, doc_id))
            continue
        tree = {rev: node for rev, node in info.tree.items() if rev in keep}
        deleted = revtree.is_deleted(tree)
        live, dead = (live, dead + 1) if deleted else (live + 1, dead)
        sql.execute(conn, "UPDATE settee_docs SET tree = ?, winner = ?, deleted = ?, seq = ? "
                    "WHERE db_id = ? AND doc_id = ?",
                    (orjson.dumps(revtree.to_json(tree)).decode(), revtree.winner(tree),
                     deleted, seq, db.id, doc_id))
    sql.execute(conn, "UPDATE settee_dbs SET update_seq = ?, purge_seq = ?, doc_count = ?, "
                "doc_del_count = ? WHERE id = ?", (seq, purge_seq, live, dead, db.id))
    notify.announce(conn, db_name)
    return purged


def _purge_seq(conn: Tx, dbid: int) -> int:
    row = sql.fetchone(conn, "SELECT purge_seq FROM settee_dbs WHERE id = ?", (dbid,))
    return int(row[0]) if row else 0
