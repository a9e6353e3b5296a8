"""Reliability test 37, CORS half: CORS off by default, preflights, allowed and refused origins,
credentials only with an explicit origin list, never an arbitrary `Origin` echoed."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import Client
from settee.server import create_app
from settee.server.settings import SettingError
from settee.store import sqlite_url

APP = "https://app.example.com"
EVIL = "https://evil.example"
PREFLIGHT = {"Origin": APP, "Access-Control-Request-Method": "PUT",
             "Access-Control-Request-Headers": "Content-Type, Authorization"}


def make(tmp_path: Any, **settings: Any) -> Iterator[Client]:
    app = create_app({"database_url": sqlite_url(str(tmp_path / "data")),
                      "data_dir": str(tmp_path / "data"), **settings})
    try:
        yield Client(app, extra_environ={"HTTP_HOST": "127.0.0.1:5984"})
    finally:
        app.store.close()


@pytest.fixture
def off(tmp_path: Any) -> Iterator[Client]:
    yield from make(tmp_path)


@pytest.fixture
def listed(tmp_path: Any) -> Iterator[Client]:
    yield from make(tmp_path, cors_origins=f"{APP}, https://other.example:8443",
                    cors_credentials=True, cors_headers="X-Custom")


@pytest.fixture
def anyone(tmp_path: Any) -> Iterator[Client]:
    yield from make(tmp_path, cors_origins="*")


def cors_headers(resp: Any) -> dict[str, str]:
    return {k: v for k, v in resp.headers.items() if k.lower().startswith("access-control-")}


def test_cors_is_off_by_default(off: Client) -> None:
    for origin in (EVIL, APP, "null"):
        assert cors_headers(off.get("/", headers={"Origin": origin})) == {}
        assert cors_headers(off.get("/nope", headers={"Origin": origin}, status=404)) == {}
    pre = off.request("/db", method="OPTIONS", headers={**PREFLIGHT, "Origin": EVIL},
                      status="*")
    assert pre.status_int == 405 and cors_headers(pre) == {}
    assert pre.json["error"] == "method_not_allowed"


def test_listed_origin_gets_its_origin_and_credentials(listed: Client) -> None:
    resp = listed.get("/", headers={"Origin": APP})
    assert resp.headers["Access-Control-Allow-Origin"] == APP
    assert resp.headers["Access-Control-Allow-Credentials"] == "true"
    assert "Origin" in resp.headers["Vary"]
    exposed = resp.headers["Access-Control-Expose-Headers"].split(", ")
    assert "etag" in exposed and "content-type" in exposed
    error = listed.get("/nope/doc", headers={"Origin": APP}, status=404)
    assert error.headers["Access-Control-Allow-Origin"] == APP  # errors too, as CouchDB
    assert cors_headers(listed.get("/")) == {}  # no Origin, no CORS


def test_unlisted_origin_gets_nothing(listed: Client) -> None:
    for origin in (EVIL, "https://app.example.com.evil.example", "null", APP + ":443",
                   "http://app.example.com"):
        resp = listed.get("/", headers={"Origin": origin})
        assert cors_headers(resp) == {}, origin
        pre = listed.request("/db", method="OPTIONS", headers={**PREFLIGHT, "Origin": origin},
                             status="*")
        assert pre.status_int == 405 and cors_headers(pre) == {}


def test_preflight_of_a_listed_origin(listed: Client) -> None:
    pre = listed.request("/db/doc", method="OPTIONS", headers=PREFLIGHT, status=204)
    assert pre.body == b""
    assert pre.headers["Access-Control-Allow-Origin"] == APP
    assert pre.headers["Access-Control-Allow-Credentials"] == "true"
    assert "PUT" in pre.headers["Access-Control-Allow-Methods"].split(", ")
    assert pre.headers["Access-Control-Allow-Headers"] == "Content-Type, Authorization"
    assert pre.headers["Access-Control-Max-Age"] == "600"
    assert "Access-Control-Expose-Headers" not in pre.headers
    custom = listed.request("/db", method="OPTIONS", status=204,
                            headers={**PREFLIGHT, "Access-Control-Request-Headers": "x-custom"})
    assert custom.headers["Access-Control-Allow-Headers"] == "x-custom"


def test_preflight_refuses_unsupported_methods_and_headers(listed: Client) -> None:
    for extra in ({"Access-Control-Request-Method": "PATCH"},
                  {"Access-Control-Request-Headers": "Content-Type, X-Evil"}):
        pre = listed.request("/db", method="OPTIONS", headers={**PREFLIGHT, **extra},
                             status="*")
        # routed as a plain OPTIONS, as CouchDB: a 405 (with the origin, as any answer to it)
        assert pre.status_int == 405 and "Access-Control-Allow-Methods" not in pre.headers
    plain = listed.request("/db", method="OPTIONS", headers={"Origin": APP}, status="*")
    assert plain.status_int == 405  # no Access-Control-Request-Method: not a preflight


def test_wildcard_never_echoes_an_origin_nor_allows_credentials(anyone: Client) -> None:
    for origin in (EVIL, APP, "null"):
        resp = anyone.get("/", headers={"Origin": origin})
        assert resp.headers["Access-Control-Allow-Origin"] == "*"
        assert "Access-Control-Allow-Credentials" not in resp.headers
        pre = anyone.request("/db", method="OPTIONS", status=204,
                             headers={**PREFLIGHT, "Origin": origin})
        assert pre.headers["Access-Control-Allow-Origin"] == "*"
        assert "Access-Control-Allow-Credentials" not in pre.headers


def test_wildcard_with_credentials_is_refused_at_start(tmp_path: Any) -> None:
    with pytest.raises(SettingError):
        create_app({"data_dir": str(tmp_path), "cors_origins": "*", "cors_credentials": True})


def test_preflight_needs_no_credentials(tmp_path: Any) -> None:
    for client in make(tmp_path, cors_origins=APP, admin_password="s3cret",
                       auth_iterations=1000, require_valid_user=True):
        pre = client.request("/db", method="OPTIONS", headers=PREFLIGHT, status=204)
        assert pre.headers["Access-Control-Allow-Origin"] == APP
        denied = client.get("/db", headers={"Origin": APP}, status=401)
        assert denied.headers["Access-Control-Allow-Origin"] == APP
        token = base64.b64encode(b"admin:s3cret").decode()
        ok = client.put("/db", headers={"Origin": APP, "Authorization": f"Basic {token}"},
                        status=201)
        assert ok.headers["Access-Control-Allow-Origin"] == APP
        assert "Access-Control-Allow-Credentials" not in ok.headers  # credentials off
