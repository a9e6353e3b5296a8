"""Python validation functions the validate_doc_update tests register (`view_python_functions`)."""

from __future__ import annotations

from typing import Any

from settee.server.validation import Forbidden, Unauthorized


def needs_type(new_doc: dict[str, Any], old_doc: dict[str, Any] | None,
               user_ctx: dict[str, Any], sec_obj: dict[str, Any]) -> None:
    """Refuse documents without `type` (403), and `secret` ones unless signed in (401)."""
    if new_doc.get("_deleted"):
        return
    if "type" not in new_doc:
        raise Forbidden("Documents must have a type field")
    if new_doc["type"] == "secret" and user_ctx["name"] is None:
        raise Unauthorized("Only named users may write secrets")
    new_doc["mutated"] = True  # a copy: changes nothing stored


def crashes(new_doc: dict[str, Any], old_doc: dict[str, Any] | None,
            user_ctx: dict[str, Any], sec_obj: dict[str, Any]) -> None:
    """Fail with an ordinary exception on documents marked `crash`."""
    if new_doc.get("crash"):
        raise KeyError("boom")


DURING: list[Any] = []  # callables the next call of `races` runs (a test's "other node")


def races(new_doc: dict[str, Any], old_doc: dict[str, Any] | None,
          user_ctx: dict[str, Any], sec_obj: dict[str, Any]) -> None:
    """Accept, after running whatever a test queued: a change made while validation runs."""
    while DURING:
        DURING.pop()()
