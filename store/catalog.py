"""Databases as rows: create, delete, list, describe; the server's uuid and other meta values."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

from . import notify, sql
from .engine import Tx
from .errors import DbExists, DbNotFound


@dataclass(slots=True)
class DbInfo:
    """What `GET /{db}` reports, as stored."""

    name: str
    instance: str
    update_seq: int
    purge_seq: int
    doc_count: int
    doc_del_count: int
    body_bytes: int
    revs_limit: int
    created: float


# CouchDB 3's `_security` for a new database: only admins may read or write until it is changed.
DEFAULT_SECURITY = '{"members":{"roles":["_admin"]},"admins":{"roles":["_admin"]}}'


def meta_value(conn: Tx, key: str, initial: str) -> str:
    """A server-wide value kept in `settee_meta`, set to `initial` by the first caller only."""
    sql.execute(conn, "INSERT INTO settee_meta (key, value) VALUES (?, ?) ON CONFLICT DO NOTHING",
                (key, initial))
    row = sql.fetchone(conn, "SELECT value FROM settee_meta WHERE key = ?", (key,))
    assert row is not None
    return str(row[0])


def server_uuid(conn: Tx) -> str:
    """The server's uuid, created once and kept in the store (PouchDB builds checkpoints on it)."""
    sql.execute(conn, "INSERT INTO settee_meta (key, value) VALUES ('uuid', ?) "
                "ON CONFLICT DO NOTHING", (uuid.uuid4().hex,))
    row = sql.fetchone(conn, "SELECT value FROM settee_meta WHERE key = 'uuid'")
    assert row is not None
    return str(row[0])


def create_db(conn: Tx, name: str, security: str = DEFAULT_SECURITY) -> None:
    """Insert the database row, or raise `DbExists` (a lost race is `DbExists` too)."""
    inserted = sql.execute(
        conn,
        "INSERT INTO settee_dbs (name, instance, update_seq, purge_seq, doc_count, "
        "doc_del_count, body_bytes, revs_limit, security, created) "
        "VALUES (?, ?, 0, 0, 0, 0, 0, 1000, ?, ?) ON CONFLICT DO NOTHING",
        (name, uuid.uuid4().hex, security, time.time()),
    )
    if inserted != 1:
        raise DbExists()
    notify.announce(conn, name)


def delete_db(conn: Tx, name: str) -> None:
    """Delete the database and, by cascade, every row that belongs to it."""
    row = sql.fetchone(conn, "SELECT id FROM settee_dbs WHERE name = ?" + sql.for_update(conn),
                       (name,))
    if row is None:
        raise DbNotFound()
    dbid = row[0]
    for table in ("settee_revs", "settee_docs", "settee_local_docs", "settee_purges"):
        sql.execute(conn, f"DELETE FROM {table} WHERE db_id = ?", (dbid,))
    sql.execute(conn, "DELETE FROM settee_dbs WHERE id = ?", (dbid,))
    notify.announce(conn, name)


def db_info(conn: Tx, name: str) -> DbInfo:
    """The stored counters of one database."""
    row = sql.fetchone(
        conn,
        "SELECT name, instance, update_seq, purge_seq, doc_count, doc_del_count, body_bytes, "
        "revs_limit, created FROM settee_dbs WHERE name = ?",
        (name,),
    )
    if row is None:
        raise DbNotFound()
    return DbInfo(*row)


def exists(conn: Tx, name: str) -> bool:
    """Whether the database exists."""
    return sql.fetchone(conn, "SELECT 1 FROM settee_dbs WHERE name = ?", (name,)) is not None


def list_dbs(
    conn: Tx,
    *,
    start: str | None = None,
    end: str | None = None,
    inclusive_end: bool = True,
    descending: bool = False,
    limit: int | None = None,
    skip: int = 0,
) -> list[str]:
    """Database names in byte order, with `_all_dbs`'s range and paging parameters."""
    where, params = ["1 = 1"], []
    lo, hi = (">=", "<=" if inclusive_end else "<")
    if descending:
        lo, hi = ("<=", ">=" if inclusive_end else ">")
    if start is not None:
        where.append(f"name {lo} ?")
        params.append(start)
    if end is not None:
        where.append(f"name {hi} ?")
        params.append(end)
    query = (f"SELECT name FROM settee_dbs WHERE {' AND '.join(where)} "
             f"ORDER BY name {'DESC' if descending else 'ASC'}")
    rows = sql.fetchall(conn, query, params)
    names = [r[0] for r in rows][skip:]
    return names if limit is None else names[:limit]


def get_security(conn: Tx, name: str) -> str:
    """The database's `_security` object as stored JSON text."""
    row = sql.fetchone(conn, "SELECT security FROM settee_dbs WHERE name = ?", (name,))
    if row is None:
        raise DbNotFound()
    return str(row[0])


def update_seq(conn: Tx, name: str) -> int | None:
    """The database's update seq, or None when it does not exist (one indexed row)."""
    row = sql.fetchone(conn, "SELECT update_seq FROM settee_dbs WHERE name = ?", (name,))
    return None if row is None else int(row[0])


def set_field(conn: Tx, name: str, column: str, value: Any) -> None:
    """Set one settable column (`security`, `revs_limit`) of a database."""
    if column not in ("security", "revs_limit"):
        raise ValueError(column)
    if sql.execute(conn, f"UPDATE settee_dbs SET {column} = ? WHERE name = ?", (value, name)) == 0:
        raise DbNotFound()
