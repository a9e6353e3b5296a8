"""The `_attachments` member of a document body, as a client sends it, validated and decoded.

Names must be text that does not start with `_` (CouchDB's rule; any other name, `../x` or `a/b`
included, is only a key). Inline `data` is base64, decoded here, at the edge, so the write
transaction only copies bytes; stubs and `follows` entries keep what they say for the write to
resolve (see `attachments`).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from typing import Any

from .attachments import DEFAULT_CONTENT_TYPE, AttIn
from .blobs import NewBlob
from .errors import BadRequest, DocValidation

_SPACE = re.compile(rb"[ \t\r\n]+")


def validate_name(name: Any) -> str:
    """An attachment name CouchDB accepts (`chttpd_db:validate_attachment_name/1`), else 400.

    Any other UTF-8 text is a valid name and is kept byte for byte: `../x` is only a key.
    NUL is refused because PostgreSQL text cannot hold it (as for document ids).
    """
    if not isinstance(name, str):
        raise BadRequest("Attachment name is not UTF-8 encoded")
    if name.startswith("_"):
        raise BadRequest(f"Attachment name '{name}' starts with prohibited character '_'")
    if "\x00" in name:
        raise BadRequest("Attachment name must not contain the NUL character")
    return name


def parse(value: Any) -> list[AttIn]:
    """The `_attachments` member of a document body, validated and decoded."""
    if not isinstance(value, dict):
        raise DocValidation("Bad special document member: _attachments")
    out = []
    for name, props in value.items():
        validate_name(name)
        if not isinstance(props, dict):
            raise BadRequest(f"Attachment {name} must be a JSON object")
        content_type = props.get("content_type", DEFAULT_CONTENT_TYPE)
        if not isinstance(content_type, str):
            raise BadRequest(f"Invalid content_type for attachment {name}")
        revpos = _optional_int(props, "revpos", name)
        digest = props.get("digest")
        digest = digest if isinstance(digest, str) else None
        if props.get("stub") is True:
            out.append(AttIn(name, stub=True, revpos=revpos, digest=digest))
        elif props.get("follows") is True:
            encoding = props.get("encoding")
            out.append(AttIn(name, content_type, follows=True, revpos=revpos, digest=digest,
                             length=_optional_int(props, "length", name),
                             encoding=encoding if isinstance(encoding, str) else None))
        else:
            out.append(AttIn(name, content_type, revpos=revpos,
                             blob=NewBlob.from_bytes(decode_base64(name, props.get("data")))))
    return out


def decode_base64(name: str, data: Any) -> bytes:
    """Inline `data`, or 400 "Invalid attachment data for <name>" (`couch_att`)."""
    if not isinstance(data, str):
        raise BadRequest(f"Invalid attachment data for {name}")
    try:
        raw = _SPACE.sub(b"", data.encode("ascii"))
        if len(raw) % 4:
            raw += b"=" * (-len(raw) % 4)
        return base64.b64decode(raw, validate=True)
    except (UnicodeEncodeError, binascii.Error, ValueError):
        raise BadRequest(f"Invalid attachment data for {name}") from None


def _optional_int(props: Mapping[str, Any], key: str, name: str) -> int | None:
    value = props.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise BadRequest(f"Invalid {key} for attachment {name}")
    return value
