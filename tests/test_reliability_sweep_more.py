"""The statement crash sweep over an attachment PUT and a view batch (reliability.md 4, test 2).

Same harness as `test_reliability_faults.py`: a forked child sends one request and `os._exit`s
before its statement k; the store must then equal the pre-request or the post-request state of
that database (rows, bodies, attachment rows with whole blobs, view index, rows and reductions),
`INV` must hold, and the next request must succeed.

Attachments are content-addressed and shared by every database, so a blob left by one point
would change the statements of the next: each point uploads its own bytes, and the post state
it is compared with is made after the crash, on another seeded database, with the same bytes.
A view query first creates its empty index (its own transaction) and then applies one batch; an
empty index at seq 0 counts as no index (`StoreView.views`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from reliability import call, figure
from test_reliability_faults import (
    CRASH_EXIT,
    Request,
    count_in_child,
    crash_at,
    seed,
    send,
    sweep_app,  # noqa: F401 - the fixture
)

pytest_plugins = ["reliability_report"]

DDOC = {"views": {"by_n": {"map": "function(doc) { if (doc.n !== undefined) "
                                  "{ emit(doc.n, doc._id); emit([doc.n], 1); } }",
                           "reduce": "_count"}}}


def attachment_put(revs: dict[str, str], point: int) -> Request:
    """A new attachment (its own bytes per crash point, 150 KiB: three blob chunks)."""
    data = (f"point {point} ".encode() * 20_000)[:150 * 1024]
    return ("PUT", f"/doc-8/blob.bin?rev={revs['doc-8']}", data, 201)


def seed_with_ddoc(app: Any, prefix: str) -> tuple[str, dict[str, str]]:
    db, revs = seed(app, prefix)
    reply = call(app, "PUT", f"/{db}/_design/v", json.dumps(DDOC))
    assert reply.status == 201, reply.body
    return db, revs


VIEW_QUERY: Request = ("GET", "/_design/v/_view/by_n?reduce=false&limit=3", None, 200)


def _crash_point(settings: dict[str, str], app: Any, view: Any, db: str, req: Request, k: int,
                 statements: list[str], report: Path, pre: Any, post_of: Any,
                 label: str) -> str:
    report.write_text("")
    code = crash_at(settings, db, req, k, report)
    where = statements[k - 1] if k <= len(statements) else "after the last statement"
    label = f"{label} crash before statement {k} ({where})"
    assert code == CRASH_EXIT, f"{label}: child exited {code}: {report.read_text()}"
    if k <= len(statements):
        assert report.read_text() == "", f"{label}: {report.read_text()}"
    state = view.snapshot(db)
    post = post_of()
    verdict = "pre" if state == pre else "post" if state == post else "neither"
    assert verdict != "neither", f"{label}: the store is in neither state"
    assert view.invariant_problems(db) == [], label
    if k == len(statements) + 1:
        assert verdict == "post", label
    again = send(app, db, req)  # the same request now succeeds (or finds it done)
    assert again.status in (req[3], 409), (label, again.status, again.body)
    return f"{label}: {verdict}"


def test_attachment_put_crash_sweep(sweep_app: Any, tmp_path: Path) -> None:  # noqa: F811
    backend, settings, app, view = sweep_app
    report = tmp_path / "child-report.txt"
    count_db, revs = seed(app, "count")
    statements = count_in_child(settings, count_db, attachment_put(revs, 0), report)
    pre_db, _ = seed(app, "pre")
    pre = view.snapshot(pre_db)
    outcomes = []
    for k in range(1, len(statements) + 2):
        db, revs = seed(app, "crash")
        req = attachment_put(revs, k)

        def post_of(req: Request = req) -> Any:
            post_db, _ = seed(app, "post")
            assert send(app, post_db, req).status == 201
            return view.snapshot(post_db)

        outcomes.append(_crash_point(settings, app, view, db, req, k, statements, report, pre,
                                     post_of, "attachment PUT"))
    figure(backend, "attachment PUT crash points (pre/post state)", len(outcomes))
    print(f"\n{backend}: " + "\n".join(outcomes))


def test_view_batch_crash_sweep(sweep_app: Any, tmp_path: Path) -> None:  # noqa: F811
    backend, settings, app, view = sweep_app
    report = tmp_path / "child-report.txt"
    warm_db, _ = seed_with_ddoc(app, "warm")  # the view tables exist before any child counts
    assert send(app, warm_db, VIEW_QUERY).status == 200
    post_db, _ = seed_with_ddoc(app, "post")
    statements = count_in_child(settings, post_db, VIEW_QUERY, report)
    post = view.snapshot(post_db)
    pre_db, _ = seed_with_ddoc(app, "pre")
    pre = view.snapshot(pre_db)
    assert pre != post and post["views"], "the view query built nothing"
    writes = [i for i, s in enumerate(statements) if s.startswith(("INSERT", "UPDATE"))]
    assert writes, statements
    outcomes = []
    for k in range(1, len(statements) + 2):
        db, _ = seed_with_ddoc(app, "crash")
        outcomes.append(_crash_point(settings, app, view, db, VIEW_QUERY, k, statements, report,
                                     pre, lambda: post, "view batch"))
        got = call(app, "GET", f"/{db}/_design/v/_view/by_n?reduce=false").json()
        assert got["total_rows"] == len(got["rows"]) == 20, got  # rows == a full rebuild
    figure(backend, "view batch crash points (pre/post state)", len(outcomes))
    print(f"\n{backend}: " + "\n".join(outcomes))


@pytest.mark.parametrize("sweep_app", ["sqlite"], indirect=True)
def test_real_disk_full_is_507(sweep_app: Any) -> None:  # noqa: F811
    """A real SQLITE_FULL (the file may not grow: `max_page_count` on the worker's connection,
    no root needed): 507 `insufficient_storage`, nothing half-written, and once there is room
    again the same write succeeds."""
    _, _, app, view = sweep_app
    db, revs = seed(app, "full")
    pre = view.snapshot(db)
    engine = app.store.engine
    with engine.transaction() as conn:  # this thread's own connection: the one the app uses
        cur = conn.cursor()
        pages = cur.execute("PRAGMA page_count").fetchone()[0]
        cur.execute(f"PRAGMA max_page_count = {pages}")
        cur.close()
    big = {"docs": [{"_id": f"big-{i}", "text": f"{i}" * 4000} for i in range(100)]}
    refused = [call(app, "POST", f"/{db}/_bulk_docs", json.dumps(big)),
               send(app, db, attachment_put(revs, 1))]
    for answer in refused:
        assert answer.status == 507, answer.body
        assert answer.json()["error"] == "insufficient_storage"
    assert view.snapshot(db) == pre
    assert view.invariant_problems(db) == []
    with engine.transaction() as conn:
        conn.cursor().execute("PRAGMA max_page_count = 1073741823").close()
    assert call(app, "POST", f"/{db}/_bulk_docs", json.dumps(big)).status == 201
    assert send(app, db, attachment_put(revs, 1)).status == 201
    assert view.invariant_problems(db) == []
    figure("sqlite", "max_page_count disk-full writes answered 507", len(refused))
