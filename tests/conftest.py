"""Fixtures: stores and apps on every backend (SQLite always, PostgreSQL when it answers).

Under CI (`CI=true`) PostgreSQL is mandatory: a missing server fails the run instead of skipping.
Each PostgreSQL test gets a database of its own, created from the server at 127.0.0.1:5432 and
dropped afterwards, so tests never see each other's rows.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from settee.server import create_app
from settee.store import Store, StoreConfig, sqlite_url
from webtest import TestApp

PG_ADMIN_URL = os.environ.get("SETTEE_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _pg_answers() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            pass
        engine = sa.create_engine(PG_ADMIN_URL)
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
        engine.dispose()
        return True
    except Exception:
        return False


PG_UP = _pg_answers()
BACKENDS = ["sqlite", "postgres"]


def pytest_report_header(config: pytest.Config) -> str:
    if PG_UP:
        return "settee backends: sqlite, postgres (127.0.0.1:5432)"
    if IN_CI:
        return "settee backends: PostgreSQL DOES NOT ANSWER and CI requires it"
    return "settee backends: sqlite only -- PostgreSQL at 127.0.0.1:5432 does not answer, " \
           "its tests are SKIPPED"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if IN_CI and not PG_UP:
        raise pytest.UsageError("CI requires PostgreSQL at 127.0.0.1:5432 and it does not answer")


@pytest.fixture(scope="session")
def pg_admin() -> Iterator[sa.Engine]:
    if not PG_UP:
        pytest.skip("PostgreSQL at 127.0.0.1:5432 does not answer")
    engine = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    yield engine
    engine.dispose()


def _pg_database(admin: sa.Engine) -> str:
    name = "settee_t_" + uuid.uuid4().hex[:12]
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    return name


def _drop_pg_database(admin: sa.Engine, name: str) -> None:
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[str]:
    """A fresh, empty store URL on each backend."""
    if request.param == "sqlite":
        yield sqlite_url(str(tmp_path / "data"))
        return
    admin = request.getfixturevalue("pg_admin")
    name = _pg_database(admin)
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        _drop_pg_database(admin, name)


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    """A set-up `Store` on each backend."""
    s = Store(StoreConfig(url=store_url))
    s.setup()
    yield s
    s.close()


class Client(TestApp):  # type: ignore[misc]  # webtest has no type hints: TestApp is Any
    """webtest's client, plus the raw request URI settee routes on (as gunicorn gives it)."""

    def do_request(self, req: Any, status: Any = None, expect_errors: Any = None) -> Any:
        env = req.environ
        if "REQUEST_URI" not in env:
            raw = getattr(req, "_settee_raw_path", None) or env["PATH_INFO"]
            query = env.get("QUERY_STRING")
            env["REQUEST_URI"] = raw + (f"?{query}" if query else "")
        return super().do_request(req, status=status, expect_errors=expect_errors)

    def raw(self, method: str, raw_path: str, body: bytes | str | None = None,
            headers: dict[str, str] | None = None, status: Any = "*") -> Any:
        """Send a request whose path is given exactly as on the wire (e.g. with `%2F`)."""
        path, _, query = raw_path.partition("?")
        environ = dict(self.extra_environ)
        environ["REQUEST_URI"] = raw_path
        req = self.RequestClass.blank(path + (f"?{query}" if query else ""), environ)
        req.method = method
        if body is not None:
            req.body = body.encode() if isinstance(body, str) else body
            req.content_type = (headers or {}).get("Content-Type", "application/json")
        for name, value in (headers or {}).items():
            req.headers[name] = value
        return self.do_request(req, status=status)


@pytest.fixture(scope="module", params=BACKENDS)
def module_app(request: pytest.FixtureRequest,
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One app per backend for a whole test module, for modules whose tests each work in their
    own `fresh_db` (creating a PostgreSQL database per test is slow)."""
    data_dir = str(tmp_path_factory.mktemp("data"))
    pg_name = None
    if request.param == "sqlite":
        url = sqlite_url(data_dir)
    else:
        admin = request.getfixturevalue("pg_admin")
        pg_name = _pg_database(admin)
        url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{pg_name}"
    application = create_app({"database_url": url, "data_dir": data_dir})
    yield application
    application.store.close()
    if pg_name is not None:
        _drop_pg_database(admin, pg_name)


@pytest.fixture
def module_client(module_app: Any) -> Client:
    """A client of the module-wide app."""
    return Client(module_app, extra_environ={"HTTP_HOST": "127.0.0.1:5984"})


@pytest.fixture
def app(store_url: str, tmp_path: Any) -> Iterator[Any]:
    """The WSGI app on each backend."""
    application = create_app({"database_url": store_url, "data_dir": str(tmp_path / "data")})
    yield application
    application.store.close()


@pytest.fixture
def client(app: Any) -> Client:
    """A webtest client of the app (errors are returned, not raised: check `status`)."""
    return Client(app, extra_environ={"HTTP_HOST": "127.0.0.1:5984"})


@pytest.fixture
def fresh_db(client: Client) -> str:
    """The name of a new, empty database in `client`."""
    name = "db_" + uuid.uuid4().hex[:8]
    client.put(f"/{name}", status=201)
    return name
