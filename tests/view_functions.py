"""Python view functions the view tests register (setting `view_python_functions`)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any


def by_key(doc: dict[str, Any]) -> Iterator[tuple[Any, Any]]:
    """Emit `doc.k` with `doc.v` (default 1), for docs that have `k`."""
    if "k" in doc:
        yield doc["k"], doc.get("v", 1)


def each_key(doc: dict[str, Any]) -> Iterator[tuple[Any, Any]]:
    """Emit once per element of `doc.ks` (so a doc can emit identical keys), value `doc.v`."""
    for key in doc.get("ks", ()):
        yield key, doc.get("v", 1)


def conflicts(doc: dict[str, Any]) -> Iterator[tuple[Any, Any]]:
    """Emit the doc's `_conflicts`, as CouchDB's classic conflicts view."""
    if "_conflicts" in doc:
        yield doc["_id"], doc["_conflicts"]


def meta(doc: dict[str, Any]) -> Iterator[tuple[Any, Any]]:
    """Emit the doc id with its `_local_seq` (when the ddoc asks for it)."""
    yield doc["_id"], doc.get("_local_seq")


def fails_on_bad(doc: dict[str, Any]) -> Iterator[tuple[Any, Any]]:
    """Raise for docs marked `bad`: the doc is skipped, the others still indexed."""
    if doc.get("bad"):
        raise ValueError("bad doc")
    yield doc["_id"], None


def total(keys: Any, values: list[Any], rereduce: bool) -> Any:
    """A custom Python reduce: the sum of values."""
    return sum(values)


def boom(keys: Any, values: list[Any], rereduce: bool) -> Any:
    """A custom Python reduce that always fails."""
    raise RuntimeError("boom")


def not_registered(doc: dict[str, Any]) -> Iterator[tuple[Any, Any]]:
    """Exists, but the tests do not register it."""
    yield doc["_id"], 1
