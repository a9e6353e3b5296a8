"""Multipart bodies: `multipart/related` documents read part by part, and framed responses.

`PartReader` reads a `multipart/related` body as CouchDB's replicator sends it (a JSON part, then
one raw part per attachment that `follows`, in `_attachments` order) part by part from the
stream, keeping only a boundary's worth of bytes beyond what it hands out, and never more than
`max_http_request_size` in all.

Responses with attachment bytes are iterators with a length known up front (`StreamResponse`),
framed byte for byte as `couch_httpd_multipart:encode_multipart_stream/5` frames them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import partial
from typing import IO, Any

from werkzeug.wrappers import Response

from ..store.attachments import AttMeta
from .errors import BadContentType, BadRequest, RequestTooLarge

READ_SIZE = 64 * 1024
MAX_PART_HEADERS = 16 * 1024


class PartReader:
    """The parts of a multipart body, read from a stream one after another."""

    def __init__(self, stream: IO[bytes], boundary: str, max_request: int) -> None:
        self._stream = stream
        self._limit = max_request
        self._total = 0
        self._delim = b"\r\n--" + boundary.encode("latin-1")
        self._buf = bytearray(b"\r\n")  # so the first delimiter has its line break too
        self._at_delim = False

    def _fill(self) -> None:
        chunk = self._stream.read(READ_SIZE)
        if not chunk:
            raise BadRequest("Unexpected end of the multipart body")
        self._total += len(chunk)
        if self._total > self._limit:
            raise RequestTooLarge()
        self._buf += chunk

    def next_part(self) -> dict[str, str] | None:
        """Move to the next part and return its headers (lower-case names), or None at the end."""
        if not self._at_delim:
            for _ in self.data():  # the preamble, or what is left of the current part
                pass
        self._at_delim = False
        while len(self._buf) < 2:
            self._fill()
        if self._buf.startswith(b"--"):
            return None
        while (end := self._buf.find(b"\r\n")) < 0:
            if len(self._buf) > 1024:
                raise BadRequest("Malformed multipart boundary line")
            self._fill()
        if self._buf[:end].strip(b" \t"):
            raise BadRequest("Malformed multipart boundary line")
        del self._buf[:end + 2]
        return self._headers()

    def _headers(self) -> dict[str, str]:
        while len(self._buf) < 2:
            self._fill()
        if self._buf.startswith(b"\r\n"):
            del self._buf[:2]
            return {}
        while (end := self._buf.find(b"\r\n\r\n")) < 0:
            if len(self._buf) > MAX_PART_HEADERS:
                raise BadRequest("Multipart part headers are too long")
            self._fill()
        block = bytes(self._buf[:end]).decode("latin-1")
        del self._buf[:end + 4]
        headers = {}
        for line in block.split("\r\n"):
            name, sep, value = line.partition(":")
            if not sep:
                raise BadRequest("Malformed multipart part header")
            headers[name.strip().lower()] = value.strip()
        return headers

    def data(self) -> Iterator[bytes]:
        """The current part's bytes, in pieces, up to the next delimiter."""
        keep = len(self._delim) - 1
        while not self._at_delim:
            found = self._buf.find(self._delim)
            if found >= 0:
                piece = bytes(self._buf[:found])
                del self._buf[:found + len(self._delim)]
                self._at_delim = True
                if piece:
                    yield piece
                return
            if len(self._buf) > keep:
                piece = bytes(self._buf[:-keep])
                del self._buf[:-keep]
                yield piece
            self._fill()

    def read_part(self) -> bytes:
        """The current part's bytes, whole."""
        return b"".join(self.data())


def read_related(request: Any, max_request: int) -> tuple[bytes, PartReader]:
    """The JSON part of a `multipart/related` document body, and the reader, now at the parts
    that follow it (CouchDB: the first part must be `application/json`, else 415)."""
    boundary = request.mimetype_params.get("boundary")
    if not boundary:
        raise BadRequest("A multipart/related body needs a boundary")
    if request.content_length is not None and request.content_length > max_request:
        raise RequestTooLarge()
    reader = PartReader(request.stream, boundary, max_request)
    headers = reader.next_part()
    ctype = (headers or {}).get("content-type", "").partition(";")[0].strip().lower()
    if ctype != "application/json":
        raise BadContentType("Content-Type must be application/json")
    return reader.read_part(), reader


# -- responses ---------------------------------------------------------------------------------

class StreamResponse(Response):
    """A response whose body is an iterator of known total length (so HEAD can tell it)."""

    def __init__(self, body: Iterable[bytes], length: int, **kwargs: Any) -> None:
        super().__init__(body, direct_passthrough=True, **kwargs)
        self.stream_length = length
        self.headers["Content-Length"] = str(length)

    def calculate_content_length(self) -> int | None:
        return self.stream_length


def safe_header(value: str, default: str = "application/octet-stream") -> str:
    """A stored value fit for a response header: printable ASCII only (gunicorn writes headers
    as Latin-1 and a line break would split them), else `default`."""
    return value if value.isascii() and value.isprintable() else default


def _quoted_name(name: str) -> bytes:
    escaped = name.replace("\\", "\\\\").replace('"', '\\"')
    return escaped.replace("\r", "%0D").replace("\n", "%0A").encode("utf-8")


Body = tuple[str, int, Callable[[], Iterator[bytes]]]
"""A body: its content type, its length, and a function giving its bytes."""

Part = tuple[bytes, int, Callable[[], Iterator[bytes]]]
"""A part of a multipart body: its header lines, its length, and a function giving its bytes."""


def new_boundary() -> str:
    """A random boundary, as CouchDB's `couch_uuids:random/0`."""
    return os.urandom(16).hex()


def framed(subtype: str, parts: Sequence[Part]) -> Body:
    """Parts framed as CouchDB frames every multipart body it sends (`--B`, then
    `\r\n<headers>\r\n\r\n<bytes>\r\n--B` for each part, then `--`), with its length."""
    boundary = new_boundary().encode("ascii")
    heads = [b"\r\n" + head + b"\r\n\r\n" for head, _, _ in parts]
    sep = b"\r\n--" + boundary
    length = (2 + len(boundary) + sum(map(len, heads)) + sum(n for _, n, _ in parts)
              + len(sep) * len(parts) + 2)

    def chunks() -> Iterator[bytes]:
        yield b"--" + boundary
        for head, (_, _, body) in zip(heads, parts):
            yield head
            yield from body()
            yield sep
        yield b"--"
    return f'multipart/{subtype}; boundary="{boundary.decode()}"', length, chunks


def once(data: bytes) -> Callable[[], Iterator[bytes]]:
    """A body function for bytes at hand."""
    return partial(iter, [data])


def related(doc_json: bytes, atts: Sequence[AttMeta],
            content: Callable[[AttMeta], Iterator[bytes]]) -> Body:
    """A document with attachment bytes as `multipart/related` (the JSON first, with
    `follows` for `atts`, as `couch_doc:doc_to_multi_part_stream/5`), or the bare JSON when no
    attachment follows."""
    if not atts:
        return "application/json", len(doc_json), once(doc_json)
    parts: list[Part] = [(b"Content-Type: application/json", len(doc_json), once(doc_json))]
    for meta in atts:
        head = (b'Content-Disposition: attachment; filename="' + _quoted_name(meta.name)
                + b'"\r\nContent-Type: ' + safe_header(meta.content_type).encode("ascii")
                + b"\r\nContent-Length: " + str(meta.length).encode("ascii"))
        parts.append((head, meta.length, partial(content, meta)))
    return framed("related", parts)


def mixed(bodies: Sequence[Body]) -> Body:
    """Several bodies as one `multipart/mixed` (`open_revs`)."""
    return framed("mixed", [(b"Content-Type: " + ctype.encode("latin-1"), length, chunks)
                            for ctype, length, chunks in bodies])
