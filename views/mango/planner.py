"""Choosing the index for a query, as CouchDB's `mango_idx`, `mango_cursor` and
`mango_cursor_view` do.

1. Candidates: every json index without a `partial_filter_selector`, plus the indexes `use_index`
   names (a partial index is only used when asked for), plus `_all_docs`.
2. Usable: a json index whose columns the selector requires to exist (sort fields, `_id` and
   `_rev` excepted: a document without a sort field is simply not in the index, so not in the
   answer) and whose columns, after leading columns fixed by `$eq`, start with the sort fields;
   `_all_docs` without a sort, or sorted by `_id` with `_id` restricted. None usable (a sort
   nothing serves) is `no_usable_index`.
3. `use_index` narrows the usable ones; naming nothing usable falls back to all of them with a
   warning (or, with `allow_fallback: false`, is an error).
4. json indexes win over `_all_docs`; among them the one whose leading columns cover the most
   restricted fields, then the one with fewer columns, then the first by ddoc id and name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .errors import NO_SORT_INDEX, bad
from .indexes import ALL_DOCS, MangoIndex
from .query import FindQuery
from .ranges import (
    EMPTY,
    FULL,
    Range,
    field_ranges,
    has_required_fields,
    indexable_fields,
    is_constant_field,
)


@dataclass
class Plan:
    """The chosen index, the ranges over its leading columns (None: nothing can match), and
    what `_explain` reports about the others."""

    index: MangoIndex
    ranges: list[Range] | None
    warnings: list[str] = field(default_factory=list)
    explain_candidates: Callable[[], list[dict[str, Any]]] = field(default=lambda: [],
                                                                   repr=False)

    @property
    def candidates(self) -> list[dict[str, Any]]:
        """`index_candidates` of `_explain` (made only when asked for)."""
        return self.explain_candidates()

    def fixed_columns(self) -> dict[str, Any]:
        """Leading columns the scan holds at one value (`$eq` ranges): every row read has that
        value there, in collation, so a selector's `$eq` on them need not be checked again
        (`_id` excepted: the selector compares it raw)."""
        out: dict[str, Any] = {}
        if self.index.special or not self.ranges:
            return out
        for col, (lop, low, hop, _high) in zip(self.index.columns, self.ranges):
            if lop != "$eq" or hop != "$eq":
                break
            if col != "_id":
                out[col] = low
        return out


def usable(index: MangoIndex, sel: dict[str, Any], sort_fields: list[str]) -> str | None:
    """None when the index can serve the query, else why not (CouchDB's reason names)."""
    if index.special:
        if not sort_fields:
            return None
        if "_id" in indexable_fields(sel) and sort_fields == ["_id"][:len(sort_fields)]:
            return None
        return "sort_order_mismatch"
    required = sorted(set(index.columns) - set(sort_fields) - {"_id", "_rev"})
    if not has_required_fields(sel, required):
        return "field_mismatch"
    if "$default" in _top_fields(sel):
        return "needs_text_search"
    if not _can_use_sort(index.columns, sort_fields, sel):
        return "sort_order_mismatch"
    return None


def _top_fields(sel: dict[str, Any]) -> list[str]:
    if not sel:
        return []
    (op, arg), = sel.items()
    if op in ("$and", "$or"):
        return [f for a in arg for f in _top_fields(a)]
    return [op]


def _can_use_sort(cols: list[str], sort_fields: list[str], sel: dict[str, Any]) -> bool:
    while sort_fields:
        if not cols:
            return False
        if cols[0] == sort_fields[0]:
            return cols[:len(sort_fields)] == sort_fields
        if not is_constant_field(sel, cols[0]):
            return False
        cols = cols[1:]
    return True


def _named(indexes: list[MangoIndex], use_index: list[str]) -> list[MangoIndex]:
    ddoc = use_index[0] if use_index[0].startswith("_design/") else "_design/" + use_index[0]
    return [i for i in indexes if i.ddoc == ddoc
            and (len(use_index) == 1 or i.name == use_index[1])]


def choose(query: FindQuery, json_indexes: list[MangoIndex]) -> Plan:
    """Pick the index for `query` among the database's json indexes and `_all_docs`."""
    sel, sort_fields = query.normal, query.sort_fields
    every = [ALL_DOCS, *json_indexes]
    named = _named(every, query.use_index) if query.use_index else []
    pool = [i for i in every if i.partial is None]
    pool += [i for i in named if i not in pool]
    why = {id(i): usable(i, sel, sort_fields) for i in pool}
    fit = [i for i in pool if why[id(i)] is None]
    if not fit:
        raise NO_SORT_INDEX
    warnings = []
    chosen_from = fit
    if query.use_index:
        wanted = _named(fit, query.use_index)
        if wanted:
            chosen_from = wanted
        elif not query.allow_fallback:
            raise bad("no_usable_index",
                      'The index specified with "use_index" is not usable for the query.')
        else:
            warnings.append(_use_index_warning(query.use_index))
    of_type = [i for i in chosen_from if not i.special] or [ALL_DOCS]
    if of_type == [ALL_DOCS] and not query.allow_fallback:
        raise bad("no_usable_index", "There is no index available for this selector.")
    ranges = field_ranges(sel)
    if of_type[0].special:
        ranked = [(ALL_DOCS, _prefix(["_id"], ranges + [("_id", FULL)]), 0)]
    else:
        ranked = sorted(((i, _prefix(i.columns, ranges), 0) for i in of_type),
                        key=lambda t: (len(ranges) - len(t[1]), len(t[0].columns),
                                       t[0].sort_key()))
    best, prefix, _ = ranked[0]
    empty = any(r is EMPTY for _, r in ranges) or _noop(sel)
    return Plan(best, None if empty else prefix, warnings,
                lambda: _candidates(every, pool, why, chosen_from, of_type, best, ranges))


def _prefix(cols: list[str], ranges: list[tuple[str, Any]]) -> list[Range]:
    """The ranges of the leading columns that have one (`composite_prefix`)."""
    found = dict(reversed(ranges))  # the first range of a field wins, as `lists:keyfind`
    out = []
    for col in cols:
        if col not in found or found[col] is EMPTY:
            break
        out.append(found[col])
    return out


def _noop(sel: dict[str, Any]) -> bool:
    """`{"$and": []}` or `{"$or": []}` alone: CouchDB runs no scan (`maybe_noop_range`)."""
    return len(sel) == 1 and next(iter(sel.values())) == [] and next(iter(sel)) in (
        "$and", "$or")


def _use_index_warning(use_index: list[str]) -> str:
    ddoc = use_index[0][len("_design/"):] if use_index[0].startswith("_design/") \
        else use_index[0]
    if len(use_index) == 1:
        return (f"_design/{ddoc} was not used because it does not contain a valid index for "
                "this query.")
    return (f"_design/{ddoc}, {use_index[1]} was not used because it is not a valid index for "
            "this query.")


def _candidates(every: list[MangoIndex], pool: list[MangoIndex], why: dict[int, str | None],
                chosen_from: list[MangoIndex], of_type: list[MangoIndex], best: MangoIndex,
                ranges: list[tuple[str, Any]]) -> list[dict[str, Any]]:
    """`index_candidates` of `_explain` (CouchDB 3.4): every index but the chosen one, why it
    lost, and a ranking (1 is closest to having been chosen)."""
    out = []
    for index in every:
        if index is best:
            continue
        if index not in pool:
            usable_, reason, rank = False, "is_partial", 4
        elif why[id(index)] is not None:
            usable_, reason, rank = False, str(why[id(index)]), 3
        elif index not in chosen_from:
            usable_, reason, rank = True, "excluded_by_user", 2
        elif index not in of_type:
            usable_, reason, rank = True, "unfavored_type", 1
        else:
            usable_, rank = True, 1
            if len(_prefix(index.columns, ranges)) < len(_prefix(best.columns, ranges)):
                reason = "less_overlap"
            elif len(index.columns) > len(best.columns):
                reason = "too_many_fields"
            else:
                reason = "alphabetically_comes_after"
        out.append({"index": index.to_json(),
                    "analysis": {"usable": usable_, "reasons": [{"name": reason}],
                                 "ranking": rank, "covering": None if index.special else False}})
    return out
