"""`_explain`: the plan of a query as CouchDB 3.4 shows it, without running it."""

from __future__ import annotations

from typing import Any

from .planner import Plan
from .query import FindQuery
from .ranges import MAX, MIN, end_values, indexable_fields, start_values


def explain(db_name: str, query: FindQuery, plan: Plan) -> dict[str, Any]:
    """The `_explain` answer."""
    index = plan.index
    if plan.ranges is None:
        start: Any = None
        end: Any = None
    elif index.special:
        low, high = (plan.ranges[0][1], plan.ranges[0][3]) if plan.ranges else (MIN, MAX)
        start = low if isinstance(low, str) else ""
        end = high if isinstance(high, str) else "<MAX>"
    else:
        start = start_values(plan.ranges)
        end = [*end_values(plan.ranges), "<MAX>"]
    if query.descending:
        start, end = end, start
    mrargs = {"include_docs": query.r == 1, "view_type": "map", "reduce": False,
              "partition": None, "start_key": start, "end_key": end,
              "direction": "rev" if query.descending else "fwd", "stable": query.stable,
              "update": query.update, "conflicts": True if query.conflicts else "undefined"}
    fields = _fields(query.normal)
    indexable = indexable_fields(query.normal)
    out: dict[str, Any] = {
        "dbname": db_name, "index": index.to_json(), "partitioned": False,
        "selector": query.normal, "opts": query.opts_json(), "limit": query.limit,
        "skip": query.skip, "fields": query.fields or [],
        "index_candidates": plan.candidates,
        "selector_hints": [{"type": "json", "indexable_fields": indexable,
                            "unindexable_fields": [f for f in fields if f not in indexable]}],
        "mrargs": mrargs,
    }
    if not index.special:
        out["covering"] = False
    return out


def _fields(sel: dict[str, Any]) -> list[str]:
    """Every field a normalized selector names (`mango_selector:fields/1`), once each."""
    out: list[str] = []

    def walk(s: dict[str, Any]) -> None:
        if not s:
            return
        (op, arg), = s.items()
        if op.startswith("$") and isinstance(arg, list):
            for a in arg:
                walk(a)
        elif not op.startswith("$") and op not in out:
            out.append(op)

    walk(sel)
    return out
