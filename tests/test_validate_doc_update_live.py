"""`validate_doc_update` across processes: every worker of a live server (SQLite), and two live
nodes on one PostgreSQL, apply a validation function from the first write after it is saved,
and stop applying it from the first write after it is changed or deleted, although each of them
had remembered the database's design docs from earlier writes."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from authkit import ADMIN, ADMIN_AUTH, ADMIN_PASSWORD
from live import LiveServer

ENV = {"SETTEE_ADMIN_PASSWORD": ADMIN_PASSWORD, "SETTEE_ADMIN_USER": ADMIN,
       "SETTEE_AUTH_ITERATIONS": "1000"}
WRITES = 24  # each on a new connection, so every worker takes some


@pytest.fixture(params=["sqlite", "postgres"])
def nodes(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[list[LiveServer]]:
    """One server with three workers on SQLite, or two servers on one PostgreSQL database."""
    if request.param == "sqlite":
        with LiveServer.settee(tmp_path, workers=3, threads=2, env=ENV) as one:
            yield [one]
        return
    admin: sa.Engine = request.getfixturevalue("pg_admin")
    name = "settee_vdu_" + uuid.uuid4().hex[:10]
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    try:
        with LiveServer.settee(tmp_path / "a", database_url=url, workers=2, threads=2,
                               env=ENV) as a, \
                LiveServer.settee(tmp_path / "b", database_url=url, workers=2, threads=2,
                                  env=ENV) as b:
            yield [a, b]
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def put(node: LiveServer, path: str, body: dict[str, Any]) -> Any:
    return node.request("PUT", path, json.dumps(body),
                        headers={**ADMIN_AUTH, "Content-Type": "application/json"})


@pytest.mark.live
def test_every_worker_and_node_applies_a_changed_function_at_once(
        nodes: list[LiveServer]) -> None:
    first = nodes[0]
    assert first.request("PUT", "/guarded", headers=ADMIN_AUTH).status == 201
    for i in range(WRITES):  # every worker and node remembers: no validation function
        assert put(nodes[i % len(nodes)], f"/guarded/warm{i}", {"n": i}).status == 201
    vdu = "function(n) { if (n.deny) throw({forbidden: 'v1 says no'}); }"
    saved = put(nodes[-1], "/guarded/_design/v", {"validate_doc_update": vdu})
    assert saved.status == 201
    for i in range(WRITES):
        refused = put(nodes[i % len(nodes)], f"/guarded/denied{i}", {"deny": True})
        assert refused.status == 403 and refused.json()["reason"] == "v1 says no", refused.body
    vdu2 = "function(n) { if (n.other) throw({forbidden: 'v2 says no'}); }"
    changed = put(nodes[0], "/guarded/_design/v",
                  {"_rev": saved.json()["rev"], "validate_doc_update": vdu2})
    assert changed.status == 201
    for i in range(WRITES):
        node = nodes[i % len(nodes)]
        assert put(node, f"/guarded/denied{i}", {"deny": True}).status == 201
        assert put(node, f"/guarded/other{i}", {"other": True}).status == 403
    info = first.request("GET", "/guarded", headers=ADMIN_AUTH).json()
    assert info["doc_count"] == 2 * WRITES + 1
