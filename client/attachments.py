"""Attachments as file objects: uploads streamed from any readable, downloads read as they come."""

from __future__ import annotations

import io
import os
from typing import Any, BinaryIO
from urllib.parse import quote

import urllib3

from .errors import TransportError
from .transport import Transport, doc_path


def attachment_path(db: str, docid: str, name: str) -> str:
    """`/{db}/{docid}/{name}`, the name percent-encoded as one segment (slashes included)."""
    return f"{doc_path(db, docid)}/{quote(name, safe='')}"


def _remaining_length(fileobj: BinaryIO) -> int | None:
    """Bytes left in a seekable file (so the upload has a Content-Length), else None (chunked)."""
    try:
        if not fileobj.seekable():
            return None
        here = fileobj.tell()
        end = fileobj.seek(0, os.SEEK_END)
        fileobj.seek(here)
        return end - here
    except (AttributeError, OSError, ValueError):
        return None


def put(transport: Transport, db: str, docid: str, name: str, data: bytes | BinaryIO,
        content_type: str, rev: str | None) -> str:
    """`PUT /{db}/{docid}/{name}?rev=`: the new document rev.

    A file object is sent in blocks as it is read, never loaded whole: with a Content-Length
    when it is seekable, otherwise with chunked transfer encoding.
    """
    headers = {"Content-Type": content_type}
    if not isinstance(data, (bytes, bytearray)):
        length = _remaining_length(data)
        if length is not None:
            headers["Content-Length"] = str(length)
    params = {"rev": rev} if rev is not None else None
    answer = transport.json("PUT", attachment_path(db, docid, name), params=params,
                            body=data, headers=headers)
    new_rev: str = answer["rev"]
    return new_rev


def delete(transport: Transport, db: str, docid: str, name: str, rev: str) -> str:
    """`DELETE /{db}/{docid}/{name}?rev=`: the new document rev."""
    answer = transport.json("DELETE", attachment_path(db, docid, name), params={"rev": rev})
    new_rev: str = answer["rev"]
    return new_rev


def open_(transport: Transport, db: str, docid: str, name: str,
          rev: str | None = None) -> AttachmentReader:
    """`GET /{db}/{docid}/{name}` with the body left on the wire for the reader."""
    params = {"rev": rev} if rev is not None else None
    response = transport.request("GET", attachment_path(db, docid, name), params=params,
                                 stream=True, headers={"Accept": "*/*"})
    return AttachmentReader(response)


class AttachmentReader(io.RawIOBase):
    """A read-only binary file over one attachment download.

    Bytes are read from the connection as the caller asks for them. Closing the reader (or
    leaving its `with` block) hands the connection back to the pool when the body was read to
    the end, and drops it otherwise.
    """

    def __init__(self, response: urllib3.BaseHTTPResponse) -> None:
        super().__init__()
        self._response = response
        headers = response.headers
        self.content_type: str = headers.get("Content-Type", "application/octet-stream")
        length = headers.get("Content-Length")
        self.length: int | None = int(length) if length is not None else None
        self.etag: str | None = headers.get("ETag")
        self.headers: Any = headers
        self._done = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self.closed:
            raise ValueError("I/O operation on closed attachment")
        try:
            count = self._response.readinto(buffer)
        except urllib3.exceptions.HTTPError as exc:
            raise TransportError(f"reading attachment: {exc}") from exc
        if count == 0 and len(memoryview(buffer)) > 0:
            self._done = True
        return count

    def close(self) -> None:
        if not self.closed:
            if not (self._done or self._response.length_remaining == 0):
                self._response.close()  # unread bytes: the connection cannot be reused
            self._response.release_conn()
        super().close()
