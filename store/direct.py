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
from typing import Any

import orjson
from sqlalchemy import DDL as SchemaDDL
from sqlalchemy import event

from . import notify, sql
from .engine import Tx
from .schema import metadata
from .writes import Prepared, WriteResult, rows_of

FUNCTION = "settee_write_v1"  # a new signature or meaning gets a new name: nodes may differ

DDL = f"""
CREATE OR REPLACE FUNCTION {FUNCTION}(
    p_name text, p_db integer, p_revs_limit integer, p_security text, p_ddocs jsonb,
    p_seen jsonb, p_docs jsonb, p_bodies jsonb, p_dropped jsonb,
    p_live bigint, p_dead bigint, p_bytes bigint, p_channel text
) RETURNS bigint LANGUAGE plpgsql VOLATILE AS $fn$
DECLARE
    base bigint;
    r record;
BEGIN
    SELECT update_seq INTO base FROM settee_dbs
     WHERE name = p_name AND id = p_db AND security = p_security
       AND (p_revs_limit IS NULL OR revs_limit = p_revs_limit)
       FOR UPDATE;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    -- "id rev": a rev holds no space, so the pair is told apart however the id is spelt
    IF ARRAY(SELECT doc_id || ' ' || winner FROM settee_docs
              WHERE db_id = p_db AND doc_id >= '_design/' AND doc_id < '_design0'
                AND NOT deleted ORDER BY doc_id)
       IS DISTINCT FROM
       ARRAY(SELECT (e->>0) || ' ' || (e->>1)
               FROM jsonb_array_elements(p_ddocs) WITH ORDINALITY AS x(e, n) ORDER BY n)
    THEN
        RETURN NULL;
    END IF;
    PERFORM 1
       FROM jsonb_array_elements(p_seen) AS s(e)
       LEFT JOIN LATERAL (SELECT d.seq, d.tree FROM settee_docs d
                           WHERE d.db_id = p_db AND d.doc_id = s.e->>0 OFFSET 0) d ON true
      WHERE d.seq IS DISTINCT FROM (s.e->>1)::bigint OR d.tree IS DISTINCT FROM s.e->>2
      LIMIT 1;
    IF FOUND THEN
        RETURN NULL;
    END IF;
    UPDATE settee_dbs
       SET update_seq = update_seq + jsonb_array_length(p_docs),
           doc_count = doc_count + p_live, doc_del_count = doc_del_count + p_dead,
           body_bytes = body_bytes + p_bytes
     WHERE id = p_db;
    INSERT INTO settee_docs (db_id, doc_id, tree, winner, deleted, seq, created)
    SELECT p_db, e->>0, e->>1, e->>2, (e->>3)::boolean, base + n, (e->>4)::float8
      FROM jsonb_array_elements(p_docs) WITH ORDINALITY AS u(e, n)
     WHERE NOT (e->>5)::boolean;
    FOR r IN SELECT e->>0 AS doc_id, e->>1 AS tree, e->>2 AS winner,
                    (e->>3)::boolean AS deleted, n
               FROM jsonb_array_elements(p_docs) WITH ORDINALITY AS u(e, n)
              WHERE (e->>5)::boolean LOOP
        UPDATE settee_docs SET tree = r.tree, winner = r.winner, deleted = r.deleted,
                               seq = base + r.n
         WHERE db_id = p_db AND doc_id = r.doc_id;
    END LOOP;
    FOR r IN SELECT e->>0 AS doc_id, e->>1 AS rev FROM jsonb_array_elements(p_dropped) AS x(e)
    LOOP
        DELETE FROM settee_revs WHERE db_id = p_db AND doc_id = r.doc_id AND rev = r.rev;
    END LOOP;
    INSERT INTO settee_revs (db_id, doc_id, rev, body)
    SELECT p_db, e->>0, e->>1, decode(e->>2, 'hex')
      FROM jsonb_array_elements(p_bodies) AS b(e);
    PERFORM pg_notify(p_channel, p_name);
    RETURN base;
END
$fn$
"""

SIGNATURE = (f"{FUNCTION}(text, integer, integer, text, jsonb, jsonb, jsonb, jsonb, jsonb, "
             "bigint, bigint, bigint, text)")


def _missing(ddl: object, target: object, bind: Any, **kw: Any) -> bool:
    """Whether the function is not there yet: a start never rewrites it, so that a node can
    start while the disk is full, and the name changes with its signature or meaning."""
    return bind.exec_driver_sql(f"SELECT to_regprocedure('{SIGNATURE}')").scalar() is None


# Created with the schema, in its transaction (under the advisory lock that serialises nodes'
# first starts: concurrent CREATE OR REPLACE of one function fails).
event.listen(metadata, "after_create",
             SchemaDDL(DDL).execute_if(  # type: ignore[no-untyped-call]  # SQLAlchemy's DDL
                 dialect="postgresql", callable_=_missing))  # type: ignore[arg-type]

_CALL = (
    f"SELECT {FUNCTION}(?::text, ?::integer, ?::integer, ?::text, ?::jsonb, ?::jsonb, "
    "?::jsonb, ?::jsonb, ?::jsonb, ?::bigint, ?::bigint, ?::bigint, ?::text)"
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
    try:
        payload = [orjson.dumps(part).decode() for part in (
            ddocs,
            [(doc_id, *(was or (None, None))) for doc_id, was in prepared.seen.items()],
            rows.docs,
            [(doc_id, rev, packed.hex()) for doc_id, rev, packed in rows.bodies],
            rows.dropped,
        )]
    except orjson.JSONEncodeError:  # a string JSON cannot carry: the transaction path will do
        return None
    row = sql.fetchone(conn, _CALL, (
        db_name, prepared.db_id, prepared.revs_limit, security, *payload,
        rows.live, rows.dead, rows.added_bytes, notify.CHANNEL,
    ))
    if row is None or row[0] is None:
        return None
    return prepared.results
