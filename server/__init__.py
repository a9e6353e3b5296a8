"""CouchDB-compatible HTTP layer: the app, its routes, errors and handlers."""

from __future__ import annotations

from .app import Settee, create_app

__all__ = ["Settee", "create_app"]
