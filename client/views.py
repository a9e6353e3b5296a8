"""Paged reads: view and `_all_docs` rows by `startkey`/`startkey_docid`, `_find` by bookmark.

CouchDB's `skip` costs O(skip) on the server, so pages never use it. Each page after the first
starts at the last row already delivered (its key, and its doc id for map rows), asks for as many
more rows as that repeats plus a page, and drops the repeated rows. Counting repeats (rather than
dropping "the first row") keeps paging exact when one document emits the same key several times,
and starting from the last delivered row (rather than the next one) keeps a `descending` grouped
reduce from cutting a group in half: members of group `["b"]` such as `["b", 1]` sort after
`["b"]`, so a descending page starting at `["b"]` would miss them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .errors import CouchError, Unsupported, item_error
from .transport import Doc, Transport, dumps

UNSET: Any = type("Unset", (), {"__repr__": lambda self: "UNSET"})()
"""Marks a key parameter that was not given (None is the JSON key `null`)."""

DEFAULT_PAGE = 1000


def _identity(row: Doc) -> tuple[bytes, str | None]:
    return dumps(row.get("key")), row.get("id")


class ViewRows:
    """An iterator over the rows of a view or of `_all_docs`, fetched `page_size` at a time.

    `total_rows`, `offset` and `update_seq` are those of the first page (None before it is
    fetched, and for reduce views, which have none). `keys` queries are sent as POSTs of at most
    `page_size` keys each and are not paged within a key.
    """

    def __init__(self, transport: Transport, path: str, params: dict[str, Any], *,
                 keys: list[Any] | None = None, limit: int | None = None,
                 page_size: int = DEFAULT_PAGE, tiebreak: bool = True) -> None:
        if page_size < 1:
            raise ValueError("page_size must be at least 1")
        if "skip" in params:
            raise ValueError("skip is O(n) on the server; page with startkey instead")
        self._transport = transport
        self._path = path
        self._params = params
        self._keys = keys
        self._limit = limit
        self._page = page_size
        self._tiebreak = tiebreak  # send startkey_docid (views), not needed for _all_docs
        self.total_rows: int | None = None
        self.offset: int | None = None
        self.update_seq: Any = None
        self._rows = self._keyed_rows() if keys is not None else self._ranged_rows()

    def __iter__(self) -> Iterator[Doc]:
        return self

    def __next__(self) -> Doc:
        return next(self._rows)

    def _fetch(self, params: dict[str, Any], keys: list[Any] | None = None) -> list[Doc]:
        if keys is None:
            answer = self._transport.json("GET", self._path, params=params)
        else:
            answer = self._transport.json("POST", self._path, params=params,
                                          json_body={"keys": keys}, idempotent=True)
        if "error" in answer:  # a failure after the answer began (a reduce that overflowed)
            raise item_error(answer)
        if self.total_rows is None and "total_rows" in answer:
            self.total_rows = answer.get("total_rows")
            self.offset = answer.get("offset")
        if self.update_seq is None:
            self.update_seq = answer.get("update_seq")
        rows: list[Doc] = answer["rows"]
        return rows

    def _ranged_rows(self) -> Iterator[Doc]:
        params = dict(self._params)
        remaining = self._limit
        boundary: tuple[bytes, str | None] | None = None
        repeats = 0  # delivered rows equal to `boundary`; the next page starts with them again
        while remaining is None or remaining > 0:
            want = self._page if remaining is None else min(self._page, remaining)
            params["limit"] = repeats + want
            rows = self._fetch(params)
            dropped = 0
            while boundary is not None and dropped < repeats and dropped < len(rows) \
                    and _identity(rows[dropped]) == boundary:
                dropped += 1
            fresh = rows[dropped:]
            yield from fresh
            if remaining is not None:
                remaining -= len(fresh)
            if len(rows) < params["limit"] or not fresh:
                return
            last = _identity(fresh[-1])
            trailing = 0
            for row in reversed(fresh):
                if _identity(row) != last:
                    break
                trailing += 1
            repeats = repeats + trailing if last == boundary and trailing == len(fresh) \
                else trailing
            boundary = last
            params.pop("key", None)
            params["startkey"] = fresh[-1].get("key")
            if self._tiebreak and "id" in fresh[-1]:
                params["startkey_docid"] = fresh[-1]["id"]
            else:
                params.pop("startkey_docid", None)

    def _keyed_rows(self) -> Iterator[Doc]:
        keys = self._keys or []
        remaining = self._limit
        for start in range(0, len(keys), self._page):
            if remaining is not None and remaining <= 0:
                return
            params = dict(self._params)
            if remaining is not None:
                params["limit"] = remaining
            rows = self._fetch(params, keys[start:start + self._page])
            if remaining is not None:
                remaining -= len(rows)
            yield from rows


def view_params(key: Any, keys: Any, startkey: Any, endkey: Any,
                options: dict[str, Any]) -> tuple[dict[str, Any], list[Any] | None]:
    """Query parameters for a range (`key` becomes `startkey` = `endkey`), and `keys` apart."""
    params = {name: value for name, value in options.items() if value is not None}
    for alias, name in (("start_key", "startkey"), ("end_key", "endkey"),
                        ("start_key_doc_id", "startkey_docid"),
                        ("end_key_doc_id", "endkey_docid")):
        if alias in params:
            params[name] = params.pop(alias)
    if keys is not UNSET:
        if key is not UNSET or startkey is not UNSET or endkey is not UNSET:
            raise ValueError("keys is incompatible with key, startkey and endkey")
        return params, list(keys)
    if key is not UNSET:
        if startkey is not UNSET or endkey is not UNSET:
            raise ValueError("key is incompatible with startkey and endkey")
        startkey = endkey = key
    if startkey is not UNSET:
        params["startkey"] = startkey
    if endkey is not UNSET:
        params["endkey"] = endkey
    return params, None


class FindResult:
    """An iterator over the documents `_find` matches, paged by Mango's `bookmark`.

    `warning`, `bookmark` and `execution_stats` are those of the latest page.
    """

    def __init__(self, transport: Transport, path: str, query: dict[str, Any], *,
                 limit: int | None = None, page_size: int = DEFAULT_PAGE) -> None:
        if page_size < 1:
            raise ValueError("page_size must be at least 1")
        self._transport = transport
        self._path = path
        self._query = query
        self._limit = limit
        self._page = page_size
        self.warning: str | None = None
        self.bookmark: str | None = None
        self.execution_stats: dict[str, Any] | None = None
        self._docs = self._all()

    def __iter__(self) -> Iterator[Doc]:
        return self

    def __next__(self) -> Doc:
        return next(self._docs)

    def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        try:
            answer: dict[str, Any] = self._transport.json("POST", self._path, json_body=body,
                                                          idempotent=True)
        except CouchError as exc:
            if _no_find(exc):
                raise Unsupported(
                    f"this server has no _find endpoint (it answered {exc.status} {exc.error}: "
                    f"{exc.reason})", status=exc.status, error=exc.error, method="POST",
                    path=self._path) from exc
            raise
        return answer

    def _all(self) -> Iterator[Doc]:
        remaining = self._limit
        body = dict(self._query)
        while remaining is None or remaining > 0:
            want = self._page if remaining is None else min(self._page, remaining)
            body["limit"] = want
            answer = self._post(body)
            docs: list[Doc] = answer.get("docs", [])
            self.warning = answer.get("warning")
            self.bookmark = answer.get("bookmark")
            self.execution_stats = answer.get("execution_stats")
            yield from docs
            if remaining is not None:
                remaining -= len(docs)
            if len(docs) < want or not self.bookmark or self.bookmark == "nil":
                return
            body["bookmark"] = self.bookmark


def _no_find(exc: CouchError) -> bool:
    """Whether an error answer to `POST /{db}/_find` means "no such endpoint" on this server.

    A server without Mango routes `/{db}/_find` as a document id (400 `illegal_docid`) or a
    method it does not take (405); one that routes it without implementing it says 501. A 404
    for the database itself stays a `NotFound`.
    """
    if exc.status in (405, 501):
        return True
    if exc.status == 400 and exc.error == "illegal_docid":
        return True
    return exc.status == 404 and exc.reason != "Database does not exist."
