"""Shared pieces of the view tests: a client allowed to run the test view functions, helpers."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from settee.server.settings import Settings
from settee.store import sql

PY_FUNCS = " ".join(f"view_functions:{name}" for name in
                    ("by_key", "each_key", "conflicts", "meta", "fails_on_bad", "total",
                     "boom"))
VIEW_SETTINGS = {"view_python_functions": PY_FUNCS, "view_js_time_limit_ms": 1500}


@pytest.fixture(name="c")
def client_fixture(module_client: Any, module_app: Any) -> Any:
    """The module's client, its app allowed to run the test view functions."""
    if getattr(module_app.settings, "view_python_functions", None) != PY_FUNCS:
        module_app.settings = Settings({**module_app.settings.as_dict(), **VIEW_SETTINGS})
    return module_client


@pytest.fixture(name="db")
def db_fixture(c: Any) -> str:
    """A new database in the module's app."""
    name = "v_" + uuid.uuid4().hex[:10]
    c.put(f"/{name}", status=201)
    return name


def bulk(c: Any, db: str, docs: list[dict[str, Any]], **extra: Any) -> dict[str, str]:
    resp = c.post_json(f"/{db}/_bulk_docs", {"docs": docs, **extra}, status=201)
    return {r["id"]: r.get("rev") for r in resp.json}


def ddoc(c: Any, db: str, name: str, views: dict[str, Any], **extra: Any) -> str:
    body = {"language": "python", "views": views, **extra}
    current = c.get(f"/{db}/_design/{name}", status="*")
    if current.status_int == 200:
        body["_rev"] = current.json["_rev"]
    rev: str = c.put_json(f"/{db}/_design/{name}", body, status=201).json["rev"]
    return rev


JSON_PARAMS = {"key", "keys", "startkey", "endkey", "start_key", "end_key"}


def get(c: Any, db: str, path: str, status: Any = 200, **params: Any) -> Any:
    """GET a view: key parameters JSON-encoded, the others as text."""
    encoded = {k: json.dumps(v) if k in JSON_PARAMS else v if isinstance(v, str) else
               json.dumps(v) for k, v in params.items()}
    return c.get(f"/{db}/_design/{path}", params=encoded, status=status)


def keys_of(body: dict[str, Any]) -> list[Any]:
    return [row["key"] for row in body["rows"]]


def query_error(resp: Any) -> str:
    assert resp.status_int == 400, resp.body
    assert resp.json["error"] == "query_parse_error", resp.json
    return str(resp.json["reason"])




def indexes(app: Any, db: str) -> dict[str, tuple[int, int]]:
    """The database's view indexes as stored: signature -> (index id, seq)."""
    with app.store.engine.transaction() as conn:
        rows = sql.fetchall(conn, "SELECT i.signature, i.id, i.seq FROM settee_view_indexes i "
                            "JOIN settee_dbs d ON d.id = i.db_id WHERE d.name = ?", (db,))
    return {r[0]: (r[1], r[2]) for r in rows}
