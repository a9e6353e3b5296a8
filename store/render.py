"""Documents as JSON bytes: stored body bytes spliced with `_id`, `_rev` and the meta members.

A stored body is the canonical JSON of the document without its special members, so a document
is rendered by splicing, never by parsing and re-encoding the body: that keeps GET cheap and
keeps every number exactly as it was stored.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from . import revtree
from .serialize import dumps


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
