"""CouchDB revision ids: the md5-of-an-Erlang-term hash of a new edit, and "N-id" parsing."""

from __future__ import annotations

import hashlib
import math
import re
import struct
from collections.abc import Sequence
from typing import Any

__all__ = ["InvalidRev", "new_rev_id", "parse_rev", "revid_bytes"]


class InvalidRev(ValueError):
    """A rev string that is not "<pos>-<id>" with a positive pos and a non-empty id."""


# A rev is "<pos>-<id>". pos: 1-10 ASCII digits, no sign, no leading zero (so a valid rev string
# is its own canonical form). id: any run of printable non-space characters, because CouchDB keeps
# non-md5 ids from replication verbatim ("1-abc"). 256 bounds it well above every id in use.
_REV_RE = re.compile(r"([1-9][0-9]{0,9})-([^\s\x00-\x1f\x7f-\x9f]{1,256})")


def parse_rev(rev: object) -> tuple[int, str]:
    """Split a rev string into (pos, id), raising InvalidRev on anything malformed."""
    if type(rev) is not str:
        raise InvalidRev("Invalid rev format")
    m = _REV_RE.fullmatch(rev)
    if m is None:
        raise InvalidRev("Invalid rev format")
    return int(m.group(1)), m.group(2)


def revid_bytes(revid: str) -> bytes:
    """The id as CouchDB stores it: 16 raw bytes for a 32-hex md5, otherwise its utf-8 bytes."""
    if len(revid) == 32:
        try:
            raw = bytes.fromhex(revid)
        except ValueError:
            pass
        else:
            if len(raw) == 16:  # fromhex skips spaces; only a clean 32-hex string counts
                return raw
    return revid.encode("utf-8")


# --- Erlang external term format, just the subset `couch_db:new_revid/1` feeds to md5 ----------
# Tags (erts "External Term Format"): a SMALL_INTEGER, b INTEGER, n/o SMALL/LARGE_BIG, F NEW_FLOAT,
# m BINARY, h SMALL_TUPLE, l LIST (+ j NIL tail), j NIL, d ATOM (latin1, as minor_version 1 gives).
_U32 = struct.Struct(">I").pack
_I32 = struct.Struct(">i").pack
_F64 = struct.Struct(">d").pack
_TRUE = b"d\x00\x04true"
_FALSE = b"d\x00\x05false"
_NULL = b"d\x00\x04null"
_EMPTY_OBJECT = b"h\x01j"  # {[]}: jiffy's empty object


def _int(n: int) -> bytes:
    if 0 <= n <= 255:
        return b"a" + n.to_bytes(1, "big")
    if -0x80000000 <= n <= 0x7FFFFFFF:
        return b"b" + _I32(n)
    mag = abs(n)
    digits = mag.to_bytes((mag.bit_length() + 7) // 8, "little")
    sign = b"\x01" if n < 0 else b"\x00"
    if len(digits) < 256:
        return b"n" + len(digits).to_bytes(1, "big") + sign + digits
    return b"o" + _U32(len(digits)) + sign + digits


def _binary(data: bytes) -> bytes:
    return b"m" + _U32(len(data)) + data


def _encode_json(value: object, out: bytearray) -> None:
    """Append the EJSON term for a decoded JSON value, iteratively (no recursion per value).

    Objects become {[{Key, Value}, ...]} in member order, arrays lists, strings binaries,
    ints integers, floats doubles and true/false/null atoms, exactly as jiffy decodes them.
    A bytes item on the stack is pre-encoded output to copy through as is.
    """
    stack: list[Any] = [value]
    pop, push, write = stack.pop, stack.append, out.extend
    while stack:
        v = pop()
        t = type(v)
        if t is str:
            b = v.encode("utf-8")
            write(b"m" + _U32(len(b)) + b)
        elif t is bytes:
            write(v)
        elif t is dict:
            items = list(v.items())
            if not items:
                write(_EMPTY_OBJECT)
                continue
            write(b"h\x01l" + _U32(len(items)))
            push(b"j")
            for key, item in reversed(items):
                if type(key) is not str:
                    raise TypeError(f"object keys must be strings, not {type(key).__name__}")
                push(item)
                kb = key.encode("utf-8")
                push(b"h\x02m" + _U32(len(kb)) + kb)
        elif t is list:
            if not v:
                write(b"j")
                continue
            write(b"l" + _U32(len(v)))
            push(b"j")
            stack.extend(reversed(v))
        elif v is True:
            write(_TRUE)
        elif v is False:
            write(_FALSE)
        elif v is None:
            write(_NULL)
        elif t is int:
            write(_int(v))
        elif t is float:
            if not math.isfinite(v):
                raise ValueError("NaN and Infinity are not JSON numbers")
            write(b"F" + _F64(v))
        else:  # subclasses of the JSON types (IntEnum, OrderedDict...) encode as their base
            push(_plain(v))


def _plain(v: object) -> object:
    """The plain JSON type's value for an instance of a subclass of it."""
    if isinstance(v, int):
        return int.__index__(v)
    if isinstance(v, float):
        return float.__float__(v)
    if isinstance(v, str):
        return str.__str__(v)
    if isinstance(v, dict):
        return dict(v)
    if isinstance(v, list):
        return list(v)
    raise TypeError(f"not a JSON value: {type(v).__name__}")


def new_rev_id(
    body: dict[str, Any],
    *,
    deleted: bool,
    parent: str | None,
    atts: Sequence[tuple[str, str, bytes]] = (),
) -> str:
    """The rev CouchDB would assign to this edit: "<pos+1>-<md5 of the term>".

    The term is [Deleted, ParentPos, ParentId, Body, Atts] (`couch_db:new_revid/1`) where Body
    leaves out every "_"-prefixed member, ParentId is 0 for a new document, and `atts` holds
    (name, content_type, raw md5 digest of the data) in `_attachments` member order (the order
    the documented two-attachment example hashes with). The doc id is not an input, so the same
    body on the same parent always gets the same rev. Raises InvalidRev for a malformed parent,
    TypeError for a value JSON cannot hold and ValueError for NaN or Infinity.
    """
    out = bytearray(b"\x83l\x00\x00\x00\x05")
    out += _TRUE if deleted else _FALSE
    if parent is None:
        pos = 0
        out += b"a\x00a\x00"  # ParentPos 0 and ParentId 0 (the integer, not a binary)
    else:
        pos, revid = parse_rev(parent)
        out += _int(pos)
        out += _binary(revid_bytes(revid))
    members = [(k, v) for k, v in body.items() if not (type(k) is str and k[:1] == "_")]
    _encode_json(body if len(members) == len(body) else dict(members), out)
    if atts:
        out += b"l" + _U32(len(atts))
        for name, content_type, digest in atts:
            out += b"h\x03"
            out += _binary(name.encode("utf-8"))
            out += _binary(content_type.encode("utf-8"))
            out += _binary(bytes(digest))
    out += b"j"  # ends the attachment list, or is the empty one
    out += b"j"  # ends the outer five-element list
    return f"{pos + 1}-{hashlib.md5(out).hexdigest()}"
