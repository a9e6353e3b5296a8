"""Pure functions over a document's revision tree: leaves, the winner, edits, merges and stemming.

Representation
--------------
A document's history is a forest of revisions. It is held as a flat dict

    RevTree = dict[str, tuple[str | None, bool]]      # "3-abc" -> (parent rev or None, deleted)

Each key is a rev string "<pos>-<id>"; pos is the depth (1 for a create, +1 per edit). A node is
a root when its parent is None or names a rev that is not in the dict: stemming (below) removes
old ancestors, and a replicated branch whose ancestry was stemmed elsewhere arrives as a second
root. Leaves are the revs that are no node's parent; they are the document's current versions.
The deleted flag matters for leaves (tombstones); on an interior node it records what was known
when the node was written, and an interior node learned only from a `_revisions` list is
recorded as live because that list does not say.

Unlike CouchDB's nested paths (`couch_key_tree`), the flat map makes "is this rev known?" a dict
lookup and serialises as one small JSON object; walking up is a chain of lookups, and the few
operations that walk down (`descendant_leaves`) build a child index first.

The winner
----------
Every replica picks the same winning leaf without talking to the others: sort the leaves
descending by (not deleted, pos, id) and take the first. So a live leaf beats any tombstone,
then the longer edit history wins, and between equal depths the greater id wins, comparing ids
as CouchDB stores them: 16 raw bytes for a 32-hex md5 (the same order as comparing lowercase hex
strings), otherwise the id's utf-8 bytes. A document is deleted when every leaf is a tombstone.
The losing leaves are its `_conflicts` (live) and `_deleted_conflicts` (tombstones).

Merging and stemming
--------------------
Replication merges whole ancestries (`merge_path`, `merge`). Merging is a union: a node's
parent, once known, is kept, and a tombstone flag only ever turns on, so merging the same
paths in any order, any number of times, gives the same tree. `stem` then applies CouchDB's
`_revs_limit` the way `couch_key_tree:stem/2` does: a node survives if it is fewer than `limit`
generations above some leaf, so a linear history keeps its last `limit` revisions (1003 edits
with limit 1000 keep 4..1003). A short sibling branch can keep a shared ancestor alive, and the
longer branch then stays linked to it. The oldest survivor of each path becomes a root with
parent None and regains its parent if a later merge brings the ancestry back.

Every function here is pure: inputs are never mutated, and a changed tree is a new dict.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .revisions import revid_bytes

__all__ = [
    "RevTree",
    "add_edit",
    "ancestry",
    "conflicts",
    "deleted_conflicts",
    "descendant_leaves",
    "from_json",
    "is_deleted",
    "is_leaf",
    "leaves",
    "merge",
    "merge_path",
    "pos",
    "revisions_from",
    "stem",
    "to_json",
    "winner",
]

RevTree = dict[str, tuple[str | None, bool]]


def pos(rev: str) -> int:
    """The generation number of a rev string: pos("3-abc") == 3."""
    return int(rev[: rev.index("-")])


def _rank(rev: str, deleted: bool) -> tuple[bool, int, bytes]:
    """Sort key of a leaf; the winner has the greatest."""
    dash = rev.index("-")
    return (not deleted, int(rev[:dash]), revid_bytes(rev[dash + 1 :]))


def _leaf_set(tree: Mapping[str, tuple[str | None, bool]]) -> list[str]:
    if len(tree) == 1:
        return list(tree)  # a new document's tree: its one rev is its one leaf
    parents = {parent for parent, _ in tree.values()}
    return [rev for rev in tree if rev not in parents]


def leaves(tree: RevTree) -> list[str]:
    """Every leaf, winner first, then in descending (not deleted, pos, id) order."""
    return sorted(_leaf_set(tree), key=lambda rev: _rank(rev, tree[rev][1]), reverse=True)


def winner(tree: RevTree) -> str:
    """The winning leaf. Raises ValueError for an empty tree."""
    if not tree:
        raise ValueError("empty revision tree has no winner")
    if len(tree) == 1:
        return next(iter(tree))
    return max(_leaf_set(tree), key=lambda rev: _rank(rev, tree[rev][1]))


def is_deleted(tree: RevTree) -> bool:
    """True iff every leaf is a tombstone (so the winner is one too)."""
    return all(tree[rev][1] for rev in _leaf_set(tree))


def is_leaf(tree: RevTree, rev: str) -> bool:
    """True iff rev is in the tree and no node names it as parent."""
    if rev not in tree:
        return False
    return all(parent != rev for parent, _ in tree.values())


def conflicts(tree: RevTree) -> list[str]:
    """The live losing leaves, in winner order (a document's `_conflicts`)."""
    return [rev for rev in leaves(tree)[1:] if not tree[rev][1]]


def deleted_conflicts(tree: RevTree) -> list[str]:
    """The deleted losing leaves, in winner order (a document's `_deleted_conflicts`)."""
    return [rev for rev in leaves(tree)[1:] if tree[rev][1]]


def add_edit(tree: RevTree, parent: str | None, rev: str, deleted: bool) -> RevTree:
    """The tree after an interactive edit: rev extends the leaf `parent`, or is a new root.

    Raises ValueError when parent is not a leaf of the tree, rev is already known, or rev's pos
    is not one more than parent's (1 for a root). Choosing the parent (the winner for a
    re-create after delete, 409 for a stale rev) is the caller's business.
    """
    if rev in tree:
        raise ValueError(f"revision {rev} already exists")
    if parent is None:
        if pos(rev) != 1:
            raise ValueError(f"a new root must be at pos 1, not {rev}")
    else:
        if not is_leaf(tree, parent):
            raise ValueError(f"{parent} is not a leaf revision")
        if pos(rev) != pos(parent) + 1:
            raise ValueError(f"{rev} cannot follow {parent}")
    new = dict(tree)
    new[rev] = (parent, deleted)
    return new


def merge_path(tree: RevTree, path: Sequence[str], deleted: bool) -> RevTree:
    """The tree with a replicated ancestry merged in; path is newest first, as `revisions_from`.

    Missing revs are inserted, each linked to the next one in the path (the last one becomes a
    root unless it is known already); the first gets `deleted`, the others are recorded as live.
    A known rev keeps its data, except that a stemmed root (parent None) gains the parent the
    path gives and the path's leaf sets the tombstone flag if `deleted`. The path stops at a known
    rev whose parent differs from the path's: a rev id names its ancestry, so a crafted path that
    gives a known rev another parent adds nothing older (no bodiless root shows up as a leaf).
    Idempotent, and for consistent paths the result does not depend on their order.
    """
    if not path:
        raise ValueError("empty revision path")
    new = dict(tree)
    last = len(path) - 1
    for i, rev in enumerate(path):
        parent = path[i + 1] if i < last else None
        flag = deleted and i == 0
        known = new.get(rev)
        if known is None:
            new[rev] = (parent, flag)
            continue
        old_parent, old_flag = known
        if (old_parent is None and parent is not None) or (flag and not old_flag):
            new[rev] = (old_parent if old_parent is not None else parent, old_flag or flag)
        if old_parent is not None and old_parent != parent:
            break  # a known rev keeps the ancestry it has; the path's other one adds nothing
    return new


def revisions_from(start: int, ids: Sequence[str]) -> list[str]:
    """Rev strings from a `_revisions` object: (3, ["c", "b", "a"]) -> ["3-c", "2-b", "1-a"].

    Raises ValueError unless 1 <= len(ids) <= start and every id is a non-empty string.
    """
    if type(start) is not int or isinstance(ids, str):
        raise ValueError("_revisions needs an integer start and a list of ids")
    if not 1 <= len(ids) <= start:
        raise ValueError("_revisions start must be >= the number of ids, and ids non-empty")
    out: list[str] = []
    for i, revid in enumerate(ids):
        if type(revid) is not str or not revid:
            raise ValueError("_revisions ids must be non-empty strings")
        out.append(f"{start - i}-{revid}")
    return out


def ancestry(tree: RevTree, rev: str) -> list[str]:
    """rev followed by its ancestors that are still in the tree, newest first.

    Raises KeyError if rev is not in the tree.
    """
    out = [rev]
    parent = tree[rev][0]
    # The length bound only guards against a corrupt tree with a cycle.
    while parent is not None and parent in tree and len(out) <= len(tree):
        out.append(parent)
        parent = tree[parent][0]
    return out


def descendant_leaves(tree: RevTree, rev: str) -> list[str]:
    """The leaves at or below rev, winner first (what `latest=true` resolves rev to).

    Raises KeyError if rev is not in the tree.
    """
    if rev not in tree:
        raise KeyError(rev)
    children: dict[str, list[str]] = {}
    for child, (parent, _) in tree.items():
        if parent is not None:
            children.setdefault(parent, []).append(child)
    found: list[str] = []
    seen = {rev}
    todo = [rev]
    while todo:
        node = todo.pop()
        below = children.get(node)
        if not below:
            found.append(node)
            continue
        for child in below:
            if child not in seen:
                seen.add(child)
                todo.append(child)
    return sorted(found, key=lambda r: _rank(r, tree[r][1]), reverse=True)


def stem(tree: RevTree, limit: int) -> RevTree:
    """The tree with every node `limit` or more generations above all of its leaves removed.

    So every leaf and its `limit - 1` nearest ancestors survive, and nothing else does. A
    surviving node whose parent is not kept becomes a root (parent None), so stemming is
    idempotent and a later `merge_path` can re-attach it. Raises ValueError if limit < 1.
    """
    if limit < 1:
        raise ValueError("revs limit must be at least 1")
    budget: dict[str, int] = {}  # node -> most generations still allowed above it
    for leaf in _leaf_set(tree):
        node: str | None = leaf
        left = limit
        while left > 0 and node is not None and node in tree and budget.get(node, 0) < left:
            budget[node] = left
            node = tree[node][0]
            left -= 1
    return {
        node: (parent if parent in budget else None, deleted)
        for node, (parent, deleted) in tree.items()
        if node in budget
    }


def merge(a: RevTree, b: RevTree) -> RevTree:
    """The union of two trees; callers stem afterwards.

    For a rev in both, a known parent beats None (the lesser one if they disagree, which
    consistent trees never do) and the node is deleted if either says so. merge(a, b) ==
    merge(b, a).
    """
    new = dict(a)
    for rev, (pb, db) in b.items():
        known = new.get(rev)
        if known is None:
            new[rev] = (pb, db)
            continue
        pa, da = known
        parent = pb if pa is None or (pb is not None and pb < pa) else pa
        if parent != pa or (db and not da):
            new[rev] = (parent, da or db)
    return new


def to_json(tree: RevTree) -> dict[str, list[Any]]:
    """The tree as compact JSON: {"2-b": ["1-a", 0], "1-a": [null, 0]}."""
    return {rev: [parent, 1 if deleted else 0] for rev, (parent, deleted) in tree.items()}


def from_json(obj: Mapping[str, Sequence[Any]]) -> RevTree:
    """The inverse of to_json."""
    return {rev: (entry[0], bool(entry[1])) for rev, entry in obj.items()}
