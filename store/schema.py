"""The store's tables on SQLAlchemy Core, shared by SQLite and PostgreSQL.

One logical database (`/db`) is rows keyed by a database id in shared tables, so creating a
database is one INSERT and PostgreSQL needs no DDL at run time.

- `meta`: server-wide key/value pairs (the server uuid, the schema version).
- `dbs`: one row per database: name, update seq (the per-db counter every writer locks first),
  counters, revs limit, security object and an instance id that changes when a name is reused.
- `docs`: one row per document: its revision tree (JSON), winning rev, deleted flag, the seq of
  its latest change, and the created time.
- `revs`: revision bodies (record-layer bytes); leaf bodies always, older ones until compaction.
- `local_docs`: `_local/` documents: no tree, a `0-N` counter rev, never replicated.
- `purges`: what `_purge` removed, so indexes that follow the changes feed can catch up.
- `atts`: the attachments of each stored revision, in `_attachments` order: name, content type,
  digest, length and revpos. Rows go with their revision (a foreign key that cascades), so
  compaction, purge and database deletion drop them with the body.
- `blobs` and `blob_chunks`: attachment bytes, content-addressed by CouchDB's md5 digest and
  shared by every revision and database that holds the same bytes, in fixed-size chunk rows so
  a range read touches only the chunks it needs. A blob no `atts` row names is removed at
  compaction once it has not been touched for a grace period (`touched` is refreshed whenever a
  write reuses it).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)

SCHEMA_VERSION = 2

# Ids and names compare as bytes (CouchDB's raw order), never by a locale: SQLite's default
# BINARY collation does that already; PostgreSQL needs the "C" collation spelled out.
ByteText = Text().with_variant(Text(collation="C"), "postgresql")

metadata = MetaData()

meta = Table(
    "settee_meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

dbs = Table(
    "settee_dbs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", ByteText, nullable=False, unique=True),
    Column("instance", String(32), nullable=False),
    Column("update_seq", BigInteger, nullable=False, default=0),
    Column("purge_seq", BigInteger, nullable=False, default=0),
    Column("doc_count", BigInteger, nullable=False, default=0),
    Column("doc_del_count", BigInteger, nullable=False, default=0),
    Column("body_bytes", BigInteger, nullable=False, default=0),
    Column("revs_limit", Integer, nullable=False, default=1000),
    Column("security", Text, nullable=False, default="{}"),
    Column("created", Float, nullable=False),
)

docs = Table(
    "settee_docs",
    metadata,
    Column("db_id", Integer, ForeignKey("settee_dbs.id", ondelete="CASCADE"), primary_key=True),
    Column("doc_id", ByteText, primary_key=True),
    Column("tree", Text, nullable=False),
    Column("winner", Text, nullable=False),
    Column("deleted", Boolean, nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("created", Float, nullable=False),
    Index("settee_docs_seq", "db_id", "seq", unique=True),
)

revs = Table(
    "settee_revs",
    metadata,
    Column("db_id", Integer, ForeignKey("settee_dbs.id", ondelete="CASCADE"), primary_key=True),
    Column("doc_id", ByteText, primary_key=True),
    Column("rev", Text, primary_key=True),
    Column("body", LargeBinary, nullable=False),
)

local_docs = Table(
    "settee_local_docs",
    metadata,
    Column("db_id", Integer, ForeignKey("settee_dbs.id", ondelete="CASCADE"), primary_key=True),
    Column("doc_id", ByteText, primary_key=True),
    Column("rev", Integer, nullable=False),
    Column("body", LargeBinary, nullable=False),
)

purges = Table(
    "settee_purges",
    metadata,
    Column("db_id", Integer, ForeignKey("settee_dbs.id", ondelete="CASCADE"), primary_key=True),
    Column("purge_seq", BigInteger, primary_key=True),
    Column("doc_id", ByteText, nullable=False),
    Column("revs", Text, nullable=False),
    Column("update_seq", BigInteger, nullable=False),
)

blobs = Table(
    "settee_blobs",
    metadata,
    Column("digest", String(64), primary_key=True),
    Column("length", BigInteger, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("touched", Float, nullable=False),
)

blob_chunks = Table(
    "settee_blob_chunks",
    metadata,
    Column("digest", String(64), ForeignKey("settee_blobs.digest", ondelete="CASCADE"),
           primary_key=True),
    Column("idx", Integer, primary_key=True, autoincrement=False),
    Column("data", LargeBinary, nullable=False),
)

atts = Table(
    "settee_atts",
    metadata,
    Column("db_id", Integer, primary_key=True, autoincrement=False),
    Column("doc_id", ByteText, primary_key=True),
    Column("rev", Text, primary_key=True),
    Column("name", ByteText, primary_key=True),
    Column("ord", Integer, nullable=False),
    Column("content_type", Text, nullable=False),
    Column("digest", String(64), ForeignKey("settee_blobs.digest"), nullable=False),
    Column("length", BigInteger, nullable=False),
    Column("revpos", Integer, nullable=False),
    Column("encoding", Text, nullable=True),
    ForeignKeyConstraint(["db_id", "doc_id", "rev"],
                         ["settee_revs.db_id", "settee_revs.doc_id", "settee_revs.rev"],
                         ondelete="CASCADE"),
    Index("settee_atts_digest", "digest"),
)
