"""A revision's attachments: names, metadata, what an edit sends, and how its stubs resolve.

Every stored revision keeps its attachments as rows of `settee_atts` (name, content type, digest,
length, revpos, in `_attachments` order) pointing at shared blobs, and its stored body ends with
the same list rendered as CouchDB's stubs, so every reader that splices bodies (GET, `_all_docs`,
`_bulk_get`, `open_revs`, the changes feed, views) shows them without another query.

An edit's `_attachments` member becomes a list of `AttIn`, one per name, in order:

- inline `data` (base64, decoded at the edge into a `NewBlob`): new content; its revpos is the new
  revision's pos, or with `new_edits=false` the revpos sent (the revision's own pos if none);
- `follows`: the same, with the bytes from a later part of a `multipart/related` body;
- `stub`: keep an attachment already stored. An interactive edit finds it in the revision it
  replaces (by name, and revpos if given: `couch_att:merge_stubs`); a replicated edit looks in the
  nearest stored ancestor first and then in any stored revision of the document with that name and
  the revpos and digest given. Otherwise the whole write fails with 412 `missing_stub`;
- `keep`: metadata already resolved (a COPY, or a standalone attachment PUT carrying the others).

An edit without `_attachments` drops them all, as CouchDB does.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from . import revtree, sql
from .blobs import NewBlob, digest_md5
from .blobs import save as save_blob
from .engine import Tx
from .errors import BadRequest, StoreError

DEFAULT_CONTENT_TYPE = "application/octet-stream"


class MissingStub(StoreError):
    """A stub naming an attachment the document does not have (CouchDB: 412 `missing_stub`)."""


def missing_stub(doc_id: str, name: str) -> MissingStub:
    """CouchDB's error for an unresolvable stub (`couch_doc:merge_stubs/2`)."""
    return MissingStub(f"Invalid attachment stub in {doc_id} for {name}")


@dataclass(frozen=True, slots=True)
class AttMeta:
    """One stored attachment of one revision."""

    name: str
    content_type: str
    digest: str
    length: int
    revpos: int
    encoding: str | None = None

    @property
    def md5(self) -> bytes:
        """The raw md5 the rev hash takes (`couch_db:new_revid/1`)."""
        return digest_md5(self.digest) or b""


@dataclass(slots=True)
class AttIn:
    """One member of an edit's `_attachments`, before it is resolved in the write."""

    name: str
    content_type: str | None = None
    stub: bool = False
    follows: bool = False
    revpos: int | None = None
    digest: str | None = None
    length: int | None = None
    encoding: str | None = None
    blob: NewBlob | None = None
    keep: AttMeta | None = None


# -- resolution, inside the write transaction ---------------------------------------------------

Candidates = Sequence[tuple[str, Sequence[AttMeta]]]


def resolve(doc_id: str, wanted: Sequence[AttIn], stored: Callable[[], Candidates], *,
            revpos: int | None, strict_digest: bool) -> tuple[list[AttMeta], list[NewBlob]]:
    """The metadata of an edit's attachments and the new blobs to save.

    `stored()` lists (rev, attachments) to search for stubs, best first; it is called only if a
    stub needs it. `revpos` is the new revision's pos for new content (interactive edits), or None
    to keep what was sent (replicated edits), which also check a stub's digest when given.
    """
    metas: list[AttMeta] = []
    blobs: list[NewBlob] = []
    candidates: Candidates | None = None
    for att in wanted:
        if att.keep is not None:
            metas.append(att.keep)
        elif att.stub:
            if candidates is None:
                candidates = stored()
            found = _find(att, candidates, strict_digest)
            if found is None:
                raise missing_stub(doc_id, att.name)
            metas.append(found)
        elif att.blob is None:
            raise BadRequest(f"Attachment {att.name} follows, but no part carried its data")
        else:
            pos = revpos if revpos is not None else (att.revpos or 0)
            metas.append(AttMeta(att.name, att.content_type or DEFAULT_CONTENT_TYPE,
                                 att.blob.digest, att.blob.length, pos))
            blobs.append(att.blob)
    return metas, blobs


def _find(att: AttIn, candidates: Candidates, strict_digest: bool) -> AttMeta | None:
    for _rev, metas in candidates:
        for meta in metas:
            if meta.name != att.name:
                continue
            if att.revpos is not None and att.revpos != meta.revpos:
                continue
            if strict_digest and att.digest is not None and att.digest != meta.digest:
                continue
            return meta
    return None


def replicated_candidates(tree: revtree.RevTree, leaf: str,
                          stored: Mapping[str, Sequence[AttMeta]]) -> Candidates:
    """Stored revisions to search for a replicated edit's stubs: ancestors nearest first, then
    every other stored revision of the document."""
    ancestors = [rev for rev in revtree.ancestry(tree, leaf)[1:] if rev in stored]
    others = [rev for rev in stored if rev not in ancestors]
    return [(rev, stored[rev]) for rev in ancestors + others]


class EditAtts:
    """One edit's attachments while it is applied: resolved metadata and blobs to save."""

    def __init__(self, conn: Tx, dbid: int, doc_id: str, wanted: list[AttIn] | None,
                 now: float) -> None:
        self.conn, self.dbid, self.doc_id, self.wanted, self.now = conn, dbid, doc_id, wanted, now
        self.metas: list[AttMeta] = []
        self._blobs: list[NewBlob] = []

    def resolve(self, parent: str | None, new_pos: int) -> list[tuple[str, str, bytes]]:
        """Interactive: stubs come from `parent`, new content gets revpos `new_pos`."""
        if not self.wanted:
            return []
        conn, dbid, doc_id = self.conn, self.dbid, self.doc_id

        def stored() -> Candidates:
            if parent is None:
                return []
            return [(parent, load(conn, dbid, doc_id, [parent]).get(parent, []))]
        return self._resolved(stored, new_pos, strict_digest=False)

    def resolve_replicated(self, tree: revtree.RevTree, leaf: str) -> None:
        """Replicated: stubs come from stored ancestors first, revpos is kept as sent."""
        if not self.wanted:
            return
        conn, dbid, doc_id = self.conn, self.dbid, self.doc_id

        def stored() -> Candidates:
            found = load(conn, dbid, doc_id)
            return replicated_candidates(tree, leaf, found)
        for att in self.wanted:  # new content sent without a revpos belongs to this revision
            if not att.stub and att.revpos is None:
                att.revpos = revtree.pos(leaf)
        self._resolved(stored, None, strict_digest=True)

    def _resolved(self, stored: Callable[[], Candidates], revpos: int | None, *, strict_digest: bool
                  ) -> list[tuple[str, str, bytes]]:
        assert self.wanted is not None
        self.metas, self._blobs = resolve(self.doc_id, self.wanted, stored, revpos=revpos,
                                          strict_digest=strict_digest)
        return [(m.name, m.content_type, m.md5) for m in self.metas]

    def save_blobs(self) -> None:
        """Store the new bytes (once the edit is known to go through)."""
        for blob in self._blobs:
            save_blob(self.conn, blob, self.now)


# -- rows -------------------------------------------------------------------------------------

COLUMNS = "name, content_type, digest, length, revpos, encoding"

INSERT = (f"INSERT INTO settee_atts (db_id, doc_id, rev, ord, {COLUMNS}) "
          "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")


def rows(dbid: int, doc_id: str, rev: str, metas: Sequence[AttMeta]
         ) -> list[tuple[Any, ...]]:
    """Parameter rows for `INSERT`."""
    return [(dbid, doc_id, rev, i, m.name, m.content_type, m.digest, m.length, m.revpos,
             m.encoding) for i, m in enumerate(metas)]


def load(conn: Tx, dbid: int, doc_id: str, revs: Sequence[str] | None = None
         ) -> dict[str, list[AttMeta]]:
    """The attachments of the doc's stored revisions (all of them when `revs` is None), in
    order; revisions without attachments are absent."""
    query = f"SELECT rev, {COLUMNS} FROM settee_atts WHERE db_id = ? AND doc_id = ?"
    params: list[Any] = [dbid, doc_id]
    if revs is not None:
        if not revs:
            return {}
        query += f" AND rev IN ({sql.in_params(len(revs))})"
        params.extend(revs)
    out: dict[str, list[AttMeta]] = {}
    for row in sql.fetchall(conn, query + " ORDER BY rev, ord", params):
        out.setdefault(row[0], []).append(
            AttMeta(row[1], row[2], row[3], int(row[4]), int(row[5]), row[6]))
    return out
