"""The error body is a contract: every route, any method, bad names and ids answer CouchDB JSON.

For each rule of `routes.url_map` the test sends every method settee knows and a few it does not,
against an existing database, a missing one, an illegal name and a segment that is not UTF-8
(and the same for document ids), with valid, invalid and missing bodies. Every response outside
2xx must be `application/json` holding exactly a string `error` and a string `reason`; werkzeug's
HTML error pages must never get out.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from settee.server.routes import url_map
from werkzeug.routing import Rule

KNOWN_METHODS = ["GET", "HEAD", "PUT", "POST", "DELETE", "COPY"]
UNKNOWN_METHODS = ["PATCH", "OPTIONS", "TRACE", "PROPFIND"]
JSON = "application/json"
pytestmark = pytest.mark.filterwarnings("ignore:Unknown REQUEST_METHOD")  # webtest's lint on COPY

RULES = sorted(url_map.iter_rules(), key=lambda r: r.rule)
_counter = itertools.count()


def _fresh(prefix: str) -> str:
    """A name nobody has used yet, so a PUT that creates it cannot change later requests."""
    return f"{prefix}{next(_counter)}"


def _db_variants(existing: str) -> Iterator[tuple[str, str]]:
    yield "existing db", existing
    yield "missing db", _fresh("missing_db_")
    yield "illegal db name", "Bad!Name"
    yield "non-UTF-8 db", "%FF"


def _doc_variants(rule: Rule) -> Iterator[tuple[str, str]]:
    yield "missing doc", _fresh("missing-doc-")
    if rule.rule == "/<db>/<docid>":
        yield "illegal doc id", "_illegal"
    yield "non-UTF-8 doc id", "%FF"


def _other_args(path: str) -> str:
    """Fill every argument other than db and docid (ddoc, view, attachment…) with a fresh name."""
    return re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", lambda m: _fresh(f"{m.group(1)}-"), path)


def _paths(rule: Rule, existing: str) -> Iterator[tuple[str, str]]:
    """(what, raw path) for each variant of the rule's arguments."""
    if "<db>" not in rule.rule:
        yield "server", _other_args(rule.rule)
        return
    for db_what, db in _db_variants(existing):
        path = rule.rule.replace("<db>", db)
        if "<docid>" not in path:
            yield db_what, _other_args(path)
            continue
        for doc_what, doc in _doc_variants(rule):
            yield f"{db_what}, {doc_what}", _other_args(path.replace("<docid>", doc))


def _requests(path: str) -> Iterator[tuple[str, str, bytes | None, dict[str, str]]]:
    """(method, path, body, headers): known methods with good and bad bodies, unknown methods."""
    for method in KNOWN_METHODS + UNKNOWN_METHODS:
        if method in ("PUT", "POST"):
            yield method, path, b"{}", {"Content-Type": JSON}
            yield method, path, b'{"broken": ', {"Content-Type": JSON}
            yield method, path, b"{}", {"Content-Type": "text/plain"}
        elif method == "COPY":
            yield method, path, None, {}
            yield method, path, None, {"Destination": _fresh("copy-target-")}
        else:
            yield method, path, None, {}
    yield "GET", path + "?rev=not-a-rev&limit=-3&descending=maybe", None, {}


def shape_problems(response: Any, method: str) -> list[str]:
    """What is wrong with a non-2xx response; empty when it follows the contract."""
    problems = []
    content_type = response.headers.get("Content-Type")
    if content_type != JSON:
        problems.append(f"Content-Type {content_type!r}")
    body = response.body
    if b"<html" in body.lower() or b"<!doctype" in body.lower():
        problems.append("HTML body")
    if method == "HEAD":
        return problems
    try:
        data = json.loads(body)
    except ValueError:
        return problems + [f"body is not JSON: {body[:80]!r}"]
    if not isinstance(data, dict) or set(data) != {"error", "reason"}:
        problems.append(f"members {sorted(data) if isinstance(data, dict) else type(data)}")
    elif not all(isinstance(data[k], str) for k in ("error", "reason")):
        problems.append(f"non-string members {data!r}")
    if response.status_int == 405 and not response.headers.get("Allow"):
        problems.append("405 without Allow")
    return problems


@pytest.mark.parametrize("rule", RULES, ids=[r.endpoint for r in RULES])
def test_every_error_of_a_route_is_couchdb_json(client: Any, fresh_db: str, rule: Rule) -> None:
    bad: list[str] = []
    server_errors: list[str] = []
    seen = 0
    for what, path in _paths(rule, fresh_db):
        for method, raw, body, headers in _requests(path):
            response = client.raw(method, raw, body, headers)
            label = f"{method} {raw} ({what}) -> {response.status_int}"
            if response.status_int >= 500:
                server_errors.append(f"{label}: {response.body[:120]!r}")
            if 200 <= response.status_int < 300:
                if method == "DELETE" and raw == f"/{fresh_db}":
                    client.put(f"/{fresh_db}", status=201)  # the walk needs it back
                continue
            seen += 1
            bad.extend(f"{label}: {problem}" for problem in shape_problems(response, method))
    assert seen, "no request of this route failed: the walk proves nothing"
    assert bad == [], "\n".join(bad)
    assert server_errors == [], "\n".join(server_errors)


def test_every_rule_is_walked() -> None:
    endpoints = {rule.endpoint for rule in url_map.iter_rules()}
    assert endpoints == {rule.endpoint for rule in RULES}
    for rule in RULES:  # the walk fills db and docid with variants and any other argument fresh
        assert "<" not in _other_args(rule.rule.replace("<db>", "d").replace("<docid>", "i"))


# -- particular errors ---------------------------------------------------------------------------

def _error(response: Any) -> tuple[int, str, str]:
    assert response.headers["Content-Type"] == JSON
    data = response.json
    assert set(data) == {"error", "reason"}
    return response.status_int, data["error"], data["reason"]


@pytest.mark.parametrize("path", ["/db/doc/attachment/extra", "/db/_design/d/_view/v/extra",
                                  "/db/doc/a/b/c"])
def test_unknown_paths_are_a_json_404(client: Any, path: str) -> None:
    status, error, _ = _error(client.raw("GET", path))
    assert (status, error) == (404, "not_found")


@pytest.mark.parametrize("method,path,allowed", [
    ("PATCH", "/{db}", "DELETE,GET,HEAD,POST,PUT"),
    ("DELETE", "/", "GET,HEAD"),
    ("PATCH", "/{db}/_all_docs", "GET,HEAD,POST"),
    ("PUT", "/_all_dbs", "GET,HEAD"),
    ("GET", "/{db}/_bulk_docs", "POST"),
    ("DELETE", "/{db}/_all_docs", "GET,HEAD,POST"),
])
def test_method_not_allowed_names_the_allowed_methods(client: Any, fresh_db: str, method: str,
                                                      path: str, allowed: str) -> None:
    response = client.raw(method, path.format(db=fresh_db), b"{}")
    assert _error(response) == (405, "method_not_allowed", f"Only {allowed} allowed")
    assert set(re.split(r",\s*", response.headers["Allow"])) == set(allowed.split(","))


def test_uri_over_max_uri_length_is_a_json_414(client: Any, fresh_db: str) -> None:
    response = client.raw("GET", f"/{fresh_db}/" + "x" * 8100)
    assert _error(response) == (414, "too_long", "the request uri is too long")


def test_invalid_utf8_in_a_segment_is_a_json_400(client: Any) -> None:
    status, error, _ = _error(client.raw("GET", "/%C3%28"))
    assert (status, error) == (400, "bad_request")
