"""PouchDB 9 with `pouchdb-find` against a live settee, on SQLite and PostgreSQL.

`tests/js/pouchdb_find.mjs` creates json indexes (and again: `exists`), lists them, runs range
queries sorted both ways with `fields`, pages by limit/skip and by bookmark, asks `explain`,
runs an unindexed query (with CouchDB's warning) and deletes an index. Every step the script
reports is a test of its own. npm packages are installed by `npm_clients` (skipped outside CI
when npm cannot install them, a failure under CI).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import npm_clients
import pytest
from live import LiveServer

pytestmark = pytest.mark.live

STEPS = ["create-index", "get-indexes", "find-sort", "find-paging", "explain", "delete-index"]


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def find_run(request: pytest.FixtureRequest,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[npm_clients.ScriptRun]:
    """The script's run against `settee serve` (2 gthread workers x 8 threads)."""
    npm_clients.ensure_installed()
    workdir = tmp_path_factory.mktemp(f"npm-find-{request.param}")
    admin, pg_name, url = None, "", None
    if request.param == "postgres":
        admin = request.getfixturevalue("pg_admin")
        pg_name = "settee_npmf_" + uuid.uuid4().hex[:12]
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{pg_name}"')
        url = admin.url.set(database=pg_name).render_as_string(hide_password=False)
    live = LiveServer.settee(workdir, database_url=url, workers=2, threads=8)
    try:
        live.start()
        yield npm_clients.run_script("pouchdb_find.mjs", live.url,
                                     "find_" + uuid.uuid4().hex[:10], timeout=60)
        assert live.stop() == 0, live.stderr()
        assert "Traceback" not in live.stderr(), live.stderr()
    finally:
        live.stop()
        if admin is not None:
            with admin.connect() as conn:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)')


@pytest.mark.parametrize("step", STEPS)
def test_pouchdb_find(find_run: npm_clients.ScriptRun, step: str) -> None:
    outcome = find_run.steps.get(step)
    if outcome is None:
        pytest.fail(f"the script never reported step {step!r}\n{find_run.report()}",
                    pytrace=False)
    status, message = outcome
    if status != "ok":
        pytest.fail(f"step {step}: {status}: {message}\n\n{find_run.report()}", pytrace=False)


def test_script_exit_status(find_run: npm_clients.ScriptRun) -> None:
    assert find_run.returncode == 0, find_run.report()
