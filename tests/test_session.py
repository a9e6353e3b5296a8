"""Cookie authentication through `/_session`: login, the cookie's format and flags, expiry and
refresh (on an injected clock, no sleeps), tampering, password change, logout, and CSRF."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest
from authkit import (
    ADMIN,
    ADMIN_AUTH,
    ADMIN_PASSWORD,
    add_user,
    basic,
    cookie_of,
    req,
    settings,
    with_cookie,
)
from settee.server import auth, create_app, sessions


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def secured(store_url: str, tmp_path: Any) -> Iterator[tuple[Any, Clock]]:
    """A secured app (admin + user `bob`, member of db `box`) on an injected clock."""
    app = create_app({"database_url": store_url, "data_dir": str(tmp_path / "data"),
                      **settings()})
    clock = Clock()
    auth.state(app).clock = clock
    add_user(app, "bob", "bob-password", ["staff"])
    assert req(app, "PUT", "/box", headers=ADMIN_AUTH).status == 201
    security = {"members": {"names": ["bob"]}, "admins": {"roles": []}}
    assert req(app, "PUT", "/box/_security", security, ADMIN_AUTH).status == 200
    yield app, clock
    app.store.close()


def login(app: Any, name: str = "bob", password: str = "bob-password") -> str:
    answer = req(app, "POST", "/_session", {"name": name, "password": password})
    assert answer.status == 200, answer.body
    return cookie_of(answer)


def whoami(app: Any, cookie: str) -> dict[str, Any]:
    return req(app, "GET", "/_session", headers=with_cookie(cookie)).json()  # type: ignore


def test_json_login_sets_an_httponly_samesite_cookie(secured: tuple[Any, Clock]) -> None:
    app, _ = secured
    answer = req(app, "POST", "/_session", {"name": "bob", "password": "bob-password"})
    assert answer.status == 200
    assert answer.json() == {"ok": True, "name": "bob", "roles": ["staff"]}
    header = answer.headers["Set-Cookie"]
    assert header.startswith("AuthSession=")
    assert "HttpOnly" in header and "SameSite=Lax" in header and "Path=/" in header
    assert "Max-Age=600" in header and "Secure" not in header


def test_form_login_and_next_redirects_to_a_local_path_only(secured: tuple[Any, Clock]) -> None:
    app, _ = secured
    form = "name=bob&password=bob-password"
    ctype = "application/x-www-form-urlencoded"
    answer = req(app, "POST", "/_session?next=/box", form, content_type=ctype)
    assert answer.status == 302
    assert answer.headers["Location"].endswith("/box")
    assert answer.headers["Set-Cookie"].startswith("AuthSession=")
    elsewhere = req(app, "POST", "/_session?next=//evil.example/x", form, content_type=ctype)
    assert elsewhere.status == 200 and "Location" not in elsewhere.headers


def test_cookie_format_is_couchdbs(secured: tuple[Any, Clock]) -> None:
    app, clock = secured
    cookie = login(app)
    raw = base64.urlsafe_b64decode(cookie + "=" * (-len(cookie) % 4))
    name, stamp, mac = raw.split(b":", 2)
    assert name == b"bob" and int(stamp, 16) == int(clock.now)
    assert stamp == stamp.upper() and len(mac) == 32  # raw HMAC-SHA256
    assert "=" not in cookie


def test_cookie_authenticates_and_get_session_reports_it(secured: tuple[Any, Clock]) -> None:
    app, _ = secured
    cookie = login(app)
    me = whoami(app, cookie)
    assert me["userCtx"] == {"name": "bob", "roles": ["staff"]}
    assert me["info"]["authenticated"] == "cookie"
    assert req(app, "GET", "/box", headers=with_cookie(cookie)).status == 200
    by_basic = req(app, "GET", "/_session", headers=basic("bob", "bob-password")).json()
    assert by_basic["info"]["authenticated"] == "default"
    anonymous = req(app, "GET", "/_session").json()
    assert anonymous["userCtx"] == {"name": None, "roles": []}
    assert "authenticated" not in anonymous["info"]


def test_wrong_password_and_unknown_user_get_the_same_401(secured: tuple[Any, Clock]) -> None:
    app, _ = secured
    wrong = req(app, "POST", "/_session", {"name": "bob", "password": "nope"})
    unknown = req(app, "POST", "/_session", {"name": "nobody", "password": "nope"},
                  remote="10.0.0.2")
    empty = req(app, "POST", "/_session", {}, remote="10.0.0.3")
    for answer in (wrong, unknown, empty):
        assert answer.status == 401
        assert answer.json() == {"error": "unauthorized",
                                 "reason": "Name or password is incorrect."}
        assert "Set-Cookie" not in answer.headers


@pytest.mark.parametrize("mutate", ["flip_mac", "other_name", "later_stamp", "garbage",
                                    "not_base64", "two_parts"])
def test_tampered_cookie_is_anonymous(secured: tuple[Any, Clock], mutate: str) -> None:
    app, _ = secured
    cookie = login(app)
    raw = base64.urlsafe_b64decode(cookie + "=" * (-len(cookie) % 4))
    name, stamp, mac = raw.split(b":", 2)
    forged = {
        "flip_mac": name + b":" + stamp + b":" + bytes([mac[0] ^ 1]) + mac[1:],
        "other_name": b"admin:" + stamp + b":" + mac,
        "later_stamp": name + b":" + format(int(stamp, 16) + 3600, "X").encode() + b":" + mac,
        "garbage": b"\xff\xfe:1:2", "not_base64": None, "two_parts": name + b":" + stamp,
    }[mutate]
    value = "!!!not base64!!!" if forged is None else \
        base64.urlsafe_b64encode(forged).rstrip(b"=").decode()
    me = req(app, "GET", "/_session", headers=with_cookie(value))
    assert me.status == 200 and me.json()["userCtx"] == {"name": None, "roles": []}
    denied = req(app, "GET", "/box", headers=with_cookie(value))
    assert denied.status == 401


def test_expired_cookie_is_anonymous(secured: tuple[Any, Clock]) -> None:
    app, clock = secured
    cookie = login(app)
    clock.now += 599
    assert whoami(app, cookie)["userCtx"]["name"] == "bob"
    clock.now += 1
    assert whoami(app, cookie)["userCtx"]["name"] is None
    assert req(app, "GET", "/box", headers=with_cookie(cookie)).status == 401


def test_cookie_is_refreshed_after_a_tenth_of_its_life(secured: tuple[Any, Clock]) -> None:
    app, clock = secured
    cookie = login(app)
    clock.now += 59
    assert "Set-Cookie" not in req(app, "GET", "/box", headers=with_cookie(cookie)).headers
    clock.now += 2
    answer = req(app, "GET", "/box", headers=with_cookie(cookie))
    fresh = cookie_of(answer)
    assert fresh != cookie
    clock.now += 590  # past the first cookie's end, within the fresh one's
    assert whoami(app, cookie)["userCtx"]["name"] is None
    assert whoami(app, fresh)["userCtx"]["name"] == "bob"


def test_password_change_voids_old_cookies(secured: tuple[Any, Clock]) -> None:
    app, _ = secured
    cookie = login(app)
    add_user(app, "bob", "a-new-password", ["staff"])
    assert whoami(app, cookie)["userCtx"]["name"] is None
    assert req(app, "GET", "/box", headers=basic("bob", "bob-password")).status == 401
    assert whoami(app, login(app, password="a-new-password"))["userCtx"]["name"] == "bob"


def test_deleted_user_cookie_and_basic_stop_working(secured: tuple[Any, Clock]) -> None:
    app, _ = secured
    cookie = login(app)
    doc = req(app, "GET", "/_users/org.couchdb.user:bob", headers=ADMIN_AUTH).json()
    rev = doc["_rev"]
    assert req(app, "DELETE", f"/_users/org.couchdb.user:bob?rev={rev}",
               headers=ADMIN_AUTH).status == 200
    assert whoami(app, cookie)["userCtx"]["name"] is None
    assert req(app, "GET", "/_session", headers=basic("bob", "bob-password")).status == 401


def test_delete_session_clears_the_cookie(secured: tuple[Any, Clock]) -> None:
    app, _ = secured
    cookie = login(app)
    answer = req(app, "DELETE", "/_session", headers=with_cookie(cookie))
    assert answer.status == 200 and answer.json() == {"ok": True}
    header = answer.headers["Set-Cookie"]
    assert header.startswith("AuthSession=;") and "Max-Age=0" in header and "HttpOnly" in header


def test_admin_logs_in_with_a_cookie(secured: tuple[Any, Clock]) -> None:
    app, _ = secured
    cookie = login(app, ADMIN, ADMIN_PASSWORD)
    assert whoami(app, cookie)["userCtx"] == {"name": ADMIN, "roles": ["_admin"]}
    assert req(app, "GET", "/_all_dbs", headers=with_cookie(cookie)).status == 200


def test_cookie_from_another_installation_is_refused(secured: tuple[Any, Clock],
                                                    tmp_path: Any) -> None:
    app, clock = secured
    principal = auth.state(app).directory.find("bob")
    assert principal is not None
    foreign = sessions.encode("bob", int(clock.now), "another-installation-secret",
                              principal.salt)
    assert whoami(app, foreign)["userCtx"]["name"] is None


def test_secret_is_kept_in_the_store_and_shared(store_url: str, tmp_path: Any) -> None:
    one = create_app({"database_url": store_url, "data_dir": str(tmp_path / "d"),
                      **settings()})
    two = create_app({"database_url": store_url, "data_dir": str(tmp_path / "d"),
                      **settings()})
    try:
        cookie = login(one, ADMIN, ADMIN_PASSWORD)
        assert whoami(two, cookie)["userCtx"]["name"] == ADMIN  # another node, same store
        secret = auth.state(one).secret()
        assert len(secret) >= 32 and secret == auth.state(two).secret()
    finally:
        one.store.close()
        two.store.close()


@pytest.mark.parametrize("ctype", ["application/x-www-form-urlencoded", "text/plain",
                                   "multipart/form-data; boundary=x", None])
def test_csrf_cookie_form_posts_are_415_and_write_nothing(secured: tuple[Any, Clock],
                                                          ctype: str | None) -> None:
    app, _ = secured
    cookie = login(app)
    before = req(app, "GET", "/box", headers=ADMIN_AUTH).json()["update_seq"]
    for path in ("/box", "/box/_bulk_docs"):
        answer = req(app, "POST", path, '{"_id": "csrf", "docs": [{"_id": "csrf"}]}',
                     with_cookie(cookie), content_type=ctype or "")
        assert answer.status == 415, (path, answer.body)
        assert answer.json()["error"] == "bad_content_type"
    assert req(app, "GET", "/box", headers=ADMIN_AUTH).json()["update_seq"] == before
    ok = req(app, "POST", "/box", {"_id": "fine"}, with_cookie(cookie))
    assert ok.status == 201  # JSON needs a CORS preflight, so it is not a CSRF vector


def test_duplicate_keys_in_a_session_body_are_400(secured: tuple[Any, Clock]) -> None:
    app, _ = secured
    body = '{"name": "bob", "password": "nope", "name": "admin"}'
    answer = req(app, "POST", "/_session", body)
    assert answer.status == 400 and answer.json()["error"] == "bad_request"
    assert "Set-Cookie" not in answer.headers


def test_session_get_with_basic_true_needs_credentials(secured: tuple[Any, Clock]) -> None:
    app, _ = secured
    assert req(app, "GET", "/_session?basic=true").status == 401
    assert req(app, "GET", "/_session?basic=true", headers=ADMIN_AUTH).status == 200


def test_same_site_and_secure_follow_settings(store_url: str, tmp_path: Any) -> None:
    app = create_app({"database_url": store_url, "data_dir": str(tmp_path / "d"),
                      **settings(cookie_same_site="strict", cookie_secure=True)})
    try:
        answer = req(app, "POST", "/_session", {"name": ADMIN, "password": ADMIN_PASSWORD})
        header = answer.headers["Set-Cookie"]
        assert "SameSite=Strict" in header and "; Secure" in header
    finally:
        app.store.close()


def test_a_password_change_on_one_node_is_seen_at_once_by_another(store_url: str,
                                                                  tmp_path: Any) -> None:
    one = create_app({"database_url": store_url, "data_dir": str(tmp_path / "d"), **settings()})
    two = create_app({"database_url": store_url, "data_dir": str(tmp_path / "d"), **settings()})
    try:
        add_user(one, "bob", "old-password")
        old = basic("bob", "old-password")
        assert req(two, "GET", "/_session", headers=old).json()["userCtx"]["name"] == "bob"
        cookie = login(two, "bob", "old-password")
        add_user(one, "bob", "new-password")  # on the other node
        assert req(two, "GET", "/_session", headers=old).status == 401
        assert whoami(two, cookie)["userCtx"]["name"] is None
        new = basic("bob", "new-password")
        assert req(two, "GET", "/_session", headers=new).json()["userCtx"]["name"] == "bob"
    finally:
        one.store.close()
        two.store.close()
