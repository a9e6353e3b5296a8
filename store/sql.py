"""Hand-written SQL for the hot paths, with the one place where the two dialects differ.

SQLAlchemy Core owns the schema, the dialects and the connection pool; the statements are kept
here as plain SQL in qmark style and sent through the driver cursor of the transaction's pooled
connection (Core's per-statement and per-connection cost was most of a document GET in profiles).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Any

import psycopg

from .engine import Tx
from .errors import BadRequest

INSERT_CHUNK = 200
COPY_MIN_ROWS = 50


@lru_cache(maxsize=1024)
def _for_format(sql: str) -> str:
    return sql.replace("%", "%%").replace("?", "%s")


def _dialect_sql(conn: Tx, sql: str) -> str:
    return sql if conn.dialect == "sqlite" else _for_format(sql)


def _check_text(params: Sequence[Any]) -> None:
    """No stored id, key or name holds U+0000 (PostgreSQL text cannot): refuse it up front."""
    for value in params:
        if type(value) is str and "\x00" in value:
            raise BadRequest("Strings must not contain the NUL character (U+0000)")


LONG_PARAMS = 50
"""More parameters than this (an IN list): PostgreSQL must not prepare the statement (below)."""


def _long(conn: Tx, params: Sequence[Any]) -> bool:
    """Whether this is a PostgreSQL statement with a long IN list (see `_open`)."""
    return conn.dialect != "sqlite" and len(params) > LONG_PARAMS


def _open(conn: Tx, sql: str, params: Sequence[Any]) -> Any:
    """Execute on a driver cursor of the transaction's connection and return that cursor.

    On PostgreSQL a statement with a long IN list is never prepared: psycopg prepares a
    statement after a few runs, PostgreSQL then keeps a generic plan, and a generic
    `IN ($1 .. $500)` compares each row with every parameter in turn (no hashing, as it does
    for constants); on a table whose statistics are not yet gathered, the `_bulk_docs` lookup
    of existing documents grew to 0.3 s and more per request. It also goes through a raw
    cursor with `$n` placeholders, as `executemany` does: psycopg would parse its `%s` anew
    each time (a tenth of a `_bulk_docs` on PostgreSQL)."""
    _check_text(params)
    if _long(conn, params):
        cur = _raw_cursor(conn)
        try:
            cur.execute(_numbered(sql), tuple(params), prepare=False)
        except BaseException:
            cur.close()
            raise
        return cur
    cur = conn.cursor()
    try:
        cur.execute(_dialect_sql(conn, sql), tuple(params))
    except BaseException:
        cur.close()
        raise
    return cur


def _raw_cursor(conn: Tx) -> Any:
    """PostgreSQL: a raw cursor (`$n` placeholders, taken as they are), made through the pool's
    proxy as every other cursor is."""
    driver = getattr(conn.raw, "dbapi_connection", conn.raw)
    factory, driver.cursor_factory = driver.cursor_factory, psycopg.RawCursor
    try:
        return conn.cursor()
    finally:
        driver.cursor_factory = factory


@lru_cache(maxsize=256)
def _numbered(sql: str) -> str:
    """`?` placeholders numbered `$1, $2, ...` (the statements here hold no literal `?`)."""
    parts = sql.split("?")
    return "".join(p + (f"${i + 1}" if i < len(parts) - 1 else "") for i, p in enumerate(parts))


def fetchall(conn: Tx, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    """Run a query through the driver cursor and return every row."""
    cur = _open(conn, sql, params)
    try:
        return cur.fetchall()  # type: ignore[no-any-return]
    finally:
        cur.close()


def fetchone(conn: Tx, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
    """Run a query through the driver cursor and return its first row, if any."""
    cur = _open(conn, sql, params)
    try:
        return cur.fetchone()  # type: ignore[no-any-return]
    finally:
        cur.close()


def execute(conn: Tx, sql: str, params: Sequence[Any] = ()) -> int:
    """Run a statement through the driver cursor and return its row count."""
    cur = _open(conn, sql, params)
    try:
        return int(cur.rowcount)
    finally:
        cur.close()


def executemany(conn: Tx, sql: str, rows: Iterable[Sequence[Any]]) -> None:
    """Run one statement for many parameter rows through the driver cursor.

    On PostgreSQL a plain `INSERT ... VALUES (...)` becomes multi-row VALUES statements of up
    to `INSERT_CHUNK` rows (one round trip per chunk instead of one per row), or a COPY from
    `COPY_MIN_ROWS` rows on.
    """
    rows = list(rows)
    if not rows:
        return
    head, sep, values = sql.rpartition(" VALUES ")
    plain_insert = (conn.dialect != "sqlite" and sep and head.lstrip().startswith("INSERT INTO ")
                    and "?" not in head and values.strip().startswith("(")
                    and values.strip().endswith(")"))
    if plain_insert and len(rows) >= COPY_MIN_ROWS:
        # COPY loads many rows two to three times faster than multi-row INSERTs (no statement
        # to parse and plan); a plain INSERT of new rows means the same thing.
        copy_rows(conn, head.lstrip()[len("INSERT INTO "):].strip(), rows)
        return
    if plain_insert:
        # A raw cursor takes `$n` placeholders as they are: psycopg's own `%s` conversion
        # parses every statement of more than 50 parameters anew, and that parse was most of
        # a 1,000-doc `_bulk_docs` on PostgreSQL (12 ms per 200-row statement).
        raw = _raw_cursor(conn)
        try:
            for chunk in chunks(rows, INSERT_CHUNK):
                raw.execute(_multi_row(sql, len(chunk)), [p for row in chunk for p in row],
                            prepare=False)
        finally:
            raw.close()
        return
    cur = conn.cursor()
    try:
        cur.executemany(_dialect_sql(conn, sql), rows)
    finally:
        cur.close()


def copy_rows(conn: Tx, target: str, rows: Iterable[Sequence[Any]]) -> None:
    """PostgreSQL: load `rows` into `target` (`table (col, ...)`) with one COPY."""
    cur = conn.cursor()
    try:
        with cur.copy(f"COPY {target} FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
    finally:
        cur.close()


@lru_cache(maxsize=256)
def _multi_row(sql: str, n: int) -> str:
    """`INSERT ... VALUES (?, ?), (?, ?), ...` for n rows, numbered `$1, $2, ...`."""
    head, _, values = sql.rpartition(" VALUES ")
    parts = values.strip().split("?")
    width = len(parts) - 1
    rows = []
    for r in range(n):
        numbered = [parts[0]]
        for i, part in enumerate(parts[1:]):
            numbered.append(f"${r * width + i + 1}{part}")
        rows.append("".join(numbered))
    return f"{head} VALUES {', '.join(rows)}"


def for_update(conn: Tx) -> str:
    """Row-lock suffix: PostgreSQL locks the counter row; SQLite's BEGIN IMMEDIATE already did."""
    return "" if conn.dialect == "sqlite" else " FOR UPDATE"


def by_keys(conn: Tx, select: str, table: str, where: str, params: Sequence[Any],
            column: str, keys: Sequence[str]) -> list[tuple[Any, ...]]:
    """The rows of `SELECT select FROM table WHERE where AND column = k` for each of the
    distinct `keys` (`params` fill `where`).

    PostgreSQL: one statement that looks each key up in the index on its own (`unnest` the keys,
    then a LATERAL subquery per key, fenced with `OFFSET 0` so the planner cannot merge it back
    into one scan), so it costs the same however large the database is. With
    `column = ANY(keys)` the planner scanned every row of the database and filtered them by key
    (a bitmap scan on its first index column, or a sequential scan once analysed): 1,000 ids
    took 2 ms at 10,000 documents and 10 ms at 50,000, growing with the database, against
    2.5 ms flat. SQLite takes IN lists of at most 500."""
    if conn.dialect == "sqlite":
        rows: list[tuple[Any, ...]] = []
        for chunk in chunks(keys):
            rows += fetchall(conn, f"SELECT {select} FROM {table} WHERE {where} AND {column} "
                                   f"IN ({in_params(len(chunk))})", (*params, *chunk))
        return rows
    _check_text(keys)
    return fetchall(
        conn,
        f"SELECT x.* FROM unnest(?::text[]) AS k(settee_key) CROSS JOIN LATERAL "
        f"(SELECT {select} FROM {table} WHERE {where} AND {column} = k.settee_key OFFSET 0) x",
        (list(keys), *params),
    )


def in_params(n: int) -> str:
    """`?, ?, ?` for an IN list of n parameters."""
    return ", ".join("?" * n)


def chunks(items: Sequence[Any], size: int = 500) -> Iterable[Sequence[Any]]:
    """Split a parameter list so IN lists stay below driver limits."""
    for i in range(0, len(items), size):
        yield items[i:i + size]
