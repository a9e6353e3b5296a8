"""`_local/` documents: no rev tree, a `0-N` counter rev, never in changes, views or replication.

CouchDB 3.x does not check the rev of a local document on update: it takes the counter of the rev
given (none means 0) and adds one. Deleting one removes it.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import sql
from .engine import Tx
from .errors import BadRequest, NotFound
from .writes import lock_db


@dataclass(slots=True)
class LocalDoc:
    """A stored local document: its id, counter and JSON body bytes."""

    id: str
    rev: int
    body: bytes


def local_rev(rev: str | None) -> int:
    """The counter of a `0-N` rev (None or absent counts as 0)."""
    if rev is None:
        return 0
    head, _, tail = rev.partition("-")
    if head != "0" or not tail.isdigit():
        raise BadRequest("Invalid rev format")
    return int(tail)


def get(conn: Tx, dbid: int, doc_id: str) -> LocalDoc:
    """The local doc, or `NotFound`."""
    row = sql.fetchone(
        conn, "SELECT rev, body FROM settee_local_docs WHERE db_id = ? AND doc_id = ?",
        (dbid, doc_id),
    )
    if row is None:
        raise NotFound("missing")
    return LocalDoc(doc_id, int(row[0]), bytes(row[1]))


def put(conn: Tx, db_name: str, doc_id: str, body: bytes, rev: str | None) -> int:
    """Store the local doc with counter rev+1 and return the new counter."""
    db = lock_db(conn, db_name)
    new = local_rev(rev) + 1
    if sql.execute(conn, "UPDATE settee_local_docs SET rev = ?, body = ? "
                   "WHERE db_id = ? AND doc_id = ?", (new, body, db.id, doc_id)) == 0:
        sql.execute(conn, "INSERT INTO settee_local_docs (db_id, doc_id, rev, body) "
                    "VALUES (?, ?, ?, ?)", (db.id, doc_id, new, body))
    return new


def delete(conn: Tx, db_name: str, doc_id: str, rev: str | None) -> None:
    """Remove the local doc; `NotFound` if there is none, `Conflict`-free as in CouchDB."""
    db = lock_db(conn, db_name)
    local_rev(rev)
    if sql.execute(conn, "DELETE FROM settee_local_docs WHERE db_id = ? AND doc_id = ?",
                   (db.id, doc_id)) == 0:
        raise NotFound("missing")


def listing(conn: Tx, dbid: int, *, start: str | None, end: str | None,
            inclusive_end: bool, descending: bool, limit: int | None,
            skip: int) -> list[LocalDoc]:
    """Local docs in raw id order for `_local_docs`."""
    where = ["db_id = ?"]
    params: list[object] = [dbid]
    lo, hi = (">=", "<=" if inclusive_end else "<")
    if descending:
        lo, hi = ("<=", ">=" if inclusive_end else ">")
    if start is not None:
        where.append(f"doc_id {lo} ?")
        params.append(start)
    if end is not None:
        where.append(f"doc_id {hi} ?")
        params.append(end)
    rows = sql.fetchall(
        conn,
        f"SELECT doc_id, rev, body FROM settee_local_docs WHERE {' AND '.join(where)} "
        f"ORDER BY doc_id {'DESC' if descending else 'ASC'}",
        params,
    )
    docs = [LocalDoc(r[0], int(r[1]), bytes(r[2])) for r in rows][skip:]
    return docs if limit is None else docs[:limit]
