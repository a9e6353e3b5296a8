"""How `CachedDict` stores a value in a document and reads it back; JSON unless told otherwise."""

from __future__ import annotations

import base64
import copy
import pickle
from typing import Any, Protocol

from .transport import Doc, dumps, loads

_IMMUTABLE = (str, int, float, bool, type(None))


class Encoding(Protocol):
    """A value <-> document body (without `_id` and `_rev`) pair of functions."""

    def encode(self, value: Any) -> Doc:
        """The body to store for `value`; it must not share mutable parts with `value`."""
        ...

    def decode(self, body: Doc) -> Any:
        """The value stored in `body`; it must not share mutable parts with `body`."""
        ...


class JSONEncoding:
    """The value itself, as JSON, in one member (`"value"` by default): `{"value": [1, 2]}`."""

    def __init__(self, member: str = "value") -> None:
        self.member = member

    def encode(self, value: Any) -> Doc:
        # a round trip copies, turns tuples into lists and refuses what JSON cannot hold
        return {self.member: loads(dumps(value))}

    def decode(self, body: Doc) -> Any:
        try:
            value = body[self.member]
        except KeyError:
            raise ValueError(f"the document has no {self.member!r} member") from None
        return value if isinstance(value, _IMMUTABLE) else copy.deepcopy(value)


class PickleEncoding:
    """Any picklable value, pickled and base64-encoded in one member. Trusted databases only:
    unpickling runs code chosen by whoever wrote the document."""

    def __init__(self, member: str = "value", protocol: int = pickle.HIGHEST_PROTOCOL) -> None:
        self.member = member
        self.protocol = protocol

    def encode(self, value: Any) -> Doc:
        data = pickle.dumps(value, protocol=self.protocol)
        return {self.member: base64.b64encode(data).decode("ascii")}

    def decode(self, body: Doc) -> Any:
        return pickle.loads(base64.b64decode(body[self.member]))


class DocumentEncoding:
    """The value is the document: a JSON object whose members become the body (members starting
    with `_` other than `_attachments` are CouchDB's and are not part of the value)."""

    def encode(self, value: Any) -> Doc:
        if not isinstance(value, dict):
            raise TypeError(f"DocumentEncoding stores dicts, not {type(value).__name__}")
        body: Doc = loads(dumps(value))
        for name in [n for n in body if n.startswith("_") and n != "_attachments"]:
            del body[name]
        return body

    def decode(self, body: Doc) -> Any:
        return {name: copy.deepcopy(value) for name, value in body.items()
                if not name.startswith("_") or name == "_attachments"}
