"""`Server`: one settee or CouchDB server, whose databases are reached as `server["name"]`."""

from __future__ import annotations

from collections.abc import Iterator
from types import TracebackType
from typing import Any, Self

from urllib3.util import Timeout

from .database import Database
from .errors import CouchError, NotFound, PreconditionFailed, TransportError
from .transport import Transport, db_path


class Server:
    """A server URL with credentials and a connection pool; its databases by name.

    >>> server = Server("http://127.0.0.1:5984", auth=("admin", "secret"))  # doctest: +SKIP
    >>> db = server.create("inventory")                                     # doctest: +SKIP
    >>> server["inventory"] is not None, "inventory" in server              # doctest: +SKIP
    (True, True)

    `server["name"]` checks that the database exists (a missing one raises `NotFound`, a
    `KeyError`); `server.database("name")` returns a handle without asking the server.
    """

    def __init__(self, url: str = "http://127.0.0.1:5984", *,
                 auth: tuple[str, str] | None = None, timeout: float | Timeout = 30.0,
                 pool_size: int = 10, retries: int = 2) -> None:
        self.transport = Transport(url, auth=auth, timeout=timeout, pool_size=pool_size,
                                   retries=retries)

    @property
    def url(self) -> str:
        return self.transport.url

    def __repr__(self) -> str:
        return f"Server({self.url!r})"

    # -- the server itself --------------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        """`GET /`: the welcome object (`version`, `uuid`, `vendor`, ...)."""
        result: dict[str, Any] = self.transport.json("GET", "/")
        return result

    def up(self) -> bool:
        """Whether `GET /_up` answers 200."""
        try:
            self.transport.request("GET", "/_up")
        except (CouchError, TransportError):
            return False
        return True

    def uuids(self, count: int = 1) -> list[str]:
        """`count` fresh ids from `GET /_uuids`."""
        result: list[str] = self.transport.json("GET", "/_uuids", params={"count": count})["uuids"]
        return result

    # -- databases ----------------------------------------------------------------------------

    def all_dbs(self) -> list[str]:
        """The database names, sorted (`GET /_all_dbs`; admin-only on CouchDB 3)."""
        result: list[str] = self.transport.json("GET", "/_all_dbs")
        return result

    def __iter__(self) -> Iterator[str]:
        return iter(self.all_dbs())

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        try:
            self.transport.request("HEAD", db_path(name))
        except NotFound:
            return False
        return True

    def __getitem__(self, name: str) -> Database:
        self.transport.request("HEAD", db_path(name))  # NotFound (a KeyError) when missing
        return Database(self.transport, name)

    def __delitem__(self, name: str) -> None:
        self.delete(name)

    def database(self, name: str) -> Database:
        """A handle on database `name`, without checking that it exists."""
        return Database(self.transport, name)

    def create(self, name: str, *, exist_ok: bool = False) -> Database:
        """`PUT /{db}`; an existing database raises `PreconditionFailed` unless `exist_ok`."""
        try:
            self.transport.request("PUT", db_path(name))
        except PreconditionFailed:
            if not exist_ok:
                raise
        return Database(self.transport, name)

    def delete(self, name: str) -> None:
        """`DELETE /{db}`; a missing database raises `NotFound`."""
        self.transport.request("DELETE", db_path(name))

    # -- life cycle ---------------------------------------------------------------------------

    def close(self) -> None:
        """Close the pooled connections (a later call opens new ones)."""
        self.transport.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
