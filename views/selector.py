"""CouchDB's Mango selectors compiled to matchers: `compile_selector(sel)(doc) -> bool`.

A selector is first validated and normalized (`selector_norm`: implicit operators made explicit,
field names pushed down to the terminals as dotted paths, negations pushed down with De Morgan's
laws), then compiled into nested closures, so matching many documents pays for parsing once.
The changes feed's `_selector` filter uses it, and `_find` will.

Semantics follow CouchDB (`mango_selector:match/3`), not MongoDB:

* a condition on a missing field fails; only `{"$exists": false}` matches a missing field, and
  a path that steps into a scalar or out of an array (a "bad path") matches nothing;
* comparisons use view collation (`views.collate.compare`, ICU for strings), except on `_id`,
  which compares raw; `$eq` on an array compares the whole array, while `$in`/`$nin` on an array
  field test its elements;
* `$all` tests membership with Erlang's exact term equality (1 and 1.0 differ), `$mod` takes
  the remainder with the sign of the dividend, as Erlang's `rem`, and matches integers only;
* `$elemMatch` and `$keyMapMatch` need a non-empty array or object and one matching element
  or key, `$allMatch` a non-empty array whose elements all match;
* `$regex` runs Python's `re.search` where CouchDB runs PCRE: common patterns agree, exotic PCRE
  syntax may not, and neither has a backtracking limit;
* `$text` (which needs a text index) matches everything, as CouchDB trusts its index there.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .collate import compare, compare_raw
from .fieldpath import BAD_PATH, MISSING, extract_fields, get_field, parse_field
from .selector_norm import COMPARE, SelectorError, compile_regex, is_int, normalize

__all__ = ["SelectorError", "compile_normal", "compile_selector", "extract_fields", "normalize",
           "parse_field"]

Matcher = Callable[[Any], bool]
Compare = Callable[[Any, Any], int]

_TESTS: dict[str, Callable[[int], bool]] = {
    "$lt": lambda r: r < 0, "$lte": lambda r: r <= 0, "$eq": lambda r: r == 0,
    "$ne": lambda r: r != 0, "$gte": lambda r: r >= 0, "$gt": lambda r: r > 0,
}


def compile_selector(selector: Any) -> Matcher:
    """Validate and normalize `selector` (`SelectorError` if invalid); return `doc -> bool`."""
    normal = normalize(selector)
    if not normal:
        return lambda _doc: True
    return _compile(normal, compare)


def compile_normal(normal: dict[str, Any]) -> Matcher:
    """`doc -> bool` for a selector already in normal form (`normalize`'s output)."""
    if not normal:
        return lambda _doc: True
    return _compile(normal, compare)


def _compile(sel: dict[str, Any], cmp: Compare) -> Matcher:
    (op, arg), = sel.items()
    if op in ("$and", "$or", "$nor"):
        parts = [_compile(a, cmp) for a in arg]
        if op == "$and":
            return lambda v: all(p(v) for p in parts)
        if op == "$or":  # an empty `$or` matches, as CouchDB's does
            return (lambda v: any(p(v) for p in parts)) if parts else (lambda v: True)
        return lambda v: not any(p(v) for p in parts)  # only left inside sub-selectors
    if op == "$not":
        inner = _compile(arg, cmp)
        return lambda v: not inner(v)
    if op.startswith("$"):
        return _operator(op, arg, cmp)
    if op == "":  # a condition on the value itself (inside $elemMatch and friends)
        return _compile(arg, cmp)
    return _field(op, arg, cmp)


def _field(name: str, cond: dict[str, Any], cmp: Compare) -> Matcher:
    path = parse_field(name)
    inner = _compile(cond, compare_raw if name == "_id" else cmp)
    missing_ok = len(cond) == 1 and cond.get("$exists", None) is False

    def match(value: Any) -> bool:
        found = get_field(value, path)
        if found is MISSING:
            return missing_ok
        return found is not BAD_PATH and inner(found)
    return match


def _operator(op: str, arg: Any, cmp: Compare) -> Matcher:
    if op in COMPARE:
        test = _TESTS[op]
        if cmp is compare and type(arg) in (int, float):
            def number(v: Any) -> bool:  # numbers against numbers: no need for collation
                t = type(v)
                if t is int or t is float:
                    return test((v > arg) - (v < arg))
                return test(cmp(v, arg))
            return number
        return lambda v: test(cmp(v, arg))
    if op in ("$in", "$nin"):
        def found(v: Any) -> bool:
            values = v if isinstance(v, list) else (v,)
            return any(cmp(x, a) == 0 for a in arg for x in values)
        if op == "$in":
            return found
        return lambda v: not found(v)
    if op == "$exists":  # reached only when the field is there
        return lambda v: bool(arg)
    if op == "$type":
        return lambda v: json_type(v) == arg
    if op == "$size":
        return lambda v: isinstance(v, list) and len(v) == arg
    if op == "$mod":
        div, rem = arg
        return lambda v: is_int(v) and erlang_rem(v, div) == rem
    if op == "$regex":
        pattern = compile_regex(arg)
        assert pattern is not None  # validated by normalize
        return lambda v: isinstance(v, str) and pattern.search(v) is not None
    if op == "$beginsWith":
        return lambda v: isinstance(v, str) and v.startswith(arg)
    if op == "$all":
        return lambda v: _all(arg, v)
    if op == "$default":
        return lambda v: True
    inner = _compile(arg, cmp)
    if op == "$elemMatch":
        return lambda v: isinstance(v, list) and any(inner(x) for x in v)
    if op == "$allMatch":
        return lambda v: isinstance(v, list) and bool(v) and all(inner(x) for x in v)
    if op == "$keyMapMatch":
        return lambda v: isinstance(v, dict) and any(inner(k) for k in v)
    raise SelectorError(f"Invalid operator: {op}", "invalid_operator")


def _all(args: list[Any], value: Any) -> bool:
    """`$all`: every argument is an element; or the one argument is the whole array."""
    if not args:
        return False
    if len(args) == 1 and isinstance(args[0], list) and same(args[0], value, exact=False):
        return True
    return isinstance(value, list) and all(any(same(a, x, exact=True) for x in value)
                                           for a in args)


def json_type(value: Any) -> str:
    """The `$type` name of a JSON value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def erlang_rem(value: int, div: int) -> int:
    """Erlang's `rem`: the sign follows the dividend (Python's `%` follows the divisor)."""
    result = abs(value) % abs(div)
    return -result if value < 0 else result


def same(a: Any, b: Any, *, exact: bool) -> bool:
    """Erlang term equality: `=:=` when exact (1 and 1.0 differ), else `==`."""
    if isinstance(a, bool) or isinstance(b, bool) or a is None or b is None:
        return a is b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return (type(a) is type(b) or not exact) and a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y, exact=exact) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return len(a) == len(b) and all(ka == kb and same(va, vb, exact=exact)
                                        for (ka, va), (kb, vb) in zip(a.items(), b.items()))
    return type(a) is type(b) and a == b
