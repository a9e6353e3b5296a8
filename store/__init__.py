"""The versioned document store on SQLAlchemy Core (SQLite or PostgreSQL)."""

from __future__ import annotations

from .documents import Database, make_edit
from .errors import Conflict, DbExists, DbNotFound, NotFound, StoreError
from .store import Store, StoreConfig, open_store, sqlite_url

__all__ = [
    "Conflict", "Database", "DbExists", "DbNotFound", "NotFound", "Store", "StoreConfig",
    "StoreError", "make_edit", "open_store", "sqlite_url",
]
