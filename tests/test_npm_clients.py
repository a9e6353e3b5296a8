"""Real JavaScript clients against a live settee, on SQLite and PostgreSQL.

* PouchDB 9 (`tests/js/pouchdb_sync.mjs`): an in-memory PouchDB and settee in
  `db.sync(remote, {live: true, retry: true})` while both sides write 500 docs, then update,
  delete, add and replace attachments (inline base64 and standalone), and make conflicts in both
  directions; after each step both sides hold the same docs, winning revs, `_conflicts`,
  attachment digests and bytes.
* PouchDB's HTTP adapter as a plain client (`tests/js/pouchdb_http.mjs`): CRUD, bulkGet,
  revsDiff, attachments, a live changes feed, `query` (views), 3 MB attachments replicated both
  ways, destroy.
* nano 10 (`tests/js/nano_client.mjs`): db, doc, bulk, view, changes (normal feed and the
  long-polling `changesReader`), attachment (standalone and multipart), server (`info`, `uuids`,
  `compact`, `updates`) and `db.replicate` calls. The script probes views (`GET
  /db/_design/x/_view/y`) and `POST /_replicate` first and reports the step SKIPPED, with the
  answer that showed it missing, when settee answers 501 `not_implemented` or 404.

Each script runs once per backend; every step it reports is a test of its own here, so a failure
names the step and shows the script's whole output. npm packages are installed by `npm_clients`
(skipped outside CI when npm cannot install them, a failure under CI).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import npm_clients
import pytest
import reliability
from live import LiveServer

pytestmark = pytest.mark.live

SYNC_STEPS = ["setup", "create", "odd-ids", "update", "delete", "conflicts", "resolve",
              "attachments", "final"]
HTTP_STEPS = ["crud", "bulkget-revsdiff", "attachments", "changes-live", "query", "big-attachments",
              "destroy"]
NANO_STEPS = ["db", "doc", "bulk", "view", "changes", "changes-reader", "attachments", "server",
              "replicate", "cleanup"]

# Settee defects a step is known to hit: {(script, step): reason}. Each is passed to the script as
# `--known-bug STEP` (it prints KNOWN-BUG instead of FAILED) and the step's test is a strict xfail,
# so a fix shows up as an unexpected pass. Empty: every step passes.
KNOWN_BUGS: dict[tuple[str, str], str] = {}


def _step_params(script: str, steps: list[str]) -> list[Any]:
    out = []
    for step in steps:
        reason = KNOWN_BUGS.get((script, step))
        marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
        out.append(pytest.param(step, marks=marks, id=step))
    return out


def _known_bug_args(script: str) -> list[str]:
    args = []
    for (name, step) in KNOWN_BUGS:
        if name == script:
            args += ["--known-bug", step]
    return args


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def server(request: pytest.FixtureRequest,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """`settee serve`, 2 gthread workers x 8 threads, on SQLite or a fresh PostgreSQL db."""
    npm_clients.ensure_installed()  # skip (or fail under CI) before starting anything
    workdir = tmp_path_factory.mktemp(f"npm-{request.param}")
    with reliability.live_store(request.param, request, workdir, workers=2, threads=8,
                                clean_exit=True) as live:
        yield live.server


@pytest.fixture(scope="module")
def sync_run(server: LiveServer) -> npm_clients.ScriptRun:
    db = "pouch_" + uuid.uuid4().hex[:10]
    return npm_clients.run_script("pouchdb_sync.mjs", server.url, db,
                                  *_known_bug_args("pouchdb_sync.mjs"), timeout=100)


@pytest.fixture(scope="module")
def pouch_http_run(server: LiveServer) -> npm_clients.ScriptRun:
    db = "pouchhttp_" + uuid.uuid4().hex[:10]
    return npm_clients.run_script("pouchdb_http.mjs", server.url, db,
                                  *_known_bug_args("pouchdb_http.mjs"), timeout=60)


@pytest.fixture(scope="module")
def nano_run(server: LiveServer) -> npm_clients.ScriptRun:
    prefix = "nano_" + uuid.uuid4().hex[:10]
    return npm_clients.run_script("nano_client.mjs", server.url, prefix,
                                  *_known_bug_args("nano_client.mjs"), timeout=60)


def _check_step(run: npm_clients.ScriptRun, step: str) -> None:
    outcome = run.steps.get(step)
    if outcome is None:
        pytest.fail(f"the script never reported step {step!r}\n{run.report()}", pytrace=False)
    status, message = outcome
    if status == "SKIPPED":
        pytest.skip(f"{step}: {message}")
    if status in ("ok", "UNEXPECTED-PASS"):  # the latter makes a strict xfail fail: bug fixed
        return
    pytest.fail(f"step {step}: {status}: {message}\n\n{run.report()}", pytrace=False)


@pytest.mark.parametrize("step", _step_params("pouchdb_sync.mjs", SYNC_STEPS))
def test_pouchdb_live_sync(sync_run: npm_clients.ScriptRun, step: str) -> None:
    _check_step(sync_run, step)


@pytest.mark.parametrize("step", _step_params("pouchdb_http.mjs", HTTP_STEPS))
def test_pouchdb_http_adapter(pouch_http_run: npm_clients.ScriptRun, step: str) -> None:
    _check_step(pouch_http_run, step)


@pytest.mark.parametrize("step", _step_params("nano_client.mjs", NANO_STEPS))
def test_nano(nano_run: npm_clients.ScriptRun, step: str) -> None:
    _check_step(nano_run, step)


def test_scripts_exit_status(sync_run: npm_clients.ScriptRun,
                             pouch_http_run: npm_clients.ScriptRun,
                             nano_run: npm_clients.ScriptRun) -> None:
    """A non-zero exit with every step ok (a crash after the steps, an unexpected pass) fails."""
    for run in (sync_run, pouch_http_run, nano_run):
        failing = {s: v for s, v in run.steps.items() if v[0] not in ("ok", "SKIPPED", "KNOWN-BUG")}
        if not failing:
            assert run.returncode == 0, run.report()
