"""What a normalized selector says about index columns, as `mango_idx_view` and `mango_selector`.

- `indexable_fields`: fields under the top-level `$and` with a comparison (`$lt`, `$lte`, `$eq`,
  `$gte`, `$gt`), the only conditions an index scan can serve;
- `field_ranges`: per such field, its comparisons AND-ed into one range `(low op, low, high op,
  high)` in view collation, `MIN`/`MAX` standing for the open ends, or `EMPTY`;
- `has_required_fields`: whether every matching document must have these fields (seeing
  through `$and`, and through `$or` when every branch requires them), which is what makes an
  index that only holds documents with all its fields usable;
- `is_constant_field`: a field fixed by `$eq`, which can be skipped when matching a sort to an
  index's columns;
- `key_bounds`: the start and end sort bytes of a range over an index's leading columns. The
  bounds are inclusive and may let in more rows than match (a `$gt` starts at its value): the
  whole selector is evaluated on every document read, so a range only has to contain them all.
"""

from __future__ import annotations

from typing import Any

from ..collate import compare
from ..encoding import sort_key

COMPARISONS = ("$lt", "$lte", "$eq", "$gt", "$gte")


class _End:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


MIN: Any = _End("MIN")
MAX: Any = _End("MAX")
EMPTY: Any = _End("EMPTY")

Range = tuple[str, Any, str, Any]
FULL: Range = ("$gt", MIN, "$lt", MAX)


def indexable_fields(sel: dict[str, Any]) -> list[str]:
    """Fields a view index can restrict, sorted and unique (CouchDB's `lists:usort`)."""
    return sorted(set(_indexable(sel)), key=lambda f: f.encode())


def _indexable(sel: dict[str, Any]) -> list[str]:
    if not sel:
        return []
    (op, arg), = sel.items()
    if op == "$and":
        return [f for a in arg for f in _indexable(a)]
    if op.startswith("$"):
        return []
    (cond, _), = arg.items()
    return [op] if cond in COMPARISONS else []


def field_ranges(sel: dict[str, Any]) -> list[tuple[str, Any]]:
    """`[(field, range)]` for the indexable fields; an unsatisfiable field ends the list with
    `(field, EMPTY)`, as `mango_idx_view:field_ranges/3` does."""
    out: list[tuple[str, Any]] = []
    for name in indexable_fields(sel):
        found = _range(sel, name, FULL)
        if found is EMPTY:
            return [(name, EMPTY)]
        out.append((name, found))
    return out


def _range(sel: dict[str, Any], name: str, current: Any) -> Any:
    if current is EMPTY:
        return EMPTY
    (op, arg), = sel.items()
    if op == "$and":
        for a in arg:
            current = _range(a, name, current)
        return current
    if op != name:
        return current
    (cond, value), = arg.items()
    return _narrow(cond, value, current)


def _cmp(a: Any, b: Any) -> int:
    if a is b:
        return 0
    if a is MIN or b is MAX:
        return -1
    if a is MAX or b is MIN:
        return 1
    return compare(a, b)


def _pos(low: Any, arg: Any, high: Any) -> str:
    c = _cmp(arg, low)
    if c < 0:
        return "min"
    if c == 0:
        return "low"
    c = _cmp(arg, high)
    return "mid" if c < 0 else "high" if c == 0 else "max"


def _narrow(cond: str, arg: Any, current: Range) -> Any:
    """`mango_idx_view:range/5`: one comparison AND-ed into a range."""
    lop, low, hop, high = current
    pos = _pos(low, arg, high)
    eq = ("$eq", arg, "$eq", arg)
    if cond == "$lt":
        return {"min": EMPTY, "low": EMPTY, "mid": (lop, low, "$lt", arg),
                "high": (lop, low, "$lt", arg)}.get(pos, current)
    if cond == "$lte":
        if pos == "min":
            return EMPTY
        if pos == "low":
            return eq if lop in ("$gte", "$eq") else EMPTY
        return (lop, low, "$lte", arg) if pos == "mid" else current
    if cond == "$eq":
        if pos == "low":
            return eq if lop in ("$gte", "$eq") else EMPTY
        if pos == "high":
            return eq if hop in ("$lte", "$eq") else EMPTY
        return eq if pos == "mid" else EMPTY
    if cond == "$gte":
        if pos in ("min", "low"):
            return current
        if pos == "mid":
            return ("$gte", arg, hop, high)
        return eq if pos == "high" and hop in ("$lte", "$eq") else EMPTY
    if cond == "$gt":
        if pos == "min":
            return current
        return ("$gt", arg, hop, high) if pos in ("low", "mid") else EMPTY
    return current


def has_required_fields(sel: dict[str, Any], required: list[str]) -> bool:
    """Whether every document the selector matches has all `required` fields."""
    return not _remainder([sel] if sel else [], list(required))


def _remainder(sels: list[dict[str, Any]], required: list[str]) -> list[str]:
    for sel in sels:
        if not required:
            return []
        (op, arg), = sel.items()
        if op == "$and":
            required = _remainder(list(arg), required)
        elif op == "$or":
            left: set[str] = set()
            for branch in arg:
                left.update(_remainder([branch], list(required)))
            required = sorted(left)
        elif isinstance(arg, dict) and arg == {"$exists": False}:
            continue
        elif op in required:
            required = list(required)
            required.remove(op)  # `lists:delete/2`: one occurrence
    return required


def is_constant_field(sel: dict[str, Any], name: str) -> bool:
    """Whether the selector fixes `name` with `$eq` (`mango_selector:is_constant_field`)."""
    if not sel:
        return False
    (op, arg), = sel.items()
    if op == "$and":
        return any(is_constant_field(a, name) for a in arg)
    if op == name and isinstance(arg, dict) and len(arg) == 1:
        return bool(next(iter(arg)) == "$eq")
    return False


def start_values(ranges: list[Range]) -> list[Any]:
    """The start key of a scan over the leading columns (`mango_idx_view:start_key/1`)."""
    out = []
    for _lop, low, _, _ in ranges:
        if low is MIN:
            break
        out.append(low)
    return out


def end_values(ranges: list[Range]) -> list[Any]:
    """The end key's values before CouchDB's `<MAX>` (`mango_idx_view:end_key/1`)."""
    out = []
    for _, _, _hop, high in ranges:
        if high is MAX:
            break
        out.append(high)
    return out


def key_bounds(ranges: list[Range]) -> tuple[bytes, bytes]:
    """Inclusive start and end sort bytes over keys `[v1, v2, ...]` (arrays: type byte 06).

    The start is the array's bytes without its terminator (so every key that continues it
    sorts after it); the end is followed by FF, above any byte that can continue a key."""
    start = b"\x06" + b"".join(sort_key(v) for v in start_values(ranges))
    end = b"\x06" + b"".join(sort_key(v) for v in end_values(ranges)) + b"\xff"
    return start, end
