"""Attachment bytes coming in: request bodies and multipart parts spooled into blobs, and limits.

Bodies are read to their end in chunks into a `BlobWriter` (hashing as they come, spilling to a
temporary file), counting every byte against `max_http_request_size` and the decoded bytes
against `max_attachment_size`, chunked bodies included: werkzeug's own limit would silently
truncate a chunked body. Nothing is stored until the whole body has arrived, and the write
transaction then only copies local bytes.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator, Sequence
from typing import IO, Any

from ..store.attachments import AttIn
from ..store.blobs import BlobWriter, NewBlob
from ..store.writes import Edit
from .errors import BadRequest, DocumentTooLarge, HttpError, RequestTooLarge
from .jsonbody import parse_json
from .multipart import READ_SIZE, PartReader, read_related

DEFAULT_MAX_ATTACHMENT = 1 << 30


class AttachmentTooLarge(HttpError):
    """An attachment over `max_attachment_size` (413; CouchDB's reason is its name)."""

    status, error = 413, "attachment_too_large"


class Md5Mismatch(HttpError):
    """Bytes whose md5 is not the one the client announced."""

    status, error, reason = 400, "content_md5_mismatch", "Possible message corruption."


def max_attachment_size(settings: Any) -> int:
    """The `max_attachment_size` setting (1 GiB, CouchDB's default, where it is not declared)."""
    return int(getattr(settings, "max_attachment_size", DEFAULT_MAX_ATTACHMENT))


def receive(chunks: Iterable[bytes], name: str, limit: int, gzip: bool) -> NewBlob:
    """Bytes into a blob, gzip-decoded if asked, never more than `limit` decoded bytes."""
    writer = BlobWriter()
    inflate = zlib.decompressobj(wbits=31) if gzip else None
    try:
        for chunk in chunks:
            for data in _inflated(inflate, chunk, name) if inflate else (chunk,):
                if writer.length + len(data) > limit:
                    raise AttachmentTooLarge(name)
                writer.write(data)
        if inflate is not None and not inflate.eof:
            raise BadRequest(f"Invalid gzip data for attachment {name}")
        return writer.finish()
    except BaseException:
        writer.discard()
        raise


def _inflated(inflate: Any, data: bytes, name: str) -> Iterator[bytes]:
    """Decoded pieces of `data`, each at most `READ_SIZE` bytes (a gzip bomb stays small)."""
    try:
        yield inflate.decompress(data, READ_SIZE)
        while inflate.unconsumed_tail:
            yield inflate.decompress(inflate.unconsumed_tail, READ_SIZE)
    except zlib.error:
        raise BadRequest(f"Invalid gzip data for attachment {name}") from None


def spool_body(stream: IO[bytes], content_length: int | None, *, name: str,
               max_request: int, max_attachment: int, gzip: bool = False) -> NewBlob:
    """Read a whole request body (raw attachment bytes) into a blob, or 413 on the way."""
    if content_length is not None and content_length > max_request:
        raise RequestTooLarge()
    if content_length is not None and content_length > max_attachment and not gzip:
        raise AttachmentTooLarge(name)

    def chunks() -> Iterator[bytes]:
        total = 0
        while True:
            chunk = stream.read(READ_SIZE)
            if not chunk:
                return
            total += len(chunk)
            if total > max_request:
                raise RequestTooLarge()
            yield chunk
    return receive(chunks(), name, max_attachment, gzip)


def related_document(request: Any, settings: Any) -> tuple[dict[str, Any], PartReader]:
    """The document of a `multipart/related` body, and the reader at the parts that follow."""
    data, reader = read_related(request, settings.max_http_request_size)
    body = parse_json(data, max_depth=settings.max_json_depth)
    if not isinstance(body, dict):
        raise BadRequest("Document must be a JSON object")
    return body, reader


def receive_follows(reader: PartReader, edit: Edit, settings: Any) -> None:
    """Fill each `follows` attachment of `edit` from the next part, in order, checking the
    announced (unencoded) lengths and digests; on any error, drop what was received. Bytes sent
    gzip-encoded (`"encoding":"gzip"`, as CouchDB's replicator sends compressible types) are
    stored decoded."""
    try:
        _receive_parts(reader, edit.atts or [], max_attachment_size(settings))
    except BaseException:
        close_blobs([edit])
        raise


def _receive_parts(reader: PartReader, atts: Sequence[AttIn], max_attachment: int) -> None:
    for att in atts:
        if not att.follows:
            continue
        headers = reader.next_part()
        if headers is None:
            raise BadRequest("attachment shorter than expected")
        encoding = att.encoding or headers.get("content-encoding") or "identity"
        att.blob = receive(reader.data(), att.name, max_attachment,
                           encoding.strip().lower() == "gzip")
        if att.length is not None and att.length != att.blob.length:
            raise BadRequest("attachment shorter than expected" if att.blob.length < att.length
                             else "attachment longer than expected")
        if att.digest is not None and att.digest != att.blob.digest:
            raise Md5Mismatch()
    if reader.next_part() is not None:
        raise BadRequest("A multipart part follows that no attachment announced")


def check_sizes(settings: Any, edit: Edit) -> None:
    """413 for a document body over `max_document_size` (`_attachments` not counted, as in
    CouchDB) or an inline or announced attachment over `max_attachment_size`."""
    if len(edit.body) > settings.max_document_size:
        raise DocumentTooLarge(edit.id)
    limit = max_attachment_size(settings)
    for att in edit.atts or ():
        size = att.blob.length if att.blob is not None else att.length if att.follows else None
        if size is not None and size > limit:
            raise AttachmentTooLarge(att.name)


def close_blobs(edits: Iterable[Edit]) -> None:
    """Drop the temporary files of received attachments."""
    for edit in edits:
        for att in edit.atts or ():
            if att.blob is not None:
                att.blob.close()
