"""Operations: the access log, prometheus metrics, `_stats`, `_system`, `_active_tasks`, `/_up`.

The WSGI layers and handlers are tested in-process on both backends; the `live` tests run
`settee serve` to check what only gunicorn shows (stdout, several workers, SIGHUP).
"""

from __future__ import annotations

import io
import json
import logging
import logging.config
import multiprocessing
import os
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import Client
from live import LiveServer
from prometheus_client.parser import text_string_to_metric_families
from settee.server import accesslog, create_app, metrics, serve
from settee.server.errors import NotFoundError
from settee.server.handlers import node
from settee.server.routes import url_map
from settee.server.settings import resolve
from settee.server.tasks import TaskRegistry
from settee.server.wrappers import SetteeRequest
from werkzeug.test import EnvironBuilder

ROUTED = {rule.endpoint for rule in url_map.iter_rules()}


class Lines(io.StringIO):
    """The access log's stream, read back as lines."""

    @property
    def lines(self) -> list[str]:
        return self.getvalue().splitlines()


@pytest.fixture
def access() -> Lines:
    return Lines()


def stack(app: Any, access: Lines, json_lines: bool) -> Client:
    """The layers as `settee serve` stacks them, writing the access log to `access`."""
    wrapped = accesslog.AccessLog(metrics.wrap(accesslog.name_requests(app)),
                                  json_lines=json_lines, stream=access)
    return Client(wrapped, extra_environ={"HTTP_HOST": "127.0.0.1:5984"})


def request_for(path: str) -> SetteeRequest:
    request = SetteeRequest(EnvironBuilder(path=path).get_environ())
    request.settings = resolve({}, {})
    return request


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


# -- the access log ----------------------------------------------------------------------------

def test_access_log_json_lines_name_status_duration_and_database(app: Any, access: Lines) -> None:
    client = stack(app, access, json_lines=True)
    client.put("/logged", status=201)
    client.raw("PUT", "/logged/doc%201", '{"a": 1}', status=201)
    client.get("/logged/missing", status=404)
    client.get("/_all_dbs", status=200)
    entries = [json.loads(line) for line in access.lines]
    assert [(e["method"], e["path"], e["status"], e["db"], e["endpoint"]) for e in entries] == [
        ("PUT", "/logged", 201, "logged", "databases.db"),
        ("PUT", "/logged/doc%201", 201, "logged", "documents.doc"),
        ("GET", "/logged/missing", 404, "logged", "documents.doc"),
        ("GET", "/_all_dbs", 200, None, "root.all_dbs"),
    ]
    for entry in entries:
        assert isinstance(entry["duration_ms"], float) and entry["duration_ms"] >= 0
        assert entry["time"].endswith("Z") and entry["remote"]


def test_access_log_text_line(app: Any, access: Lines) -> None:
    client = stack(app, access, json_lines=False)
    client.get("/nope", status=404)
    client.raw("DELETE", "/_uuids", status=405)
    first, second = access.lines
    assert " GET /nope 404 " in first and first.endswith("db=nope endpoint=databases.db")
    assert " DELETE /_uuids 405 " in second and second.endswith("db=- endpoint=-")
    assert re.match(r"^\S+Z \S+ GET /nope 404 \d+\.\d\dms ", first)


def test_text_lines_never_carry_raw_control_characters() -> None:
    entry = accesslog.entry_for({"REQUEST_METHOD": "GET", "RAW_URI": "/db/a\r\nb c\u00e9"},
                                200, 0.001, None)
    line = accesslog.text_line(entry)
    assert "/db/a%0D%0Ab%20c%E9 200 1.00ms" in line and "\r" not in line


def test_logging_config_writes_json_lines_to_stderr(monkeypatch: pytest.MonkeyPatch) -> None:
    out, err = io.StringIO(), io.StringIO()
    monkeypatch.setattr("sys.stdout", out)
    monkeypatch.setattr("sys.stderr", err)
    saved = {name: (lg.handlers[:], lg.level, lg.propagate) for name, lg in
             ((n, logging.getLogger(n)) for n in ("", "gunicorn.error", "gunicorn.access"))}
    try:
        logging.config.dictConfig(accesslog.logging_config(
            resolve({"log_format": "json", "log_level": "warning"}, {})))
        logging.getLogger("gunicorn.access").critical("gunicorn's own access log is off")
        logging.getLogger("gunicorn.error").info("not at warning level")
        logging.getLogger("settee").warning("careful")
    finally:
        for name, (handlers, level, propagate) in saved.items():
            logger = logging.getLogger(name)
            logger.handlers[:] = handlers
            logger.setLevel(level)
            logger.propagate = propagate
    assert out.getvalue() == ""
    record = json.loads(err.getvalue())
    assert (record["level"], record["logger"], record["message"]) == \
        ("warning", "settee", "careful")


# -- metrics -----------------------------------------------------------------------------------

def test_prometheus_counts_requests_by_endpoint_and_reports_databases(app: Any,
                                                                      access: Lines) -> None:
    client = stack(app, access, json_lines=False)
    key = ("settee_http_requests_total",
           frozenset({"endpoint": "documents.doc", "method": "PUT", "status": "201"}.items()))
    before = samples(metrics.exposition(app.store).decode()).get(key, 0)
    client.put("/measured", status=201)
    for n in range(3):
        client.put(f"/measured/d{n}", '{"x": 1}', status=201)
    client.raw("GET", "/measured/%FF", status=400)
    response = node.prometheus(app, request_for("/_node/_local/_prometheus"), node="_local")
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    found = samples(response.get_data(as_text=True))
    assert found[key] == before + 3
    assert found[("settee_http_request_duration_seconds_count",
                  frozenset({"endpoint": "documents.doc"}.items()))] >= 3
    assert found[("settee_database_docs", frozenset({"db": "measured"}.items()))] == 3
    assert found[("settee_database_update_seq", frozenset({"db": "measured"}.items()))] == 3
    assert found[("settee_database_size_bytes", frozenset({"db": "measured"}.items()))] > 0
    assert found[("settee_databases", frozenset())] >= 1
    assert any(name == "settee_http_requests_total" and dict(labels)["endpoint"] == "unmatched"
               for name, labels in found)


def test_view_index_lag_is_exported(app: Any, access: Lines) -> None:
    client = stack(app, access, json_lines=False)
    client.put("/lagging", status=201)
    ddoc = {"views": {"v": {"map": "function(doc) { emit(doc.x, null); }"}}}
    client.put("/lagging/_design/d", json.dumps(ddoc), status=201)
    client.get("/lagging/_design/d/_view/v", status=200)  # built: no lag
    key = ("settee_view_index_lag_seqs", frozenset({"db": "lagging", "ddoc": "d"}.items()))

    def lag() -> float:
        return samples(metrics.exposition(app.store).decode())[key]

    assert lag() == 0
    for n in range(5):
        client.put(f"/lagging/d{n}", '{"x": 1}', status=201)
    client.get("/lagging/_design/d/_view/v?update=false", status=200)  # stale answer: 5 behind
    assert lag() == 5
    client.get("/lagging/_design/d/_view/v", status=200)  # refreshed
    assert lag() == 0


def test_feed_connections_are_counted_while_the_feed_is_open() -> None:
    def feed_app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "application/json")])
        yield b"{}"

    gauge = metrics.request_metrics().feeds.labels("longpoll")
    wrapped = metrics.Instrument(feed_app)
    environ = EnvironBuilder(path="/db/_changes", query_string="feed=longpoll").get_environ()
    before = gauge._value.get()
    body = wrapped(environ, lambda *a: None)
    assert gauge._value.get() == before + 1
    assert b"".join(body) == b"{}"
    body.close()  # type: ignore[attr-defined]
    assert gauge._value.get() == before
    normal = EnvironBuilder(path="/db/_changes", query_string="feed=normal").get_environ()
    assert metrics.feed_kind(normal) is None


def test_stats_have_couchdbs_shape(app: Any, access: Lines) -> None:
    client = stack(app, access, json_lines=False)
    client.get("/_all_dbs", status=200)
    client.get("/missing_db", status=404)
    stats = json.loads(node.stats(app, request_for("/"), node="_local").get_data())
    couchdb = stats["couchdb"]
    assert couchdb["httpd_request_methods"]["GET"]["type"] == "counter"
    assert couchdb["httpd_request_methods"]["GET"]["value"] >= 2
    assert couchdb["httpd_status_codes"]["404"]["value"] >= 1
    assert couchdb["httpd"]["requests"]["value"] >= 2
    timing = couchdb["request_time"]
    assert timing["type"] == "histogram" and timing["value"]["n"] >= 2
    assert [p for p, _ in timing["value"]["percentile"]] == [50, 75, 90, 95, 99, 999]
    one = json.loads(node.stats(app, request_for("/"), node="_local",
                                path="couchdb/request_time").get_data())
    assert one["type"] == "histogram"
    for bad in ({"node": "other@host"}, {"node": "_local", "path": "couchdb/nope"}):
        with pytest.raises(NotFoundError):
            node.stats(app, request_for("/"), **bad)


def test_quantiles_interpolate_within_buckets() -> None:
    buckets = {0.01: 50.0, 0.1: 100.0, float("inf"): 100.0}
    assert node._quantile(sorted(buckets), buckets, 100, 0.5) == 10.0
    assert node._quantile(sorted(buckets), buckets, 100, 0.75) == 55.0
    assert node._quantile([], {}, 0, 0.5) == 0


def test_system_reports_the_worker_process(app: Any) -> None:
    system = json.loads(node.system(app, request_for("/"), node="_local").get_data())
    assert system["memory"]["total"] > 1_000_000 and system["uptime"] >= 0
    assert system["process_count"] >= 1 and system["settee"]["pid"] == os.getpid()
    assert {"run_queue", "io_input", "io_output", "message_queues"} <= set(system)
    with pytest.raises(NotFoundError):
        node.prometheus(app, request_for("/"), node="<node>")


def test_up_fails_when_the_store_cannot_be_opened(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    app = create_app({"data_dir": str(blocker / "data")})
    client = Client(app, extra_environ={"HTTP_HOST": "127.0.0.1:5984"})
    reply = client.get("/_up", status="*")
    assert reply.status_int >= 500 and set(reply.json) == {"error", "reason"}


# -- active tasks ------------------------------------------------------------------------------

def test_tasks_report_progress_and_disappear_when_done(app: Any) -> None:
    registry = TaskRegistry()
    with registry.start("indexer", database="db", design_document="_design/x",
                        total_changes=200, changes_done=0) as task:
        task.update(changes_done=50)
        [shown] = registry.active()
        assert (shown["type"], shown["database"], shown["progress"]) == ("indexer", "db", 25)
        assert shown["pid"].startswith("<0.") and shown["node"] == node.NODE_NAME
    assert registry.active() == []
    assert json.loads(node.active_tasks(app, request_for("/_active_tasks")).get_data()) == []


def _task_in_child(directory: str, ready: Any, stop: Any) -> None:
    registry = TaskRegistry()
    registry.publish_to(directory)
    registry.start("replication", source="a", target="b", docs_written=7)
    ready.set()
    stop.wait(10)


def test_tasks_of_other_workers_are_listed_until_they_exit(tmp_path: Path) -> None:
    context = multiprocessing.get_context("fork")
    ready, stop = context.Event(), context.Event()
    child = context.Process(target=_task_in_child, args=(str(tmp_path), ready, stop))
    child.start()
    try:
        assert ready.wait(10)
        here = TaskRegistry()
        here.publish_to(tmp_path)
        here.start("indexer", database="local")
        kinds = sorted(t["type"] for t in here.active())
        assert kinds == ["indexer", "replication"]
    finally:
        stop.set()
        child.join(10)
    os.kill(os.getpid(), 0)
    assert [t["type"] for t in here.active()] == ["indexer"]  # the child's file is gone
    assert not (tmp_path / f"tasks-{child.pid}.json").exists()


# -- under settee serve ------------------------------------------------------------------------

def _with_settee(tmp_path: Path, **kwargs: Any) -> LiveServer:
    return LiveServer.settee(tmp_path, workers=2, threads=4, **kwargs)


@pytest.mark.live
def test_settee_serve_writes_the_access_log_to_stdout_as_json(tmp_path: Path) -> None:
    with _with_settee(tmp_path, env={"SETTEE_LOG_FORMAT": "json"}) as server:
        assert server.request("PUT", "/served").status == 201
        assert server.request("GET", "/served").status == 200
        deadline = time.monotonic() + 5
        while server.stdout().count("\n") < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        lines = [json.loads(line) for line in server.stdout().splitlines()]
        stderr = server.stderr()
    # two workers: a line is written when its response is sent, so the order may differ
    assert {(e["method"], e["path"], e["status"], e["db"]) for e in lines[-2:]} == \
        {("PUT", "/served", 201, "served"), ("GET", "/served", 200, "served")}
    assert lines[0]["path"] == "/_up"
    assert all(json.loads(line)["logger"] for line in stderr.splitlines() if line)
    assert "Using worker: settee.server.worker.SetteeWorker" in stderr


@pytest.mark.live
def test_sighup_replaces_the_workers_and_keeps_serving(tmp_path: Path) -> None:
    with _with_settee(tmp_path) as server:
        deadline = time.monotonic() + 10
        while len(server.worker_pids()) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        before = set(server.worker_pids())
        os.kill(server.pid, signal.SIGHUP)
        while time.monotonic() < deadline:
            now = set(server.worker_pids())
            if len(now) == 2 and not now & before:
                break
            time.sleep(0.05)
        assert set(server.worker_pids()).isdisjoint(before)
        assert server.request("GET", "/_up").status == 200
    assert "Traceback" not in server.stderr()


@pytest.mark.live
@pytest.mark.skipif("node.prometheus" not in ROUTED, reason="/_node/{node}/_prometheus is "
                    "not in routes.py yet")
def test_prometheus_adds_up_every_worker(tmp_path: Path) -> None:
    with _with_settee(tmp_path) as server:
        assert server.request("PUT", "/summed").status == 201
        for n in range(40):
            assert server.request("PUT", f"/summed/d{n}", "{}").status == 201
        ddoc = '{"views": {"v": {"map": "function(doc) { emit(null, null); }"}}}'
        assert server.request("PUT", "/summed/_design/d", ddoc).status == 201
        assert server.request("GET", "/summed/_design/d/_view/v?update=false").status == 200
        text = server.request("GET", "/_node/_local/_prometheus").body.decode()
    found = samples(text)
    puts = found[("settee_http_requests_total", frozenset(
        {"endpoint": "documents.doc", "method": "PUT", "status": "201"}.items()))]
    assert puts == 40  # every worker's share, from the shared multiprocess directory
    assert found[("settee_database_docs", frozenset({"db": "summed"}.items()))] == 41  # + ddoc
    # the stale view query saw its index 41 seqs behind, whichever worker answered it
    assert found[("settee_view_index_lag_seqs",
                  frozenset({"db": "summed", "ddoc": "d"}.items()))] == 41


@pytest.mark.live
@pytest.mark.skipif("node.active_tasks" not in ROUTED, reason="/_active_tasks is not in "
                    "routes.py yet")
def test_active_tasks_and_stats_answer_under_gunicorn(tmp_path: Path) -> None:
    with _with_settee(tmp_path) as server:
        assert server.request("GET", "/_active_tasks").json() == []
        stats = server.request("GET", "/_node/_local/_stats").json()
        assert "httpd_request_methods" in stats["couchdb"]
        assert server.request("GET", "/_node/_local/_system").json()["uptime"] >= 0


def test_runtime_dir_is_prepared_and_points_prometheus_into_it(tmp_path: Path) -> None:
    environ: dict[str, str] = {}
    stale = tmp_path / "run" / "metrics" / "counter_1.db"
    stale.parent.mkdir(parents=True)
    stale.write_text("old")
    root = serve.prepare_runtime_dir(resolve({"runtime_dir": str(tmp_path / "run")}, {}),
                                     environ)
    assert environ[metrics.MULTIPROC_ENV] == str(root / "metrics")
    assert not stale.exists() and (root / "tasks").is_dir()
