"""`/_db_updates` in process, on both backends: created, updated and deleted events with seqs,
in the normal, longpoll and continuous feeds."""

from __future__ import annotations

import json
import uuid
from typing import Any

from conftest import Client
from feed_helpers import later, put


def _events(got: dict[str, Any], names: set[str]) -> list[tuple[str, str]]:
    return [(r["db_name"], r["type"]) for r in got["results"] if r["db_name"] in names]


def test_db_updates_normal_longpoll_and_continuous(module_client: Client) -> None:
    tag = "dbu_" + uuid.uuid4().hex[:8]
    a, b = tag + "_a", tag + "_b"
    since = module_client.get("/_db_updates").json["last_seq"]
    module_client.put(f"/{a}", status=201)
    module_client.put(f"/{b}", status=201)
    first = module_client.get(f"/_db_updates?since={since}").json  # events are recorded here
    assert _events(first, {a, b}) == [(a, "created"), (b, "created")]
    put(module_client, a, "doc", {})
    module_client.delete(f"/{b}", status=200)
    got = module_client.get(f"/_db_updates?since={since}").json
    assert _events(got, {a, b}) == [(a, "created"), (b, "created"), (a, "updated"),
                                    (b, "deleted")]
    seqs = [r["seq"] for r in got["results"]]
    assert seqs == sorted(seqs) and got["last_seq"] == seqs[-1]
    assert "pending" not in got
    later(0.3, lambda: module_client.put(f"/{b}", status=201))
    polled = module_client.get(f"/_db_updates?feed=longpoll&since={got['last_seq']}"
                               "&timeout=10000").json
    assert _events(polled, {b}) == [(b, "created")]
    lines = module_client.get(f"/_db_updates?feed=continuous&since={since}&limit=2").body
    # one event per (database, type) at its latest seq: b's first `created` was replaced
    assert [(json.loads(x)["db_name"], json.loads(x)["type"]) for x in lines.split(b"\n")[:2]] \
        == [(a, "created"), (a, "updated")]
    assert module_client.get("/_db_updates?feed=bad", status=400).json["reason"] == \
        "Supported `feed` types: normal, continuous, longpoll, eventsource"
