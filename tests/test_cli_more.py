"""`settee replicate` and `settee reindex` in-process, on each backend; replicate also against a
live `settee serve` over HTTP, both ways."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from live import LiveServer
from settee.server import cli
from settee.store import Store, StoreConfig, make_edit

DDOC = {"views": {
    "by_n": {"map": "function (doc) { if (doc.n !== undefined) emit(doc.n, 1); }",
             "reduce": "_count"},
    "tags": {"map": "function (doc) { (doc.tags || []).forEach(function (t) { emit(t); }); }"}}}


@pytest.fixture(autouse=True)
def no_settee_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("SETTEE_"):
            monkeypatch.delenv(name)


@pytest.fixture
def filled(store_url: str) -> Iterator[Store]:
    """Db `src`: 150 docs (one edited, one deleted, one with a conflict) and a design doc."""
    store = Store(StoreConfig(url=store_url))
    store.setup()
    store.create_db("src")
    db = store.db("src")
    for i in range(150):
        db.save(f"doc{i:03}", {"n": i, "tags": ["even" if i % 2 == 0 else "odd"]})
    db.save("doc000", {"_rev": db["doc000"]["_rev"], "n": 1000})
    db.delete("doc001", db["doc001"]["_rev"])
    db.write([make_edit("doc002", {"_id": "doc002", "_rev": "1-ffff", "side": True},
                        new_edits=False)], new_edits=False)
    db.save("_design/stats", DDOC)
    yield store
    store.close()


def run(args: list[str], store_url: str) -> int:
    return cli.main([*args, "--database-url", store_url])


def same_docs(store: Store, a: str, b: str, extra: int = 0) -> None:
    left, right = store.db(a), store.db(b)
    assert store.db_info(a).doc_count + extra == store.db_info(b).doc_count
    for doc_id in ("doc000", "doc002", "doc149", "_design/stats"):
        assert left[doc_id] == right[doc_id]
    assert "doc001" not in right
    copied, original = right.revisions("doc002")[0], left.revisions("doc002")[0]
    assert copied is not None and original is not None
    assert copied.tree.keys() == original.tree.keys()


# -- replicate ----------------------------------------------------------------------------------

def test_replicate_local_to_local_creates_resumes_and_reports(
        filled: Store, store_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["replicate", "src", "copy"], store_url) == 1  # no target, not asked to create
    assert "settee replicate: error: db_not_found: could not open copy" in \
        capsys.readouterr().err
    assert run(["replicate", "src", "copy", "--create-target", "--batch-size", "40"],
               store_url) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert result["ok"] is True and result["history"][0]["docs_written"] == 152
    assert "replicate src -> copy: 152 docs read, 152 written, 0 failed" in captured.err
    same_docs(filled, "src", "copy")

    assert run(["replicate", "src", "copy"], store_url) == 0  # resumed from the checkpoint
    assert json.loads(capsys.readouterr().out) == {"ok": True, "no_changes": True}
    filled.db("src").save("late", {"n": -1})
    assert run(["replicate", "src", "copy", "--quiet"], store_url) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["history"][0]["docs_written"] == 1 and captured.err == ""
    assert filled.db("copy")["late"]["n"] == -1


@pytest.mark.parametrize("args,message", [
    (["nope", "copy"], "db_not_found: could not open nope"),
    (["src", "http://127.0.0.1:9/copy"], "db_not_found: could not open http://127.0.0.1:9/copy"),
])
def test_replicate_failures_exit_1_with_a_message(
        filled: Store, store_url: str, args: list[str], message: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["replicate", *args], store_url) == 1
    captured = capsys.readouterr()
    assert f"settee replicate: error: {message}" in captured.err
    assert "Traceback" not in captured.err and captured.out == ""


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = LiveServer.settee(tmp_path_factory.mktemp("live-replicate"))
    with server:
        yield server


def test_replicate_to_and_from_a_live_server(filled: Store, store_url: str,
                                             live_server: LiveServer,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    remote = f"{live_server.url}/remote_{abs(hash(store_url)) % 10**8}"
    assert run(["replicate", "src", remote, "--create-target"], store_url) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["history"][0]["docs_written"] == 152
    assert f"-> {remote}/: 152 docs read, 152 written" in captured.err
    path = "/" + remote.rsplit("/", 1)[1]
    assert live_server.request("GET", path).json()["doc_count"] == 150
    assert live_server.request("GET", path + "/doc000").json()["n"] == 1000
    conflicts = live_server.request("GET", path + "/doc002?conflicts=true").json()
    assert conflicts.get("_conflicts") or conflicts.get("side")

    assert live_server.request("PUT", path + "/remote_only", '{"n": 7}').status == 201
    assert run(["replicate", remote, "back", "--create-target"], store_url) == 0
    assert json.loads(capsys.readouterr().out)["history"][0]["docs_written"] == 153
    assert filled.db("back")["remote_only"]["n"] == 7
    same_docs(filled, "src", "back", extra=1)


# -- reindex ------------------------------------------------------------------------------------

def view_rows(store_url: str, tmp_path: Path, view: str) -> list[dict[str, object]]:
    from settee.server.app import create_app
    from werkzeug.test import Client
    app = create_app({"database_url": store_url, "data_dir": str(tmp_path)})
    try:
        raw = f"/src/_design/stats/_view/{view}?update=false"
        response = Client(app).get(raw, environ_overrides={"REQUEST_URI": raw})
        rows: list[dict[str, object]] = json.loads(response.get_data())["rows"]
        return rows
    finally:
        app.store.close()


def test_reindex_builds_every_view_then_only_the_changes(
        filled: Store, store_url: str, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    assert view_rows(store_url, tmp_path, "tags") == []  # never queried: nothing indexed
    assert run(["reindex", "src"], store_url) == 0
    err = capsys.readouterr().err
    seq = filled.db_info("src").update_seq
    assert f"reindex src/_design/stats: 2 views, seq 0 -> {seq}" in err
    assert "reindex src: 1 of 1 design documents up to date" in err
    src = filled.db("src")
    with_n = sum("n" in src[f"doc{i:03}"] for i in range(150) if i != 1)  # doc002: either rev
    assert with_n in (148, 149)
    assert view_rows(store_url, tmp_path, "by_n") == [{"key": None, "value": with_n}]
    assert len(view_rows(store_url, tmp_path, "tags")) == with_n - 1  # doc000: no tags

    filled.db("src").save("new", {"n": 5, "tags": ["new"]})
    assert run(["reindex", "src", "--ddoc", "stats"], store_url) == 0
    assert f"seq {seq} -> {seq + 1}" in capsys.readouterr().err
    assert len(view_rows(store_url, tmp_path, "tags")) == with_n
    assert run(["reindex", "src", "--ddoc", "_design/stats"], store_url) == 0
    assert "2 views already at seq" in capsys.readouterr().err


def test_reindex_errors(filled: Store, store_url: str,
                        capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["reindex", "src", "--ddoc", "nope"], store_url) == 1
    assert "settee reindex: error: src has no design document _design/nope" in \
        capsys.readouterr().err
    assert run(["reindex", "nodb"], store_url) == 1
    assert capsys.readouterr().err.strip() == "settee reindex: error: Database does not exist."
    filled.db("src").save("_design/broken", {"views": {"v": {"map": "function (doc) {",
                                                             "reduce": "_nope"}}})
    assert run(["reindex", "src"], store_url) == 1
    err = capsys.readouterr().err
    assert "reindex src/_design/broken:" in err and "Traceback" not in err
    assert "1 of 2 design documents up to date" in err
