"""Create the benchmark database first; delete it at the end if this run made it."""

from __future__ import annotations

from http1 import Connection, Response, Target
from workloads import db_path


class DatabaseError(RuntimeError):
    """The server could not be reached, or refused to create or delete the database."""


def create(target: Target, db: str) -> bool:
    """PUT /db: True if this call created it (201/202), False if it existed already (412)."""
    response = _request(target, "PUT", db_path(db))
    if response.status in (201, 202):
        return True
    if response.status == 412:
        return False
    raise DatabaseError(f"PUT {db_path(db)} -> {response.status} {response.body[:200]!r}")


def delete(target: Target, db: str) -> None:
    """DELETE /db."""
    response = _request(target, "DELETE", db_path(db))
    if response.status not in (200, 202):
        raise DatabaseError(f"DELETE {db_path(db)} -> {response.status} {response.body[:200]!r}")


def _request(target: Target, method: str, path: str) -> Response:
    conn = Connection(target, timeout=60)
    try:
        return conn.request(method, path)
    except OSError as exc:
        raise DatabaseError(f"{method} {path} on {target.display}: {exc}") from exc
    finally:
        conn.close()
