"""Basic and cookie authentication against a real `settee serve` with two workers: a cookie
issued by one worker is good on the other (the secret is in the store, the admin's salt is the
same in every worker), and the headers survive gunicorn."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from authkit import ADMIN, ADMIN_AUTH, ADMIN_PASSWORD, basic, user_doc
from live import LiveServer


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    workdir = Path(tmp_path_factory.mktemp("auth_live"))
    env = {"SETTEE_ADMIN_PASSWORD": ADMIN_PASSWORD, "SETTEE_ADMIN_USER": ADMIN,
           "SETTEE_AUTH_ITERATIONS": "1000"}
    with LiveServer.settee(workdir, workers=2, threads=4, env=env) as live:
        yield live


def cookie(reply_headers: object) -> str:
    value = reply_headers.get("Set-Cookie", "")  # type: ignore[attr-defined]
    assert value.startswith("AuthSession="), value
    return str(value.split(";", 1)[0])


def test_basic_then_cookie_flow_over_two_workers(server: LiveServer) -> None:
    assert server.request("GET", "/_all_dbs").status == 401
    assert server.request("GET", "/_all_dbs", headers=basic(ADMIN, "wrong")).status == 401
    assert server.request("PUT", "/shelf", headers=ADMIN_AUTH).status == 201
    sec = {"members": {"names": ["liv"]}, "admins": {"names": []}}
    assert server.request("PUT", "/shelf/_security", json.dumps(sec),
                          headers=ADMIN_AUTH).status == 200
    doc = user_doc("liv", "liv-password")
    assert server.request("PUT", "/_users/org.couchdb.user:liv", json.dumps(doc),
                          headers=ADMIN_AUTH).status == 201
    assert server.request("GET", "/shelf", headers=basic("liv", "liv-password")).status == 200
    assert server.request("GET", "/shelf").status == 401

    login = server.request("POST", "/_session", "name=liv&password=liv-password",
                           headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert login.status == 200 and login.json()["name"] == "liv"
    assert "HttpOnly" in login.headers["Set-Cookie"]
    liv = {"Cookie": cookie(login.headers)}
    admin_login = server.request("POST", "/_session",
                                 json.dumps({"name": ADMIN, "password": ADMIN_PASSWORD}))
    admin = {"Cookie": cookie(admin_login.headers)}
    for _ in range(12):  # new connections: both workers answer some of these
        me = server.request("GET", "/_session", headers=liv).json()
        assert me["userCtx"] == {"name": "liv", "roles": []}
        assert me["info"]["authenticated"] == "cookie"
        assert server.request("GET", "/shelf", headers=liv).status == 200
        assert server.request("GET", "/_all_dbs", headers=admin).status == 200
    assert server.request("POST", "/shelf", '{"_id": "x"}',
                          headers={**liv, "Content-Type": "text/plain"}).status == 415
    assert server.request("POST", "/shelf", '{"_id": "x"}', headers=liv).status == 201
    out = server.request("DELETE", "/_session", headers=liv)
    assert out.status == 200 and "Max-Age=0" in out.headers["Set-Cookie"]
    assert "Traceback" not in server.stderr()
