"""The view tables: one row per index, its map rows with a back-index by doc id, key reductions.

- `view_indexes`: one index per (database, view signature): the db seq it has consumed, its row
  count and byte size, and the whole-view reduction when it is known exactly (else NULL).
- `view_rows`: the map output, ordered by (key sort bytes, doc id, dup) so that SQL ranges answer
  `startkey`/`endkey`/`descending`; `dup` numbers identical-key emits of one document. The
  (index, doc id) index is the back-index: an update deletes exactly the doc's old rows.
- `view_reductions`: per index and distinct key (by sort bytes), the reduction of that key's
  values, the key JSON of the key's first row, its row count and whether every row of the key
  has that same key JSON (`uniform`; when not, the shown key is re-read after each change).

Deleting a database deletes its indexes, and an index its rows, by cascade. Index ids are never
reused (AUTOINCREMENT on SQLite, a sequence on PostgreSQL).
"""

from __future__ import annotations

import os
import threading

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from ..store.engine import Engine

# Doc ids compare as bytes (CouchDB's raw order): PostgreSQL needs the "C" collation spelled out.
ByteText = Text().with_variant(Text(collation="C"), "postgresql")

metadata = MetaData()

# The store's table, declared here only so that the foreign key resolves; never created from here.
_dbs = Table("settee_dbs", metadata, Column("id", Integer, primary_key=True))

indexes = Table(
    "settee_view_indexes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("db_id", Integer, ForeignKey("settee_dbs.id", ondelete="CASCADE"), nullable=False),
    Column("signature", String(32), nullable=False),
    Column("seq", BigInteger, nullable=False, default=0),
    Column("row_count", BigInteger, nullable=False, default=0),
    Column("bytes", BigInteger, nullable=False, default=0),
    Column("total", LargeBinary, nullable=True),
    Column("created", Float, nullable=False),
    UniqueConstraint("db_id", "signature", name="settee_view_indexes_sig"),
    sqlite_autoincrement=True,
)

rows = Table(
    "settee_view_rows",
    metadata,
    Column("index_id", Integer, ForeignKey("settee_view_indexes.id", ondelete="CASCADE"),
           primary_key=True),
    Column("key_bytes", LargeBinary, primary_key=True),
    Column("doc_id", ByteText, primary_key=True),
    Column("dup", Integer, primary_key=True, autoincrement=False),
    Column("key_json", LargeBinary, nullable=False),
    Column("value_json", LargeBinary, nullable=False),
    Index("settee_view_rows_doc", "index_id", "doc_id"),
    sqlite_with_rowid=False,
)

reductions = Table(
    "settee_view_reductions",
    metadata,
    Column("index_id", Integer, ForeignKey("settee_view_indexes.id", ondelete="CASCADE"),
           primary_key=True),
    Column("key_bytes", LargeBinary, primary_key=True),
    Column("key_json", LargeBinary, nullable=False),
    Column("reduction", LargeBinary, nullable=False),
    Column("row_count", BigInteger, nullable=False),
    Column("uniform", Boolean, nullable=False),
    sqlite_with_rowid=False,
)

TABLES = [indexes, rows, reductions]

_lock = threading.Lock()
_created: set[tuple[int, int]] = set()


def create(engine: Engine) -> None:
    """Create the view tables if missing: once per engine and process, safe across processes."""
    marker = (id(engine), os.getpid())
    if marker in _created:
        return
    with _lock:
        if marker in _created:
            return
        engine.create_schema(metadata, tables=TABLES)
        _created.add(marker)
