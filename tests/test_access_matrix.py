"""Every route x every kind of caller x three `_security` objects, against CouchDB 3's answers.

The expected answers are spelled out here from CouchDB 3's rules (not read from `access.py`):
server endpoints are public or server-admin only (401 "You are not a server admin." to anyone
else); a database's endpoints need a member, and its admin resources (design documents,
`_security`, `_revs_limit` writes, compaction, purge, index management) a db admin: anonymous
callers get 401 and users 403. A wrong password is 401 everywhere; an expired cookie is the same
as no cookie. No response to a caller who may not read a database may carry any of its ids,
keys, values or attachment bytes. The whole matrix runs with `require_valid_user` off and on
(reliability.md tests 31, 32), on SQLite and PostgreSQL.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from typing import Any

import pytest
from authkit import ADMIN, ADMIN_AUTH, ADMIN_PASSWORD, add_user, basic, req, settings, with_cookie
from conftest import BACKENDS, _drop_pg_database, _pg_database
from settee.server import auth, create_app, sessions
from settee.server.routes import RULES
from settee.store import sqlite_url

KINDS = ("default", "private", "public")
WHO = ("anonymous", "wrong_password", "expired_cookie", "outsider", "member_name",
       "member_role", "db_admin", "server_admin")
SECURITY: dict[str, dict[str, Any]] = {
    "private": {"admins": {"names": ["dbadmin"], "roles": []},
                "members": {"names": ["mname"], "roles": ["readers"]}},
    "public": {"admins": {"names": ["dbadmin"], "roles": []},
               "members": {"names": [], "roles": []}},
}
MARKERS = ("secret-doc", "secret-value", "secret-key", "secret-attachment", "secret-local",
           "c2VjcmV0")  # the last: base64 of "secret", as attachment stubs would carry it
PUBLIC_SERVER = {"root.welcome", "root.up", "session.session", "root.uuids",
                 "replicate.replicate"}
SERVER_ONLY = {"root.all_dbs", "root.dbs_info", "changes.db_updates",
               "replicate.scheduler_jobs", "node.active_tasks", "node.prometheus",
               "node.stats", "node.system"}
DB_ADMIN_401 = {"databases.compact", "views.view_cleanup", "views.compact_views"}
DB_ADMIN_ALWAYS = {"databases.purge", "find.bulk_delete", "find.delete_index"}
DB_ADMIN_WRITES = {"databases.revs_limit", "databases.security", "find.indexes",
                   "documents.design_doc", "attachments.design_attachment"}
NOT_SERVER_ADMIN = (401, "You are not a server admin.")


def expected(endpoint: str, method: str, who: str, kind: str, rvu: bool
             ) -> tuple[int, str] | None:
    """CouchDB 3's status and reason for a refused cell, or None when the caller gets through.

    The order is CouchDB's: credentials, `require_valid_user`, server-admin resources
    (`chttpd_auth_request`), membership of the database, then db-admin resources.
    """
    if who == "wrong_password":
        return 401, "Name or password is incorrect."
    anonymous = who in ("anonymous", "expired_cookie")
    if rvu and anonymous and endpoint not in ("root.up", "session.session"):
        return 401, "Authentication required."
    if who == "server_admin" or endpoint in PUBLIC_SERVER:
        return None
    if endpoint in SERVER_ONLY or (endpoint == "databases.db" and method in ("PUT", "DELETE")):
        return NOT_SERVER_ADMIN
    db_admin = kind != "default" and who == "db_admin"
    member = db_admin or kind == "public" or (
        kind == "private" and who in ("member_name", "member_role"))
    if not member:
        return (401, "You are not authorized to access this db.") if anonymous else \
            (403, "You are not allowed to access this db.")
    if endpoint in DB_ADMIN_401:
        return None if db_admin else (401, "You are not a server or db admin.")
    needs_admin = endpoint in DB_ADMIN_ALWAYS or (
        endpoint in DB_ADMIN_WRITES and method not in ("GET", "HEAD", "COPY"))
    if needs_admin and not db_admin:
        return 401 if anonymous else 403, "You are not a db or server admin."
    return None


def cells() -> list[tuple[str, str, str]]:
    """(rule path, endpoint, method) for every method of every route."""
    out = []
    for rule in RULES:
        for method in sorted(rule.methods or ()):
            if method != "OPTIONS":
                out.append((rule.rule, rule.endpoint, method))
    return out


def build(rule: str, endpoint: str, method: str, db: str, n: int
          ) -> tuple[str, Any, dict[str, str], str | None]:
    """A concrete request for one cell: path, body, headers, content type."""
    docid = {"GET": "secret-doc", "HEAD": "secret-doc", "COPY": "secret-doc",
             "PUT": f"new-{n}", "POST": f"new-{n}", "DELETE": "no-such-doc"}[method]
    if endpoint in ("documents.design_doc", "attachments.design_attachment"):
        docid = "d" if method in ("GET", "HEAD", "COPY") else f"dd{n}"
    if endpoint.startswith("documents.local"):
        docid = "loc" if method in ("GET", "HEAD", "COPY") else f"l{n}"
    path = (rule.replace("<db>", db).replace("<ddoc>", "d").replace("<view>", "v")
            .replace("<docid>", docid).replace("<path:att>", "att.txt")
            .replace("<path:rest>", "_design/x/json/y").replace("<node>", "_local")
            .replace("<path:path>", "couchdb"))
    if endpoint == "databases.db" and method in ("PUT", "DELETE"):
        path = f"/made_{n}" if method == "PUT" else f"/never_{n}"
    headers: dict[str, str] = {}
    if method == "COPY":
        headers["Destination"] = f"copy-{n}"
    body: Any = None
    ctype = None
    if method in ("POST", "PUT"):
        body = BODIES.get(endpoint, {})
        if endpoint == "databases.security":
            body = SECURITY.get(db.split("_")[1], {"members": {"roles": ["_admin"]},
                                                   "admins": {"roles": ["_admin"]}})
        if endpoint in ("attachments.attachment", "attachments.design_attachment",
                        "documents.local_attachment") and method == "PUT":
            body, ctype = "attachment bytes", "text/plain"
    if endpoint in ("all_docs.all_docs", "views.view", "changes.changes") and method == "GET":
        path += "?include_docs=true"
    return path, body, headers, ctype


BODIES: dict[str, Any] = {
    "session.session": {"name": ADMIN, "password": ADMIN_PASSWORD},
    "root.dbs_info": {"keys": ["m_private", "m_default"]},
    "replicate.replicate": {"source": "m_private"},  # no target: 400 for everyone let through
    "all_docs.all_docs": {"keys": ["secret-doc"]},
    "all_docs.all_docs_queries": {"queries": [{"keys": ["secret-doc"], "include_docs": True}]},
    "all_docs.design_docs": {"keys": ["_design/d"]},
    "all_docs.design_docs_queries": {"queries": [{}]},
    "all_docs.local_docs": {"keys": ["_local/loc"]},
    "all_docs.local_docs_queries": {"queries": [{}]},
    "bulk.bulk_docs": {"docs": [{"_id": "bulk-doc"}]},
    "bulk.bulk_get": {"docs": [{"id": "secret-doc"}]},
    "bulk.revs_diff": {"secret-doc": ["1-0123456789abcdef0123456789abcdef"]},
    "bulk.missing_revs": {"secret-doc": ["1-0123456789abcdef0123456789abcdef"]},
    "databases.revs_limit": 1000,
    "find.find": {"selector": {"v": "secret-value"}},
    "find.explain": {"selector": {"v": "secret-value"}},
    "find.indexes": {"index": {"fields": ["v"]}},
    "find.bulk_delete": {"docids": []},
    "views.view": {"keys": ["secret-key"]},
    "views.view_queries": {"queries": [{"include_docs": True}]},
    "changes.changes": {"doc_ids": ["secret-doc"]},
}


def fill(app: Any, db: str, security: dict[str, Any] | None) -> None:
    """A database with a document, an attachment, a view and a local doc carrying markers."""
    assert req(app, "PUT", f"/{db}", headers=ADMIN_AUTH).status == 201
    if security is not None:
        assert req(app, "PUT", f"/{db}/_security", security, ADMIN_AUTH).status == 200
    doc = {"v": "secret-value", "_attachments": {"att.txt": {
        "content_type": "text/plain", "data": "c2VjcmV0LWF0dGFjaG1lbnQ="}}}
    assert req(app, "PUT", f"/{db}/secret-doc", doc, ADMIN_AUTH).status == 201
    ddoc = {"views": {"v": {"map": "function(doc){ if (doc.v) emit('secret-key', doc.v); }"}}}
    assert req(app, "PUT", f"/{db}/_design/d", ddoc, ADMIN_AUTH).status == 201
    assert req(app, "PUT", f"/{db}/_local/loc", {"v": "secret-local"}, ADMIN_AUTH).status == 201


@pytest.fixture(scope="module", params=list(itertools.product(BACKENDS, (False, True))),
                ids=lambda p: f"{p[0]}-rvu_{'on' if p[1] else 'off'}")
def secured(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[tuple[Any, bool, dict[str, dict[str, str]]]]:
    """A secured app with users and the three databases, and each caller's headers."""
    backend, rvu = request.param
    data_dir = str(tmp_path_factory.mktemp("data"))
    pg_name = None
    if backend == "sqlite":
        url = sqlite_url(data_dir)
    else:
        admin = request.getfixturevalue("pg_admin")
        pg_name = _pg_database(admin)
        url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{pg_name}"
    app = create_app({"database_url": url, "data_dir": data_dir,
                      **settings(require_valid_user=rvu)})
    for name, roles in (("outsider", []), ("mname", []), ("mrole", ["readers"]),
                        ("dbadmin", [])):
        add_user(app, name, f"pw-{name}", roles)
    fill(app, "m_default", None)
    fill(app, "m_private", SECURITY["private"])
    fill(app, "m_public", SECURITY["public"])
    state = auth.state(app)
    mname = state.directory.find("mname")
    assert mname is not None
    old = int(state.clock()) - int(app.settings.auth_timeout) - 5
    expired = sessions.encode("mname", old, state.secret(), mname.salt)
    callers = {
        "anonymous": {}, "wrong_password": basic("mname", "not-the-password"),
        "expired_cookie": with_cookie(expired), "outsider": basic("outsider", "pw-outsider"),
        "member_name": basic("mname", "pw-mname"), "member_role": basic("mrole", "pw-mrole"),
        "db_admin": basic("dbadmin", "pw-dbadmin"), "server_admin": ADMIN_AUTH,
    }
    yield app, rvu, callers
    app.store.close()
    if pg_name is not None:
        _drop_pg_database(request.getfixturevalue("pg_admin"), pg_name)


@pytest.mark.parametrize("kind", KINDS)
def test_every_route_answers_each_caller_as_couchdb(
        secured: tuple[Any, bool, dict[str, dict[str, str]]], kind: str) -> None:
    app, rvu, callers = secured
    db = f"m_{kind}"
    wrong, leaks = [], []
    counter = itertools.count()
    for rule, endpoint, method in cells():
        for who in WHO:
            n = next(counter)
            path, body, headers, ctype = build(rule, endpoint, method, db, n)
            remote = f"10.9.{n // 250}.{n % 250}" if who == "wrong_password" else "10.1.2.3"
            answer = req(app, method, path, body, {**callers[who], **headers}, remote=remote,
                         content_type=ctype)
            want = expected(endpoint, method, who, kind, rvu)
            cell = f"{who:15} {method:6} {path} ({endpoint})"
            if want is None:
                if answer.status in (401, 403) or answer.status >= 500:
                    wrong.append(f"{cell}: {answer.status} {answer.body[:120]!r}, "
                                 "expected to be let through")
            elif answer.status != want[0]:
                wrong.append(f"{cell}: {answer.status} {answer.body[:120]!r}, expected {want}")
            elif method != "HEAD":
                error = "unauthorized" if want[0] == 401 else "forbidden"
                if answer.json() != {"error": error, "reason": want[1]}:
                    wrong.append(f"{cell}: {answer.body!r}, expected {error}: {want[1]}")
            reader = who == "server_admin" or (kind != "default" and (
                who == "db_admin" or kind == "public"
                or who in ("member_name", "member_role")))
            if rvu and who in ("anonymous", "expired_cookie"):
                reader = False
            if not reader and endpoint not in ("root.dbs_info",):
                found = [m for m in MARKERS if m.encode() in answer.body]
                if found:
                    leaks.append(f"{cell}: {found} in {answer.body[:200]!r}")
    assert not wrong, f"{len(wrong)} cells differ:\n" + "\n".join(wrong[:60])
    assert not leaks, "outsiders saw a database's contents:\n" + "\n".join(leaks[:40])


def test_the_matrix_covers_every_route_and_method() -> None:
    endpoints = {endpoint for _, endpoint, _ in cells()}
    assert endpoints == {rule.endpoint for rule in RULES}
    assert len(cells()) >= 100


def test_outsider_replication_of_a_private_db_copies_nothing(
        secured: tuple[Any, bool, dict[str, dict[str, str]]]) -> None:
    app, rvu, callers = secured
    body = {"source": "m_private", "target": "m_public", "doc_ids": ["secret-doc"]}
    for who in ("anonymous", "outsider", "member_name"):
        answer = req(app, "POST", "/_replicate", body, callers[who])
        if who == "member_name":  # a member may read the source and write the public target
            continue
        assert answer.status in (401, 403, 404, 500), answer.body
        assert b"secret-value" not in answer.body
    got = req(app, "GET", "/m_public/secret-doc", headers=ADMIN_AUTH)
    if got.status == 200:  # only the member's replication may have copied it
        assert got.json()["v"] == "secret-value"
    forged = req(app, "GET", "/m_private/secret-doc",
                 headers={**callers["outsider"], "X-Settee-User": json.dumps(["_admin"])})
    assert forged.status == 403


@pytest.fixture(scope="module")
def party(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """An app with no admin configured (the admin party), its databases made from loopback."""
    data_dir = str(tmp_path_factory.mktemp("party"))
    app = create_app({"data_dir": data_dir, "auth_iterations": 1000})
    for kind in KINDS:
        db = f"m_{kind}"
        assert req(app, "PUT", f"/{db}", remote="127.0.0.1").status == 201
        if kind in SECURITY:
            assert req(app, "PUT", f"/{db}/_security", SECURITY[kind],
                       remote="127.0.0.1").status == 200
        assert req(app, "PUT", f"/{db}/secret-doc", {"v": "secret-value"},
                   remote="127.0.0.1").status == 201
    yield app
    app.store.close()


@pytest.mark.parametrize("kind", KINDS)
def test_the_admin_party_is_loopback_only(party: Any, kind: str) -> None:
    """No admin configured: a caller from another address is anonymous on every route (the
    admin party must not reach it), while a loopback caller is let through everywhere."""
    db = f"m_{kind}"
    wrong = []
    for n, (rule, endpoint, method) in enumerate(cells()):
        if endpoint == "session.session" and method == "POST":
            continue  # logging in as an admin that does not exist is 401 from anywhere
        path, body, headers, ctype = build(rule, endpoint, method, db, 10_000 + n)
        outside = req(party, method, path, body, headers, remote="203.0.113.9",
                      content_type=ctype)
        want = expected(endpoint, method, "anonymous", kind, False)
        if want is None and (outside.status in (401, 403) or outside.status >= 500):
            wrong.append(f"outside {method} {path}: {outside.status}, expected to pass")
        elif want is not None and outside.status != want[0]:
            wrong.append(f"outside {method} {path}: {outside.status}, expected {want}")
        if want is not None and b"secret-value" in outside.body:
            wrong.append(f"outside {method} {path}: leaked {outside.body[:100]!r}")
        local = req(party, method, path, body, headers, remote="127.0.0.1", content_type=ctype)
        if local.status in (401, 403) or local.status >= 500:
            wrong.append(f"loopback {method} {path}: {local.status} {local.body[:100]!r}")
    assert not wrong, "\n".join(wrong[:40])
