"""Attachment bytes: content-addressed blobs, stored as fixed-size chunk rows and shared by all.

A blob is addressed by CouchDB's digest of its bytes, `md5-<base64 of the md5>`, so two revisions,
two documents or two databases holding the same bytes hold one blob. Its bytes are rows of
`CHUNK_SIZE` in `settee_blob_chunks`, keyed (digest, index), so reading a range touches only the
chunks it covers and a download reads a few chunks per short transaction, never holding a reader
open while the client drains the response.

md5 is what CouchDB reports, but it is not collision-resistant, and a shared store must not let one
client's crafted bytes stand in for another's: every blob also records its sha256, and reusing a
blob requires both digests and the length to match (`DigestCollision` otherwise).

Bytes come in as a `NewBlob`: in memory (inline base64) or spooled to a temporary file by a
`BlobWriter` that hashes them as they arrive, so the request body is read before any transaction
opens and the write transaction only copies local bytes.

A write that reuses a blob refreshes its `touched` time inside the writing transaction (on
PostgreSQL that also locks the row), and `collect` only removes blobs that no attachment row names
and that were not touched for a grace period, so a write racing a compaction never loses its bytes.
"""

from __future__ import annotations

import base64
import hashlib
import tempfile
import time
from collections.abc import Iterator
from functools import partial
from typing import IO

from . import sql
from .engine import Engine, Tx
from .errors import BadRequest

CHUNK_SIZE = 64 * 1024
"""Bytes per chunk row."""

READ_BATCH = 16
"""Chunks read per short transaction while streaming (1 MiB)."""

SPOOL_IN_MEMORY = 1024 * 1024
"""A `BlobWriter` keeps this much in memory before it spills to a temporary file."""

GC_BATCH = 100


class DigestCollision(BadRequest):
    """Bytes whose md5 matches a stored blob with different bytes (a crafted md5 collision)."""

    reason = "Attachment data has the md5 digest of different stored data."


class BlobMissing(RuntimeError):
    """A blob's chunks vanished while it was being read (a broken stream, never a short one)."""


def md5_digest(md5: bytes) -> str:
    """CouchDB's digest string for a raw md5."""
    return "md5-" + base64.b64encode(md5).decode("ascii")


def digest_md5(digest: str) -> bytes | None:
    """The raw md5 in a `md5-<base64>` digest, or None if it is not one."""
    if not digest.startswith("md5-"):
        return None
    try:
        raw = base64.b64decode(digest[4:], validate=True)
    except ValueError:
        return None
    return raw if len(raw) == 16 else None


class NewBlob:
    """Bytes on their way into the store: md5, sha256 and length, re-readable from the start."""

    def __init__(self, md5: bytes, sha256: str, length: int, source: bytes | IO[bytes]) -> None:
        self.md5 = md5
        self.sha256 = sha256
        self.length = length
        self._source = source

    @classmethod
    def from_bytes(cls, data: bytes) -> NewBlob:
        """A blob of bytes already in memory."""
        return cls(hashlib.md5(data).digest(), hashlib.sha256(data).hexdigest(), len(data), data)

    @property
    def digest(self) -> str:
        """CouchDB's `md5-<base64>` digest."""
        return md5_digest(self.md5)

    def chunks(self) -> Iterator[bytes]:
        """The bytes in `CHUNK_SIZE` pieces, from the start (a retried transaction re-reads)."""
        source = self._source
        if isinstance(source, bytes):
            for offset in range(0, len(source), CHUNK_SIZE):
                yield source[offset:offset + CHUNK_SIZE]
            return
        source.seek(0)
        while True:
            chunk = source.read(CHUNK_SIZE)
            if not chunk:
                return
            yield chunk

    def read(self) -> bytes:
        """All the bytes (for small blobs only)."""
        return b"".join(self.chunks())

    def close(self) -> None:
        """Drop the temporary file, if any."""
        if not isinstance(self._source, bytes):
            self._source.close()


class BlobWriter:
    """Collects bytes as they arrive, hashing them, in memory and then in a temporary file."""

    def __init__(self) -> None:
        # The file outlives this call on purpose: the `NewBlob` reads it again in the write.
        self._file: IO[bytes] = tempfile.SpooledTemporaryFile(  # noqa: SIM115
            max_size=SPOOL_IN_MEMORY)
        self._md5 = hashlib.md5()
        self._sha256 = hashlib.sha256()
        self.length = 0

    def write(self, data: bytes) -> None:
        """Append bytes."""
        self._md5.update(data)
        self._sha256.update(data)
        self._file.write(data)
        self.length += len(data)

    def finish(self) -> NewBlob:
        """The blob written so far."""
        return NewBlob(self._md5.digest(), self._sha256.hexdigest(), self.length, self._file)

    def discard(self) -> None:
        """Drop what was written."""
        self._file.close()


def save(conn: Tx, blob: NewBlob, now: float) -> None:
    """Store `blob` unless it is already stored (then refresh its `touched` time)."""
    digest = blob.digest
    reused = sql.execute(conn, "UPDATE settee_blobs SET touched = ? WHERE digest = ?",
                         (now, digest))
    if not reused:
        reused = not sql.execute(
            conn,
            "INSERT INTO settee_blobs (digest, length, sha256, touched) VALUES (?, ?, ?, ?) "
            "ON CONFLICT DO NOTHING",
            (digest, blob.length, blob.sha256, now),
        )
    if reused:
        row = sql.fetchone(conn, "SELECT sha256, length FROM settee_blobs WHERE digest = ?",
                           (digest,))
        if row is None or row[0] != blob.sha256 or int(row[1]) != blob.length:
            raise DigestCollision()
        return
    batch: list[tuple[str, int, bytes]] = []
    for index, chunk in enumerate(blob.chunks()):
        batch.append((digest, index, chunk))
        if len(batch) == READ_BATCH:
            _insert_chunks(conn, batch)
            batch = []
    _insert_chunks(conn, batch)


def _insert_chunks(conn: Tx, rows: list[tuple[str, int, bytes]]) -> None:
    sql.executemany(
        conn, "INSERT INTO settee_blob_chunks (digest, idx, data) VALUES (?, ?, ?)", rows)


def read(engine: Engine, digest: str, length: int, start: int = 0,
         stop: int | None = None) -> Iterator[bytes]:
    """Bytes `start` to `stop` (exclusive) of a blob, a few chunks per short read transaction."""
    stop = length if stop is None else min(stop, length)
    if start >= stop:
        return
    index, last = start // CHUNK_SIZE, (stop - 1) // CHUNK_SIZE
    while index <= last:
        upto = min(last, index + READ_BATCH - 1)
        with engine.transaction(snapshot=False) as conn:
            rows = sql.fetchall(
                conn,
                "SELECT idx, data FROM settee_blob_chunks WHERE digest = ? AND idx >= ? "
                "AND idx <= ? ORDER BY idx",
                (digest, index, upto),
            )
        if [int(r[0]) for r in rows] != list(range(index, upto + 1)):
            raise BlobMissing(digest)
        for chunk_index, data in rows:
            data = bytes(data)
            offset = int(chunk_index) * CHUNK_SIZE
            yield data[max(0, start - offset):stop - offset]
        index = upto + 1


def read_all(conn: Tx, digest: str) -> bytes:
    """A whole blob, inside the caller's transaction (for inline base64 `data`)."""
    rows = sql.fetchall(conn, "SELECT data FROM settee_blob_chunks WHERE digest = ? ORDER BY idx",
                        (digest,))
    return b"".join(bytes(r[0]) for r in rows)


_UNREFERENCED = ("touched < ? AND NOT EXISTS (SELECT 1 FROM settee_atts a "
                 "WHERE a.digest = settee_blobs.digest)")


def collect(engine: Engine, grace: float, now: float | None = None) -> int:
    """Remove blobs no attachment names and nobody touched for `grace` seconds; how many went.

    Each batch is its own short transaction, and the delete re-checks both conditions, so a
    write that reuses a blob meanwhile keeps it.
    """
    cutoff = (time.time() if now is None else now) - grace
    removed, after = 0, ""
    while True:
        found = engine.run(partial(_candidates, after=after, cutoff=cutoff), write=False)
        if not found:
            return removed
        removed += engine.run(partial(_delete, found=found, cutoff=cutoff))
        after = found[-1]


def _candidates(conn: Tx, after: str, cutoff: float) -> list[str]:
    """The next batch of collectable blobs, in digest order (one pass over the table)."""
    return [r[0] for r in sql.fetchall(
        conn, f"SELECT digest FROM settee_blobs WHERE digest > ? AND {_UNREFERENCED} "
        "ORDER BY digest LIMIT ?", (after, cutoff, GC_BATCH))]


def _delete(conn: Tx, found: list[str], cutoff: float) -> int:
    return sum(sql.execute(conn, f"DELETE FROM settee_blobs WHERE digest = ? AND {_UNREFERENCED}",
                           (digest, cutoff)) for digest in found)
