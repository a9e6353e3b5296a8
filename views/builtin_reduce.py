"""CouchDB's built-in reduces, native: `_sum`, `_count`, `_stats`, `_approx_count_distinct`.

Each is a reducer with the four operations the indexer and the query use (see `reduce.Reducer`):
`reduce(keys, values)` over map rows, `rereduce(states)` over partial reductions, `finalize` to the
value a response shows, and `subtract` when a removal can be applied exactly without re-reading
the key's rows (only `_count`, and `_sum` of plain integers; anything else returns `INEXACT` and
the indexer recomputes the key from its rows).

`_sum` follows `couch_query_servers:sum_values/2`: numbers add; arrays add element-wise, the shorter
padded with zeros, and a bare number counts as a one-element array; objects add member-wise
(members sorted by name), recursively, and cannot be mixed with anything else. A value it cannot
add makes the reduction CouchDB's `builtin_reduce_error` object (the row still answers 200, with
the error as its value), and that object propagates through later sums. An output over 4906 bytes
that is more than half its input is the same error ("Reduce output must shrink more rapidly").

`_approx_count_distinct` counts distinct keys (by their JSON) with HyperLogLog at precision 11, as
CouchDB's `hyper:new(11)`; below 256 distinct keys it keeps the 64-bit hashes themselves, so small
counts are exact.
"""

from __future__ import annotations

import base64
import hashlib
import math
from collections.abc import Sequence
from typing import Any

from ..store.serialize import dumps
from .reduce import INEXACT, ReduceFailure

SUM_ERROR = ("The _sum function requires that map values be numbers, arrays of numbers, or "
             "objects. Objects cannot be mixed with other data structures. Objects can be "
             "arbitrarily nested, provided that the values for all fields are themselves "
             "numbers, arrays of numbers, or objects.")
STATS_ERROR = ("The _stats function requires that map values be numbers or arrays of numbers, "
               "not '{}'")
OVERFLOW_BYTES = 4906
HLL_BITS = 11
HLL_M = 1 << HLL_BITS
HLL_SPARSE_MAX = 256


class _SumError(Exception):
    def __init__(self, obj: dict[str, Any]) -> None:
        super().__init__(obj.get("reason"))
        self.obj = obj


def _is_num(v: Any) -> bool:
    t = type(v)
    return t is int or t is float


def _sum_values(value: Any, acc: Any) -> Any:
    if _is_num(value) and _is_num(acc):
        return acc + value
    if isinstance(value, list) and isinstance(acc, list):
        return _sum_arrays(acc, value)
    if _is_num(value) and isinstance(acc, list):
        return _sum_arrays(acc, [value])
    if isinstance(value, list) and _is_num(acc):
        return _sum_arrays([acc], value)
    if isinstance(value, dict):
        if value.get("error") == "builtin_reduce_error":
            raise _SumError(value)
        if acc == 0 and _is_num(acc):
            return dict(sorted(value.items()))
        if isinstance(acc, dict):
            return _sum_objects(value, acc)
    raise _SumError({"error": "builtin_reduce_error", "reason": SUM_ERROR, "caused_by": value})


def _sum_objects(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k in sorted(set(a) | set(b)):
        if k in a and k in b:
            out[k] = _sum_values(a[k], b[k])
        else:
            out[k] = a[k] if k in a else b[k]
    return out


def _sum_arrays(xs: list[Any], ys: list[Any]) -> list[Any]:
    out = []
    for i in range(max(len(xs), len(ys))):
        if i >= len(xs):
            out.extend(ys[i:])
            break
        if i >= len(ys):
            out.extend(xs[i:])
            break
        x, y = xs[i], ys[i]
        if not (_is_num(x) and _is_num(y)):
            raise _SumError({"error": "builtin_reduce_error", "reason": SUM_ERROR,
                             "caused_by": xs[i:]})
        out.append(x + y)
    return out


def _size(value: Any) -> int:
    return len(dumps(value))


class Sum:
    """`_sum`."""

    name = "_sum"

    def reduce(self, keys: Sequence[Any], values: Sequence[Any]) -> Any:
        return self._sum(values)

    def rereduce(self, states: Sequence[Any]) -> Any:
        return self._sum(states)

    def _sum(self, values: Sequence[Any]) -> Any:
        acc: Any = 0
        try:
            for value in values:
                acc = _sum_values(value, acc)
        except _SumError as exc:
            return exc.obj
        if not _is_num(acc):  # CouchDB's overflow check; numbers can never overflow
            out_size = _size(acc)
            if out_size > OVERFLOW_BYTES and out_size * 2 > _size(list(values)):
                reason = (f"Reduce output must shrink more rapidly: input size: "
                          f"{_size(list(values))} output size: {out_size}")
                return {"error": "builtin_reduce_error", "reason": reason}
        return acc

    def finalize(self, state: Any) -> Any:
        return state

    def subtract(self, state: Any, removed: Sequence[Any], added: Sequence[Any]) -> Any:
        # Only plain integers invert exactly: float sums drift, and arrays and objects keep the
        # length and members of removed values.
        if type(state) is not int or not all(type(v) is int for v in (*removed, *added)):
            return INEXACT
        return state - sum(removed) + sum(added)


class Count:
    """`_count`."""

    name = "_count"

    def reduce(self, keys: Sequence[Any], values: Sequence[Any]) -> Any:
        return len(values)

    def rereduce(self, states: Sequence[Any]) -> Any:
        return sum(states)

    def finalize(self, state: Any) -> Any:
        return state

    def subtract(self, state: Any, removed: Sequence[Any], added: Sequence[Any]) -> Any:
        return state - len(removed) + len(added)


_STAT_FIELDS = ("sum", "count", "min", "max", "sumsqr")


def _stat_error(value: Any) -> ReduceFailure:
    return ReduceFailure("builtin_reduce_error", STATS_ERROR.format(dumps(value).decode()))


def _unpack(value: Any) -> tuple[Any, ...]:
    if _is_num(value):
        return (value, 1, value, value, value * value)
    if isinstance(value, dict):
        out = []
        for name in _STAT_FIELDS:
            field = value.get(name)
            if not _is_num(field):
                raise _stat_error(value)
            out.append(field)
        return tuple(out)
    raise _stat_error(value)


def _stat(value: Any, acc: Any) -> Any:
    if isinstance(value, list) and isinstance(acc, list):
        if len(value) != len(acc):
            raise _stat_error(value)
        return [_stat(v, a) for v, a in zip(value, acc)]
    if isinstance(value, list) or isinstance(acc, list):
        raise _stat_error(value)
    s0, c0, lo0, hi0, q0 = _unpack(value)
    s1, c1, lo1, hi1, q1 = acc
    return (s0 + s1, c0 + c1, min(lo0, lo1), max(hi0, hi1), q0 + q1)


def _pack(acc: Any) -> Any:
    if isinstance(acc, list):
        return [_pack(a) for a in acc]
    return dict(zip(_STAT_FIELDS, acc))


class Stats:
    """`_stats`: sum, count, min, max and sum of squares, of numbers or arrays of numbers."""

    name = "_stats"

    def reduce(self, keys: Sequence[Any], values: Sequence[Any]) -> Any:
        return self._stats(values)

    def rereduce(self, states: Sequence[Any]) -> Any:
        return self._stats(states)

    def _stats(self, values: Sequence[Any]) -> Any:
        if not values:
            return _pack((0, 0, 0, 0, 0))
        try:
            first = values[0]
            acc: Any = ([_unpack(v) for v in first] if isinstance(first, list)
                        else _unpack(first))
            for value in values[1:]:
                acc = _stat(value, acc)
        except ReduceFailure as failure:
            return failure
        return _pack(acc)

    def finalize(self, state: Any) -> Any:
        return state

    def subtract(self, state: Any, removed: Sequence[Any], added: Sequence[Any]) -> Any:
        return INEXACT  # min and max cannot be taken back


class ApproxCountDistinct:
    """`_approx_count_distinct`: HyperLogLog over the keys' JSON, exact while small."""

    name = "_approx_count_distinct"

    def reduce(self, keys: Sequence[Any], values: Sequence[Any]) -> Any:
        hashes = {_hash(dumps(k[0])) for k in keys}
        return self._from_hashes(hashes, None)

    def rereduce(self, states: Sequence[Any]) -> Any:
        hashes: set[int] = set()
        registers: bytearray | None = None
        for state in states:
            if "s" in state:
                hashes.update(state["s"])
            else:
                dense = base64.b64decode(state["d"])
                registers = bytearray(dense) if registers is None else bytearray(
                    max(a, b) for a, b in zip(registers, dense))
        return self._from_hashes(hashes, registers)

    def _from_hashes(self, hashes: set[int], registers: bytearray | None) -> dict[str, Any]:
        if registers is None and len(hashes) <= HLL_SPARSE_MAX:
            return {"s": sorted(hashes)}
        regs = registers if registers is not None else bytearray(HLL_M)
        for h in hashes:
            index = h >> (64 - HLL_BITS)
            rest = h & ((1 << (64 - HLL_BITS)) - 1)
            rank = (64 - HLL_BITS) - rest.bit_length() + 1
            regs[index] = max(regs[index], rank)
        return {"d": base64.b64encode(bytes(regs)).decode()}

    def finalize(self, state: Any) -> Any:
        if "s" in state:
            return len(state["s"])
        regs = base64.b64decode(state["d"])
        alpha = 0.7213 / (1 + 1.079 / HLL_M)
        raw = alpha * HLL_M * HLL_M / sum(2.0 ** -r for r in regs)
        zeros = regs.count(0)
        if raw <= 2.5 * HLL_M and zeros:
            raw = HLL_M * math.log(HLL_M / zeros)  # linear counting for small ranges
        return round(raw)

    def subtract(self, state: Any, removed: Sequence[Any], added: Sequence[Any]) -> Any:
        return INEXACT


def _hash(data: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")


BUILTINS: dict[str, Any] = {
    "_sum": Sum, "_count": Count, "_stats": Stats, "_approx_count_distinct": ApproxCountDistinct,
}


def builtin(name: str) -> Any | None:
    """The built-in reducer CouchDB would pick for `name` (it matches on the prefix), or None."""
    for prefix, cls in BUILTINS.items():
        if name.startswith(prefix):
            return cls()
    return None
