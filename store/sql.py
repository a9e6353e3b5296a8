"""Hand-written SQL for the hot paths, with the one place where the two dialects differ.

SQLAlchemy Core owns the schema and the cold paths; the statements that every document read and
write runs are kept here as plain SQL in qmark style and sent through the driver cursor of the
transaction's connection (Core's per-statement cost showed up at 31-42% in profiles).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Any

from sqlalchemy.engine import Connection


@lru_cache(maxsize=256)
def _for_format(sql: str) -> str:
    return sql.replace("%", "%%").replace("?", "%s")


def _dialect_sql(conn: Connection, sql: str) -> str:
    return sql if conn.dialect.name == "sqlite" else _for_format(sql)


def fetchall(conn: Connection, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    """Run a query through the driver cursor and return every row."""
    cur = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cur.execute(_dialect_sql(conn, sql), tuple(params))
        return cur.fetchall()
    finally:
        cur.close()


def fetchone(conn: Connection, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
    """Run a query through the driver cursor and return its first row, if any."""
    cur = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cur.execute(_dialect_sql(conn, sql), tuple(params))
        return cur.fetchone()
    finally:
        cur.close()


def execute(conn: Connection, sql: str, params: Sequence[Any] = ()) -> int:
    """Run a statement through the driver cursor and return its row count."""
    cur = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cur.execute(_dialect_sql(conn, sql), tuple(params))
        return cur.rowcount
    finally:
        cur.close()


def executemany(conn: Connection, sql: str, rows: Iterable[Sequence[Any]]) -> None:
    """Run one statement for many parameter rows through the driver cursor."""
    rows = list(rows)
    if not rows:
        return
    cur = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cur.executemany(_dialect_sql(conn, sql), rows)
    finally:
        cur.close()


def for_update(conn: Connection) -> str:
    """The row-lock suffix: PostgreSQL locks the counter row; SQLite's BEGIN IMMEDIATE already did."""
    return "" if conn.dialect.name == "sqlite" else " FOR UPDATE"


def in_params(n: int) -> str:
    """`?, ?, ?` for an IN list of n parameters."""
    return ", ".join("?" * n)


def chunks(items: Sequence[Any], size: int = 500) -> Iterable[Sequence[Any]]:
    """Split a parameter list so IN lists stay below driver limits."""
    for i in range(0, len(items), size):
        yield items[i:i + size]
