"""The changes feed's filters in process, on both backends: `_doc_ids`, `_selector`, `_design`,
`_view`, JavaScript design-doc filters, and the parameter errors CouchDB answers with 400/404."""

from __future__ import annotations

import json

import pytest
from conftest import Client
from feed_helpers import JSON, changes, conflicted, new_db, put, rows


@pytest.fixture
def db(module_client: Client) -> str:
    return new_db(module_client)


def test_doc_ids_filter_by_get_and_post(module_client: Client, db: str) -> None:
    for doc_id in ("a", "b", "c"):
        put(module_client, db, doc_id, {})
    query = '?filter=_doc_ids&doc_ids=["c","a","nope"]'
    got = changes(module_client, db, query).json
    assert [r["id"] for r in got["results"]] == ["a", "c"] and got["last_seq"] == 3
    posted = module_client.post(f"/{db}/_changes?filter=_doc_ids",
                                json.dumps({"doc_ids": ["b"]}), content_type=JSON).json
    assert [r["id"] for r in posted["results"]] == ["b"]
    assert [r["id"] for r in rows(module_client, db, '?doc_ids=["b"]')] == ["a", "b", "c"]
    bad = changes(module_client, db, '?filter=_doc_ids&doc_ids={"a":1}', status=400).json
    assert bad == {"error": "bad_request",
                   "reason": "`doc_ids` filter parameter is not a list of doc ids."}


def test_selector_filter(module_client: Client, db: str) -> None:
    put(module_client, db, "young", {"age": 20, "name": "Y"})
    put(module_client, db, "old", {"age": 70, "name": "O"})
    url = f"/{db}/_changes?filter=_selector&include_docs=true"
    body = {"selector": {"age": {"$gt": 30}}, "fields": ["name"]}
    got = module_client.post(url, json.dumps(body), content_type=JSON).json
    assert [(r["id"], r["doc"]) for r in got["results"]] == [("old", {"name": "O"})]
    assert got["last_seq"] == 2
    missing = module_client.post(url, "{}", content_type=JSON, status=400).json
    assert missing["reason"] == "Selector must be specified in POST payload"
    assert changes(module_client, db, "?filter=_selector", status=400).json["reason"] == \
        "Selector must be specified in POST payload"
    bad = module_client.post(url, json.dumps({"selector": {"age": {"$in": 1}}}),
                             content_type=JSON, status=400).json
    assert bad == {"error": "bad_request", "reason": "Bad argument for operator $in: 1"}


def test_selector_filter_with_all_docs_reports_matching_leaves(module_client: Client,
                                                               db: str) -> None:
    conflicted(module_client, db)
    url = f"/{db}/_changes?filter=_selector&style=all_docs"
    got = module_client.post(url, json.dumps({"selector": {"v": "a"}}), content_type=JSON).json
    assert got["results"][0]["changes"] == [{"rev": "1-aaa"}]


def test_design_filter(module_client: Client, db: str) -> None:
    put(module_client, db, "plain", {})
    put(module_client, db, "_design/d", {"views": {}})
    assert [r["id"] for r in rows(module_client, db, "?filter=_design")] == ["_design/d"]


def test_javascript_filter_sees_doc_and_query(module_client: Client, db: str) -> None:
    pytest.importorskip("settee.views.service")
    ddoc = {"filters": {"big": "function(doc, req) { return doc.n > Number(req.query.min); }"}}
    put(module_client, db, "_design/f", ddoc)
    for i in range(4):
        put(module_client, db, f"d{i}", {"n": i})
    got = changes(module_client, db, "?filter=f/big&min=1").json
    assert [r["id"] for r in got["results"]] == ["d2", "d3"] and got["last_seq"] == 5


def test_view_filter_passes_documents_the_map_emits_for(module_client: Client, db: str) -> None:
    pytest.importorskip("settee.views.service")
    ddoc = {"views": {"odd": {"map": "function(doc) { if (doc.n % 2) emit(doc.n, null); }"}}}
    put(module_client, db, "_design/v", ddoc)
    for i in range(4):
        put(module_client, db, f"d{i}", {"n": i})
    assert [r["id"] for r in rows(module_client, db, "?filter=_view&view=v/odd")] == ["d1", "d3"]
    assert changes(module_client, db, "?filter=_view&view=v/nope", status=404).json["error"] \
        == "not_found"


@pytest.mark.parametrize("query,reason", [
    ("?filter=_bogus", "unknown builtin filter name"),
    ("?filter=a/b/c", "`filter` must be of the form `designname/filtername`"),
    ("?filter=_view", "`view` filter parameter is not provided."),
    ("?filter=_view&view=nope", "`view` must be of the form `designname/viewname`"),
    ("?feed=sideways", "Supported `feed` types: normal, continuous, live, longpoll, eventsource"),
    ("?since=5-g1AAAA", "Malformed sequence supplied in 'since' parameter."),
    ("?feed=continuous&heartbeat=-1000",
     "The heartbeat value should be a positive integer (in milliseconds)."),
    ("?feed=continuous&heartbeat=a1000",
     "Invalid heartbeat value. Expecting a positive integer value (in milliseconds)."),
    ("?seq_interval=0", "invalid_seq_interval"),
    ("?style=some", 'Invalid `style` parameter: "some"; use main_only or all_docs'),
])
def test_bad_parameters_are_400(module_client: Client, db: str, query: str, reason: str) -> None:
    assert changes(module_client, db, query, status=400).json == \
        {"error": "bad_request", "reason": reason}


def test_missing_db_ddoc_and_filter_are_404(module_client: Client, db: str) -> None:
    assert changes(module_client, "no_such_db", status=404).json["reason"] == \
        "Database does not exist."
    assert changes(module_client, db, "?filter=nodoc/f", status=404).json["error"] == "not_found"
    put(module_client, db, "_design/d", {"filters": {}})
    assert changes(module_client, db, "?filter=d/nofilter", status=404).json["error"] == \
        "not_found"
    module_client.post(f"/{db}/_changes", "{}", content_type="text/plain", status=415)


def test_nul_in_ids_finds_nothing_on_either_backend(module_client: Client, db: str) -> None:
    put(module_client, db, "a", {})
    got = module_client.post(f"/{db}/_changes?filter=_doc_ids",
                             json.dumps({"doc_ids": ["a\u0000", "a"]}), content_type=JSON).json
    assert [r["id"] for r in got["results"]] == ["a"]
    assert changes(module_client, db, "?filter=a%00/f", status=404).json["error"] == "not_found"
