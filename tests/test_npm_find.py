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
import reliability

pytestmark = pytest.mark.live

STEPS = ["create-index", "get-indexes", "find-sort", "find-paging", "explain", "delete-index"]


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def find_run(request: pytest.FixtureRequest,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[npm_clients.ScriptRun]:
    """The script's run against `settee serve` (2 gthread workers x 8 threads)."""
    npm_clients.ensure_installed()
    workdir = tmp_path_factory.mktemp(f"npm-find-{request.param}")
    with reliability.live_store(request.param, request, workdir, workers=2, threads=8,
                                clean_exit=True) as live:
        yield npm_clients.run_script("pouchdb_find.mjs", live.server.url,
                                     "find_" + uuid.uuid4().hex[:10], timeout=60)


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
