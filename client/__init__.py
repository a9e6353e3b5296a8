"""settee.client: a Python client for settee and CouchDB over HTTP (urllib3, no server imports).

>>> from settee.client import Server              # doctest: +SKIP
>>> db = Server("http://127.0.0.1:5984").create("notes", exist_ok=True)
>>> db["a"] = {"text": "hello"}
>>> db["a"]["text"]
'hello'
"""

from __future__ import annotations

from .attachments import AttachmentReader
from .batch import Batch, Result
from .cache import CachedDict
from .changes import ChangeStream
from .database import Database
from .encodings import DocumentEncoding, Encoding, JSONEncoding, PickleEncoding
from .errors import (
    BadRequest,
    BatchCancelled,
    Conflict,
    CouchError,
    Forbidden,
    NotFound,
    PreconditionFailed,
    ServerError,
    TransportError,
    Unauthorized,
    Unsupported,
)
from .server import Server
from .views import UNSET, FindResult, ViewRows

__all__ = [
    "UNSET", "AttachmentReader", "BadRequest", "Batch", "BatchCancelled", "CachedDict",
    "ChangeStream", "Conflict", "CouchError", "Database", "DocumentEncoding", "Encoding",
    "FindResult", "Forbidden", "JSONEncoding", "NotFound", "PickleEncoding",
    "PreconditionFailed", "Result", "Server", "ServerError", "TransportError", "Unauthorized",
    "Unsupported", "ViewRows",
]
