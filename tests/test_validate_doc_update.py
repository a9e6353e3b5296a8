"""Reliability test 36: `validate_doc_update` on every write path, on both backends.

JavaScript and Python validation functions refuse writes with 403 `forbidden`, 401
`unauthorized` or a 500, through PUT, POST, DELETE, COPY, `_bulk_docs` (per-document errors,
others written), `new_edits=false`, attachment PUT/DELETE and replication; nothing refused is
written; the function sees CouchDB's `newDoc`, `oldDoc`, `userCtx` and `secObj`; a design doc
edited or deleted on another node takes effect on the next write, even one added while that
write was being validated.
"""

from __future__ import annotations

import json
import threading
import uuid
from typing import Any

import pytest
import vdu_functions
from conftest import Client
from lockkit import lock_held, wait_for_lock_wait
from settee.server import create_app
from settee.server.settings import Settings
from settee.store import catalog

PY_FUNCS = ("vdu_functions:needs_type", "vdu_functions:crashes", "vdu_functions:races")
JSON = "application/json"

REFUSE = """function(newDoc, oldDoc, userCtx, secObj) {
  if (newDoc._deleted && oldDoc && oldDoc.keep) throw({forbidden: 'keep ' + oldDoc._id});
  if (newDoc.deny) throw({forbidden: 'denied: ' + newDoc.deny});
  if (newDoc.auth) throw({unauthorized: 'log in first'});
  if (newDoc.str) throw('just a string');
  if (newDoc.other) throw({not_found: 'other kind'});
  if (newDoc.bug) return newDoc.missing.field;
  if (newDoc.echo) throw({forbidden: JSON.stringify([newDoc, oldDoc, userCtx, secObj])});
  if (newDoc._attachments && newDoc._attachments['evil.txt'])
    throw({forbidden: 'no evil attachments'});
}"""


@pytest.fixture(name="c")
def client_fixture(module_client: Client, module_app: Any) -> Client:
    """The module's client, its app allowed to run the test's Python validation functions."""
    if module_app.settings.python_views != PY_FUNCS:
        module_app.settings = Settings({**module_app.settings.as_dict(), "python_views": PY_FUNCS})
    return module_client


@pytest.fixture(name="db")
def db_fixture(c: Client) -> str:
    name = "vdu_" + uuid.uuid4().hex[:10]
    c.put(f"/{name}", status=201)
    c.put_json(f"/{name}/_design/guard", {"validate_doc_update": REFUSE}, status=201)
    return name


def missing(c: Client, db: str, doc_id: str) -> None:
    c.get(f"/{db}/{doc_id}", status=404)


def echo(c: Client, url: str, body: dict[str, Any], method: str = "put") -> list[Any]:
    """What the function saw: it throws it back as the 403 reason."""
    resp = getattr(c, method + "_json")(url, body, status=403)
    return list(json.loads(resp.json["reason"]))


def test_put_refused_forbidden_unauthorized_and_errors(c: Client, db: str) -> None:
    assert c.put_json(f"/{db}/a", {"deny": "x"}, status=403).json == {
        "error": "forbidden", "reason": "denied: x"}
    assert c.put_json(f"/{db}/b", {"auth": 1}, status=401).json == {
        "error": "unauthorized", "reason": "log in first"}
    assert c.put_json(f"/{db}/s", {"str": 1}, status=500).json == {
        "error": "unknown_error", "reason": "just a string"}
    assert c.put_json(f"/{db}/o", {"other": 1}, status=500).json == {
        "error": "unknown_error", "reason": "other kind"}
    bug = c.put_json(f"/{db}/e", {"bug": 1}, status=500).json
    assert bug["error"] == "javascript_error" and "TypeError" in bug["reason"]
    for doc_id in ("a", "b", "s", "o", "e"):
        missing(c, db, doc_id)
    assert c.post_json(f"/{db}", {"_id": "p", "deny": "post"}, status=403).json["reason"] == \
        "denied: post"
    missing(c, db, "p")
    assert c.put_json(f"/{db}/ok", {"fine": True}, status=201).json["ok"] is True
    info = c.get(f"/{db}").json
    assert info["doc_count"] == 2 and info["update_seq"] == 2  # the ddoc and "ok" only


def test_update_delete_and_copy_refused(c: Client, db: str) -> None:
    rev = c.put_json(f"/{db}/k", {"keep": True}, status=201).json["rev"]
    assert c.put_json(f"/{db}/k", {"_rev": rev, "deny": "upd"}, status=403).json["reason"] == \
        "denied: upd"
    assert c.delete(f"/{db}/k?rev={rev}", status=403).json == {"error": "forbidden",
                                                               "reason": "keep k"}
    assert c.get(f"/{db}/k").json["_rev"] == rev
    c.put_json(f"/{db}/src", {"other_field": 1}, status=201)
    c.request(f"/{db}/src", method="COPY", headers={"Destination": "dst"}, status=201)
    c.put_json(f"/{db}/_design/nocopy", {"validate_doc_update": (
        "function(n) { if (n._id === 'dst2') throw({forbidden: 'not there'}); }")}, status=201)
    refused = c.request(f"/{db}/src", method="COPY", headers={"Destination": "dst2"},
                        status=403)
    assert refused.json == {"error": "forbidden", "reason": "not there"}
    missing(c, db, "dst2")


def test_bulk_docs_per_document_errors(c: Client, db: str) -> None:
    docs = [{"_id": "ok1"}, {"_id": "no1", "deny": "bulk"}, {"_id": "ok2", "n": 2},
            {"_id": "no2", "auth": True}, {"_id": "_local/l", "deny": "local docs pass"}]
    resp = c.post_json(f"/{db}/_bulk_docs", {"docs": docs}, status=201).json
    assert [r.get("error") for r in resp] == [None, "forbidden", None, "unauthorized", None]
    assert resp[1] == {"id": "no1", "error": "forbidden", "reason": "denied: bulk"}
    assert resp[3] == {"id": "no2", "error": "unauthorized", "reason": "log in first"}
    assert c.get(f"/{db}/ok2").json["n"] == 2
    missing(c, db, "no1")
    missing(c, db, "no2")
    assert c.get(f"/{db}/_local/l").json["deny"] == "local docs pass"
    assert c.get(f"/{db}").json["doc_count"] == 3


def test_new_edits_false_is_validated(c: Client, db: str) -> None:
    docs = [{"_id": "r1", "_rev": "1-" + "a" * 32, "deny": "replica"},
            {"_id": "r2", "_rev": "1-" + "b" * 32, "fine": 1}]
    resp = c.post_json(f"/{db}/_bulk_docs", {"docs": docs, "new_edits": False},
                       status=201).json
    assert resp == [{"id": "r1", "error": "forbidden", "reason": "denied: replica"}]
    missing(c, db, "r1")
    assert c.get(f"/{db}/r2").json["_rev"] == "1-" + "b" * 32
    put = c.put_json(f"/{db}/r3?new_edits=false", {"_rev": "1-" + "c" * 32, "deny": "put"},
                     status=403)
    assert put.json["reason"] == "denied: put"
    missing(c, db, "r3")
    # a replayed revision the database already has is not validated again
    c.post_json(f"/{db}/_bulk_docs", {"docs": docs[1:], "new_edits": False}, status=201)


def test_replicated_old_doc_is_the_nearest_stored_ancestor(c: Client, db: str) -> None:
    c.put_json(f"/{db}/_design/guard", {"validate_doc_update": REFUSE,
                                        "_rev": c.get(f"/{db}/_design/guard").json["_rev"]},
               status=201)
    first = c.put_json(f"/{db}/anc", {"v": 1}, status=201).json["rev"]
    new = {"_id": "anc", "_rev": "3-" + "f" * 32, "echo": True,
           "_revisions": {"start": 3, "ids": ["f" * 32, "e" * 32, first.partition("-")[2]]}}
    resp = c.post_json(f"/{db}/_bulk_docs", {"docs": [new], "new_edits": False},
                       status=201).json
    seen_new, seen_old, _, _ = json.loads(resp[0]["reason"])
    assert seen_new["_rev"] == "3-" + "f" * 32
    assert seen_new["_revisions"] == new["_revisions"]
    assert seen_old["_rev"] == first and seen_old["v"] == 1


def test_attachments_put_and_delete_are_validated(c: Client, db: str) -> None:
    rev = c.put_json(f"/{db}/d", {"keep": False}, status=201).json["rev"]
    refused = c.put(f"/{db}/d/evil.txt?rev={rev}", b"bad", content_type="text/plain",
                    status=403)
    assert refused.json == {"error": "forbidden", "reason": "no evil attachments"}
    assert refused.headers["Content-Security-Policy"] == "sandbox"
    c.get(f"/{db}/d/evil.txt", status=404)
    rev2 = c.put(f"/{db}/d/good.txt?rev={rev}", b"ok", content_type="text/plain",
                 status=201).json["rev"]
    # a document whose body the function now refuses cannot lose its attachment either
    c.put_json(f"/{db}/_design/guard2", {"validate_doc_update": (
        "function(n) { if (!n._attachments) throw({forbidden: 'keep the attachment'}); }")},
        status=201)
    assert c.delete(f"/{db}/d/good.txt?rev={rev2}", status=403).json["reason"] == \
        "keep the attachment"
    assert c.get(f"/{db}/d/good.txt").body == b"ok"
    newdoc = c.put(f"/{db}/fresh/evil.txt", b"x", content_type="text/plain", status=403)
    assert newdoc.json["reason"] == "no evil attachments"
    missing(c, db, "fresh")


def test_function_sees_new_old_userctx_and_secobj(c: Client, db: str) -> None:
    sec = {"admins": {"names": ["boss"], "roles": []}, "members": {"names": [], "roles": []}}
    c.put_json(f"/{db}/_security", sec, status=200)
    seen_new, seen_old, ctx, seen_sec = echo(c, f"/{db}/x", {"echo": True, "n": 1})
    assert seen_new == {"_id": "x", "echo": True, "n": 1}
    assert seen_old is None
    assert ctx == {"db": db, "name": None, "roles": ["_admin"]}  # the admin party here
    assert seen_sec == sec
    rev = c.put_json(f"/{db}/x", {"n": 1}, status=201).json["rev"]
    seen_new, seen_old, _, _ = echo(c, f"/{db}/x", {"_rev": rev, "echo": True})
    # CouchDB validates before the new rev exists: newDoc carries the rev it replaces
    assert seen_new["_rev"] == rev and seen_new["_revisions"] == {
        "start": 1, "ids": [rev.partition("-")[2]]}
    assert seen_old == {"_id": "x", "_rev": rev, "n": 1,
                        "_revisions": {"start": 1, "ids": [rev.partition("-")[2]]}}
    c.put(f"/{db}/x/a.txt?rev={rev}", b"hi", content_type="text/plain", status=201)
    doc = c.get(f"/{db}/x").json
    seen_new, seen_old, _, _ = echo(c, f"/{db}/x", {"_rev": doc["_rev"], "echo": True,
                                                   "_attachments": doc["_attachments"]})
    assert seen_old["_attachments"]["a.txt"]["stub"] is True
    assert seen_new["_attachments"]["a.txt"]["digest"] == doc["_attachments"]["a.txt"]["digest"]


def test_deleted_doc_is_recreated_with_null_old_doc(c: Client, db: str) -> None:
    rev = c.put_json(f"/{db}/z", {"n": 1}, status=201).json["rev"]
    c.delete(f"/{db}/z?rev={rev}", status=200)
    seen_new, seen_old, _, _ = echo(c, f"/{db}/z", {"echo": True})
    assert seen_old is None and "_rev" not in seen_new


def test_delete_shows_deleted_new_doc(c: Client, db: str) -> None:
    c.put_json(f"/{db}/_design/guard3", {"validate_doc_update": (
        "function(n, o) { if (n._deleted) throw({forbidden: JSON.stringify([n, o._id])}); }")},
        status=201)
    rev = c.put_json(f"/{db}/gone", {"a": 1}, status=201).json["rev"]
    reason = c.delete(f"/{db}/gone?rev={rev}", status=403).json["reason"]
    seen_new, old_id = json.loads(reason)
    assert seen_new == {"_id": "gone", "_rev": rev, "_deleted": True,
                        "_revisions": {"start": 1, "ids": [rev.partition("-")[2]]}}
    assert old_id == "gone"


def test_design_and_local_docs_are_not_validated(c: Client, db: str) -> None:
    c.put_json(f"/{db}/_design/other", {"deny": "ddoc"}, status=201)
    c.put_json(f"/{db}/_local/x", {"deny": "local"}, status=201)


def test_conflicts_still_win_over_validation(c: Client, db: str) -> None:
    c.put_json(f"/{db}/cf", {"n": 1}, status=201)
    assert c.put_json(f"/{db}/cf", {"deny": "x"}, status=409).json["error"] == "conflict"
    assert c.put_json(f"/{db}/cf", {"_rev": "1-" + "0" * 32}, status=409).json["error"] == \
        "conflict"
    assert c.put_json(f"/{db}/nf", {"_rev": "1-" + "0" * 32}, status=409).json["error"] == \
        "conflict"


def test_every_function_must_pass_and_changes_apply_at_once(c: Client, db: str) -> None:
    ddoc = {"validate_doc_update": "function(n) { if (n.b) throw({forbidden: 'second'}); }"}
    rev = c.put_json(f"/{db}/_design/two", ddoc, status=201).json["rev"]
    assert c.put_json(f"/{db}/m", {"b": 1}, status=403).json["reason"] == "second"
    ddoc = {"_rev": rev,
            "validate_doc_update": "function(n) { if (n.b) throw({forbidden: 'v2'}); }"}
    rev = c.put_json(f"/{db}/_design/two", ddoc, status=201).json["rev"]
    assert c.put_json(f"/{db}/m", {"b": 1}, status=403).json["reason"] == "v2"
    c.delete(f"/{db}/_design/two?rev={rev}", status=200)
    c.put_json(f"/{db}/m", {"b": 1}, status=201)


def test_python_validation_functions(c: Client, db: str) -> None:
    c.put_json(f"/{db}/_design/py", {"language": "python",
                                     "validate_doc_update": "vdu_functions:needs_type"},
               status=201)
    assert c.put_json(f"/{db}/p1", {"n": 1}, status=403).json == {
        "error": "forbidden", "reason": "Documents must have a type field"}
    assert c.put_json(f"/{db}/p2", {"type": "secret"}, status=401).json == {
        "error": "unauthorized", "reason": "Only named users may write secrets"}
    rev = c.put_json(f"/{db}/p3", {"type": "t"}, status=201).json["rev"]
    assert "mutated" not in c.get(f"/{db}/p3").json
    c.delete(f"/{db}/p3?rev={rev}", status=200)
    c.put_json(f"/{db}/_design/py2", {"language": "python",
                                      "validate_doc_update": "vdu_functions:crashes"},
               status=201)
    crash = c.put_json(f"/{db}/p4", {"type": "t", "crash": 1}, status=500).json
    assert crash == {"error": "unknown_error", "reason": "KeyError: 'boom'"}
    c.put_json(f"/{db}/_design/py3", {"language": "python",
                                      "validate_doc_update": "os:system"}, status=201)
    refused = c.put_json(f"/{db}/p5", {"type": "t"}, status=500).json
    assert refused["error"] == "invalid_design_doc" and "not registered" in refused["reason"]
    missing(c, db, "p4")
    missing(c, db, "p5")


def test_replication_runs_the_target_validation(c: Client, db: str) -> None:
    source = "src_" + uuid.uuid4().hex[:8]
    c.put(f"/{source}", status=201)
    docs = [{"_id": "good", "n": 1}, {"_id": "bad", "deny": "replicated"}]
    c.post_json(f"/{source}/_bulk_docs", {"docs": docs}, status=201)
    out = c.post_json("/_replicate", {"source": source, "target": db}).json
    assert out["ok"] is True
    assert out["history"][0]["doc_write_failures"] == 1
    assert c.get(f"/{db}/good").json["n"] == 1
    missing(c, db, "bad")


def test_second_node_sees_a_new_function_on_its_next_write(module_app: Any, c: Client,
                                                           db: str) -> None:
    other = create_app(module_app.settings.as_dict())
    try:
        node2 = Client(other, extra_environ={"HTTP_HOST": "127.0.0.1:5984"})
        node2.put_json(f"/{db}/before", {"n": 1}, status=201)  # node 2 caches the ddoc list
        c.put_json(f"/{db}/_design/late", {"validate_doc_update": (
            "function(n) { if (n.n === 2) throw({forbidden: 'two'}); }")}, status=201)
        assert node2.put_json(f"/{db}/after", {"n": 2}, status=403).json["reason"] == "two"
        rev = c.get(f"/{db}/_design/late").json["_rev"]
        c.delete(f"/{db}/_design/late?rev={rev}", status=200)
        node2.put_json(f"/{db}/after", {"n": 2}, status=201)
    finally:
        other.store.close()


def test_a_function_added_while_validating_still_applies(module_app: Any, c: Client,
                                                         db: str) -> None:
    """Another node adds a design doc after this write was validated but before it commits:
    the write sees the changed state under its lock, rolls back and is validated again."""
    c.put_json(f"/{db}/_design/slow", {"language": "python",
                                       "validate_doc_update": "vdu_functions:races"}, status=201)
    late = {"validate_doc_update": "function(n) { throw({forbidden: 'added meanwhile'}); }"}
    vdu_functions.DURING.append(lambda: module_app.store.db(db).save("_design/late", late))
    assert c.put_json(f"/{db}/raced", {"n": 1}, status=403).json["reason"] == "added meanwhile"
    missing(c, db, "raced")
    sec = {"members": {"names": ["x"], "roles": []}}
    c.put_json(f"/{db}/_design/secure", {"validate_doc_update": (
        "function(n, o, u, s) { if (s.members && s.members.names.indexOf('y') >= 0)"
        " throw({forbidden: 'y is a member'}); }")}, status=201)
    rev = c.get(f"/{db}/_design/late").json["_rev"]
    c.delete(f"/{db}/_design/late?rev={rev}", status=200)
    c.put_json(f"/{db}/_security", sec, status=200)
    c.put_json(f"/{db}/before", {"n": 1}, status=201)
    changed = json.dumps({"members": {"names": ["y"], "roles": []}})
    vdu_functions.DURING.append(lambda: module_app.store.engine.run(
        lambda conn: catalog.set_field(conn, db, "security", changed)))
    assert c.put_json(f"/{db}/after", {"n": 1}, status=403).json["reason"] == "y is a member"


def test_a_function_added_while_the_write_waits_for_the_lock_still_applies(
        module_app: Any, c: Client, db: str) -> None:
    """Another writer adds a design doc and holds the database's lock while this write waits
    for it. On PostgreSQL the write's locking statement started before that commit, so what it
    joins besides the locked row is from before it: the write must read the design docs again
    once it holds the lock, and be refused."""
    from settee.store import make_edit

    store = module_app.store
    c.put_json(f"/{db}/warm", {"n": 1}, status=201)  # this process now knows the state
    late = make_edit("_design/late", {
        "validate_doc_update": "function(n) { throw({forbidden: 'added while waiting'}); }"})
    answer: list[Any] = []
    writer = threading.Thread(target=lambda: answer.append(
        c.put_json(f"/{db}/raced", {"n": 1}, expect_errors=True)))
    with lock_held(store, db, [late]):
        writer.start()
        assert wait_for_lock_wait(store), "the PUT never waited for the lock"
    writer.join(10)
    assert answer and answer[0].status_int == 403, answer and answer[0].body
    assert answer[0].json["reason"] == "added while waiting"
    missing(c, db, "raced")
