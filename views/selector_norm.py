"""Validating and normalizing Mango selectors, step for step as `mango_selector:normalize/1`.

1. `norm_ops`: every operator's argument is checked (else `SelectorError` with CouchDB's error
   name and reason), implicit operators become explicit (`{"a": 1}` is `{"a": {"$eq": 1}}`, an
   object of several members is an `$and`), and nested objects are sub-field conditions, not
   values (`{"a": {"b": 1}}` tests `a.b`).
2. `norm_fields`: field names are pushed down through `$and`/`$or`/`$not`/`$nor` to the terminal
   operators as dotted paths, so every terminal sits under exactly one field. `$elemMatch`,
   `$allMatch` and `$keyMapMatch` keep their sub-selector relative to the element, where a
   condition on the element itself has the empty field name.
3. `norm_negations`: `$not` and `$nor` are pushed down with De Morgan's laws and the terminals
   negated (`$gt` -> `$lte`, `$in` -> `$nin`, `$exists` flipped); operators without an opposite
   keep a `$not`. This step decides what a missing field does, so it is part of the semantics:
   `{"$not": {"a": {"$gt": 1}}}` becomes `{"a": {"$lte": 1}}`, which a document without `a`
   does not match, as in CouchDB.

The normal form is made of one-member objects: `{"$and"|"$or": [...]}`, `{"$not": sel}`,
`{field: {op: arg}}` and `{"$default": {"$text": ...}}` (a text-index condition).
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["SelectorError", "compile_regex", "is_int", "normalize"]

LOGIC = ("$and", "$or", "$nor")
SUBSELECT = ("$elemMatch", "$allMatch", "$keyMapMatch")
COMPARE = ("$lt", "$lte", "$eq", "$ne", "$gte", "$gt")
_UNSUPPORTED = ("$where", "$geoWithin", "$geoIntersects", "$near", "$nearSphere")
_NEGATED = {"$lt": "$gte", "$lte": "$gt", "$eq": "$ne", "$ne": "$eq", "$gte": "$lt",
            "$gt": "$lte", "$in": "$nin", "$nin": "$in"}


class SelectorError(ValueError):
    """An invalid selector; `error` and `reason` are CouchDB's (`bad_arg`, `invalid_operator`…)."""

    def __init__(self, reason: str, error: str = "invalid_selector") -> None:
        super().__init__(reason)
        self.reason = reason
        self.error = error


def normalize(selector: Any) -> dict[str, Any]:
    """CouchDB's normal form of a selector; `{}` (match everything) stays `{}`."""
    if not isinstance(selector, dict):
        raise SelectorError(f"Selector must be a JSON object, not: {erl(selector)}",
                            "invalid_selector_json")
    if not selector:
        return {}
    normal = _norm_negations(_norm_fields(_norm_ops(selector), ""))
    if "" in normal:
        raise SelectorError("One or more conditions is missing a field name.")
    return normal


def _norm_ops(sel: Any) -> dict[str, Any]:
    if not isinstance(sel, dict) or not sel:
        return {"$eq": sel}
    if len(sel) > 1:
        return {"$and": [_norm_ops({k: v}) for k, v in sel.items()]}
    (op, arg), = sel.items()
    if not op.startswith("$"):
        return {op: _norm_ops(arg)}
    if op in LOGIC:
        _check(isinstance(arg, list), op, arg)
        return {op: [_norm_ops(a) for a in arg]}
    if op == "$not" or op in SUBSELECT:
        _check(isinstance(arg, dict), op, arg)
        return {op: _norm_ops(arg)}
    if op in COMPARE or op == "$default":
        return sel
    if op in ("$in", "$nin", "$all"):
        _check(isinstance(arg, list), op, arg)
    elif op == "$exists":
        _check(isinstance(arg, bool), op, arg)
    elif op == "$type":
        _check(isinstance(arg, str), op, arg)
    elif op == "$size":
        _check(is_int(arg) and arg >= 0, op, arg)
    elif op == "$mod":  # a zero divisor would crash every match (CouchDB: a 500), so refuse it
        _check(isinstance(arg, list) and len(arg) == 2 and all(map(is_int, arg))
               and arg[0] != 0, op, arg)
    elif op == "$regex":
        _check(isinstance(arg, str) and compile_regex(arg) is not None, op, arg)
    elif op == "$text":
        _check(isinstance(arg, (str, int, float)), op, arg)
        return {"$default": {"$text": arg}}
    elif op == "$beginsWith" and isinstance(arg, str):
        return sel
    elif op in _UNSUPPORTED:
        raise SelectorError(f"Unsupported operator: {op}", "not_supported")
    else:  # unknown, or `$beginsWith` with a non-string (CouchDB falls through to here too)
        raise SelectorError(f"Invalid operator: {op}", "invalid_operator")
    return sel


def _norm_fields(sel: dict[str, Any], path: str) -> dict[str, Any]:
    (op, arg), = sel.items()
    if op in LOGIC:
        return {op: [_norm_fields(a, path) for a in arg]}
    if op == "$not":
        return {op: _norm_fields(arg, path)}
    if op in SUBSELECT:
        return {path: {op: _norm_fields(arg, "")}}
    if op == "$default":
        if path or not (isinstance(arg, dict) and list(arg) == ["$text"]):
            raise SelectorError(f"Invalid field normalization on selector: {erl(sel)}",
                                "bad_field")
        return sel
    if op.startswith("$"):
        return {path: sel}
    return _norm_fields(arg, f"{path}.{op}" if path else op)


def _norm_negations(sel: dict[str, Any]) -> dict[str, Any]:
    (op, arg), = sel.items()
    if op == "$not":
        return _negate(arg)
    if op == "$nor":
        return {"$and": [_negate(a) for a in arg]}
    if op in ("$and", "$or"):
        return {op: [_norm_negations(a) for a in arg]}
    if op in SUBSELECT:
        return {op: _norm_negations(arg)}
    return sel


def _negate(sel: dict[str, Any]) -> dict[str, Any]:
    (op, arg), = sel.items()
    if op == "$not":
        return _norm_negations(arg)
    if op == "$nor":
        return {"$or": [_norm_negations(a) for a in arg]}
    if op in ("$and", "$or"):
        return {"$or" if op == "$and" else "$and": [_negate(a) for a in arg]}
    if op == "$default":
        raise SelectorError(f"Bad argument for operator $not: {erl(sel)}", "bad_arg")
    if op in _NEGATED:
        return {_NEGATED[op]: arg}
    if op == "$exists":
        return {op: not arg}
    if op.startswith("$"):
        return {"$not": sel}
    return {op: _negate(arg)}


def _check(ok: bool, op: str, arg: Any) -> None:
    if not ok:
        raise SelectorError(f"Bad argument for operator {op}: {erl(arg)}", "bad_arg")


def is_int(value: Any) -> bool:
    """A JSON integer (Python's bools are ints; JSON's are not)."""
    return isinstance(value, int) and not isinstance(value, bool)


def compile_regex(pattern: str) -> re.Pattern[str] | None:
    """The compiled `$regex`, or None when Python's `re` refuses it."""
    try:
        return re.compile(pattern)
    except (re.error, OverflowError, RecursionError):
        return None


def erl(value: Any) -> str:
    """`value` as Erlang's `~w` prints its EJSON form, for CouchDB's error reasons."""
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    if isinstance(value, float):
        text = repr(value)
        if "e" in text:
            mantissa, _, exp = text.partition("e")
            text = f"{mantissa if '.' in mantissa else mantissa + '.0'}e{int(exp)}"
        return text
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return '<<"' + value.replace("\\", "\\\\").replace('"', '\\"') + '">>'
    if isinstance(value, list):
        return "[" + ",".join(erl(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{[" + ",".join(f"{{{erl(k)},{erl(v)}}}" for k, v in value.items()) + "]}"
    return repr(value)
