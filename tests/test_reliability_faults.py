"""A crash or a driver error at any statement of a write leaves the pre- or post-request state."""

# (reliability.md section 4, tests 2 and 3.)
#
# The hook (`statement_hook` below) wraps the DBAPI cursor SQLAlchemy's pool hands out and
# psycopg's `commit`, so it runs before statement k reaches the driver. For a crash, a forked
# child builds its own app on the same store, arms the hook with `os._exit(9)` at statement k and
# sends one request; the parent then compares the database's rows with a never-touched copy (pre)
# and with a copy on which the request completed (post). Every seeded database is identical, and
# revs are content hashes, so the copies compare row for row.

from __future__ import annotations

import json
import os
import sqlite3
import traceback
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest
import reliability
from reliability import BACKENDS, StoreView, call, error_shape_problem, figure
from settee.server import create_app
from sqlalchemy.pool.base import _ConnectionFairy

pytest_plugins = ["reliability_report"]

DOCS = 10
CRASH_EXIT = 9


# -- statement hooks: act at the k-th statement the store sends to its driver ------------------

class StatementHook:
    """Counts the statements sent through pooled driver connections, and acts at the k-th.

    The store runs SQL on the DBAPI cursor of a pooled connection (`store/sql.py`, BEGIN and
    COMMIT in `store/engine.py`), and on PostgreSQL commits with the driver's `commit()`. The
    hook wraps the cursor that SQLAlchemy's pool hands out and the psycopg commit, so `action`
    runs *before* statement k reaches the driver: raising there is a driver error at that
    statement; `os._exit` there is a crash between statement k-1 and k.
    """

    def __init__(self) -> None:
        self.armed = False
        self.count = 0
        self.at: int | None = None
        self.action: Callable[[str], None] | None = None
        self.statements: list[str] = []

    def arm(self, at: int | None = None, action: Callable[[str], None] | None = None) -> None:
        self.count, self.statements, self.at, self.action = 0, [], at, action
        self.armed = True

    def disarm(self) -> None:
        self.armed = False

    def before(self, statement: str) -> None:
        if not self.armed:
            return
        self.count += 1
        self.statements.append(" ".join(statement.split())[:60])
        if self.count == self.at and self.action is not None:
            self.action(statement)


class _HookedCursor:
    """A driver cursor that tells the hook about each statement before running it."""

    def __init__(self, cursor: Any, hook: StatementHook) -> None:
        self._cursor = cursor
        self._hook = hook

    def execute(self, statement: Any, *args: Any, **kwargs: Any) -> Any:
        self._hook.before(str(statement))
        return self._cursor.execute(statement, *args, **kwargs)

    def executemany(self, statement: Any, *args: Any, **kwargs: Any) -> Any:
        self._hook.before(str(statement))
        return self._cursor.executemany(statement, *args, **kwargs)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._cursor)

    def __getattr__(self, name: str) -> Any:  # fetchone, fetchall, rowcount, description, close
        return getattr(self._cursor, name)


@contextmanager
def statement_hook() -> Iterator[StatementHook]:
    """Install a `StatementHook` on every pooled connection of this process, for the block."""
    hook = StatementHook()
    original_cursor = _ConnectionFairy.cursor
    original_commit = psycopg.Connection.commit

    def cursor(self: Any, *args: Any, **kwargs: Any) -> Any:
        return _HookedCursor(original_cursor(self, *args, **kwargs), hook)

    def commit(self: Any) -> None:
        hook.before("COMMIT (psycopg)")
        original_commit(self)

    _ConnectionFairy.cursor = cursor  # type: ignore[method-assign]
    psycopg.Connection.commit = commit  # type: ignore[method-assign]
    try:
        yield hook
    finally:
        _ConnectionFairy.cursor = original_cursor  # type: ignore[method-assign]
        psycopg.Connection.commit = original_commit  # type: ignore[method-assign]

# kind -> (method, path after /{db}, body, expected status); `revs` are the seeded docs' revs.
Request = tuple[str, str, Any, int]


def requests_for(revs: dict[str, str]) -> dict[str, Request]:
    """The writes swept: an update, a create, a `_bulk_docs` of 10 (5 updates, 5 creates) and a
    DELETE."""
    bulk = [{"_id": f"doc-{i}", "_rev": revs[f"doc-{i}"], "n": i, "bulk": True}
            for i in range(2, 7)]
    bulk += [{"_id": f"new-{i}", "n": i, "bulk": True} for i in range(5)]
    return {
        "put_update": ("PUT", "/doc-1", {"_rev": revs["doc-1"], "n": 100, "text": "edited"},
                       201),
        "put_create": ("PUT", "/fresh", {"n": 1, "nested": {"a": [1, 2, 3]}}, 201),
        "bulk_docs_10": ("POST", "/_bulk_docs", {"docs": bulk}, 201),
        "delete": ("DELETE", f"/doc-7?rev={revs['doc-7']}", None, 200),
    }


def seed(app: Any, prefix: str) -> tuple[str, dict[str, str]]:
    """A new database with DOCS documents; its name and the docs' revs."""
    db = f"{prefix}_{uuid.uuid4().hex[:8]}"
    assert call(app, "PUT", f"/{db}").status == 201
    docs = [{"_id": f"doc-{i}", "n": i} for i in range(DOCS)]
    reply = call(app, "POST", f"/{db}/_bulk_docs", orjson.dumps({"docs": docs}))
    assert reply.status == 201, reply.body
    return db, {row["id"]: row["rev"] for row in reply.json()}


def send(app: Any, db: str, req: Request) -> reliability.Answer:
    """Send one request to `db`: a JSON body, or raw bytes (an attachment)."""
    method, path, body, _ = req
    if isinstance(body, bytes):
        return call(app, method, f"/{db}{path}", body,
                    {"Content-Type": "application/octet-stream"})
    return call(app, method, f"/{db}{path}", None if body is None else orjson.dumps(body))


def crash_at(settings: dict[str, str], db: str, req: Request, k: int, report: Path) -> int:
    """Fork; the child sends `req` with `os._exit(9)` before its statement k. Its exit code."""
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 0
        try:
            app = create_app(settings)
            call(app, "GET", f"/{db}")  # connect and set up outside the sweep
            with statement_hook() as hook:
                hook.arm(at=k, action=lambda _statement: os._exit(CRASH_EXIT))
                answer = send(app, db, req)
                hook.disarm()
            report.write_text(f"completed with {answer.status} after {hook.count} statements")
            code = CRASH_EXIT  # a crash after the last statement, before the response
        except BaseException:  # noqa: BLE001 - the child reports anything, then exits
            report.write_text(traceback.format_exc())
            code = 3
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def count_in_child(settings: dict[str, str], db: str, req: Request, report: Path) -> list[str]:
    """The statements `req` runs in a fresh process set up as `crash_at`'s child is: a process
    reads some things once and caches them (the view tables, a database's security object),
    so the parent's own count could be shorter than the child's."""
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            app = create_app(settings)
            call(app, "GET", f"/{db}")
            with statement_hook() as hook:
                hook.arm()
                answer = send(app, db, req)
                hook.disarm()
            report.write_text(json.dumps([answer.status, hook.statements]))
        except BaseException:  # noqa: BLE001 - the child reports anything, then exits
            report.write_text(json.dumps([0, [traceback.format_exc()]]))
            code = 3
        finally:
            os._exit(code)
    os.waitpid(pid, 0)
    status, statements = json.loads(report.read_text())
    assert status == req[3], statements
    return list(statements)


def count_statements(app: Any, db: str, req: Request) -> list[str]:
    """Send `req` normally with the hook counting; the statements it ran, in order."""
    with statement_hook() as hook:
        hook.arm()
        answer = send(app, db, req)
        hook.disarm()
    assert answer.status == req[3], answer.body
    return hook.statements


@pytest.fixture(params=BACKENDS)
def sweep_app(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    """(backend, settings, app, view) on a fresh store."""
    with reliability.store_url_for(request.param, request, tmp_path) as url:
        settings = {"database_url": url, "data_dir": str(tmp_path / "data")}
        app = create_app(settings)
        view = StoreView(url)
        try:
            yield request.param, settings, app, view
        finally:
            view.close()
            app.store.close()


def test_statement_fault_sweep(sweep_app: Any, tmp_path: Path) -> None:
    backend, settings, app, view = sweep_app
    report = tmp_path / "child-report.txt"
    outcomes: list[str] = []
    for kind in ("put_update", "put_create", "bulk_docs_10", "delete"):
        pre_db, revs = seed(app, "pre")
        req = requests_for(revs)[kind]
        post_db, _ = seed(app, "post")
        statements = count_in_child(settings, post_db, req, report)
        pre, post = view.snapshot(pre_db), view.snapshot(post_db)
        assert pre != post
        # k = 1..n: crash before statement k; k = n+1: after the last one, before the answer.
        for k in range(1, len(statements) + 2):
            db, _ = seed(app, "crash")
            report.write_text("")
            code = crash_at(settings, db, req, k, report)
            where = statements[k - 1] if k <= len(statements) else "after the last statement"
            label = f"{kind} crash before statement {k} ({where})"
            assert code == CRASH_EXIT, f"{label}: child exited {code}: {report.read_text()}"
            if k <= len(statements):
                assert report.read_text() == "", f"{label}: {report.read_text()}"
            state = view.snapshot(db)
            verdict = "pre" if state == pre else "post" if state == post else "neither"
            outcomes.append(f"{label}: {verdict}")
            assert verdict != "neither", f"{label}: the store is in neither state"
            assert view.invariant_problems(db) == [], label
            if k == len(statements) + 1:
                assert verdict == "post", (label, report.read_text())
            # the next request on the store succeeds
            again = call(app, "PUT", f"/{db}/after-crash", b'{"ok": 1}')
            assert again.status == 201, (label, again.body)
    figure(backend, "statement crash points (pre/post state)", len(outcomes))
    figure(backend, "statement crash points in neither state",
           sum(o.endswith("neither") for o in outcomes))
    print(f"\n{backend}: " + "\n".join(outcomes))


def _driver_error(backend: str, fault: str) -> Callable[[str], None]:
    """An action that raises the driver's own error for an I/O failure or a full disk."""
    def act(_statement: str) -> None:
        if backend == "sqlite":
            raise sqlite3.OperationalError(
                "disk I/O error" if fault == "io" else "database or disk is full")
        if fault == "io":
            raise psycopg.errors.IoError("could not write to file: Input/output error")
        raise psycopg.errors.DiskFull("could not extend file: No space left on device")
    return act


EXPECTED_FAULT = {"io": (500, "unknown_error"), "full": (507, "insufficient_storage")}


@pytest.mark.parametrize("sweep_app", ["sqlite", "postgres"], indirect=True)
@pytest.mark.parametrize("fault", ["io", "full"])
def test_io_error_injection(sweep_app: Any, fault: str) -> None:
    backend, settings, app, view = sweep_app
    status, error = EXPECTED_FAULT[fault]
    failures: list[str] = []
    points = 0
    for kind in ("put_update", "put_create", "bulk_docs_10", "delete"):
        _, revs = seed(app, "ref")
        req = requests_for(revs)[kind]
        post_db, _ = seed(app, "post")
        statements = count_statements(app, post_db, req)
        post = view.snapshot(post_db)
        for k in range(1, len(statements) + 1):
            db, _ = seed(app, "fault")
            pre = view.snapshot(db)
            label = f"{kind} {fault} error at statement {k} ({statements[k - 1]})"
            with statement_hook() as hook:
                hook.arm(at=k, action=_driver_error(backend, fault))
                answer = send(app, db, req)
                hook.disarm()
            points += 1
            problem = error_shape_problem(answer)
            if answer.status != status or problem:
                failures.append(f"{label}: {answer.status} {answer.body[:120]!r}")
            elif answer.json()["error"] != error:
                failures.append(f"{label}: error {answer.json()['error']!r}, not {error!r}")
            if view.snapshot(db) != pre:
                failures.append(f"{label}: the store changed")
            # the same request again, on the same pooled connection, now succeeds
            retry = send(app, db, req)
            if retry.status != req[3]:
                failures.append(f"{label}: the next request got {retry.status} "
                                f"{retry.body[:160]!r}")
                # the app is broken for good: go on with a new one, to test the other points
                app.store.close()
                app = create_app(settings)
                retry = send(app, db, req)
            if retry.status == req[3] and view.snapshot(db) != post:
                failures.append(f"{label}: the retried request left another state")
            problems = view.invariant_problems(db)
            if problems:
                failures.append(f"{label}: {problems}")
    app.store.close()
    figure(backend, "I/O fault points injected", points)
    figure(backend, "I/O fault points mishandled", len(failures))
    assert failures == []
