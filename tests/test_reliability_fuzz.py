"""A mutation fuzzer over every route that takes a body (reliability.md section 4, test 17)."""

# Each route starts from valid bodies that name real documents and revs, and each request sends
# one of them mutated: structure-aware (a random node replaced by a random JSON value, keys
# dropped, added or duplicated, containers swapped) and then, often, byte-level (truncation, byte
# flips, insertions, spliced JSON tokens, invalid UTF-8). The app is called in-process on both
# backends. Every answer must be below 500; every 4xx must be CouchDB's `{"error", "reason"}` JSON
# (so must every error row of a `_bulk_docs`); every rejected request must leave the database as
# it was (counters, update_seq, revs limit, `_security`).
#
# The seed is fixed, so a run is repeatable and a known defect stays a strict xfail until it is
# fixed; `SETTEE_FUZZ_SEED=N` (or `random`) explores further. 501 `not_implemented` (attachments,
# which are not built yet) is a deliberate refusal and is counted apart from the 5xx.

from __future__ import annotations

import json
import os
import random
import uuid
import zlib
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from reliability import (
    call,
    error_shape_problem,
    figure,
    sized,
)

pytest_plugins = ["reliability_report"]

REQUESTS_PER_ROUTE = sized(670, 6700)  # per backend; 15 routes: 10,050 in CI
_SEED_TEXT = os.environ.get("SETTEE_FUZZ_SEED", "5984")
SEED = random.randrange(2**32) if _SEED_TEXT == "random" else int(_SEED_TEXT)

# -- random JSON -----------------------------------------------------------------------------------

KEYS = ["_id", "_rev", "_deleted", "_revisions", "_attachments", "_conflicts", "_local_seq",
        "_revs_info", "_foo", "docs", "new_edits", "all_or_nothing", "keys", "key", "startkey",
        "endkey", "limit", "skip", "descending", "include_docs", "conflicts", "inclusive_end",
        "update_seq", "admins", "members", "names", "roles", "start", "ids", "id", "rev",
        "atts_since", "queries", "", "a", "\u00e9", "\u2603", "a\u0000b", "\U0001f600"]
STRINGS = ["", "a", "doc-1", "doc-2", "_design/x", "_local/x", "_design/", "_local/", "_foo",
           "1-abc", "1-", "-1-abc", "x-abc", "0-1", "99999999999-abc", "2-" + "f" * 32,
           "\u0000", "\ufffd", "\u00e9", "cafe\u0301", "a/b", "../x", "\r\nX: y",
           "x" * 300, "1-" + "a" * 300, "null", "true", "[", "{"]
NUMBERS = [0, -1, 1, 2, 7, 1000, 10_001, 2**31, 2**53 + 1, 2**63, 2**64, -(2**63) - 1,
           10**30, 0.5, -0.0, 1e308, 1e-308, 3.14]


def random_value(rng: random.Random, depth: int = 0) -> Any:
    """A random JSON value, biased to what CouchDB handlers look at."""
    roll = rng.random()
    if depth > 3 or roll < 0.3:
        return rng.choice(STRINGS + [rng.choice(STRINGS) + str(rng.randrange(100))])
    if roll < 0.5:
        return rng.choice(NUMBERS)
    if roll < 0.6:
        return rng.choice([True, False, None])
    if roll < 0.8:
        return [random_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {rng.choice(KEYS): random_value(rng, depth + 1) for _ in range(rng.randrange(4))}


def nested(rng: random.Random) -> Any:
    value: Any = rng.choice([1, "x", None, {}])
    for _ in range(rng.choice([10, 63, 64, 65, 200])):
        value = [value] if rng.random() < 0.5 else {"n": value}
    return value


def mutate_tree(rng: random.Random, value: Any) -> Any:
    """A copy of `value` with one structural change somewhere in it."""
    if isinstance(value, dict) and value and rng.random() < 0.7:
        out = dict(value)
        key = rng.choice(list(out))
        roll = rng.random()
        if roll < 0.4:
            out[key] = mutate_tree(rng, out[key])
        elif roll < 0.6:
            del out[key]
        elif roll < 0.8:
            out[rng.choice(KEYS)] = random_value(rng)
        else:
            out[key] = random_value(rng)
        return out
    if isinstance(value, list) and value and rng.random() < 0.7:
        out_list = list(value)
        i = rng.randrange(len(out_list))
        roll = rng.random()
        if roll < 0.5:
            out_list[i] = mutate_tree(rng, out_list[i])
        elif roll < 0.7:
            del out_list[i]
        elif roll < 0.85:
            out_list.insert(i, random_value(rng))
        else:
            out_list = out_list * rng.choice([2, 50])
        return out_list
    roll = rng.random()
    if roll < 0.1:
        return nested(rng)
    if roll < 0.2:
        return [value]
    if roll < 0.3 and isinstance(value, dict):
        return list(value.items())
    return random_value(rng)


TOKENS = [b"{", b"}", b"[", b"]", b",", b":", b'"', b"\\", b"\\u0000", b"\\ud800", b"NaN",
          b"Infinity", b"-Infinity", b"1e400", b"-0", b"18446744073709551616", b"null", b"true",
          b'"_rev":', b'"_id":', b'"_deleted":true', b'"docs":', b"\xff", b"\xc0\xaf",
          b"\xed\xa0\x80",
          b"\xef\xbb\xbf", b"\x00", b" " * 3, b"9" * 400, b"[" * 70, b'"a":1,"a":2']


def serialize(rng: random.Random, value: Any) -> bytes:
    """JSON text of `value`, sometimes with a duplicated key or raw non-UTF-8 bytes."""
    text = json.dumps(value, ensure_ascii=rng.random() < 0.5, allow_nan=True)
    data = text.encode("utf-8", "surrogatepass")
    if rng.random() < 0.1 and data.startswith(b"{") and len(data) > 2:
        member = b'"' + rng.choice(KEYS).encode("utf-8", "surrogatepass") + b'":1,'
        data = b"{" + member + member + data[1:]
    return data


def mutate_bytes(rng: random.Random, data: bytes) -> bytes:
    """One byte-level change: truncate, flip, insert, delete, duplicate or splice a token."""
    if not data:
        return rng.choice(TOKENS)
    i = rng.randrange(len(data) + 1)
    roll = rng.random()
    if roll < 0.2:
        return data[:i]
    if roll < 0.35 and i < len(data):
        return data[:i] + bytes([data[i] ^ (1 << rng.randrange(8))]) + data[i + 1:]
    if roll < 0.5:
        return data[:i] + bytes([rng.randrange(256)]) + data[i:]
    if roll < 0.6:
        return data[:i] + data[i + rng.randrange(1, 8):]
    if roll < 0.7:
        j = rng.randrange(i, len(data) + 1)
        return data[:j] + data[i:j] + data[j:]
    return data[:i] + rng.choice(TOKENS) + data[i:]


# -- routes ----------------------------------------------------------------------------------------

class Target:
    """A fuzz database with documents in several states, and the revs to put in seeds."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.db = "fuzz_" + uuid.uuid4().hex[:8]
        assert call(app, "PUT", f"/{self.db}").status == 201
        docs = [{"_id": f"doc-{i}", "n": i, "tags": ["a", "b"], "deep": {"x": [1, {"y": 2}]}}
                for i in range(8)] + [{"_id": "_design/x", "views": {}}]
        rows = call(app, "POST", f"/{self.db}/_bulk_docs", orjson.dumps({"docs": docs})).json()
        self.revs: dict[str, str] = {row["id"]: row["rev"] for row in rows}
        conflict = {"_id": "doc-1", "_rev": "2-" + "c" * 32, "n": "branch",
                    "_revisions": {"start": 2, "ids": ["c" * 32, self.revs["doc-1"][2:]]}}
        call(app, "POST", f"/{self.db}/_bulk_docs",
             orjson.dumps({"docs": [conflict], "new_edits": False}))
        call(app, "DELETE", f"/{self.db}/doc-2?rev={self.revs['doc-2']}")
        call(app, "PUT", f"/{self.db}/_local/x", b'{"local": true}')

    def rev(self, rng: random.Random) -> str:
        return rng.choice(list(self.revs.values()) + ["2-" + "c" * 32, "1-" + "0" * 32])

    def doc_id(self, rng: random.Random) -> str:
        return rng.choice(list(self.revs) + [f"new-{rng.randrange(50)}"])

    def state(self) -> tuple[Any, ...]:
        """What a rejected request must not change."""
        from settee.store import catalog
        info = self.app.store.db_info(self.db)
        with self.app.store.engine.transaction() as conn:
            security = catalog.get_security(conn, self.db)
        return (info.update_seq, info.doc_count, info.doc_del_count, info.purge_seq,
                info.revs_limit, security)


Seed = Callable[[Target, random.Random], tuple[str, str, Any]]  # method, path, body value


def _doc(t: Target, rng: random.Random) -> dict[str, Any]:
    doc_id = t.doc_id(rng)
    body: dict[str, Any] = {"_id": doc_id, "v": random_value(rng)}
    if doc_id in t.revs and rng.random() < 0.7:
        body["_rev"] = t.revs[doc_id]
    return body


SEEDS: dict[str, Seed] = {
    "doc_put": lambda t, r: ("PUT", f"/{t.db}/{t.doc_id(r)}" + r.choice(["", "?new_edits=false",
                                                                          "?batch=ok"]),
                             {k: v for k, v in _doc(t, r).items() if k != "_id"}),
    "doc_post": lambda t, r: ("POST", f"/{t.db}", _doc(t, r)),
    "design_put": lambda t, r: ("PUT", f"/{t.db}/_design/x",
                                {"_rev": t.revs["_design/x"], "views": {"v": {"map": "f"}}}),
    "local_put": lambda t, r: ("PUT", f"/{t.db}/_local/x", {"local": random_value(r)}),
    "bulk_docs": lambda t, r: ("POST", f"/{t.db}/_bulk_docs", {
        "docs": [_doc(t, r) for _ in range(r.randrange(1, 5))],
        **({"new_edits": False} if r.random() < 0.3 else {})}),
    "bulk_docs_replicated": lambda t, r: ("POST", f"/{t.db}/_bulk_docs", {"new_edits": False,
        "docs": [{"_id": t.doc_id(r), "_rev": "3-" + "e" * 32, "v": 1,
                  "_revisions": {"start": 3, "ids": ["e" * 32, "d" * 32, "c" * 32]}}]}),
    "bulk_get": lambda t, r: ("POST", f"/{t.db}/_bulk_get" + r.choice(["", "?revs=true",
                                                                        "?latest=true"]),
                              {"docs": [{"id": t.doc_id(r), "rev": t.rev(r)}, {"id": "doc-3"}]}),
    "revs_diff": lambda t, r: ("POST", f"/{t.db}/_revs_diff",
                               {t.doc_id(r): [t.rev(r), "9-" + "9" * 32]}),
    "missing_revs": lambda t, r: ("POST", f"/{t.db}/_missing_revs", {t.doc_id(r): [t.rev(r)]}),
    "all_docs": lambda t, r: ("POST", f"/{t.db}/_all_docs" + r.choice(["", "?include_docs=true"]),
                              r.choice([{"keys": ["doc-1", "doc-2", "nope"]},
                                        {"startkey": "doc-1", "endkey": "doc-5", "limit": 3}])),
    "all_docs_queries": lambda t, r: ("POST", f"/{t.db}/_all_docs/queries",
                                      {"queries": [{"keys": ["doc-1"]}, {"limit": 2}]}),
    "security": lambda t, r: ("PUT", f"/{t.db}/_security",
                              {"admins": {"names": ["a"], "roles": []},
                               "members": {"names": [], "roles": ["r"]}}),
    "purge": lambda t, r: ("POST", f"/{t.db}/_purge", {t.doc_id(r): [t.rev(r)]}),
    "revs_limit": lambda t, r: ("PUT", f"/{t.db}/_revs_limit", r.choice([1000, 5, 1])),
    "dbs_info": lambda t, r: ("POST", "/_dbs_info", {"keys": [t.db, "nope", "_users"]}),
}


# Defects the fuzzer found, as (route, backend) -> cause, kept strict xfails until fixed. The
# _revs_limit range, _security big integers and U+0000 on PostgreSQL are fixed.
KNOWN_DEFECTS: dict[tuple[str, str], str] = {}


@pytest.mark.parametrize("route", sorted(SEEDS))
def test_fuzz_bodies(module_app: Any, route: str, request: pytest.FixtureRequest) -> None:
    backend = request.node.callspec.params["module_app"]
    known = KNOWN_DEFECTS.get((route, backend))
    if known and _SEED_TEXT == "5984":  # other seeds may or may not meet the defect
        request.applymarker(pytest.mark.xfail(strict=True, reason=known))
    seed = SEED ^ zlib.crc32(route.encode())
    rng = random.Random(seed)
    target = Target(module_app)
    failures: list[str] = []
    five_xx = not_implemented = 0
    sent = 0
    for _ in range(REQUESTS_PER_ROUTE):
        sent += 1
        method, path, value = SEEDS[route](target, rng)
        if rng.random() < 0.85:
            value = mutate_tree(rng, value)
        body = serialize(rng, value)
        for _ in range(rng.choice([0, 0, 1, 1, 2, 3])):
            body = mutate_bytes(rng, body)
        before = target.state()
        answer = call(module_app, method, path, body)
        where = f"{method} {path} {body[:300]!r}"
        if answer.status == 501 and answer.body.startswith(b'{"error":"not_implemented"'):
            not_implemented += 1
        elif answer.status >= 500:
            five_xx += 1
            failures.append(f"{answer.status} for {where}: {answer.body[:200]!r}")
        elif answer.status >= 400:
            problem = error_shape_problem(answer)
            if problem:
                failures.append(f"{problem} for {where}")
            after = target.state()
            if after != before:
                failures.append(f"rejected ({answer.status}) but changed {before} -> {after}: "
                                f"{where}")
        else:
            try:
                payload = answer.json()
            except orjson.JSONDecodeError:
                failures.append(f"{answer.status} with a body that is not JSON for {where}")
                continue
            if route.startswith("bulk_docs") and isinstance(payload, list):
                for row in payload:
                    if "error" in row and not (isinstance(row["error"], str)
                                               and isinstance(row.get("reason"), str)):
                        failures.append(f"bad error row {row} for {where}")
        if len(failures) >= 10:
            break
    figure(backend, "fuzzed requests", sent)
    figure(backend, "5xx seen", five_xx)
    figure(backend, "501 not_implemented (attachments)", not_implemented)
    assert failures == [], f"SETTEE_FUZZ_SEED={SEED} (route seed {seed}):\n" + "\n".join(failures)
