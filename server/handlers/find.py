"""Mango: `_find`, `_explain` and `_index` (being built; answers 501 until then)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from werkzeug.wrappers import Response

from ..errors import HttpError
from ..wrappers import SetteeRequest

if TYPE_CHECKING:
    from ..app import Settee


class NotBuilt(HttpError):
    """An endpoint that is routed but not built yet (501)."""

    status, error, reason = 501, "not_implemented", "Mango queries are not built yet"


def find(app: Settee, request: SetteeRequest, db: str) -> Response:
    """`POST /{db}/_find`."""
    raise NotBuilt()


def explain(app: Settee, request: SetteeRequest, db: str) -> Response:
    """`POST /{db}/_explain`."""
    raise NotBuilt()


def indexes(app: Settee, request: SetteeRequest, db: str) -> Response:
    """`GET/POST /{db}/_index`."""
    raise NotBuilt()


def bulk_delete(app: Settee, request: SetteeRequest, db: str) -> Response:
    """`POST /{db}/_index/_bulk_delete`."""
    raise NotBuilt()


def delete_index(app: Settee, request: SetteeRequest, db: str, rest: str) -> Response:
    """`DELETE /{db}/_index/{ddoc}/json/{name}`."""
    raise NotBuilt()
