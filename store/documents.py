"""One database as a versioned mapping: `db[id]`, `db[id] = doc`, `del db[id]`, iteration by id.

This is the Python face of the store and the same API the HTTP layer calls. Reads return the
winning revision; writes must name the rev they replace (`_rev`), else `Conflict`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from . import attachments, attparse, blobs, catalog, local, reads, revtree
from .attachments import AttMeta
from .errors import BadRequest, NotFound
from .render import doc_bytes
from .revisions import parse_rev
from .serialize import canonical_body
from .validate import body_fields, check_specials, validate_doc_id
from .writes import Edit, WriteResult, write_edits

if TYPE_CHECKING:
    from .store import Store

PAGE = 1000


def make_edit(doc_id: str, doc: dict[str, Any], *, new_edits: bool = True) -> Edit:
    """Validate a document body and turn it into an `Edit` (special members split off)."""
    validate_doc_id(doc_id, allow_local=False)
    check_specials(doc)
    rev = doc.get("_rev")
    revisions: list[str] | None = None
    if rev is not None:
        parse_rev(rev)
    if not new_edits:
        hist = doc.get("_revisions")
        if isinstance(hist, dict) and "start" in hist and "ids" in hist:
            try:
                revisions = revtree.revisions_from(hist["start"], hist["ids"])
            except (TypeError, ValueError) as exc:
                raise BadRequest(f"Invalid _revisions: {exc}") from None
            if rev is not None and rev != revisions[0]:
                raise BadRequest("_rev does not match _revisions")
        elif rev is None:
            raise BadRequest(
                "When `new_edits: false`, the document needs `_rev` or `_revisions` specified"
            )
    fields = body_fields(doc)
    atts = attparse.parse(doc["_attachments"]) if "_attachments" in doc else None
    return Edit(doc_id, fields, canonical_body(fields), bool(doc.get("_deleted", False)),
                rev, revisions, atts)


class Database:
    """A named database in a `Store`, with dict-like access to its winning revisions."""

    def __init__(self, store: Store, name: str) -> None:
        self.store = store
        self.name = name

    # -- writes --------------------------------------------------------------------------

    def write(self, edits: Sequence[Edit], *, new_edits: bool = True) -> list[WriteResult]:
        """Apply edits in one transaction; one result per edit, in order."""
        layer = self.store.layer
        return self.store.commits.submit(
            self.name,
            lambda conn: write_edits(conn, self.name, edits, new_edits=new_edits, layer=layer),
        )

    def save(self, doc_id: str, doc: dict[str, Any]) -> str:
        """Write one document (its `_rev` names the rev it replaces); return the new rev."""
        result = self.write([make_edit(doc_id, doc)])[0]
        if result.error is not None:
            raise result.error
        assert result.rev is not None
        return result.rev

    def __setitem__(self, doc_id: str, doc: dict[str, Any]) -> None:
        self.save(doc_id, doc)

    def delete(self, doc_id: str, rev: str) -> str:
        """Write a tombstone on top of `rev`; return the tombstone's rev."""
        return self.save(doc_id, {"_rev": rev, "_deleted": True})

    def __delitem__(self, doc_id: str) -> None:
        info, _ = self.open(doc_id)
        if info is None or info.deleted:
            raise NotFound("deleted" if info is not None else "missing")
        self.delete(doc_id, info.winner)

    # -- reads ---------------------------------------------------------------------------

    def open(self, doc_id: str, rev: str | None = None
             ) -> tuple[reads.DocInfo | None, bytes | None]:
        """The doc's tree and state and the JSON bytes of its winning body, or of `rev`'s when
        given (None if that rev has none); (None, None) for a missing doc. One statement."""
        with self.store.engine.transaction(snapshot=False) as conn:
            info, packed = reads.doc_with_winner(conn, self.name, doc_id, rev)
        body = self.store.layer.body_of(packed) if packed is not None else None
        return info, body

    def __getitem__(self, doc_id: str) -> dict[str, Any]:
        info, body = self.open(doc_id)
        if info is None or body is None:
            raise NotFound("missing")
        if info.deleted:
            raise NotFound("deleted")
        doc: dict[str, Any] = json.loads(doc_bytes(doc_id, info.winner, body))
        return doc

    def get(self, doc_id: str, default: Any = None) -> Any:
        """The winning body, or `default` if the doc is missing or deleted."""
        try:
            return self[doc_id]
        except NotFound:
            return default

    def __contains__(self, doc_id: object) -> bool:
        if not isinstance(doc_id, str):
            return False
        info, _ = self.open(doc_id)
        return info is not None and not info.deleted

    def __len__(self) -> int:
        with self.store.engine.transaction() as conn:
            return catalog.db_info(conn, self.name).doc_count

    def __iter__(self) -> Iterator[str]:
        """Live document ids in raw byte order, read in short pages."""
        after: str | None = None
        while True:
            with self.store.engine.transaction() as conn:
                dbid = reads.db_id(conn, self.name)
                rows = reads.id_range(conn, dbid, start=after, end=None, inclusive_end=True,
                                      descending=False, limit=PAGE, skip=0)
            fetched = len(rows)
            if after is not None and rows and rows[0].id == after:
                rows = rows[1:]
            yield from (row.id for row in rows)
            if fetched < PAGE or not rows:
                return
            after = rows[-1].id

    def revisions(self, doc_id: str, revs: Sequence[str] | None = None
                  ) -> tuple[reads.DocInfo | None, dict[str, bytes]]:
        """The doc's info and the JSON bodies of `revs` that still have one (None: every rev)."""
        with self.store.engine.transaction() as conn:
            dbid = reads.db_id(conn, self.name)
            info = reads.doc_info(conn, dbid, doc_id)
            if info is None:
                return None, {}
            wanted = list(info.tree) if revs is None else [r for r in revs if r in info.tree]
            packed = reads.bodies(conn, dbid, doc_id, wanted)
        body_of = self.store.layer.body_of
        return info, {rev: body_of(data) for rev, data in packed.items()}

    # -- attachments ---------------------------------------------------------------------

    def attachment(self, doc_id: str, name: str, rev: str | None = None) -> AttMeta:
        """One attachment of the winning (or the given) revision; `NotFound` with CouchDB's
        reasons: `missing`/`deleted` for the document, then "Document is missing attachment"."""
        with self.store.engine.transaction() as conn:
            dbid = reads.db_id(conn, self.name)
            info = reads.doc_info(conn, dbid, doc_id)
            if info is None:
                raise NotFound("missing")
            if rev is None:
                if info.deleted:
                    raise NotFound("deleted")
                rev = info.winner
            if rev not in info.tree or not reads.has_body(conn, dbid, doc_id, rev):
                raise NotFound("missing")
            found = attachments.load(conn, dbid, doc_id, [rev]).get(rev, [])
        for meta in found:
            if meta.name == name:
                return meta
        raise NotFound("Document is missing attachment")

    def attachments_of(self, doc_id: str, revs: Sequence[str]) -> dict[str, list[AttMeta]]:
        """The attachments of some stored revisions of a document."""
        with self.store.engine.transaction() as conn:
            return attachments.load(conn, reads.db_id(conn, self.name), doc_id, revs)

    def attachment_bytes(self, meta: AttMeta, start: int = 0, stop: int | None = None
                         ) -> Iterator[bytes]:
        """An attachment's bytes, or a range of them, read a few chunks at a time."""
        return blobs.read(self.store.engine, meta.digest, meta.length, start, stop)

    # -- local documents -----------------------------------------------------------------

    def local_get(self, doc_id: str) -> local.LocalDoc:
        """A `_local/` doc (`NotFound` if absent)."""
        with self.store.engine.transaction() as conn:
            return local.get(conn, reads.db_id(conn, self.name), doc_id)

    def local_put(self, doc_id: str, doc: dict[str, Any]) -> str:
        """Store a `_local/` doc; return its new `0-N` rev."""
        check_specials(doc)
        rev = doc.get("_rev")
        if rev is not None and not isinstance(rev, str):
            raise BadRequest("Invalid rev format")
        body = canonical_body(doc)
        counter = self.store.engine.run(lambda conn: local.put(conn, self.name, doc_id, body, rev))
        return f"0-{counter}"

    def local_delete(self, doc_id: str, rev: str | None) -> None:
        """Remove a `_local/` doc."""
        self.store.engine.run(lambda conn: local.delete(conn, self.name, doc_id, rev))
