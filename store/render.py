"""Documents as JSON bytes: stored body bytes spliced with `_id`, `_rev` and the meta members.

A stored body is the canonical JSON of the document without its special members, plus, when the
revision has attachments, a last member `_attachments` holding their stubs. A document is rendered
by splicing, never by parsing and re-encoding the body: that keeps GET cheap and keeps every
number exactly as it was stored, and every reader shows attachment stubs for free.

`attachment_stubs` is the stub rendering; `strip_attachments` recovers the fields of a body so
that `attachments_member` can render the attachments another way (inline base64 `data` for
`attachments=true`, `follows` for multipart bodies).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from . import revtree
from .serialize import dumps

if TYPE_CHECKING:
    from .attachments import AttMeta


def doc_bytes(
    doc_id: str,
    rev: str,
    body: bytes,
    *,
    deleted: bool = False,
    extra: Sequence[tuple[str, Any]] = (),
) -> bytes:
    """`{"_id":…,"_rev":…,<body members>,"_deleted":true?,<extra members>}`."""
    parts = [b'{"_id":', dumps(doc_id), b',"_rev":', dumps(rev)]
    inner = body[1:-1]
    if inner:
        parts.append(b",")
        parts.append(inner)
    if deleted:
        parts.append(b',"_deleted":true')
    for key, value in extra:
        parts.append(b",")
        parts.append(dumps(key))
        parts.append(b":")
        parts.append(dumps(value))
    parts.append(b"}")
    return b"".join(parts)


def revisions(tree: revtree.RevTree, rev: str, limit: int = 1000) -> dict[str, Any]:
    """`_revisions` for `rev`: its start pos and the ids of it and its ancestors, newest first."""
    path = revtree.ancestry(tree, rev)[:limit]
    return {"start": revtree.pos(rev), "ids": [r.partition("-")[2] for r in path]}


def revs_info(tree: revtree.RevTree, rev: str, available: set[str]) -> list[dict[str, str]]:
    """`_revs_info`: each ancestor's status (available, missing or deleted)."""
    out = []
    for r in revtree.ancestry(tree, rev):
        if tree[r][1] and r in available:
            status = "deleted"
        else:
            status = "available" if r in available else "missing"
        out.append({"rev": r, "status": status})
    return out


# -- attachments ---------------------------------------------------------------------------------

def stub(meta: AttMeta) -> dict[str, Any]:
    """One attachment as CouchDB's stub (`couch_att:to_json/4`, member order kept)."""
    return {"content_type": meta.content_type, "revpos": meta.revpos, "digest": meta.digest,
            "length": meta.length, "stub": True}


def attachment_stubs(atts: Sequence[AttMeta]) -> bytes:
    """The value of `_attachments` as stubs: `{"name":{"content_type",…,"stub":true},…}`."""
    return dumps({meta.name: stub(meta) for meta in atts})


def with_attachments(body: bytes, atts: Sequence[AttMeta]) -> bytes:
    """A body (fields only) with its attachments' stubs appended as the last member."""
    if not atts:
        return body
    sep = b"," if len(body) > 2 else b""
    return body[:-1] + sep + b'"_attachments":' + attachment_stubs(atts) + b"}"


def strip_attachments(body: bytes, atts: Sequence[AttMeta]) -> bytes:
    """The fields of a stored body whose attachments are `atts` (the inverse of the above)."""
    if not atts:
        return body
    tail = b'"_attachments":' + attachment_stubs(atts) + b"}"
    if not body.endswith(tail):
        raise ValueError("stored body does not end with its attachment stubs")
    head = body[:-len(tail)]
    return head[:-1] + b"}" if head.endswith(b",") else head + b"}"


def attachments_member(atts: Sequence[AttMeta], data: Mapping[str, bytes | None],
                       since: int = 0, follows: bool = False) -> dict[str, Any]:
    """`_attachments` with content: each attachment whose revpos is above `since` carries its
    bytes (base64 `data`, or `"follows":true` for a multipart body); the others are stubs."""
    out: dict[str, Any] = {}
    for meta in atts:
        if meta.revpos <= since:
            out[meta.name] = stub(meta)
            continue
        entry: dict[str, Any] = {"content_type": meta.content_type, "revpos": meta.revpos,
                                 "digest": meta.digest}
        if follows:
            entry["length"] = meta.length
            entry["follows"] = True
        else:
            raw = data.get(meta.name) or b""
            entry["data"] = base64.b64encode(raw).decode("ascii")
        out[meta.name] = entry
    return out
