"""Reliability test 33, write side: the `_users` database's rules (CouchDB's `_design/_auth`).

Signup with `roles: ["_admin"]` is refused, duplicate `roles` keys are a 400, a user cannot
change their own roles, name or type nor touch another user's document, a clear `password` is
replaced by a PBKDF2 hash and never stored, and admins manage everything; in `_bulk_docs` too.
The rules are checked one by one on hand-made user contexts, through `save_edits` on both
backends, and over HTTP with real users signing up and logging in with Basic auth.
"""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest
from authkit import ADMIN_AUTH, add_user, basic, req, settings
from conftest import Client
from settee.server import create_app
from settee.server.handlers.attachments import save_edits
from settee.server.passwords import from_user_doc
from settee.server.settings import Settings
from settee.server.user_docs import UserDocError, check
from settee.server.userctx import ANONYMOUS, UserCtx
from settee.store import make_edit

JSON = "application/json"
BOB = UserCtx("bob", ("reader",), "default")
ADMIN = UserCtx("root", ("_admin",), "default")
NO_SEC: dict[str, Any] = {}


def user(name: str, roles: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    return {"_id": f"org.couchdb.user:{name}", "type": "user", "name": name,
            "roles": roles if roles is not None else [], **extra}


def refused(new: dict[str, Any], old: dict[str, Any] | None, ctx: UserCtx,
            sec: dict[str, Any] = NO_SEC) -> str:
    with pytest.raises(UserDocError) as info:
        check(new, old, ctx, sec)
    assert (info.value.status, info.value.error) == (403, "forbidden")
    return info.value.reason


# -- the rules, one by one --------------------------------------------------------------------

def test_signup_rules() -> None:
    check(user("bob"), None, ANONYMOUS, NO_SEC)
    assert refused(user("bob", ["_admin"]), None, ANONYMOUS) == "Only _admin may set roles"
    assert refused(user("bob", ["x"]), None, ANONYMOUS) == "Only _admin may set roles"
    assert refused({**user("bob"), "type": "admin"}, None, ANONYMOUS) == "doc.type must be user"
    assert refused({**user("bob"), "name": ""}, None, ANONYMOUS) == "doc.name is required"
    no_roles = user("bob")
    del no_roles["roles"]
    assert refused(no_roles, None, ANONYMOUS) == "doc.roles must exist"
    assert refused(user("bob", "x"), None, ANONYMOUS) == "doc.roles must be an array"  # type: ignore[arg-type]
    assert refused(user("bob", [1]), None, ADMIN) == "doc.roles can only contain strings"  # type: ignore[list-item]
    assert refused({**user("bob"), "_id": "org.couchdb.user:alice"}, None, ANONYMOUS) == \
        "Doc ID must be of the form org.couchdb.user:name"
    assert refused(user("_bob"), None, ADMIN) == "Username may not start with underscore."
    assert refused(user("a:b"), None, ADMIN) == "Character `:` is not allowed in usernames."
    assert refused(user("bob", ["_admin"]), None, ADMIN) == \
        "No system roles (starting with underscore) in users db."
    check(user("bob", ["_metrics", "ops"]), None, ADMIN, NO_SEC)
    assert refused(user("bob", password_scheme="md5"), None, ADMIN) == \
        "Password scheme `md5` not supported."
    assert refused(user("bob", password_scheme="pbkdf2", iterations="9", derived_key="k"),
                   None, ADMIN) == "iterations must be a number."


def test_update_rules() -> None:
    old = user("bob", ["reader"])
    check(user("bob", ["reader"], email="b@x"), old, BOB, NO_SEC)
    assert refused(user("bob", ["reader", "admin"]), old, BOB) == "Only _admin may edit roles"
    assert refused(user("bob", []), old, BOB) == "Only _admin may edit roles"
    assert refused(user("alice"), user("alice"), BOB) == \
        "You may only update your own user document."
    assert refused(user("alice"), user("alice"), ANONYMOUS) == \
        "You may only update your own user document."
    renamed = {**user("bob2"), "_id": "org.couchdb.user:bob"}
    assert refused(renamed, old, BOB) == "Doc ID must be of the form org.couchdb.user:name"
    assert refused({**user("bob"), "type": "x"}, old, BOB) == "doc.type must be user"
    check(user("bob", ["writer"]), old, ADMIN, NO_SEC)
    db_admin_by_role = {"admins": {"names": [], "roles": ["reader"]}}
    check(user("carol", ["x"]), user("carol"), BOB, db_admin_by_role)
    db_admin_by_name = {"admins": {"names": ["bob"], "roles": []}}
    check(user("carol", ["x"]), None, BOB, db_admin_by_name)


def test_delete_rules() -> None:
    gone = {"_id": "org.couchdb.user:bob", "_deleted": True}
    check(gone, user("bob"), BOB, NO_SEC)
    check(gone, user("bob"), ADMIN, NO_SEC)
    assert refused(gone, user("bob"), UserCtx("alice")) == \
        "Only admins may delete other user docs."


# -- through the write path, on both backends ---------------------------------------------------

@pytest.fixture(name="c")
def client_fixture(module_client: Client, module_app: Any) -> Client:
    if module_app.settings.auth_iterations != 1000:
        module_app.settings = Settings({**module_app.settings.as_dict(), "auth_iterations": 1000})
    module_client.put("/_users", status="*")
    return module_client


def write(app: Any, ctx: UserCtx, docs: list[dict[str, Any]], new_edits: bool = True) -> list[Any]:
    request = SimpleNamespace(user_ctx=ctx)
    edits = [make_edit(d["_id"], d, new_edits=new_edits) for d in docs]
    return save_edits(app, request, "_users", edits, new_edits)  # type: ignore[arg-type]


def stored(c: Client, name: str) -> dict[str, Any]:
    return dict(c.get(f"/_users/org.couchdb.user:{name}").json)


def test_password_is_hashed_and_never_stored(c: Client, module_app: Any) -> None:
    result = write(module_app, ANONYMOUS, [user("dora", password="pa55word")])[0]
    assert result.error is None
    doc = stored(c, "dora")
    assert "password" not in doc
    assert (doc["password_scheme"], doc["pbkdf2_prf"], doc["iterations"]) == \
        ("pbkdf2", "sha256", 1000)
    assert len(doc["salt"]) == 32 and len(doc["derived_key"]) == 64
    assert from_user_doc(doc, 10**6).verify("pa55word")
    assert not from_user_doc(doc, 10**6).verify("wrong")
    raw = c.get("/_users/_all_docs?include_docs=true").body
    assert b"pa55word" not in raw
    # the same through HTTP as an admin, and a password change keeps no clear text either
    c.put("/_users/org.couchdb.user:eve", json.dumps(user("eve", ["ops"], password="x1")),
          content_type=JSON, status=201)
    eve = stored(c, "eve")
    assert "password" not in eve and eve["roles"] == ["ops"]
    c.put("/_users/org.couchdb.user:eve", json.dumps({**eve, "password": "x2"}),
          content_type=JSON, status=201)
    eve2 = stored(c, "eve")
    assert "password" not in eve2 and eve2["salt"] != eve["salt"]
    assert from_user_doc(eve2, 10**6).verify("x2")


def test_signup_as_admin_is_refused_and_nothing_written(c: Client, module_app: Any) -> None:
    got = write(module_app, ANONYMOUS, [user("mallory", ["_admin"], password="p")])[0]
    assert (got.error.status, got.error.error) == (403, "forbidden")
    c.get("/_users/org.couchdb.user:mallory", status=404)
    # CVE-2017-12635: two `roles` keys never reach the rules, the body is refused as it is
    body = ('{"_id":"org.couchdb.user:mallory","type":"user","name":"mallory",'
            '"roles":["_admin"],"roles":[],"password":"p"}')
    resp = c.put("/_users/org.couchdb.user:mallory", body, content_type=JSON, status=400)
    assert resp.json["error"] == "bad_request"
    bulk = '{"docs":[' + body.replace('"password":"p"', '"password":"q"') + "]}"
    assert c.post("/_users/_bulk_docs", bulk, content_type=JSON, status=400).json["error"] == \
        "bad_request"
    c.get("/_users/org.couchdb.user:mallory", status=404)


def test_users_edit_only_their_own_doc_and_never_their_roles(c: Client,
                                                             module_app: Any) -> None:
    write(module_app, ADMIN, [user("fred", ["reader"], password="f"), user("gina")])
    fred = stored(c, "fred")
    as_fred = UserCtx("fred", ("reader",), "default")
    own = write(module_app, as_fred, [{**fred, "email": "f@x"}])[0]
    assert own.error is None and stored(c, "fred")["email"] == "f@x"
    fred = stored(c, "fred")
    up = write(module_app, as_fred, [{**fred, "roles": ["reader", "boss"]}])[0]
    assert (up.error.status, up.error.reason) == (403, "Only _admin may edit roles")
    gina = stored(c, "gina")
    other = write(module_app, as_fred, [{**gina, "roles": []}])[0]
    assert (other.error.status, other.error.error) == (404, "not_found")  # who exists is secret
    assert stored(c, "fred")["roles"] == ["reader"]
    renamed = write(module_app, as_fred, [{**fred, "name": "fred2"}])[0]
    assert renamed.error.status == 403
    typed = write(module_app, as_fred, [{**fred, "type": "admin"}])[0]
    assert typed.error.reason == "doc.type must be user"
    # the admin manages everyone, roles included
    boss = write(module_app, ADMIN, [{**stored(c, "fred"), "roles": ["boss"]}])[0]
    assert boss.error is None and stored(c, "fred")["roles"] == ["boss"]


def test_bulk_docs_rules_per_document(c: Client, module_app: Any) -> None:
    docs = [user("hank", password="h"), user("ivy", ["_admin"]), {"_id": "plain", "x": 1},
            user("jo", password="j")]
    got = write(module_app, ANONYMOUS, docs)
    assert [r.error.reason if r.error else None for r in got] == [
        None, "Only _admin may set roles", "doc.type must be user", None]
    assert "password" not in stored(c, "hank") and "password" not in stored(c, "jo")
    c.get("/_users/org.couchdb.user:ivy", status=404)
    c.get("/_users/plain", status=404)
    replicated = write(module_app, ANONYMOUS,
                       [{**user("kim", ["_admin"]), "_rev": "1-" + "a" * 32}], new_edits=False)
    assert replicated[0].error.reason == "Only _admin may set roles"
    c.get("/_users/org.couchdb.user:kim", status=404)
    via_http = c.post("/_users/_bulk_docs", json.dumps({"docs": [
        user("lou", ["_admin"]), user("max", password="m")]}), content_type=JSON,
        status=201).json
    assert via_http[0] == {"id": "org.couchdb.user:lou", "error": "forbidden",
                           "reason": "No system roles (starting with underscore) in users db."}
    assert via_http[1]["ok"] is True and "password" not in stored(c, "max")


# -- over HTTP, with real users (Basic auth, a non-loopback caller: no admin party) -------------

@pytest.fixture
def users_app(store_url: str, tmp_path: Any) -> Any:
    """A secured app whose `_users` anyone may write to (signup), with user bob."""
    app = create_app({"database_url": store_url, "data_dir": str(tmp_path / "data"),
                      **settings(users_db_security_editable=True)})
    add_user(app, "bob", "bob-password", ["staff"])
    public = {"members": {"roles": []}, "admins": {"roles": ["_admin"]}}
    assert req(app, "PUT", "/_users/_security", public, ADMIN_AUTH).status == 200
    yield app
    app.store.close()


def test_http_signup_and_role_escalation(users_app: Any) -> None:
    app, path = users_app, "/_users/org.couchdb.user:"
    grab = req(app, "PUT", path + "eve", user("eve", ["_admin"], password="p"))
    assert (grab.status, grab.json()["reason"]) == (403, "Only _admin may set roles")
    assert req(app, "GET", path + "eve", headers=ADMIN_AUTH).status == 404
    signup = req(app, "PUT", path + "eve", user("eve", password="eve-pw"))
    assert signup.status == 201, signup.body
    eve = req(app, "GET", path + "eve", headers=ADMIN_AUTH).json()
    assert "password" not in eve and eve["password_scheme"] == "pbkdf2"
    as_eve = basic("eve", "eve-pw")
    assert req(app, "GET", "/_session", headers=as_eve).json()["userCtx"] == {
        "name": "eve", "roles": []}
    mine = req(app, "GET", path + "eve", headers=as_eve).json()
    escalate = req(app, "PUT", path + "eve", {**mine, "roles": ["staff"]}, as_eve)
    assert (escalate.status, escalate.json()["reason"]) == (403, "Only _admin may edit roles")
    new_pw = req(app, "PUT", path + "eve", {**mine, "password": "eve-pw-2"}, as_eve)
    assert new_pw.status == 201, new_pw.body
    assert req(app, "GET", "/_session", headers=basic("eve", "eve-pw-2")).status == 200
    assert req(app, "GET", "/_session", headers=as_eve).status == 401
    bob = req(app, "GET", path + "bob", headers=ADMIN_AUTH).json()
    other = req(app, "PUT", path + "bob", {**bob, "roles": []}, basic("eve", "eve-pw-2"))
    assert other.status == 404
    bulk = req(app, "POST", "/_users/_bulk_docs",
               {"docs": [user("fay", ["_admin"]), user("gus", password="g")]})
    assert bulk.status == 201
    assert [r.get("error") for r in bulk.json()] == ["forbidden", None]
    assert req(app, "GET", "/_session", headers=basic("gus", "g")).status == 200


def test_validation_sees_a_real_user_and_the_security_object(users_app: Any) -> None:
    app, bob = users_app, basic("bob", "bob-password")
    assert req(app, "PUT", "/notes", None, ADMIN_AUTH).status == 201
    sec = {"members": {"names": ["bob"], "roles": []}, "admins": {"names": [], "roles": []}}
    assert req(app, "PUT", "/notes/_security", sec, ADMIN_AUTH).status == 200
    vdu = ("function(n, o, u, s) {"
           " if (n.who) throw({forbidden: JSON.stringify([u, s])});"
           " if (u.roles.indexOf('_admin') < 0 && n.locked) throw({unauthorized: 'admins only'});"
           "}")
    assert req(app, "PUT", "/notes/_design/v", {"validate_doc_update": vdu},
               ADMIN_AUTH).status == 201
    seen = req(app, "PUT", "/notes/a", {"who": 1}, bob)
    assert seen.status == 403
    ctx, secobj = json.loads(seen.json()["reason"])
    assert ctx == {"db": "notes", "name": "bob", "roles": ["staff"]}
    assert secobj == sec
    locked = req(app, "PUT", "/notes/b", {"locked": True}, bob)
    assert locked.status == 401 and locked.json() == {"error": "unauthorized",
                                                      "reason": "admins only"}
    assert req(app, "PUT", "/notes/b", {"locked": True}, ADMIN_AUTH).status == 201
    assert req(app, "PUT", "/notes/c", {"n": 1}, bob).status == 201
    assert req(app, "GET", "/notes/a", headers=ADMIN_AUTH).status == 404
