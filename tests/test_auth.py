"""Who is who: the admin party (loopback only), Basic auth for the admin and `_users` users,
lockout and the cost of guessing, `require_valid_user`, the `_users` rules, design-document
writes, duplicate-key escalation attempts, and the refusal of sample secrets."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from authkit import ADMIN_AUTH, add_user, basic, req, settings, user_doc
from settee.server import auth, cli, create_app, serve
from settee.server.passwords import hash_password
from settee.server.settings import SettingError, Settings


@pytest.fixture
def make_app(store_url: str, tmp_path: Any) -> Iterator[Callable[..., Any]]:
    """Build apps on the backend's store with extra settings; closed at the end."""
    apps: list[Any] = []

    def make(**extra: Any) -> Any:
        app = create_app({"database_url": store_url, "data_dir": str(tmp_path / "data"),
                          **extra})
        apps.append(app)
        return app
    yield make
    for app in apps:
        app.store.close()


@pytest.fixture
def secured(make_app: Callable[..., Any]) -> Any:
    """An app with a server admin and user `bob` (role `staff`)."""
    app = make_app(**settings())
    add_user(app, "bob", "bob-password", ["staff"])
    return app


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


# -- the admin party ------------------------------------------------------------------------------

@pytest.mark.parametrize("remote,party", [(None, True), ("127.0.0.1", True), ("127.3.4.5", True),
                                          ("::1", True), ("10.0.0.1", False),
                                          ("192.168.1.9", False), ("::ffff:10.0.0.1", False)])
def test_admin_party_only_from_loopback(make_app: Callable[..., Any], remote: str | None,
                                        party: bool) -> None:
    app = make_app()
    answer = req(app, "GET", "/_all_dbs", remote=remote)
    if party:
        assert answer.status == 200
        me = req(app, "GET", "/_session", remote=remote).json()["userCtx"]
        assert me == {"name": None, "roles": ["_admin"]}
    else:
        assert answer.status == 401
        assert req(app, "PUT", "/made", remote=remote).status == 401
        assert req(app, "GET", "/_session", remote=remote).json()["userCtx"]["roles"] == []


def test_an_admin_ends_the_admin_party_even_on_loopback(secured: Any) -> None:
    assert req(secured, "GET", "/_all_dbs", remote="127.0.0.1").status == 401
    assert req(secured, "GET", "/_all_dbs", remote=None).status == 401
    assert req(secured, "GET", "/_all_dbs", headers=ADMIN_AUTH).status == 200


def test_users_authenticate_during_the_admin_party(make_app: Callable[..., Any]) -> None:
    app = make_app(auth_iterations=1000)
    assert req(app, "PUT", "/_users/org.couchdb.user:ann", user_doc("ann", "pw"),
               remote=None).status == 201
    me = req(app, "GET", "/_session", headers=basic("ann", "pw"), remote=None).json()
    assert me["userCtx"] == {"name": "ann", "roles": []}
    assert req(app, "GET", "/_all_dbs", headers=basic("ann", "pw"), remote=None).status == 401
    wrong = req(app, "GET", "/_all_dbs", headers=basic("ann", "nope"), remote=None)
    assert wrong.status == 200  # the admin party: wrong credentials change nothing
    outside = req(app, "GET", "/_all_dbs", headers=basic("ann", "nope"), remote="10.0.0.1")
    assert outside.status == 401 and outside.json()["reason"] == "Name or password is incorrect."


# -- Basic auth -----------------------------------------------------------------------------------

def test_basic_auth_for_the_admin_and_a_user(secured: Any) -> None:
    assert req(secured, "GET", "/_session", headers=ADMIN_AUTH).json()["userCtx"] == {
        "name": "admin", "roles": ["_admin"]}
    assert req(secured, "GET", "/_session", headers=basic("bob", "bob-password")).json()[
        "userCtx"] == {"name": "bob", "roles": ["staff"]}


@pytest.mark.parametrize("header", [basic("bob", "wrong"), basic("nobody", "wrong"),
                                    basic("admin", "wrong"), basic("", ""),
                                    {"Authorization": "Basic !!!"},
                                    {"Authorization": "Basic Ym9i"}])
def test_bad_basic_credentials_are_401_even_on_public_paths(secured: Any,
                                                            header: dict[str, str]) -> None:
    for path in ("/", "/_up", "/_uuids"):
        answer = req(secured, "GET", path, headers=header, remote="10.7.7.7")
        assert answer.status == 401, path
        assert answer.json()["error"] == "unauthorized"
    wrong = req(secured, "GET", "/", headers=basic("bob", "x"), remote="10.7.7.8").json()
    unknown = req(secured, "GET", "/", headers=basic("zed", "x"), remote="10.7.7.8").json()
    assert wrong == unknown == {"error": "unauthorized", "reason": "Name or password is incorrect."}


def test_user_docs_cannot_grant_system_roles_or_log_in_when_malformed(
        secured: Any) -> None:
    # the write rules refuse `_admin` in a user doc; one stored anyway (say, by an old
    # version or a replication) still gives no system role
    doc = user_doc("eve", "pw", ["_admin", "ops"])
    secured.store.db("_users").save(doc.pop("_id"), doc)
    me = req(secured, "GET", "/_session", headers=basic("eve", "pw")).json()["userCtx"]
    assert me == {"name": "eve", "roles": ["ops"]}
    assert req(secured, "GET", "/_all_dbs", headers=basic("eve", "pw")).status == 401
    for name, change in (("tom", {"type": "admin"}), ("sam", {"name": "other"}),
                         ("lee", {"iterations": 2_000_000_000}), ("kim", {"roles": "x"})):
        doc = {**user_doc(name, "pw"), **change}
        assert req(secured, "PUT", f"/_users/org.couchdb.user:{name}", doc,
                   ADMIN_AUTH).status in (201, 400, 403)
        assert req(secured, "GET", "/_session", headers=basic(name, "pw"),
                   remote="10.5.5.5").status == 401


def test_the_admin_password_may_be_a_pbkdf2_string(make_app: Callable[..., Any]) -> None:
    hashed = hash_password("from-hash", 1000).admin_string()
    app = make_app(admin_password=hashed)
    assert req(app, "GET", "/_all_dbs", headers=basic("admin", "from-hash")).status == 200
    assert req(app, "GET", "/_all_dbs", headers=basic("admin", hashed)).status == 401


# -- lockout and cost -----------------------------------------------------------------------------

def test_lockout_after_five_failures_per_user_and_address(secured: Any) -> None:
    clock = Clock()
    auth.state(secured).clock = clock
    for _ in range(5):
        assert req(secured, "GET", "/", headers=basic("bob", "guess")).status == 401
    locked = req(secured, "GET", "/", headers=basic("bob", "bob-password"))
    assert locked.status == 403
    assert locked.json() == {
        "error": "forbidden",
        "reason": "Account is temporarily locked due to multiple authentication failures"}
    session = req(secured, "POST", "/_session", {"name": "bob", "password": "bob-password"})
    assert session.status == 403 and "Set-Cookie" not in session.headers
    other = req(secured, "GET", "/", headers=basic("bob", "bob-password"), remote="10.2.2.2")
    assert other.status == 200  # another address is not locked out
    clock.now += 300
    assert req(secured, "GET", "/", headers=basic("bob", "bob-password")).status == 200


def test_success_clears_the_failure_count(secured: Any) -> None:
    for _ in range(4):
        req(secured, "GET", "/", headers=basic("bob", "guess"))
    assert req(secured, "GET", "/", headers=basic("bob", "bob-password")).status == 200
    for _ in range(4):
        assert req(secured, "GET", "/", headers=basic("bob", "guess")).status == 401
    assert req(secured, "GET", "/", headers=basic("bob", "bob-password")).status == 200


def test_guessing_costs_little_cpu_and_a_repeated_login_is_cached(
        make_app: Callable[..., Any]) -> None:
    app = make_app(**settings(auth_iterations=600_000))
    add_user(app, "bob", "bob-password")
    doc = req(app, "GET", "/_users/org.couchdb.user:bob", headers=ADMIN_AUTH).json()
    doc.update(hash_password("bob-password", 600_000).user_fields())
    assert req(app, "PUT", "/_users/org.couchdb.user:bob", doc, ADMIN_AUTH).status == 201
    start = time.process_time()
    statuses = [req(app, "GET", "/", headers=basic("bob", f"guess{i}")).status
                for i in range(200)]
    cpu = time.process_time() - start
    assert statuses[:5] == [401] * 5 and set(statuses[5:]) == {403}
    assert cpu < 5.0, f"200 wrong guesses cost {cpu:.2f} s of CPU"
    good = basic("bob", "bob-password")
    assert req(app, "GET", "/", headers=good, remote="10.3.3.3").status == 200  # pays PBKDF2
    timings = []
    for _ in range(30):
        t0 = time.perf_counter()
        assert req(app, "GET", "/", headers=good, remote="10.3.3.3").status == 200
        t1 = time.perf_counter()
        req(app, "GET", "/", remote="10.3.3.3")
        timings.append((t1 - t0) - (time.perf_counter() - t1))
    timings.sort()
    assert timings[len(timings) // 2] < 0.005, f"a cached Basic login adds {timings[15]:.4f} s"


def test_an_unknown_user_costs_a_full_hash(make_app: Callable[..., Any]) -> None:
    app = make_app(**settings(auth_iterations=200_000))
    t0 = time.perf_counter()
    assert req(app, "GET", "/", headers=basic("nobody", "x"), remote="10.6.6.6").status == 401
    unknown = time.perf_counter() - t0
    t0 = time.perf_counter()
    hash_password("x", 200_000)
    one_hash = time.perf_counter() - t0
    assert unknown > one_hash * 0.5


# -- require_valid_user ---------------------------------------------------------------------------

def test_require_valid_user_leaves_only_up_and_session(make_app: Callable[..., Any]) -> None:
    app = make_app(**settings(require_valid_user=True))
    assert req(app, "GET", "/_up").status == 200
    assert req(app, "GET", "/_session").status == 200
    for path in ("/", "/_uuids", "/_all_dbs"):
        answer = req(app, "GET", path)
        assert answer.status == 401
        assert answer.json() == {"error": "unauthorized", "reason": "Authentication required."}
    assert req(app, "GET", "/", headers=ADMIN_AUTH).status == 200


# -- _users ---------------------------------------------------------------------------------------

def test_users_db_is_created_admin_only_and_its_security_is_locked(secured: Any) -> None:
    sec = req(secured, "GET", "/_users/_security", headers=ADMIN_AUTH).json()
    assert sec == {"members": {"roles": ["_admin"]}, "admins": {"roles": ["_admin"]}}
    refused = req(secured, "PUT", "/_users/_security", {}, ADMIN_AUTH)
    assert refused.status == 403
    assert refused.json() == {"error": "forbidden",
                              "reason": "You can't edit the security object of the user database."}
    bob = basic("bob", "bob-password")
    assert req(secured, "GET", "/_users/org.couchdb.user:bob", headers=bob).status == 403
    assert req(secured, "GET", "/_users/org.couchdb.user:bob").status == 401


@pytest.fixture
def open_users(make_app: Callable[..., Any]) -> Any:
    """`_users` opened to everyone (users_db_security_editable), users bob and ann."""
    app = make_app(**settings(users_db_security_editable=True))
    add_user(app, "bob", "bob-password")
    add_user(app, "ann", "ann-password")
    public = {"members": {"roles": []}, "admins": {"roles": ["_admin"]}}
    assert req(app, "PUT", "/_users/_security", public, ADMIN_AUTH).status == 200
    return app


def test_a_user_reads_only_their_own_user_doc(open_users: Any) -> None:
    bob = basic("bob", "bob-password")
    own = req(open_users, "GET", "/_users/org.couchdb.user:bob", headers=bob)
    assert own.status == 200 and own.json()["name"] == "bob"
    other = req(open_users, "GET", "/_users/org.couchdb.user:ann", headers=bob)
    assert other.status == 404 and other.json() == {"error": "not_found", "reason": "missing"}
    missing = req(open_users, "GET", "/_users/org.couchdb.user:zed", headers=bob)
    assert missing.json() == other.json()  # existence is not revealed
    assert req(open_users, "GET", "/_users/org.couchdb.user:ann").status == 404


def test_a_user_cannot_write_another_users_doc(open_users: Any) -> None:
    bob = basic("bob", "bob-password")
    ann = req(open_users, "GET", "/_users/org.couchdb.user:ann", headers=ADMIN_AUTH).json()
    ann["roles"] = []
    answer = req(open_users, "PUT", "/_users/org.couchdb.user:ann", ann, bob)
    assert answer.status == 404
    gone = req(open_users, "DELETE", f"/_users/org.couchdb.user:ann?rev={ann['_rev']}", None, bob)
    assert gone.status == 404
    assert req(open_users, "GET", "/_session", headers=basic("ann", "ann-password")).status == 200


@pytest.mark.parametrize("path,status,reason,anonymous", [
    ("/_users/_all_docs", 401, "You are not a server admin.", 401),
    ("/_users/_changes", 401, "You are not a server admin.", 401),
    ("/_users/_design_docs", 403, "Only admins can access _all_docs of system databases.", 401),
    ("/_users/_design/_auth", 403,
     "Only administrators can view design docs in the users database.", 403),
])
def test_listing_users_is_for_admins(open_users: Any, path: str, status: int, reason: str,
                                     anonymous: int) -> None:
    answer = req(open_users, "GET", path, headers=basic("bob", "bob-password"))
    error = "unauthorized" if status == 401 else "forbidden"
    assert answer.status == status and answer.json() == {"error": error, "reason": reason}
    assert req(open_users, "GET", path).status == anonymous
    assert req(open_users, "GET", "/_users/_all_docs", headers=ADMIN_AUTH).status == 200
    bulk = req(open_users, "POST", "/_users/_bulk_get",
               {"docs": [{"id": "org.couchdb.user:ann"}]}, basic("bob", "bob-password"))
    assert bulk.status == 403 and b"ann" not in bulk.body


def test_duplicate_roles_keys_cannot_escalate(open_users: Any) -> None:
    bob = basic("bob", "bob-password")
    doc = req(open_users, "GET", "/_users/org.couchdb.user:bob", headers=bob).json()
    body = ('{"_id": "org.couchdb.user:bob", "_rev": "' + doc["_rev"] + '", "name": "bob", '
            '"type": "user", "roles": ["_admin"], "roles": []}')
    answer = req(open_users, "PUT", "/_users/org.couchdb.user:bob", body, bob)
    assert answer.status == 400 and answer.json()["error"] == "bad_request"
    sec = '{"admins": {"names": ["bob"]}, "admins": {"names": []}}'
    assert req(open_users, "PUT", "/_users/_security", sec, ADMIN_AUTH).status == 400
    assert req(open_users, "GET", "/_users/org.couchdb.user:bob",
               headers=bob).json()["_rev"] == doc["_rev"]
    assert req(open_users, "GET", "/_session", headers=bob).json()["userCtx"]["roles"] == []


def test_security_put_validates_and_rejects_duplicate_keys(secured: Any) -> None:
    assert req(secured, "PUT", "/box", headers=ADMIN_AUTH).status == 201
    before = req(secured, "GET", "/box/_security", headers=ADMIN_AUTH).body
    for body in ('{"members": {"names": [1]}}', '{"admins": {"roles": "x"}}',
                 '{"members": {"roles": ["a"], "roles": []}}', '{"admins": []}'):
        answer = req(secured, "PUT", "/box/_security", body, ADMIN_AUTH)
        assert answer.status == 400, body
    assert req(secured, "GET", "/box/_security", headers=ADMIN_AUTH).body == before


# -- design documents need a db admin ---------------------------------------------------------

def test_members_cannot_write_design_docs_by_any_path(secured: Any) -> None:
    add_user(secured, "boss", "boss-password")
    assert req(secured, "PUT", "/box", headers=ADMIN_AUTH).status == 201
    sec = {"members": {"roles": ["staff"]}, "admins": {"names": ["boss"]}}
    assert req(secured, "PUT", "/box/_security", sec, ADMIN_AUTH).status == 200
    bob = basic("bob", "bob-password")
    seq = req(secured, "GET", "/box", headers=ADMIN_AUTH).json()["update_seq"]
    ddoc = {"_id": "_design/x", "views": {}}
    attempts = [("PUT", "/box/_design/x", ddoc), ("PUT", "/box/_design%2Fx", ddoc),
                ("POST", "/box", ddoc), ("POST", "/box/_bulk_docs", {"docs": [{"_id": "a"}, ddoc]}),
                ("POST", "/box/_bulk_docs", {"docs": [ddoc], "new_edits": False}),
                ("PUT", "/box/_design/x/att.txt", "hi")]
    for method, path, body in attempts:
        answer = req(secured, method, path, body, bob,
                     content_type="text/plain" if body == "hi" else None)
        assert answer.status == 403, (method, path, answer.body)
        assert answer.json() == {"error": "forbidden",
                                 "reason": "You are not a db or server admin."}
    assert req(secured, "GET", "/box", headers=ADMIN_AUTH).json()["update_seq"] == seq
    assert req(secured, "POST", "/box", {"_id": "plain"}, bob).status == 201
    assert req(secured, "PUT", "/box/_design/x", ddoc, basic("boss", "boss-password")).status == 201


# -- configuration over HTTP -------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/_node/_local/_config/query_servers/python",
                                  "/_node/nonode@nohost/_config/httpd/bind_address",
                                  "/_config/admins/eve", "/_node/_local/_restart"])
def test_no_configuration_over_http(secured: Any, path: str) -> None:
    for headers, status in (({}, 401), (basic("bob", "bob-password"), 401)):
        answer = req(secured, "PUT", path, '"/bin/sh"', headers)
        assert answer.status == status, (path, answer.body)
        assert answer.json()["reason"] == "You are not a server admin."
    by_admin = req(secured, "PUT", path, '"/bin/sh"', ADMIN_AUTH)
    assert 400 <= by_admin.status < 500  # nothing there to change, even for the admin
    assert req(secured, "GET", "/_all_dbs", headers=ADMIN_AUTH).json() == ["_users"]


def test_proxy_auth_headers_and_jsonp_are_ignored(secured: Any) -> None:
    forged = {"X-Auth-CouchDB-UserName": "admin", "X-Auth-CouchDB-Roles": "_admin",
              "X-Auth-CouchDB-Token": "0" * 40}
    assert req(secured, "GET", "/_all_dbs", headers=forged).status == 401
    assert req(secured, "GET", "/_session", headers=forged).json()["userCtx"]["name"] is None
    answer = req(secured, "GET", "/?callback=steal")
    assert answer.headers["Content-Type"].startswith("application/json")
    assert not answer.body.startswith(b"steal")


# -- secrets and startup ----------------------------------------------------------------------

@pytest.mark.parametrize("secret", ["secret", "changeme", "92de07df7e7a3fe14808cef90a7cc0d91",
                                    "short"])
def test_sample_or_short_secrets_are_refused(make_app: Callable[..., Any], secret: str) -> None:
    with pytest.raises(SettingError, match="auth_secret"):
        make_app(**settings(auth_secret=secret))


def test_serve_refuses_a_sample_secret(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    calls: list[Settings] = []
    monkeypatch.setattr(serve, "run", lambda s, r=None: calls.append(s))
    monkeypatch.setenv("SETTEE_ADMIN_PASSWORD", "a long admin password")
    args = ["serve", "--bind", "0.0.0.0:5984", "--data-dir", str(tmp_path)]
    assert cli.main([*args, "--auth-secret", "changeme"]) == 2
    assert "auth_secret" in capsys.readouterr().err and calls == []
    assert cli.main([*args, "--auth-secret", "k" * 40]) == 0 and len(calls) == 1
    monkeypatch.delenv("SETTEE_ADMIN_PASSWORD")
    assert cli.main(args) == 2  # and no admin: refused as before


def test_a_configured_secret_signs_cookies(make_app: Callable[..., Any]) -> None:
    app = make_app(**settings(auth_secret="z" * 40))
    assert auth.state(app).secret() == "z" * 40
