"""CouchDB's rules for database names, document ids and a document's special members."""

from __future__ import annotations

import re
from typing import Any

from .errors import DocValidation, IllegalDbName, IllegalDocId

DB_NAME = re.compile(r"^[a-z][a-z0-9_$()+/-]*\Z")
SYSTEM_DBS = frozenset({"_users", "_replicator", "_global_changes"})
MAX_DB_NAME = 238

# Special members a client may send in a document body, and those CouchDB ignores on input.
ALLOWED_SPECIALS = frozenset({"_id", "_rev", "_revisions", "_attachments", "_deleted"})
IGNORED_SPECIALS = frozenset({"_revs_info", "_conflicts", "_deleted_conflicts", "_local_seq"})

ILLEGAL_DB_REASON = (
    "Name: '{name}'. Only lowercase characters (a-z), digits (0-9), and any of the characters "
    "_, $, (, ), +, -, and / are allowed. Must begin with a letter."
)


def validate_db_name(name: str) -> str:
    """Return `name` if CouchDB would accept it as a database name, else raise."""
    if name in SYSTEM_DBS:
        return name
    if len(name) > MAX_DB_NAME or not DB_NAME.match(name):
        raise IllegalDbName(ILLEGAL_DB_REASON.format(name=name))
    return name


def validate_doc_id(doc_id: Any, *, allow_local: bool = True) -> str:
    """Return `doc_id` if it is a legal document id, else raise `IllegalDocId`."""
    if not isinstance(doc_id, str):
        raise IllegalDocId("Document id must be a string")
    if doc_id == "":
        raise IllegalDocId("Document id must not be empty")
    if "\x00" in doc_id:
        raise IllegalDocId("Document id must not contain the NUL character")
    if doc_id in ("_design/", "_local/"):
        raise IllegalDocId(f"Illegal document id `{doc_id}`")
    if doc_id.startswith("_"):
        if doc_id.startswith("_design/") and len(doc_id) > len("_design/"):
            return doc_id
        if allow_local and doc_id.startswith("_local/") and len(doc_id) > len("_local/"):
            return doc_id
        raise IllegalDocId("Only reserved document ids may start with underscore.")
    return doc_id


def check_specials(doc: dict[str, Any]) -> None:
    """Refuse unknown `_`-prefixed top-level members as CouchDB does."""
    for key in doc:
        if key.startswith("_") and key not in ALLOWED_SPECIALS \
                and key not in IGNORED_SPECIALS:
            raise DocValidation(f"Bad special document member: {key}")
    deleted = doc.get("_deleted", False)
    if not isinstance(deleted, bool):
        raise DocValidation("Bad special document member: _deleted")


def body_fields(doc: dict[str, Any]) -> dict[str, Any]:
    """The document without the special members the store keeps outside the body."""
    return {k: v for k, v in doc.items() if not k.startswith("_")}
