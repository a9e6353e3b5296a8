"""Revision trees: the winner rule, edits, replicated merges and stemming, with property tests."""

from __future__ import annotations

import hashlib
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from settee.store import revtree as rt
from settee.store.revtree import RevTree

H1 = "1-" + "a" * 32
H2 = "2-" + "b" * 32


def chain(*revs: str, deleted_leaf: bool = False) -> RevTree:
    """A linear history from the given revs, oldest first."""
    tree: RevTree = {}
    parent = None
    for i, rev in enumerate(revs):
        tree[rev] = (parent, deleted_leaf and i == len(revs) - 1)
        parent = rev
    return tree


def test_single_rev() -> None:
    tree = rt.add_edit({}, None, H1, False)
    assert tree == {H1: (None, False)}
    assert rt.leaves(tree) == [H1] and rt.winner(tree) == H1
    assert not rt.is_deleted(tree) and rt.is_leaf(tree, H1)
    assert rt.conflicts(tree) == [] and rt.deleted_conflicts(tree) == []


def test_higher_pos_wins() -> None:
    tree = rt.merge(chain("1-a", "2-b", "3-c"), chain("1-a", "2-z"))
    assert rt.winner(tree) == "3-c"
    assert rt.conflicts(tree) == ["2-z"]


def test_revid_breaks_pos_tie_by_bytes() -> None:
    low, high = "2-" + "0f" * 16, "2-" + "f0" * 16
    tree = rt.merge(chain("1-a", low), chain("1-a", high))
    assert rt.leaves(tree) == [high, low]
    # Hex ids compare as raw bytes, others as utf-8: "2-ff..." (bytes 0xff) beats "2-zz".
    tree = rt.merge(chain("1-a", "2-" + "f" * 32), chain("1-a", "2-zz"))
    assert rt.winner(tree) == "2-" + "f" * 32
    tree = rt.merge(chain("1-a", "2-" + "1" * 32), chain("1-a", "2-zz"))
    assert rt.winner(tree) == "2-zz"


def test_live_leaf_beats_deeper_tombstone() -> None:
    tree = rt.merge(chain("1-a", "2-b", "3-c", deleted_leaf=True), chain("1-a", "2-z"))
    assert rt.winner(tree) == "2-z"
    assert not rt.is_deleted(tree)
    assert rt.conflicts(tree) == [] and rt.deleted_conflicts(tree) == ["3-c"]
    assert rt.leaves(tree) == ["2-z", "3-c"]


def test_all_leaves_deleted_means_deleted() -> None:
    a = chain("1-a", "2-b", "3-c", deleted_leaf=True)
    tree = rt.merge(a, chain("1-a", "2-z", deleted_leaf=True))
    assert rt.is_deleted(tree) and rt.winner(tree) == "3-c"
    assert rt.deleted_conflicts(tree) == ["2-z"]


def test_conflicts_in_winner_order() -> None:
    tree = chain("1-a")
    for rev in ("2-b", "2-d", "2-c"):
        tree = rt.merge_path(tree, [rev, "1-a"], False)
    tree = rt.merge_path(tree, ["2-e", "1-a"], True)
    assert rt.leaves(tree) == ["2-d", "2-c", "2-b", "2-e"]
    assert rt.conflicts(tree) == ["2-c", "2-b"]
    assert rt.deleted_conflicts(tree) == ["2-e"]


def test_recreate_after_delete_extends_the_tombstone() -> None:
    tree = rt.add_edit({}, None, "1-a", False)
    tree = rt.add_edit(tree, "1-a", "2-b", True)
    assert rt.is_deleted(tree)
    tree = rt.add_edit(tree, rt.winner(tree), "3-c", False)
    assert rt.winner(tree) == "3-c" and not rt.is_deleted(tree)
    assert rt.ancestry(tree, "3-c") == ["3-c", "2-b", "1-a"]


def test_add_edit_refuses_non_leaf_known_rev_and_wrong_pos() -> None:
    tree = chain("1-a", "2-b")
    with pytest.raises(ValueError):
        rt.add_edit(tree, "1-a", "2-c", False)  # 1-a is not a leaf any more
    with pytest.raises(ValueError):
        rt.add_edit(tree, "2-b", "2-b", False)
    with pytest.raises(ValueError):
        rt.add_edit(tree, "2-b", "4-c", False)
    with pytest.raises(ValueError):
        rt.add_edit(tree, None, "2-c", False)
    assert tree == chain("1-a", "2-b")  # inputs are never mutated


def test_merge_path_links_new_branch_and_fills_stemmed_root() -> None:
    stemmed = {"3-c": (None, False), "4-d": ("3-c", False)}
    tree = rt.merge_path(stemmed, ["4-x", "3-c", "2-b", "1-a"], True)
    assert tree["3-c"] == ("2-b", False)
    assert tree["4-x"] == ("3-c", True) and tree["1-a"] == (None, False)
    assert rt.winner(tree) == "4-d" and rt.deleted_conflicts(tree) == ["4-x"]
    assert stemmed == {"3-c": (None, False), "4-d": ("3-c", False)}
    assert rt.merge_path(tree, ["4-x", "3-c", "2-b", "1-a"], True) == tree
    with pytest.raises(ValueError):
        rt.merge_path(tree, [], False)


def test_revisions_from() -> None:
    assert rt.revisions_from(3, ["c", "b", "a"]) == ["3-c", "2-b", "1-a"]
    assert rt.revisions_from(1003, ["x"]) == ["1003-x"]
    for start, ids in [(1, []), (1, ["a", "b"]), (0, ["a"]), (True, ["a"]), (2, "ab"), (2, [""])]:
        with pytest.raises(ValueError):
            rt.revisions_from(start, ids)


def test_ancestry_and_descendant_leaves() -> None:
    tree = rt.merge(chain("1-a", "2-b", "3-c"), chain("1-a", "2-b", "3-d", "4-e"))
    tree = rt.merge(tree, chain("1-a", "2-z"))
    assert rt.ancestry(tree, "4-e") == ["4-e", "3-d", "2-b", "1-a"]
    assert rt.descendant_leaves(tree, "2-b") == ["4-e", "3-c"]
    assert rt.descendant_leaves(tree, "1-a") == ["4-e", "3-c", "2-z"]
    assert rt.descendant_leaves(tree, "3-c") == ["3-c"]
    with pytest.raises(KeyError):
        rt.ancestry(tree, "9-x")
    with pytest.raises(KeyError):
        rt.descendant_leaves(tree, "9-x")


def test_stem_1003_edits_to_1000_starts_at_pos_4() -> None:
    path = rt.revisions_from(1003, [f"r{n}" for n in range(1003, 0, -1)])
    tree = rt.stem(rt.merge_path({}, path, False), 1000)
    assert len(tree) == 1000
    assert min(map(rt.pos, tree)) == 4
    assert tree["4-r4"] == (None, False) and tree["5-r5"] == ("4-r4", False)
    # The stemmed ancestry re-attaches when a replicator sends it again.
    assert rt.merge_path(tree, path, False)["4-r4"] == ("3-r3", False)


def test_stem_keeps_ancestor_shared_with_short_branch_like_couchdb() -> None:
    tree = rt.merge(chain("1-a", "2-b", "3-c"), chain("1-a", "2-z"))
    stemmed = rt.stem(tree, 2)
    assert stemmed == {
        "1-a": (None, False),
        "2-b": ("1-a", False),
        "3-c": ("2-b", False),
        "2-z": ("1-a", False),
    }
    assert rt.stem(tree, 1) == {"3-c": (None, False), "2-z": (None, False)}
    with pytest.raises(ValueError):
        rt.stem(tree, 0)


def test_json_round_trip() -> None:
    tree = rt.merge(chain("1-a", "2-b", deleted_leaf=True), {"5-q": ("4-gone", False)})
    obj = rt.to_json(tree)
    assert obj == {"1-a": [None, 0], "2-b": ["1-a", 1], "5-q": ["4-gone", 0]}
    assert rt.from_json(json.loads(json.dumps(obj))) == tree


def test_pos_and_empty_tree() -> None:
    assert rt.pos("12-abc-d") == 12
    with pytest.raises(ValueError):
        rt.winner({})


# --- property tests -----------------------------------------------------------------------


@st.composite
def histories(draw: st.DrawFn) -> tuple[RevTree, list[tuple[list[str], bool]]]:
    """A true revision forest and replicated paths cut from it (newest first, maybe stemmed)."""
    truth: RevTree = {}
    revs: list[str] = []
    for n in range(draw(st.integers(1, 20))):
        parent = None
        if revs and draw(st.integers(0, 7)) > 0:
            parent = draw(st.sampled_from(revs))
        depth = 1 if parent is None else rt.pos(parent) + 1
        if draw(st.booleans()):
            revid = hashlib.md5(f"{n}{draw(st.integers(0, 9))}".encode()).hexdigest()
        else:
            revid = draw(st.sampled_from(["x", "y", "z", "1", "ff"])) + str(n)
        rev = f"{depth}-{revid}"
        truth[rev] = (parent, draw(st.booleans()))
        revs.append(rev)
    paths = []
    for rev in draw(st.lists(st.sampled_from(revs), min_size=1, max_size=12)):
        full = rt.ancestry(truth, rev)
        paths.append((full[: draw(st.integers(1, len(full)))], truth[rev][1]))
    return truth, paths


def fold(paths: list[tuple[list[str], bool]], tree: RevTree | None = None) -> RevTree:
    tree = {} if tree is None else tree
    for path, deleted in paths:
        tree = rt.merge_path(tree, path, deleted)
    return tree


@settings(max_examples=300)
@given(st.data())
def test_merge_path_is_idempotent_and_order_independent(data: st.DataObject) -> None:
    _, paths = data.draw(histories())
    tree = fold(paths)
    shuffled = data.draw(st.permutations(paths))
    assert fold(shuffled) == tree
    assert fold(paths, tree) == tree
    assert rt.winner(fold(shuffled)) == rt.winner(tree)


@settings(max_examples=300)
@given(st.data())
def test_merge_is_commutative_and_agrees_with_merge_path(data: st.DataObject) -> None:
    _, paths = data.draw(histories())
    cut = data.draw(st.integers(0, len(paths)))
    a, b = fold(paths[:cut]), fold(paths[cut:])
    assert rt.merge(a, b) == rt.merge(b, a) == fold(paths)
    assert rt.merge(a, a) == a


@settings(max_examples=300)
@given(st.data())
def test_winner_rule(data: st.DataObject) -> None:
    _, paths = data.draw(histories())
    tree = fold(paths)
    leaves = rt.leaves(tree)

    def rank(rev: str) -> tuple[bool, int, bytes]:
        pos, revid = rev.split("-", 1)
        hex_id = len(revid) == 32 and all(c in "0123456789abcdef" for c in revid)
        return (not tree[rev][1], int(pos), bytes.fromhex(revid) if hex_id else revid.encode())

    assert leaves == sorted(leaves, key=rank, reverse=True)
    assert rt.winner(tree) == leaves[0]
    assert rt.is_deleted(tree) == all(tree[r][1] for r in leaves)
    losers = rt.conflicts(tree) + rt.deleted_conflicts(tree)
    assert sorted(losers) == sorted(leaves[1:])
    assert all(rt.is_leaf(tree, r) for r in leaves)
    assert rt.from_json(rt.to_json(tree)) == tree


@settings(max_examples=300)
@given(st.data(), st.integers(1, 6))
def test_stem_keeps_leaves_and_only_the_last_limit_generations(
    data: st.DataObject, limit: int
) -> None:
    _, paths = data.draw(histories())
    tree = fold(paths)
    stemmed = rt.stem(tree, limit)
    leaves = rt.leaves(tree)
    assert rt.leaves(stemmed) == leaves
    assert rt.winner(stemmed) == rt.winner(tree)
    kept = {rev for leaf in leaves for rev in rt.ancestry(tree, leaf)[:limit]}
    assert set(stemmed) == kept
    for leaf in leaves:
        assert rt.ancestry(stemmed, leaf)[:limit] == rt.ancestry(tree, leaf)[:limit]
    if len(leaves) == 1:
        assert len(rt.ancestry(stemmed, leaves[0])) <= limit
    assert rt.stem(stemmed, limit) == stemmed
    assert all(p is None or p in stemmed for p, _ in stemmed.values())


def test_a_path_giving_a_known_rev_another_parent_adds_no_bodiless_leaf() -> None:
    # Found by the HTTP model on PostgreSQL: `2-b` is known under `1-x`; a crafted replicated
    # path puts it under `1-a`. `1-a` used to be added as a childless root, i.e. a leaf with no
    # body (`_bulk_get` answered not_found for a leaf). A rev id names its ancestry: keep it.
    tree = rt.merge_path({}, ["3-c", "2-b", "1-x"], True)
    merged = rt.merge_path(tree, ["3-d", "2-b", "1-a"], False)
    assert "1-a" not in merged
    assert sorted(rt.leaves(merged)) == ["3-c", "3-d"]
    assert rt.ancestry(merged, "3-d") == ["3-d", "2-b", "1-x"]
