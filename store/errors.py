"""Precise store errors; `server/errors.py` maps each to a CouchDB status and error name."""

from __future__ import annotations


class StoreError(Exception):
    """Base of every error the store raises on purpose; `reason` is CouchDB's reason text."""

    reason: str = "unknown error"

    def __init__(self, reason: str | None = None) -> None:
        if reason is not None:
            self.reason = reason
        super().__init__(self.reason)


class NotFound(StoreError):
    """A document, revision or attachment that does not exist (`missing`) or is `deleted`."""

    reason = "missing"


class DbNotFound(StoreError):
    """The named database does not exist."""

    reason = "Database does not exist."


class DbExists(StoreError):
    """`PUT /{db}` on a name that is taken."""

    reason = "The database could not be created, the file already exists."


class Conflict(StoreError):
    """A write that names a rev that is not a current leaf (or none, on a live document)."""

    reason = "Document update conflict."


class MissingRev(StoreError):
    """An update names a rev that the document never had (CouchDB: 409 `not_found`)."""

    reason = "missing_rev"


class BadRequest(StoreError):
    """A request the store cannot act on as given (bad rev, bad `_revisions`, bad value)."""

    reason = "bad request"


class IllegalDbName(StoreError):
    """A database name outside CouchDB's rules."""


class IllegalDocId(StoreError):
    """A document id outside CouchDB's rules."""


class DocValidation(StoreError):
    """A document body CouchDB refuses (e.g. an unknown `_`-prefixed member)."""


class StoreFull(StoreError):
    """The disk is full (SQLITE_FULL, PostgreSQL 53100): nothing was written."""

    reason = "No space left on the device: the write was not done."


class StoreBusy(StoreError):
    """The store stayed locked or kept failing to serialize for longer than we wait."""

    reason = "The database is busy; try again."
