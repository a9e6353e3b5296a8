"""A naive model of CouchDB revision trees, written apart from `store/revtree.py` on purpose."""

# The reliability tests compare settee with this model (test_reliability_model.py) and check the
# store's own rows with it (reliability.StoreView). A document is a flat map
# rev -> (parent rev or None, deleted) plus the bodies the store still keeps; everything is
# computed the plainest way: leaves are the revs nobody names as parent, the winner is the
# greatest leaf by (live, generation, rev id as stored), stemming keeps each leaf and its
# limit - 1 nearest ancestors, compaction keeps the bodies of leaves only.

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

Tree = dict[str, tuple[str | None, bool]]
_MD5_HEX = re.compile(r"[0-9a-f]{32}")


def rev_sort_key(rev: str, deleted: bool) -> tuple[bool, int, bytes]:
    """CouchDB's winner order: live before deleted, then longer history, then greater rev id
    compared as stored (16 raw bytes for an md5 hex id, else the id's UTF-8)."""
    pos, _, revid = rev.partition("-")
    raw = bytes.fromhex(revid) if _MD5_HEX.fullmatch(revid) else revid.encode("utf-8")
    return (not deleted, int(pos), raw)


def leaves(tree: Tree) -> list[str]:
    """Every rev no other rev names as parent, winner first."""
    parents = {parent for parent, _ in tree.values()}
    found = [rev for rev in tree if rev not in parents]
    found.sort(key=lambda rev: rev_sort_key(rev, tree[rev][1]), reverse=True)
    return found


def pos(rev: str) -> int:
    """The generation of a rev: pos("3-abc") == 3."""
    return int(rev.split("-", 1)[0])


@dataclass
class Doc:
    """One document in the model: the tree and the bodies the store still has."""

    tree: Tree = field(default_factory=dict)
    bodies: dict[str, dict[str, Any]] = field(default_factory=dict)

    def leaves(self) -> list[str]:
        return leaves(self.tree)

    def is_leaf(self, rev: str) -> bool:
        return rev in self.tree and all(parent != rev for parent, _ in self.tree.values())

    def deleted(self) -> bool:
        return all(self.tree[leaf][1] for leaf in self.leaves())

    def ancestry(self, rev: str) -> list[str]:
        out = [rev]
        while self.tree[out[-1]][0] is not None and self.tree[out[-1]][0] in self.tree:
            out.append(self.tree[out[-1]][0])  # type: ignore[arg-type]
        return out

    def stem(self, limit: int) -> int:
        """Keep each leaf and its limit-1 nearest ancestors; orphans become roots. How many
        revs went."""
        keep: set[str] = set()
        for leaf in self.leaves():
            keep.update(self.ancestry(leaf)[:limit])
        dropped = len(self.tree) - len(keep)
        self.tree = {rev: (parent if parent in keep else None, deleted)
                     for rev, (parent, deleted) in self.tree.items() if rev in keep}
        self.bodies = {rev: body for rev, body in self.bodies.items() if rev in keep}
        return dropped


class Model:
    """The database as the model sees it."""

    def __init__(self) -> None:
        self.docs: dict[str, Doc] = {}
        self.limit = 1000
        self.seq = 0
        self.stemmed = 0

    def doc(self, doc_id: str) -> Doc:
        return self.docs.setdefault(doc_id, Doc())

    def interactive(self, doc_id: str, rev: str | None, deleted: bool) -> str | None:
        """The parent an interactive edit extends, '' for a new root, None for a conflict."""
        doc = self.docs.get(doc_id)
        if doc is None or not doc.tree:
            return "" if rev is None else None
        if rev is not None:
            return rev if doc.is_leaf(rev) else None
        return doc.leaves()[0] if doc.deleted() else None

    def add(self, doc_id: str, parent: str, rev: str, deleted: bool, body: dict[str, Any]
            ) -> None:
        doc = self.doc(doc_id)
        assert rev not in doc.tree, f"{doc_id}: new rev {rev} already in the tree"
        assert pos(rev) == (pos(parent) + 1 if parent else 1), f"{doc_id}: {rev} after {parent}"
        doc.tree[rev] = (parent or None, deleted)
        doc.bodies[rev] = body
        self.after_write(doc)

    def replicate(self, doc_id: str, path: list[str], deleted: bool, body: dict[str, Any]
                  ) -> bool:
        """Merge a replicated path (newest first); False when its leaf was known already."""
        doc = self.doc(doc_id)
        if path[0] in doc.tree:
            return False
        for i, rev in enumerate(path):
            parent = path[i + 1] if i + 1 < len(path) else None
            if rev not in doc.tree:
                doc.tree[rev] = (parent, deleted and i == 0)
            elif doc.tree[rev][0] is None and parent is not None:
                doc.tree[rev] = (parent, doc.tree[rev][1])
            elif doc.tree[rev][0] is not None and doc.tree[rev][0] != parent:
                break  # a known rev keeps its ancestry; the path's other one adds nothing
        doc.bodies[path[0]] = body
        self.after_write(doc)
        return True

    def after_write(self, doc: Doc) -> None:
        if len(doc.tree) > self.limit:
            self.stemmed += doc.stem(self.limit)

    def compact(self) -> None:
        for doc in self.docs.values():
            self.stemmed += doc.stem(self.limit)
            doc.bodies = {leaf: doc.bodies[leaf] for leaf in doc.leaves() if leaf in doc.bodies}
