"""What a batch does to the stored reductions: per key, and for the whole view, exact by delta.

For every key a batch touches (a removed old row or an added new row), the new stored reduction is
- gone, when the key has no rows left;
- `reduce(added)` for a new key;
- `rereduce([stored, reduce(added)])` when rows were only added (exact for every reducer);
- `subtract(stored, removed, added)` when that is exact (`_count`, `_sum` of integers);
- otherwise recomputed from the key's rows: those stored minus the changed documents' old rows,
  plus the new ones.
The shown key of a group is the key JSON of its first row (by doc id); a group whose rows do not
all carry the same JSON (`1` and `1.0`) has its first row re-read when it changes.

The whole-view total follows the same rules; when it cannot be kept exactly it is dropped (NULL)
and a whole-view query rereduces the per-key reductions instead.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .mapper import Row
from .reduce import INEXACT, Guarded, decode_state, encode_state, loads
from .storage import OldRow, Reduction

KeyRows = list[tuple[str, int, bytes, bytes]]
"""(doc id, dup, key JSON, value JSON) of stored rows, in row order."""


@dataclass
class KeyChange:
    """The rows a batch removes from and adds to one key."""

    removed: list[OldRow] = field(default_factory=list)
    added: list[Row] = field(default_factory=list)


@dataclass
class ReductionPlan:
    """Reduction writes of one batch for one index (rows as `apply` takes them, minus index id)."""

    delete: list[bytes] = field(default_factory=list)
    upsert: list[tuple[bytes, bytes, bytes, int, bool]] = field(default_factory=list)
    reread_first: list[bytes] = field(default_factory=list)


def by_key(old: Sequence[OldRow], new: Sequence[Row]) -> dict[bytes, KeyChange]:
    """The batch's changes grouped by key sort bytes."""
    out: dict[bytes, KeyChange] = {}
    for o in old:
        out.setdefault(o.key_bytes, KeyChange()).removed.append(o)
    for n in new:
        out.setdefault(n.key_bytes, KeyChange()).added.append(n)
    return out


def _needs_keys(reducer: Guarded) -> bool:
    return reducer.name not in ("_sum", "_count", "_stats")


def _reduce_new(reducer: Guarded, rows: Sequence[Row]) -> Any:
    keys = [[r.key, r.doc_id] for r in rows] if _needs_keys(reducer) else [None] * len(rows)
    return reducer.reduce(keys, [r.value for r in rows])


def plan_keys(reducer: Guarded, changes: dict[bytes, KeyChange],
              current: dict[bytes, Reduction], touched: set[str],
              read_rows: Callable[[list[bytes]], dict[bytes, KeyRows]]) -> ReductionPlan:
    """The new stored reduction of every key the batch touched."""
    plan = ReductionPlan()
    recompute: list[bytes] = []
    for kb, change in changes.items():
        cur = current.get(kb)
        count = (cur.row_count if cur else 0) - len(change.removed) + len(change.added)
        if count <= 0:
            if cur is not None:
                plan.delete.append(kb)
            continue
        if cur is None:
            first = min(change.added, key=lambda r: (r.doc_id, r.dup))
            uniform = all(r.key_json == first.key_json for r in change.added)
            state = _reduce_new(reducer, change.added)
            plan.upsert.append((kb, first.key_json, encode_state(state), count, uniform))
            continue
        stored = decode_state(cur.state)
        if not change.removed:
            state = reducer.add(stored, [r.value for r in change.added])
            if state is INEXACT:
                state = reducer.rereduce([stored, _reduce_new(reducer, change.added)])
        else:
            state = reducer.subtract(stored, [loads(o.value_json) for o in change.removed],
                                     [r.value for r in change.added])
            if state is INEXACT:
                recompute.append(kb)
                continue
        uniform = cur.uniform and all(r.key_json == cur.key_json for r in change.added)
        if not uniform:
            plan.reread_first.append(kb)
        plan.upsert.append((kb, cur.key_json, encode_state(state), count, uniform))
    if recompute:
        stored_rows = read_rows(recompute)
        for kb in recompute:
            _recompute(reducer, kb, stored_rows.get(kb, []), changes[kb].added, touched, plan)
    return plan


def _recompute(reducer: Guarded, kb: bytes, stored: KeyRows, added: Sequence[Row],
               touched: set[str], plan: ReductionPlan) -> None:
    rows = [(doc_id, dup, kj, loads(vj)) for doc_id, dup, kj, vj in stored
            if doc_id not in touched]
    rows += [(r.doc_id, r.dup, r.key_json, r.value) for r in added]
    if not rows:
        plan.delete.append(kb)
        return
    rows.sort(key=lambda r: (r[0], r[1]))
    keys = ([[loads(kj), doc_id] for doc_id, _, kj, _ in rows] if _needs_keys(reducer)
            else [None] * len(rows))
    state = reducer.reduce(keys, [r[3] for r in rows])
    first = rows[0][2]
    uniform = all(r[2] == first for r in rows)
    plan.upsert.append((kb, first, encode_state(state), len(rows), uniform))


def plan_total(reducer: Guarded, row_count: int, total: bytes | None, old: Sequence[OldRow],
               new: Sequence[Row], new_count: int) -> bytes | None:
    """The whole-view reduction after the batch, or None when it is not known exactly."""
    if new_count <= 0:
        return None
    if row_count == 0:  # empty before: this batch's rows are all there is
        return encode_state(_reduce_new(reducer, new))
    if total is None:
        return None
    state = decode_state(total)
    if not old:
        if not new:
            return total
        added = reducer.add(state, [r.value for r in new])
        if added is INEXACT:
            added = reducer.rereduce([state, _reduce_new(reducer, new)])
        return encode_state(added)
    state = reducer.subtract(state, [loads(o.value_json) for o in old], [r.value for r in new])
    return None if state is INEXACT else encode_state(state)
