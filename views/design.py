"""Design documents turned into view definitions, each with the signature that names its index.

A design doc holds views under `views` (`{"name": {"map": ..., "reduce": ..., "options": ...}}`),
a `language` (`javascript` by default, `python` for operator-registered functions, `query` for
Mango, whose maps are objects naming the indexed fields, kept here as their JSON text), and
ddoc-wide `options` (`include_design`, `local_seq`). Each view is indexed on its own, under a
signature: the md5 of everything that decides its rows and reductions (language, map, reduce,
effective options, for JavaScript the `views.lib` modules a map can `require`, and the versions of
settee's key encoding and of ICU's collation). Editing a ddoc so that a view keeps its signature
keeps that view's index; a view whose signature changes gets a new index beside the old one, which
`_view_cleanup` later drops. Identical views share one index.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from . import collate

LANGUAGES = ("javascript", "python", "query")
INDEX_FORMAT = 1
"""Bumped whenever the stored row or reduction format changes, so old indexes are rebuilt."""


class DesignError(Exception):
    """A design document that cannot be indexed; status, error and reason are data."""

    def __init__(self, status: int, error: str, reason: str) -> None:
        super().__init__(reason)
        self.status, self.error, self.reason = status, error, reason


@dataclass(frozen=True)
class ViewDef:
    """One view of a design doc, as the indexer and the query need it."""

    name: str
    language: str
    map: str
    reduce: str | None
    raw: bool
    include_design: bool
    local_seq: bool
    signature: str

    @property
    def builtin_reduce(self) -> bool:
        """Whether the reduce is one of CouchDB's native `_sum`, `_count`, ... functions."""
        return self.reduce is not None and self.reduce.startswith("_")


@dataclass(frozen=True)
class DesignDoc:
    """A parsed design doc: its id and rev (for JS context keys), views and the raw body."""

    id: str
    rev: str
    language: str
    views: dict[str, ViewDef]
    body: dict[str, Any] = field(repr=False)

    @property
    def name(self) -> str:
        """The ddoc's name without the `_design/` prefix."""
        return self.id[len("_design/"):]

    @property
    def signature(self) -> str:
        """The view group's signature for `_info`: its views' signatures, combined."""
        sigs = sorted({v.signature for v in self.views.values()})
        return hashlib.md5(",".join(sigs).encode()).hexdigest()

    def view(self, name: str) -> ViewDef:
        """The named view, or `DesignError` 404 `missing_named_view` as CouchDB."""
        try:
            return self.views[name]
        except KeyError:
            raise DesignError(404, "not_found", "missing_named_view") from None


def parse(doc_id: str, rev: str, body: dict[str, Any]) -> DesignDoc:
    """Parse a design doc's body. Views without a string `map` are skipped, as CouchDB does."""
    language = body.get("language", "javascript")
    if not isinstance(language, str):
        raise DesignError(400, "invalid_design_doc", "`language` must be a string")
    raw_views = body.get("views", {})
    if not isinstance(raw_views, dict):
        raise DesignError(400, "invalid_design_doc", "`views` is not an object")
    ddoc_opts = body.get("options", {})
    if not isinstance(ddoc_opts, dict):
        ddoc_opts = {}
    lib = raw_views.get("lib") if language == "javascript" else None
    views: dict[str, ViewDef] = {}
    for name, spec in raw_views.items():
        if name == "lib" and language == "javascript":
            continue  # CommonJS modules for `require`, not a view
        if not isinstance(spec, dict):
            continue
        if language == "query" and isinstance(spec.get("map"), dict):
            # A Mango index: its map is `{"fields": ..., "partial_filter_selector": ...}`,
            # kept as JSON text (member order preserved: it is the column order).
            spec = {**spec, "map": json.dumps(spec["map"], ensure_ascii=True,
                                              separators=(",", ":"))}
        if not isinstance(spec.get("map"), str):
            continue
        reduce = spec.get("reduce")
        if reduce is not None and not isinstance(reduce, str):
            raise DesignError(400, "invalid_design_doc",
                              f"View {name} has a reduce that is not a string")
        views[name] = _view(name, language, spec, reduce, ddoc_opts, lib)
    return DesignDoc(doc_id, rev, language, views, body)


def _view(name: str, language: str, spec: dict[str, Any], reduce: str | None,
          ddoc_opts: dict[str, Any], lib: Any) -> ViewDef:
    view_opts = spec.get("options", {})
    if not isinstance(view_opts, dict):
        view_opts = {}
    raw = view_opts.get("collation") == "raw"
    # CouchDB reads these two from the ddoc's options; a view-level copy is honoured as well.
    include_design = bool(ddoc_opts.get("include_design") or view_opts.get("include_design"))
    local_seq = bool(ddoc_opts.get("local_seq") or view_opts.get("local_seq"))
    parts = [
        INDEX_FORMAT, language, spec["map"], reduce, view_opts, include_design, local_seq,
        lib if language == "javascript" else None,
        "raw" if raw else collate.collation_version(), _encoding_version(),
    ]
    # stdlib json: deterministic with sorted keys, and exact for integers of any size
    canonical = json.dumps(parts, sort_keys=True, ensure_ascii=True, separators=(",", ":"))
    signature = hashlib.md5(canonical.encode()).hexdigest()
    return ViewDef(name, language, spec["map"], reduce, raw, include_design, local_seq,
                   signature)


def _encoding_version() -> str:
    from . import encoding  # imported late: the encoding module is owned by another file
    return str(getattr(encoding, "VERSION", "1"))
