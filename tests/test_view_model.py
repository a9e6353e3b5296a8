"""Property test: after any creates, updates, deletes and conflicting replays, every view answer
equals a from-scratch recomputation over the current documents by a tiny reference in this file.

The reference reads the winning documents back (`_all_docs?include_docs=true`), emits with the
same rules as the Python map function, sorts rows with `collate.compare` (or `compare_raw`) and
doc ids, and answers ranges, keys, grouping and reductions by plain list operations.
"""

from __future__ import annotations

import functools
import json
import os
import uuid
from typing import Any
from urllib.parse import quote

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from settee.server.settings import Settings
from settee.views.collate import compare, compare_raw
from viewkit import VIEW_SETTINGS

EXAMPLES = int(os.environ.get("SETTEE_VIEW_EXAMPLES", "100"))  # raise it for a soak run
IDS = ["a", "b", "c", "A", "é"]
SCALARS = [None, False, True, 0, 1, 1.0, -1, 2.5, "", "a", "A", "aa", "b", "B"]
KEY = st.one_of(st.sampled_from(SCALARS), st.lists(st.sampled_from(SCALARS), max_size=2))
# Documents emit from a smaller pool, so keys are shared between documents and updates.
DOC_KEY = st.sampled_from([None, True, 1, 1.0, "a", "A", "b", ["a"], ["a", 1], ["a", "b"],
                           ["b", 1]])
REDUCES = {"s": "_sum", "n": "_count", "st": "_stats", "dc": "_approx_count_distinct"}
VIEWS = {"m": {"map": "view_functions:each_key"},
         "raw": {"map": "view_functions:each_key", "options": {"collation": "raw"}},
         **{name: {"map": "view_functions:each_key", "reduce": red}
            for name, red in REDUCES.items()}}

put_op = st.tuples(st.just("put"), st.sampled_from(IDS), st.lists(DOC_KEY, max_size=3),
                   st.integers(-5, 20))
delete_op = st.tuples(st.just("delete"), st.sampled_from(IDS))
replay_op = st.tuples(st.just("replay"), st.sampled_from(IDS), st.lists(DOC_KEY, max_size=3),
                      st.integers(-5, 20), st.integers(1, 3), st.sampled_from("0123456789abcdef"),
                      st.booleans())


@st.composite
def query_op(draw: Any) -> tuple[str, str, dict[str, Any], bool]:
    view = draw(st.sampled_from(sorted(VIEWS)))
    p: dict[str, Any] = {}
    reducing = view in REDUCES and draw(st.booleans())
    if view in REDUCES and not reducing:
        p["reduce"] = False
    exact = False
    if reducing:
        grouping = draw(st.sampled_from(["none", "group", "level"]))
        if grouping == "group":
            p["group"], exact = True, True
        elif grouping == "level":
            p["group_level"] = draw(st.integers(0, 3))
    mode = draw(st.sampled_from(["all", "range", "range", "keys"]))
    if mode == "keys" and (not reducing or exact):
        p["keys"] = draw(st.lists(st.one_of(DOC_KEY, KEY), max_size=3))
    elif mode == "range":
        for bound in ("startkey", "endkey"):
            if draw(st.booleans()):
                p[bound] = draw(st.one_of(DOC_KEY, DOC_KEY, KEY))
                if draw(st.booleans()):
                    p[bound + "_docid"] = draw(st.sampled_from(IDS))
        p["inclusive_end"] = draw(st.booleans())
    p["descending"] = draw(st.booleans())
    if draw(st.booleans()):
        p["limit"] = draw(st.integers(0, 4))
    if draw(st.booleans()):
        p["skip"] = draw(st.integers(0, 3))
    if not reducing and draw(st.booleans()):
        p["include_docs"] = True
    return "query", view, p, draw(st.booleans())


OPS = st.lists(st.one_of(put_op, put_op, delete_op, replay_op, query_op()), min_size=4,
               max_size=16)


@settings(max_examples=EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(ops=OPS, final=query_op())
def test_views_equal_a_from_scratch_recomputation(module_client: Any, module_app: Any,
                                                   ops: list[Any], final: Any) -> None:
    if getattr(module_app.settings, "view_python_functions", None) is None:
        module_app.settings = Settings({**module_app.settings.as_dict(), **VIEW_SETTINGS})
    c = module_client
    db = "m_" + uuid.uuid4().hex[:10]
    c.put(f"/{db}", status=201)
    c.put_json(f"/{db}/_design/t", {"language": "python", "views": VIEWS}, status=201)
    for op in [*ops, final]:
        if op[0] == "query":
            check_query(c, db, op[1], op[2], op[3])
        else:
            apply(c, db, op)


def apply(c: Any, db: str, op: tuple[Any, ...]) -> None:
    if op[0] == "replay":
        _, doc_id, ks, v, pos, digit, deleted = op
        doc = {"_id": doc_id, "_rev": f"{pos}-{digit * 32}", "ks": ks, "v": v}
        if deleted:
            doc["_deleted"] = True
        c.post_json(f"/{db}/_bulk_docs", {"docs": [doc], "new_edits": False}, status=201)
        return
    path = f"/{db}/{quote(op[1], safe='')}"
    current = c.get(path, status="*")
    rev = current.json["_rev"] if current.status_int == 200 else None
    if op[0] == "delete":
        if rev is not None:
            c.delete(f"{path}?rev={rev}", status=200)
        return
    body = {"ks": op[2], "v": op[3], **({"_rev": rev} if rev else {})}
    c.put_json(path, body, status=201)


# -- the reference --------------------------------------------------------------------------------

def current_rows(c: Any, db: str, raw: bool) -> tuple[list[tuple[Any, str, Any]], dict[str, Any]]:
    docs = {r["id"]: r["doc"] for r in
            c.get(f"/{db}/_all_docs", params={"include_docs": "true"}).json["rows"]
            if not r["id"].startswith("_design/")}
    rows = [(k, doc_id, doc.get("v", 1)) for doc_id, doc in docs.items()
            for k in doc.get("ks", ())]
    cmp = compare_raw if raw else compare

    def order(a: tuple[Any, str, Any], b: tuple[Any, str, Any]) -> int:
        return cmp(a[0], b[0]) or (a[1] > b[1]) - (a[1] < b[1])

    return sorted(rows, key=functools.cmp_to_key(order)), docs  # stable: emit order for dups


def reduce_values(name: str, rows: list[tuple[Any, str, Any]]) -> Any:
    values = [r[2] for r in rows]
    if name == "_sum":
        return sum(values)
    if name == "_count":
        return len(values)
    if name == "_stats":
        return {"sum": sum(values), "count": len(values), "min": min(values),
                "max": max(values), "sumsqr": sum(v * v for v in values)}
    return len({json.dumps(r[0]) for r in rows})


def expected(c: Any, db: str, view: str, p: dict[str, Any]) -> Any:
    raw = view == "raw"
    cmp = compare_raw if raw else compare
    rows, docs = current_rows(c, db, raw)
    desc = p.get("descending", False)
    keys = p.get("keys")
    if keys is not None and len(keys) == 1:  # CouchDB 3.3.1: one key is `key`
        p = {**p, "startkey": keys[0], "endkey": keys[0]}
        keys = None
    sk, ek = p.get("startkey", _NONE), p.get("endkey", _NONE)
    sd, ed = p.get("startkey_docid"), p.get("endkey_docid")
    if sk is not _NONE and ek is not _NONE and json.dumps(sk) != json.dumps(ek):
        ka, kb = (sd if sd is not None else (HIGH if desc else "")), \
                 (ed if ed is not None else ("" if desc else HIGH))
        order = cmp(sk, ek) or _doc_cmp(ka, kb)
        if (not desc and order > 0) or (desc and order < 0):
            return "error"
    trav = rows[::-1] if desc else rows
    sign = -1 if desc else 1

    def before(r: tuple[Any, str, Any]) -> bool:
        o = sign * cmp(r[0], sk)
        return o < 0 or (o == 0 and sd is not None and sign * _doc_cmp(r[1], sd) < 0)

    def after(r: tuple[Any, str, Any]) -> bool:
        o = sign * cmp(r[0], ek)
        if o != 0:
            return o > 0
        if p.get("inclusive_end", True):
            return ed is not None and sign * _doc_cmp(r[1], ed) > 0
        return ed is None or sign * _doc_cmp(r[1], ed) >= 0

    reducing = view in REDUCES and p.get("reduce", True)
    if keys is not None:
        selected = [r for k in keys for r in trav if cmp(r[0], k) == 0]
        groups = [[r for r in trav if cmp(r[0], k) == 0] for k in keys]
        groups = [g for g in groups if g]
    else:
        selected = [r for r in trav if not (sk is not _NONE and before(r))
                    and not (ek is not _NONE and after(r))]
        groups = []
        for r in selected:
            if groups and cmp(groups[-1][0][0], r[0]) == 0:
                groups[-1].append(r)
            else:
                groups.append([r])
    skip, limit = p.get("skip", 0), p.get("limit")
    if not reducing:
        out = selected[skip:][:limit] if limit is not None else selected[skip:]
        if keys is not None:  # rows before the first one returned (identical dups are distinct)
            offset = next(i for i, r in enumerate(trav) if r is out[0]) if out else len(rows)
        else:
            first = sum(1 for r in trav if sk is not _NONE and before(r))
            offset = min(len(rows), first + skip)
        body: dict[str, Any] = {"total_rows": len(rows), "offset": offset,
                "rows": [{"id": r[1], "key": r[0], "value": r[2]} for r in out]}
        if p.get("include_docs"):
            for row in body["rows"]:
                row["doc"] = docs[row["id"]]
        return body
    name = REDUCES[view]
    level = -1 if p.get("group") else p.get("group_level", 0)
    if level == 0:
        result = [{"key": None, "value": reduce_values(name, selected)}] if selected else []
    else:
        shown = [(min(g, key=lambda r: r[1])[0], g) for g in groups]
        if level > 0:
            merged: list[tuple[Any, list[Any]]] = []
            for key, g in shown:
                gk = key[:level] if isinstance(key, list) else key
                if merged and isinstance(key, list) and isinstance(merged[-1][0], list) \
                        and cmp(merged[-1][0], gk) == 0:
                    merged[-1][1].extend(g)
                else:
                    merged.append((gk, list(g)))
            shown = merged
        result = [{"key": k, "value": reduce_values(name, g)} for k, g in shown]
    return {"rows": result[skip:][:limit] if limit is not None else result[skip:]}


class _High:
    pass


_NONE: Any = object()
HIGH: Any = _High()


def _doc_cmp(a: Any, b: Any) -> int:
    if a is b:
        return 0
    if a is HIGH:
        return 1
    if b is HIGH:
        return -1
    order: int = (a > b) - (a < b)
    return order


def check_query(c: Any, db: str, view: str, p: dict[str, Any], post: bool) -> None:
    want = expected(c, db, view, dict(p))
    path = f"/{db}/_design/t/_view/{view}"
    if post:
        resp = c.post_json(path, p, status="*")
    else:
        params = {k: json.dumps(v) for k, v in p.items() if not k.endswith("_docid")}
        params.update({k: v for k, v in p.items() if k.endswith("_docid")})
        resp = c.get(path, params=params, status="*")
    if want == "error":
        assert resp.status_int == 400 and resp.json["error"] == "query_parse_error", resp.body
        return
    assert resp.status_int == 200, resp.body
    assert resp.json == want, (view, p)
