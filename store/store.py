"""The `Store`: one engine, the record layers, the catalog of databases and their documents."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from . import (
    catalog,
    direct,  # noqa: F401  (its PostgreSQL function is part of the schema)
    maintenance,
)
from .commits import CommitQueue
from .documents import Database
from .engine import Engine
from .errors import DbNotFound
from .layers import Layer, build_stack
from .schema import metadata


@dataclass(frozen=True)
class StoreConfig:
    """How to open a store: where, how durable, and how bodies are packed."""

    url: str
    synchronous: str = "FULL"
    busy_timeout_ms: int = 10_000
    pool_size: int = 8
    compress_threshold: int | None = 4096
    timestamps: bool = True


def sqlite_url(data_dir: str) -> str:
    """The URL of the embedded default: `settee.sqlite` inside the data directory."""
    return "sqlite:///" + os.path.join(os.path.abspath(data_dir), "settee.sqlite")


class Store:
    """The whole versioned store; `store.db(name)` gives one database's mapping."""

    def __init__(self, config: StoreConfig) -> None:
        self.config = config
        self.engine = Engine(
            config.url,
            synchronous=config.synchronous,
            busy_timeout_ms=config.busy_timeout_ms,
            pool_size=config.pool_size,
        )
        self.layer: Layer = build_stack(config.compress_threshold, config.timestamps)
        self.commits = CommitQueue(self.engine)
        self._uuid: str | None = None
        self._ready_pid = 0

    def setup(self) -> None:
        """Create the schema if needed (idempotent, safe across processes)."""
        if self._ready_pid == os.getpid():
            return
        self.engine.create_schema(metadata)
        self._ready_pid = os.getpid()

    @property
    def uuid(self) -> str:
        """The server's persistent uuid."""
        if self._uuid is None:
            self.setup()
            self._uuid = self.engine.run(catalog.server_uuid)
        return self._uuid

    def close(self) -> None:
        """Close this process's connections."""
        self.engine.dispose()

    # -- databases -------------------------------------------------------------------------

    def create_db(self, name: str) -> None:
        """Create a database (`DbExists` if the name is taken)."""
        self.engine.run(lambda conn: catalog.create_db(conn, name))

    def delete_db(self, name: str) -> None:
        """Delete a database and everything in it (`DbNotFound` if absent)."""
        self.engine.run(lambda conn: catalog.delete_db(conn, name))

    def db_info(self, name: str) -> catalog.DbInfo:
        """The stored counters of a database."""
        with self.engine.transaction() as conn:
            return catalog.db_info(conn, name)

    def exists(self, name: str) -> bool:
        """Whether the database exists."""
        with self.engine.transaction() as conn:
            return catalog.exists(conn, name)

    def all_dbs(self, **params: Any) -> list[str]:
        """Database names in byte order, with `_all_dbs`'s paging parameters."""
        with self.engine.transaction() as conn:
            return catalog.list_dbs(conn, **params)

    def db(self, name: str) -> Database:
        """The versioned mapping of one database (not checked for existence)."""
        return Database(self, name)

    def __getitem__(self, name: str) -> Database:
        if not self.exists(name):
            raise DbNotFound()
        return Database(self, name)

    def compact(self, name: str) -> None:
        """Drop non-leaf bodies and stem trees of one database."""
        maintenance.compact(self.engine, name)

    def file_size(self) -> int:
        """Bytes on disk of the whole store (SQLite file + WAL), or 0 if unknown."""
        path = self.engine.url.database if self.engine.is_sqlite else None
        if not path or path == ":memory:":
            return 0
        return sum(os.path.getsize(p) for p in (path, path + "-wal") if os.path.exists(p))


def open_store(url: str, **options: Any) -> Store:
    """Open (and set up) a store at `url`."""
    store = Store(StoreConfig(url=url, **options))
    store.setup()
    return store
