"""PostgreSQL: a write worked out before the lock, stored by one call of a server-side function.

A write transaction from Python costs a round trip per statement while it holds its database's
lock (BEGIN, lock, read, counters, inserts, COMMIT), and after each one the writing thread must
win the GIL back from the threads serving other requests before it sends the next: under load,
most of the lock's hold time was spent there, and writers of one database queue on that lock.

So on PostgreSQL a write whose edits could be worked out before the lock (`writes.prepare`: no
attachments) is stored by `settee_write_v1`, called in autocommit: one statement that takes the
database's lock, checks that everything the write was worked out against still stands, stores
it, counts it, announces it and commits as it returns. The lock is held only inside PostgreSQL.

It checks, after the lock (each statement of a PL/pgSQL function takes a fresh snapshot, so it
sees whatever the writer it waited for committed): the database is the same one (id), with the
same `_revs_limit` and `_security`; its live design docs and their winning revs are the ones the
edits were validated against; every document read is as it was (same seq and tree text, or
still absent). If anything differs it stores nothing and returns NULL, and the write runs in a
transaction instead, worked out again under the lock (`writes.write_edits`), as if this path
did not exist: so it can never let a stale edit or validation through.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import DDL as SchemaDDL
from sqlalchemy import event

from . import notify, sql
from .engine import Tx
from .schema import metadata
from .writes import Prepared, WriteResult, rows_of

FUNCTION = "settee_write_v1"  # a new signature or meaning gets a new name: nodes may differ

DDL = f"""
CREATE OR REPLACE FUNCTION {FUNCTION}(
    p_name text, p_db integer, p_revs_limit integer, p_security text,
    p_ddoc_ids text[], p_ddoc_revs text[],
    p_seen_ids text[], p_seen_seqs bigint[], p_seen_trees text[],
    p_ids text[], p_trees text[], p_winners text[], p_deleted boolean[],
    p_created double precision[], p_exists boolean[],
    p_body_ids text[], p_body_revs text[], p_bodies bytea[],
    p_drop_ids text[], p_drop_revs text[],
    p_live bigint, p_dead bigint, p_bytes bigint, p_channel text
) RETURNS bigint LANGUAGE plpgsql VOLATILE AS $fn$
DECLARE
    base bigint;
    ddoc_ids text[];
    ddoc_revs text[];
    r record;
BEGIN
    SELECT update_seq INTO base FROM settee_dbs
     WHERE name = p_name AND id = p_db AND security = p_security
       AND (p_revs_limit IS NULL OR revs_limit = p_revs_limit)
       FOR UPDATE;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    SELECT coalesce(array_agg(doc_id ORDER BY doc_id), '{{}}'),
           coalesce(array_agg(winner ORDER BY doc_id), '{{}}')
      INTO ddoc_ids, ddoc_revs
      FROM settee_docs
     WHERE db_id = p_db AND doc_id >= '_design/' AND doc_id < '_design0' AND NOT deleted;
    IF ddoc_ids <> p_ddoc_ids OR ddoc_revs <> p_ddoc_revs THEN
        RETURN NULL;
    END IF;
    PERFORM 1
       FROM unnest(p_seen_ids, p_seen_seqs, p_seen_trees) AS s(doc_id, seq, tree)
       LEFT JOIN LATERAL (SELECT d.seq, d.tree FROM settee_docs d
                           WHERE d.db_id = p_db AND d.doc_id = s.doc_id OFFSET 0) d ON true
      WHERE d.seq IS DISTINCT FROM s.seq OR d.tree IS DISTINCT FROM s.tree
      LIMIT 1;
    IF FOUND THEN
        RETURN NULL;
    END IF;
    UPDATE settee_dbs
       SET update_seq = update_seq + cardinality(p_ids), doc_count = doc_count + p_live,
           doc_del_count = doc_del_count + p_dead, body_bytes = body_bytes + p_bytes
     WHERE id = p_db;
    INSERT INTO settee_docs (db_id, doc_id, tree, winner, deleted, seq, created)
    SELECT p_db, u.doc_id, u.tree, u.winner, u.deleted, base + u.n, u.created
      FROM unnest(p_ids, p_trees, p_winners, p_deleted, p_created, p_exists)
           WITH ORDINALITY AS u(doc_id, tree, winner, deleted, created, known, n)
     WHERE NOT u.known;
    FOR r IN SELECT * FROM unnest(p_ids, p_trees, p_winners, p_deleted, p_exists)
                      WITH ORDINALITY AS u(doc_id, tree, winner, deleted, known, n)
              WHERE u.known LOOP
        UPDATE settee_docs SET tree = r.tree, winner = r.winner, deleted = r.deleted,
                               seq = base + r.n
         WHERE db_id = p_db AND doc_id = r.doc_id;
    END LOOP;
    FOR r IN SELECT * FROM unnest(p_drop_ids, p_drop_revs) AS x(doc_id, rev) LOOP
        DELETE FROM settee_revs WHERE db_id = p_db AND doc_id = r.doc_id AND rev = r.rev;
    END LOOP;
    INSERT INTO settee_revs (db_id, doc_id, rev, body)
    SELECT p_db, b.doc_id, b.rev, b.body
      FROM unnest(p_body_ids, p_body_revs, p_bodies) AS b(doc_id, rev, body);
    PERFORM pg_notify(p_channel, p_name);
    RETURN base;
END
$fn$
"""

# Created with the schema, in its transaction (under the advisory lock that serialises nodes'
# first starts: concurrent CREATE OR REPLACE of one function fails), on every start.
event.listen(metadata, "after_create", SchemaDDL(DDL).execute_if(dialect="postgresql"))

_CALL = (
    f"SELECT {FUNCTION}(?, ?, ?, ?, ?::text[], ?::text[], ?::text[], ?::bigint[], ?::text[], "
    "?::text[], ?::text[], ?::text[], ?::boolean[], ?::float8[], ?::boolean[], "
    "?::text[], ?::text[], ?::bytea[], ?::text[], ?::text[], ?, ?, ?, ?)"
)


def write(conn: Tx, db_name: str, prepared: Prepared, security: str,
          ddocs: Sequence[tuple[str, str]]) -> list[WriteResult] | None:
    """Store `prepared` in one statement on a connection in autocommit, if the database still
    has `security` and the live design docs `ddocs` (id, winning rev) and nothing the write
    read has changed; its results, or None if it stored nothing (then write it in a
    transaction). A write that changes no document (every edit refused) is not stored here."""
    rows = rows_of(prepared.db_id, prepared.changed)
    if not rows.docs or rows.atts:
        return None
    seen = sorted(prepared.seen.items())
    row = sql.fetchone(conn, _CALL, (
        db_name, prepared.db_id, prepared.revs_limit, security,
        [doc_id for doc_id, _ in ddocs], [rev for _, rev in ddocs],
        [doc_id for doc_id, _ in seen],
        [was[0] if was else None for _, was in seen],
        [was[1] if was else None for _, was in seen],
        [d[0] for d in rows.docs], [d[1] for d in rows.docs], [d[2] for d in rows.docs],
        [d[3] for d in rows.docs], [d[4] for d in rows.docs], [d[5] for d in rows.docs],
        [b[0] for b in rows.bodies], [b[1] for b in rows.bodies], [b[2] for b in rows.bodies],
        [d[0] for d in rows.dropped], [d[1] for d in rows.dropped],
        rows.live, rows.dead, rows.added_bytes, notify.CHANNEL,
    ))
    if row is None or row[0] is None:
        return None
    return prepared.results
