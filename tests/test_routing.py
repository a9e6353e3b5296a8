"""The cached route plans give exactly what the route table gives, for every kind of path."""

from __future__ import annotations

from functools import partial
from typing import Any

import pytest
from settee.server.wrappers import routing_path
from werkzeug.exceptions import HTTPException

PATHS = [
    [], ["db"], ["_all_dbs"], ["_users"], ["db", "doc"], ["db", "a/b"], ["db", "_all_docs"],
    ["db", "_all_docs", "queries"], ["db", "queries"], ["queries", "queries"],
    ["db", "_design", "x"], ["db", "_design/x"], ["db", "_local", "x"], ["db", "_local", "x", "y"],
    ["db", "doc", "att"],
    ["db", "doc", "a", "b", "c"], ["db", "\x011\x02"], ["db", "_bulk_docs"], ["db", "_foo"],
    ["_users", "org.couchdb.user:x"], ["db", "_design", "x", "_view", "v"],
    ["db", "_design", "x", "_info"], ["db", ""], ["", "x"], ["db", "_revs_limit"],
]
METHODS = ["GET", "HEAD", "PUT", "POST", "DELETE", "COPY", "PATCH"]


def _outcome(fn: Any) -> Any:
    try:
        return fn()
    except HTTPException as exc:
        return type(exc).__name__


@pytest.mark.parametrize("segments", PATHS, ids=lambda p: "/" + "/".join(p))
def test_plans_agree_with_the_route_table(app: Any, segments: list[str]) -> None:
    for method in METHODS:
        direct = _outcome(partial(app._match_path, routing_path(segments), method))
        if isinstance(direct, tuple):
            direct = (direct[0], {k: v.replace("\x00", "/") for k, v in direct[1].items()})
        for _ in range(2):  # first through the Map, then through the cached plan
            assert _outcome(partial(app.match, segments, method)) == direct
