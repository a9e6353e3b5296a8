"""Mango's errors: CouchDB's status, error name and reason (`mango_error.erl`) carried as data."""

from __future__ import annotations

from typing import Any

from ..selector_norm import erl


class MangoError(Exception):
    """A refused Mango request; the HTTP edge answers `status` with `{"error", "reason"}`."""

    def __init__(self, status: int, error: str, reason: str) -> None:
        super().__init__(reason)
        self.status, self.error, self.reason = status, error, reason


def bad(error: str, reason: str) -> MangoError:
    """A 400 with CouchDB's error name and reason."""
    return MangoError(400, error, reason)


def invalid_key(key: str) -> MangoError:
    """A member the request does not take."""
    return bad("invalid_key", f"Invalid key {key} for this request.")


def missing_key(key: str) -> MangoError:
    """A required member that is absent."""
    return bad("missing_required_key", f"Missing required key: {key}")


def not_bool(value: Any) -> MangoError:
    """`mango_opts:is_boolean/1` refusing a value."""
    return bad("invalid_boolean", f"Invalid boolean value: {erl(value)}")


def not_string(value: Any) -> MangoError:
    """`mango_opts:is_string/1` refusing a value."""
    return bad("invalid_string", f"Invalid string: {erl(value)}")


NO_SORT_INDEX = MangoError(400, "no_usable_index",
                           "No index exists for this sort, try indexing by the sort fields.")
