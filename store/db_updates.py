"""Server-wide database events for `/_db_updates`: created, updated and deleted, each with a seq.

Events are derived from `settee_dbs`, never written by the write path: `record` compares the
databases as they are with the events recorded so far and appends what is new, in one short
write transaction that locks the event counter first, so concurrent recorders (other threads,
other workers, other nodes) serialise and the second finds nothing left to do. Seqs are
therefore allocated in commit order, and a reader that has seen seq N never later finds an
event below N.

Like CouchDB's `_global_changes` database, the log keeps one event per (database, type) at its
latest seq: a database updated a thousand times between two readings shows one `updated` event.
A database created and deleted between two recordings leaves no trace, and a recording is
taken when a `_db_updates` request reads the log (or is woken by a change), so events are
coarse in time too; CouchDB documents the same of `_db_updates`.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import BigInteger, Column, Integer, MetaData, String, Table, UniqueConstraint

from . import sql
from .engine import Engine, Tx
from .schema import ByteText

__all__ = ["Event", "create", "diff", "last_seq", "read", "record"]

metadata = MetaData()

events = Table(
    "settee_db_events",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("name", ByteText, nullable=False),
    Column("type", String(8), nullable=False),
    Column("instance", String(32), nullable=False),
    Column("update_seq", BigInteger, nullable=False),
    UniqueConstraint("name", "type", name="settee_db_events_name_type"),
)

counter = Table(
    "settee_db_events_seq",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("seq", BigInteger, nullable=False),
)

Recorded = dict[str, dict[str, tuple[int, str, int]]]  # name -> type -> (seq, instance, seq)
Live = dict[str, tuple[str, int]]  # name -> (instance, update_seq)


@dataclass(frozen=True, slots=True)
class Event:
    """One row of `_db_updates`."""

    seq: int
    name: str
    type: str


def create(engine: Engine) -> None:
    """Create the event tables if needed (idempotent, safe across processes)."""
    engine.create_schema(metadata)


def diff(live: Live, recorded: Recorded) -> list[tuple[str, str, str, int]]:
    """The events to append, as (name, type, instance, update_seq), in name order."""
    out: list[tuple[str, str, str, int]] = []
    for name in sorted(set(live) | set(recorded)):
        rec = recorded.get(name, {})
        created, deleted, updated = rec.get("created"), rec.get("deleted"), rec.get("updated")
        open_created = created is not None and (deleted is None or deleted[0] < created[0])
        if name not in live:
            if open_created:
                assert created is not None
                out.append((name, "deleted", created[1], created[2]))
            continue
        instance, update_seq = live[name]
        if created is None or created[1] != instance:
            if open_created:
                assert created is not None
                out.append((name, "deleted", created[1], created[2]))
            out.append((name, "created", instance, 0))
            if update_seq > 0:
                out.append((name, "updated", instance, update_seq))
            continue
        seen = updated[2] if updated is not None and updated[1] == instance else 0
        if update_seq > seen:
            out.append((name, "updated", instance, update_seq))
    return out


def record(engine: Engine) -> None:
    """Append the events that happened since the last recording (a no-op when none did)."""
    with engine.transaction() as conn:
        if not diff(_live(conn), _recorded(conn)):
            return
    engine.run(_append, write=True)


def _append(conn: Tx) -> None:
    sql.execute(conn, "INSERT INTO settee_db_events_seq (id, seq) VALUES (1, 0) "
                "ON CONFLICT DO NOTHING")
    row = sql.fetchone(conn, "SELECT seq FROM settee_db_events_seq WHERE id = 1"
                       + sql.for_update(conn))
    seq = int(row[0]) if row else 0
    todo = diff(_live(conn), _recorded(conn))  # again, now that we hold the counter
    for name, kind, instance, update_seq in todo:
        seq += 1
        sql.execute(conn, "DELETE FROM settee_db_events WHERE name = ? AND type = ?",
                    (name, kind))
        sql.execute(conn, "INSERT INTO settee_db_events (seq, name, type, instance, update_seq) "
                    "VALUES (?, ?, ?, ?, ?)", (seq, name, kind, instance, update_seq))
    sql.execute(conn, "UPDATE settee_db_events_seq SET seq = ? WHERE id = 1", (seq,))


def read(conn: Tx, *, after: int, limit: int, descending: bool = False) -> list[Event]:
    """Up to `limit` events after seq `after` (before it, descending), in seq order."""
    op, order = ("<", "DESC") if descending else (">", "ASC")
    rows = sql.fetchall(conn, f"SELECT seq, name, type FROM settee_db_events WHERE seq {op} ? "
                        f"ORDER BY seq {order} LIMIT ?", (after, limit))
    return [Event(int(s), str(n), str(t)) for s, n, t in rows]


def last_seq(conn: Tx) -> int:
    """The seq of the latest recorded event (0 before the first)."""
    row = sql.fetchone(conn, "SELECT seq FROM settee_db_events_seq WHERE id = 1")
    return int(row[0]) if row else 0


def _live(conn: Tx) -> Live:
    return {n: (i, int(s)) for n, i, s in
            sql.fetchall(conn, "SELECT name, instance, update_seq FROM settee_dbs")}


def _recorded(conn: Tx) -> Recorded:
    out: Recorded = {}
    for name, kind, seq, instance, update_seq in sql.fetchall(
            conn, "SELECT name, type, seq, instance, update_seq FROM settee_db_events"):
        out.setdefault(name, {})[kind] = (int(seq), instance, int(update_seq))
    return out
