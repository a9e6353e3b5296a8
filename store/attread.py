"""Attachments as readers see them: each revision's metadata, and content for `attachments=true`.

A stored body already ends with its attachment stubs, so plain reads never come here. Readers
that send content (`attachments=true`, `atts_since`, multipart bodies) load the revision's
`AttMeta` rows, decide which attachments carry bytes (`since_pos`), and render the document with
`doc_with_data`, which the changes feed can call as the document endpoints do.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from . import revtree, sql
from .attachments import COLUMNS, AttMeta, load
from .blobs import read_all
from .engine import Tx
from .render import attachments_member, doc_bytes, strip_attachments

__all__ = ["doc_with_data", "load", "load_many", "since_pos"]


def load_many(conn: Tx, dbid: int, pairs: Sequence[tuple[str, str]]
              ) -> dict[tuple[str, str], list[AttMeta]]:
    """Attachments of many (doc id, rev) pairs."""
    out: dict[tuple[str, str], list[AttMeta]] = {}
    for chunk in sql.chunks(list(dict.fromkeys(pairs)), 400):
        cond = " OR ".join(["(doc_id = ? AND rev = ?)"] * len(chunk))
        found = sql.fetchall(
            conn, f"SELECT doc_id, rev, {COLUMNS} FROM settee_atts WHERE db_id = ? AND ({cond}) "
            "ORDER BY doc_id, rev, ord", (dbid, *[p for pair in chunk for p in pair]))
        for row in found:
            out.setdefault((row[0], row[1]), []).append(
                AttMeta(row[2], row[3], row[4], int(row[5]), int(row[6]), row[7]))
    return out


def since_pos(tree: revtree.RevTree, rev: str, atts_since: Sequence[str]) -> int:
    """For `atts_since`: the pos of the newest of those revs in `rev`'s ancestry, else 0
    (`couch_db:find_ancestor_rev_pos/2`); attachments with a greater revpos are sent."""
    wanted = set(atts_since)
    for ancestor in revtree.ancestry(tree, rev) if rev in tree else []:
        if ancestor in wanted:
            return revtree.pos(ancestor)
    return 0


def doc_with_data(conn: Tx, doc_id: str, rev: str, body: bytes, atts: Sequence[AttMeta], *,
                  deleted: bool = False, extra: Sequence[tuple[str, Any]] = (),
                  since: int = 0) -> bytes:
    """A document's JSON with the bytes of every attachment whose revpos is above `since` as
    base64 `data` (`attachments=true`), the others as stubs; `body` is the stored body."""
    if not atts:
        return doc_bytes(doc_id, rev, body, deleted=deleted, extra=extra)
    data = {m.name: read_all(conn, m.digest) for m in atts if m.revpos > since}
    member = attachments_member(atts, data, since)
    return doc_bytes(doc_id, rev, strip_attachments(body, atts), deleted=deleted,
                     extra=[*extra, ("_attachments", member)])
