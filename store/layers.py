"""Record layers: how a revision's body and metadata become the bytes in its SQL column, and back.

A `Record` is a body (the document's canonical JSON object, without `_id`, `_rev` or any other
`_`-prefixed key) plus a small metadata dict (timestamps, and whatever later layers add). Every
layer has the same three methods, wraps another layer explicitly, and is stacked in one place,
`build_stack`:

    Timestamped(Compressed(PlainLayer()))

`PlainLayer` is the base: the body bytes as they are, then, only if there is metadata, a NUL byte
and the metadata as JSON. JSON text never holds a raw NUL (a NUL in a string is written
`\\u0000`), so the separator is unambiguous, and a record without metadata is plain JSON.
`Compressed` zstd-compresses what its inner layer packs once it reaches a threshold and recognises
its frames by the zstd magic number, which JSON (starting with `{`) never begins with, so small
records carry no overhead. `Timestamped` keeps `created` and `updated` in the metadata, never in
the body.

`body_of` is the read fast path: the JSON body without decoding metadata, which is all a GET needs.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson
import zstandard

from .serialize import canonical_body, dumps

__all__ = [
    "NEVER", "ZSTD_MAGIC", "Compressed", "Layer", "PlainLayer", "Record", "Timestamped",
    "build_stack", "canonical_body", "dumps",
]

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
"""The first four bytes of every zstd frame."""

NEVER = sys.maxsize
"""A compression threshold no record reaches."""

_SEPARATOR = b"\x00"


@dataclass(frozen=True, slots=True)
class Record:
    """One revision as the store keeps it: canonical JSON body bytes and metadata."""

    body: bytes
    meta: dict[str, Any] = field(default_factory=dict)


class Layer(Protocol):
    """What every record layer keeps: `unpack(pack(r)) == r` and `body_of(pack(r)) == r.body`."""

    def pack(self, record: Record) -> bytes:
        """The bytes to store for `record`."""
        ...

    def unpack(self, data: bytes) -> Record:
        """The record that `pack` turned into `data`."""
        ...

    def body_of(self, data: bytes) -> bytes:
        """Only the JSON body of `data`, skipping the metadata."""
        ...


class PlainLayer:
    """The base layer: the body, then a NUL and the metadata as JSON when there is any."""

    def pack(self, record: Record) -> bytes:
        if not record.meta:
            return record.body
        return record.body + _SEPARATOR + dumps(record.meta)

    def unpack(self, data: bytes) -> Record:
        cut = data.find(_SEPARATOR)
        if cut < 0:
            return Record(data, {})
        return Record(data[:cut], orjson.loads(data[cut + 1 :]))

    def body_of(self, data: bytes) -> bytes:
        cut = data.find(_SEPARATOR)
        return data if cut < 0 else data[:cut]

    def __repr__(self) -> str:
        return "PlainLayer()"


class Compressed:
    """zstd-compresses what `inner` packs when it is at least `threshold` bytes long."""

    def __init__(self, inner: Layer, threshold: int = 4096, level: int = 3) -> None:
        self.inner = inner
        self.threshold = threshold
        self.level = level
        # zstandard contexts must not be shared between threads; making one costs about as much as
        # compressing a 7 KB record, so each thread keeps its own.
        self._local = threading.local()

    def pack(self, record: Record) -> bytes:
        data = self.inner.pack(record)
        # Data that happens to start like a zstd frame is compressed whatever its size, so that
        # `unpack` can never mistake it for one.
        if len(data) < self.threshold and not data.startswith(ZSTD_MAGIC):
            return data
        return self._compressor().compress(data)

    def unpack(self, data: bytes) -> Record:
        return self.inner.unpack(self._expand(data))

    def body_of(self, data: bytes) -> bytes:
        return self.inner.body_of(self._expand(data))

    def _expand(self, data: bytes) -> bytes:
        if not data.startswith(ZSTD_MAGIC):
            return data
        return self._decompressor().decompress(data)

    def _compressor(self) -> zstandard.ZstdCompressor:
        compressor: zstandard.ZstdCompressor | None = getattr(self._local, "compressor", None)
        if compressor is None:
            compressor = self._local.compressor = zstandard.ZstdCompressor(level=self.level)
        return compressor

    def _decompressor(self) -> zstandard.ZstdDecompressor:
        decompressor: zstandard.ZstdDecompressor | None = getattr(self._local, "decompressor", None)
        if decompressor is None:
            decompressor = self._local.decompressor = zstandard.ZstdDecompressor()
        return decompressor

    def __repr__(self) -> str:
        return f"Compressed({self.inner!r}, threshold={self.threshold}, level={self.level})"


class Timestamped:
    """Sets metadata `updated` on every pack, and `created` unless the record already has one."""

    def __init__(self, inner: Layer, clock: Callable[[], float] = time.time) -> None:
        self.inner = inner
        self.clock = clock

    def pack(self, record: Record) -> bytes:
        now = self.clock()
        meta = dict(record.meta)
        meta.setdefault("created", now)
        meta["updated"] = now
        return self.inner.pack(Record(record.body, meta))

    def unpack(self, data: bytes) -> Record:
        return self.inner.unpack(data)

    def body_of(self, data: bytes) -> bytes:
        return self.inner.body_of(data)

    def __repr__(self) -> str:
        return f"Timestamped({self.inner!r})"


def build_stack(compress_threshold: int | None, timestamps: bool) -> Layer:
    """The one place layers are stacked: `Timestamped(Compressed(PlainLayer()))`.

    `compress_threshold=None` means new records are not compressed; the `Compressed` layer stays in
    the stack so that records written while compression was on remain readable.
    """
    layer: Layer = Compressed(
        PlainLayer(), threshold=NEVER if compress_threshold is None else compress_threshold
    )
    if timestamps:
        layer = Timestamped(layer)
    return layer
