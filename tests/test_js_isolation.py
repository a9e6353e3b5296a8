"""Reliability tests 40 (`js_context_isolation`, CVE-2023-26268, CouchDB's
`view_sandboxing_test.exs`) and 41 (`js_req_scrubbed`, CVE-2023-45725).

One JavaScript process serves every call here (`js_pool_size = 1`), so two databases' contexts
live side by side in it and isolation cannot come from luck.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import Client
from settee.server import create_app
from settee.store import sqlite_url

TOKEN = base64.b64encode(b"admin:s3cret-pw").decode()
AUTH = {"Authorization": f"Basic {TOKEN}"}

LEAKY_VDU = """function(newDoc) {
  if (newDoc.probe)
    throw({forbidden: typeof leak === 'undefined' ? 'clean' : JSON.stringify(leak)});
  globalThis.leak = newDoc;
}"""
LEAKY_FILTER = """function(doc, req) {
  var clean = typeof leak === 'undefined';
  if (req.query.plant) globalThis.leak = doc;
  return clean || !!req.query.plant;
}"""


@pytest.fixture(name="c")
def client_fixture(tmp_path: Any) -> Iterator[Client]:
    app = create_app({"database_url": sqlite_url(str(tmp_path / "data")),
                      "data_dir": str(tmp_path / "data"), "js_pool_size": 1, "js_time_limit": 0.5,
                      "admin_password": "s3cret-pw", "auth_iterations": 1000})
    try:
        yield Client(app, extra_environ={"HTTP_HOST": "127.0.0.1:5984"})
    finally:
        app.store.close()


def put(c: Client, path: str, body: dict[str, Any], status: int = 201) -> Any:
    return c.put(path, json.dumps(body), content_type="application/json", headers=AUTH,
                 status=status)


def two_dbs(c: Client, ddoc: dict[str, Any]) -> tuple[str, str]:
    for db in ("tenant_a", "tenant_b"):
        c.put(f"/{db}", headers=AUTH, status=201)
        put(c, f"/{db}/_design/x", ddoc)
    rev_a = c.get("/tenant_a/_design/x", headers=AUTH).json["_rev"]
    assert rev_a == c.get("/tenant_b/_design/x", headers=AUTH).json["_rev"]  # same id and rev
    return "tenant_a", "tenant_b"


def test_validation_globals_never_cross_databases(c: Client) -> None:
    a, b = two_dbs(c, {"validate_doc_update": LEAKY_VDU})
    put(c, f"/{a}/secret", {"card": "4111-1111"})
    # the context of A kept what its function stored (so the probe can see a leak) ...
    seen_in_a = put(c, f"/{a}/probe", {"probe": True}, 403).json["reason"]
    assert "4111-1111" in seen_in_a
    # ... but B, with the same design doc id and rev, never sees it
    assert put(c, f"/{b}/probe", {"probe": True}, 403).json["reason"] == "clean"
    put(c, f"/{b}/other", {"n": 1})
    assert "4111" not in put(c, f"/{b}/probe2", {"probe": True}, 403).json["reason"]


def test_filter_globals_never_cross_databases(c: Client) -> None:
    a, b = two_dbs(c, {"filters": {"f": LEAKY_FILTER}})
    for db in (a, b):
        put(c, f"/{db}/doc1", {"n": 1})
    planted = c.get(f"/{a}/_changes?filter=x/f&plant=1", headers=AUTH).json["results"]
    assert [r["id"] for r in planted] == ["_design/x", "doc1"]
    # A's context now holds `leak`: its filter passes nothing any more ...
    assert c.get(f"/{a}/_changes?filter=x/f", headers=AUTH).json["results"] == []
    # ... while B's filter, same ddoc id and rev, still runs in a clean context
    clean = c.get(f"/{b}/_changes?filter=x/f", headers=AUTH).json["results"]
    assert [r["id"] for r in clean] == ["_design/x", "doc1"]


def test_a_runaway_validation_function_is_stopped(c: Client) -> None:
    a, b = two_dbs(c, {"validate_doc_update": "function(n) { if (n.spin) while (true) {} }"})
    started = time.monotonic()
    spun = put(c, f"/{a}/spin", {"spin": True}, 500).json
    assert time.monotonic() - started < 0.5 + 2
    assert spun == {"error": "os_process_error", "reason": "OS process timed out."}
    c.get(f"/{a}/spin", headers=AUTH, status=404)
    put(c, f"/{b}/fine", {"n": 1})  # the pool has replaced the killed process


def test_map_functions_cannot_change_documents_or_reach_internals(c: Client) -> None:
    c.put("/sandbox", headers=AUTH, status=201)
    put(c, "/sandbox/doc", {"value": "original", "nested": {"k": 1}})
    views = {
        "mutate": {"map": "function(doc) { doc.value = 'mutated'; doc.nested.k = 2; "
                          "doc._id = 'other'; emit(doc._id, doc.value); }"},
        "after": {"map": "function(doc) { emit(doc._id, [doc.value, doc.nested.k]); }"},
        "gc": {"map": "function(doc) { gc(); emit(null, doc); }"},
        "internals": {"map": "function(doc) { map_funs.push(1); map_results.push(1); "
                             "emit(null, 1); }"},
        "std": {"map": "function(doc) { emit(std.loadFile('/etc/passwd'), 1); }"},
        "os": {"map": "function(doc) { emit(os.exec(['id']), 1); }"},
        "require": {"map": "function(doc) { emit(require('fs'), 1); }"},
        "dispatch": {"map": "function(doc) { emit(typeof dispatch, typeof compiled); }"},
    }
    put(c, "/sandbox/_design/s", {"views": views})

    def rows(name: str) -> list[Any]:
        return list(c.get(f"/sandbox/_design/s/_view/{name}", headers=AUTH).json["rows"])

    assert [(r["key"], r["value"]) for r in rows("mutate")] == [("other", "mutated")]
    assert [(r["key"], r["value"]) for r in rows("after")] == [("doc", ["original", 1])]
    for name in ("gc", "internals", "std", "os", "require"):
        assert rows(name) == [], name
    assert [r["key"] for r in rows("dispatch")] == ["undefined"]
    stored = c.get("/sandbox/doc", headers=AUTH).json
    assert (stored["value"], stored["nested"]) == ("original", {"k": 1})
    assert [(r["key"], r["value"]) for r in rows("after")] == [("doc", ["original", 1])]


def test_filter_req_is_scrubbed(c: Client, caplog: pytest.LogCaptureFixture) -> None:
    c.put("/scrub", headers=AUTH, status=201)
    put(c, "/scrub/_design/spy", {"filters": {"f": (
        "function(doc, req) { var s = JSON.stringify(req); log(s);"
        " return s.indexOf('AuthSession') < 0 && s.indexOf('s3cret') < 0 &&"
        " s.indexOf('Basic') < 0 && s.indexOf('tok-123') < 0 &&"
        " s.toLowerCase().indexOf('authorization') < 0; }")}})
    put(c, "/scrub/doc", {"n": 1})
    login = c.post("/_session", json.dumps({"name": "admin", "password": "s3cret-pw"}),
                   content_type="application/json", status=200)
    session = login.headers["Set-Cookie"].split(";", 1)[0].split("=", 1)[1]
    callers = {"basic": {**AUTH, "Cookie": "theme=dark"},
               "cookie": {"Cookie": f"AuthSession={session}; theme=dark"}}
    for how, headers in callers.items():
        caplog.clear()
        headers = {**headers, "X-Auth-CouchDB-Token": "tok-123", "X-Other": "kept"}
        with caplog.at_level(logging.INFO, logger="settee.views.js"):
            got = c.get("/scrub/_changes?filter=spy/f", headers=headers).json["results"]
        assert [r["id"] for r in got] == ["_design/spy", "doc"], how
        logged = [json.loads(r.getMessage().split(": ", 1)[1]) for r in caplog.records
                  if "_design/spy" in r.getMessage()]
        assert logged, how
        req = logged[0]
        text = json.dumps(req)
        for secret in ("AuthSession", session, "s3cret", TOKEN, "tok-123"):
            assert secret not in text, (how, secret)
        lowered = {k.lower() for k in req["headers"]}
        assert not lowered & {"cookie", "authorization", "x-auth-couchdb-token"}, how
        assert req["headers"]["X-Other"] == "kept" and req["cookie"] == {"theme": "dark"}
        assert req["userCtx"] == {"db": "scrub", "name": "admin", "roles": ["_admin"]}, how
