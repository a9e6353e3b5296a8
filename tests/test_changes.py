"""`/{db}/_changes` in process, on both backends: every feed type byte for byte, since, limit,
descending, styles, `include_docs`, `seq_interval`, `include_previous`, and waiting feeds with
their bounds (filters: `test_changes_filters.py`; `_db_updates`: `test_db_updates.py`)."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest
from conftest import Client
from feed_helpers import JSON, changes, conflicted, later, new_db, put, rows
from settee.server import create_app


@pytest.fixture
def db(module_client: Client) -> str:
    return new_db(module_client)


# -- the normal feed -------------------------------------------------------------------------

def test_normal_feed_bytes_and_headers(module_client: Client, db: str) -> None:
    ra = put(module_client, db, "a", {"n": 1})
    rb = put(module_client, db, "b", {"n": 2})
    response = changes(module_client, db)
    assert response.content_type == JSON
    assert response.headers["Cache-Control"] == "must-revalidate"
    assert response.body == (
        b'{"results":[\n'
        b'{"seq":1,"id":"a","changes":[{"rev":"' + ra.encode() + b'"}]},\r\n'
        b'{"seq":2,"id":"b","changes":[{"rev":"' + rb.encode() + b'"}]}\n'
        b'],\n"last_seq":2,"pending":0}\n')


def test_empty_feed_bytes(module_client: Client, db: str) -> None:
    assert changes(module_client, db).body == b'{"results":[\n\n],\n"last_seq":0,"pending":0}\n'


def test_etag_answers_304_until_the_db_changes(module_client: Client, db: str) -> None:
    put(module_client, db, "a", {})
    etag = changes(module_client, db).headers["ETag"]
    again = changes(module_client, db, headers={"If-None-Match": etag}, status=304)
    assert again.body == b"" and again.headers["ETag"] == etag
    put(module_client, db, "b", {})
    assert changes(module_client, db, headers={"If-None-Match": etag}).status_int == 200
    assert changes(module_client, db, "?limit=1").headers["ETag"] != etag


def test_head_and_accepted_parameters(module_client: Client, db: str) -> None:
    put(module_client, db, "a", {})
    head = module_client.head(f"/{db}/_changes?feed=longpoll&timeout=60000")
    assert head.status_int == 200 and head.body == b""  # HEAD never waits
    got = changes(module_client, db, "?attachments=true&att_encoding_info=true&unknown=1").json
    assert [r["id"] for r in got["results"]] == ["a"]


def test_one_row_per_document_at_its_latest_seq(module_client: Client, db: str) -> None:
    ra = put(module_client, db, "a", {"v": 1})
    put(module_client, db, "b", {})
    ra2 = put(module_client, db, "a", {"v": 2, "_rev": ra})
    found = rows(module_client, db)
    assert [(r["seq"], r["id"]) for r in found] == [(2, "b"), (3, "a")]
    assert found[1]["changes"] == [{"rev": ra2}]


def test_since_limit_descending_and_now(module_client: Client, db: str) -> None:
    for i in range(5):
        put(module_client, db, f"d{i}", {"i": i})
    assert [r["seq"] for r in rows(module_client, db, "?since=2")] == [3, 4, 5]
    assert [r["seq"] for r in rows(module_client, db, '?since="3"')] == [4, 5]
    limited = changes(module_client, db, "?since=1&limit=2").json
    assert [r["seq"] for r in limited["results"]] == [2, 3]
    assert (limited["last_seq"], limited["pending"]) == (3, 2)
    down = changes(module_client, db, "?descending=true&limit=2").json
    assert [r["seq"] for r in down["results"]] == [5, 4]
    assert (down["last_seq"], down["pending"]) == (4, 3)
    assert [r["seq"] for r in rows(module_client, db, "?descending=true")] == [5, 4, 3, 2, 1]
    now = changes(module_client, db, "?since=now").json
    assert now == {"results": [], "last_seq": 5, "pending": 0}
    assert changes(module_client, db, "?since=99").json["last_seq"] == 99


def test_deleted_rows_and_include_docs(module_client: Client, db: str) -> None:
    rev = put(module_client, db, "gone", {"x": 1})
    put(module_client, db, "kept", {"x": 2})
    tomb = module_client.delete(f"/{db}/gone?rev={rev}").json["rev"]
    found = rows(module_client, db, "?include_docs=true")
    assert found[0]["doc"] == {"_id": "kept", "_rev": found[0]["changes"][0]["rev"], "x": 2}
    assert found[1] == {"seq": 3, "id": "gone", "changes": [{"rev": tomb}], "deleted": True,
                        "doc": {"_id": "gone", "_rev": tomb, "_deleted": True}}


def test_style_all_docs_lists_every_leaf_winner_first(module_client: Client, db: str) -> None:
    conflicted(module_client, db)
    main = rows(module_client, db)
    assert main[0]["changes"] == [{"rev": "1-bbb"}] and "deleted" not in main[0]
    every = rows(module_client, db, "?style=all_docs")
    assert every[0]["changes"] == [{"rev": "1-bbb"}, {"rev": "1-aaa"}, {"rev": "1-abc"}]
    doc = rows(module_client, db, "?include_docs=true&conflicts=true")[0]["doc"]
    assert doc == {"_id": "c", "_rev": "1-bbb", "v": "b", "_conflicts": ["1-aaa"]}
    assert "_conflicts" not in rows(module_client, db, "?include_docs=true")[0]["doc"]


def test_seq_interval_nulls_all_but_every_nth_seq(module_client: Client, db: str) -> None:
    for i in range(6):
        put(module_client, db, f"d{i}", {})
    got = changes(module_client, db, "?seq_interval=2&limit=5").json
    # CouchDB shows a seq when the rows left before the limit divide by the interval
    assert [r["seq"] for r in got["results"]] == [None, 2, None, 4, None]
    assert got["last_seq"] == 5
    assert [r["seq"] for r in rows(module_client, db, "?seq_interval=3")] == \
        [None, 2, None, None, 5, None]


# -- include_previous ------------------------------------------------------------------------

def test_include_previous_tells_insert_modify_and_delete(module_app: Any, module_client: Client,
                                                         db: str) -> None:
    r1 = put(module_client, db, "ins", {"v": 1})
    m1 = put(module_client, db, "mod", {"v": 1})
    put(module_client, db, "mod", {"v": 2, "_rev": m1})
    d1 = put(module_client, db, "del", {"v": 1})
    tomb = module_client.delete(f"/{db}/del?rev={d1}").json["rev"]
    got = {r["id"]: r for r in rows(module_client, db, "?include_previous=true")}
    assert got["ins"]["previous"] is None and got["ins"]["changes"] == [{"rev": r1}]
    assert got["mod"]["previous"] == {"_id": "mod", "_rev": m1, "v": 1}
    assert got["del"]["previous"] == {"_id": "del", "_rev": d1, "v": 1}
    assert got["del"]["deleted"] is True and got["del"]["changes"] == [{"rev": tomb}]
    module_app.store.compact(db)  # non-leaf bodies are gone: no old image left to give
    after = {r["id"]: r for r in rows(module_client, db, "?include_previous=true")}
    assert after["mod"]["previous"] is None and after["del"]["previous"] is None


# -- waiting feeds ---------------------------------------------------------------------------

def test_longpoll_answers_at_once_when_changes_exist(module_client: Client, db: str) -> None:
    put(module_client, db, "a", {})
    start = time.monotonic()
    got = changes(module_client, db, "?feed=longpoll&timeout=5000").json
    assert time.monotonic() - start < 2
    assert [r["id"] for r in got["results"]] == ["a"] and got["last_seq"] == 1


def test_longpoll_wakes_on_a_write_from_another_thread(module_app: Any, module_client: Client,
                                                       db: str) -> None:
    put(module_client, db, "a", {})
    writer = later(0.3, lambda: module_app.store.db(db).save("b", {"late": True}))
    start = time.monotonic()
    got = changes(module_client, db, "?feed=longpoll&since=1&timeout=10000").json
    elapsed = time.monotonic() - start
    writer.join(5)
    assert [r["id"] for r in got["results"]] == ["b"] and got["last_seq"] == 2
    assert 0.25 < elapsed < 5


def test_longpoll_timeout_gives_empty_results(module_client: Client, db: str) -> None:
    put(module_client, db, "a", {})
    start = time.monotonic()
    response = changes(module_client, db, "?feed=longpoll&since=now&timeout=200")
    assert 0.15 < time.monotonic() - start < 5
    assert response.body == b'{"results":[\n\n\n],\n"last_seq":1,"pending":0}\n'
    assert "ETag" not in response.headers


def test_continuous_lines_then_last_seq(module_client: Client, db: str) -> None:
    ra = put(module_client, db, "a", {})
    body = changes(module_client, db, "?feed=continuous&timeout=100").body
    assert body == (b'{"seq":1,"id":"a","changes":[{"rev":"' + ra.encode() + b'"}]}\n'
                    b'{"last_seq":1,"pending":0}\n')
    assert changes(module_client, db, "?feed=live&since=1&timeout=50").body == \
        b'\n{"last_seq":1,"pending":0}\n'


def test_continuous_limit_ends_the_feed(module_client: Client, db: str) -> None:
    for doc_id in ("a", "b", "c"):
        put(module_client, db, doc_id, {})
    lines = changes(module_client, db, "?feed=continuous&limit=2&timeout=60000").body.split(b"\n")
    assert [json.loads(x).get("seq") for x in lines if x] == [1, 2, None]
    assert json.loads(lines[2]) == {"last_seq": 2, "pending": 1}


def test_heartbeats_keep_a_waiting_feed_alive(module_app: Any, module_client: Client,
                                              db: str) -> None:
    later(0.5, lambda: module_app.store.db(db).save("a", {}))
    body = changes(module_client, db, "?feed=continuous&heartbeat=100&limit=1").body
    head, _, rest = body.partition(b"{")
    assert head.count(b"\n") >= 3  # the waiting newline, then heartbeats, every 100 ms
    assert json.loads(b"{" + rest.split(b"\n")[0])["id"] == "a"


def test_eventsource_format(module_app: Any, module_client: Client, db: str) -> None:
    ra = put(module_client, db, "a", {})
    response = changes(module_client, db, "?feed=eventsource&timeout=100")
    assert response.content_type == "text/event-stream"
    assert response.headers["Cache-Control"] == "no-cache"
    assert response.body == (b'data: {"seq":1,"id":"a","changes":[{"rev":"' + ra.encode()
                             + b'"}]}\nid: 1\n\n')
    later(0.35, lambda: module_app.store.db(db).save("b", {}))
    beats = changes(module_client, db, "?feed=eventsource&since=1&heartbeat=100&limit=1",
                    headers={"Last-Event-ID": "1"}).body
    assert beats.startswith(b"\nevent: heartbeat\ndata: \n\n")
    assert beats.endswith(b'\nid: 2\n\n') and b'"id":"b"' in beats


def test_a_full_process_answers_longpolls_at_once(tmp_path: Any) -> None:
    """With every feed slot taken, a longpoll returns its current state instead of waiting."""
    app = create_app({"data_dir": str(tmp_path / "data"), "threads": 3})  # one feed slot
    client = Client(app, extra_environ={"HTTP_HOST": "127.0.0.1:5984"})
    client.put("/slots", status=201)
    holder = threading.Thread(target=lambda: client.get("/slots/_changes?feed=longpoll&"
                                                        "timeout=1500"), daemon=True)
    holder.start()
    time.sleep(0.3)
    start = time.monotonic()
    got = client.get("/slots/_changes?feed=longpoll&timeout=10000").json
    assert time.monotonic() - start < 1.0
    assert got == {"results": [], "last_seq": 0, "pending": 0}
    holder.join(5)
    app.store.close()
