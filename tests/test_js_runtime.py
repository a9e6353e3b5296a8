"""The JavaScript runtime: map environment, reduce, calls, isolation and runaway functions."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from settee.views.js import (
    JsCompileError,
    JsError,
    JsMemory,
    JsMissingFunction,
    JsPool,
    JsThrow,
    JsTimeout,
    ReduceOverflow,
)

TIME_LIMIT = 1.0
DDOC: dict[str, Any] = {
    "_id": "_design/app",
    "views": {"lib": {
        "util": "exports.twice = function(x){ return 2 * x }",
        "more": "var u = require('./util');"
                " exports.quad = function(x){ return u.twice(u.twice(x)) }",
    }},
    "lib": {"greet": "exports.hello = function(n){ return 'hello ' + n }"},
    "validate_doc_update": "function(newDoc, oldDoc, userCtx, secObj){"
                           " if (!newDoc.ok) throw({forbidden: 'no'}) }",
    "filters": {"greet": "function(doc, req){ return require('lib/greet').hello(doc._id) }",
                "broken": "function(doc, req){ return doc.missing.field }",
                "self": "function(doc, req){ return this._id }"},
}


@pytest.fixture
def pool() -> Iterator[JsPool]:
    with JsPool(size=2, time_limit=TIME_LIMIT) as p:
        yield p


@pytest.fixture
def solo() -> Iterator[JsPool]:
    """One child, so every context lives in the same process."""
    with JsPool(size=1, time_limit=TIME_LIMIT) as p:
        yield p


def map1(pool: JsPool, source: str, docs: list[dict[str, Any]], key: str = "db|_design/app|1-a",
         ddoc: dict[str, Any] = DDOC) -> list[list[tuple[Any, Any]]]:
    return [per_doc[0] for per_doc in pool.map_docs(key, ddoc, [source], docs)]


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_emit_keeps_every_json_type(pool: JsPool) -> None:
    values = [None, True, False, 0, -7, 2.5, 1e300, "", "héllo ☃ 😀", [], [1, [2, None]],
              {}, {"a": {"b": [True, "x"]}}]
    rows = map1(pool, "function(doc){ doc.values.forEach(function(v, i){ emit(v, [i, v]) }) }",
                [{"_id": "d", "values": values}])
    assert rows == [[(v, [i, v]) for i, v in enumerate(values)]]


def test_emit_without_arguments_gives_nulls(pool: JsPool) -> None:
    assert map1(pool, "function(doc){ emit() }", [{"_id": "d"}]) == [[(None, None)]]


def test_each_function_gets_its_own_rows_per_doc(pool: JsPool) -> None:
    fns = ["function(doc){ emit(doc._id, 1); emit(doc._id, 2) }", "function(doc){}",
           "function(doc){ if (doc.n > 1) emit(doc.n, null) }"]
    docs = [{"_id": "a", "n": 1}, {"_id": "b", "n": 2}]
    out = pool.map_docs("db|_design/app|1-a", DDOC, fns, docs)
    assert out == [[[("a", 1), ("a", 2)], [], []], [[("b", 1), ("b", 2)], [], [(2, None)]]]


def test_a_throw_skips_only_that_doc_and_is_logged(
    pool: JsPool, caplog: pytest.LogCaptureFixture
) -> None:
    fns = ["function(doc){ if (doc._id === 'b') throw new Error('bad b'); emit(doc._id, 1) }",
           "function(doc){ emit('other', doc._id) }"]
    with caplog.at_level(logging.INFO, logger="settee.views.js"):
        out = pool.map_docs("db|_design/app|1-a", DDOC, fns, [{"_id": i} for i in "abc"])
    assert [per_doc[0] for per_doc in out] == [[("a", 1)], [], [("c", 1)]]
    assert [per_doc[1] for per_doc in out] == [[("other", i)] for i in "abc"]
    assert "function raised exception Error: bad b with doc._id b" in caplog.text


def test_log_lines_reach_the_parent_log(
    pool: JsPool, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="settee.views.js"):
        map1(pool, "function(doc){ log('seen ' + doc._id); log({n: 1}) }", [{"_id": "x"}])
    messages = [r.getMessage() for r in caplog.records if r.name == "settee.views.js"]
    assert messages == ["db|_design/app|1-a: seen x", 'db|_design/app|1-a: {"n":1}']


def test_require_resolves_views_lib_modules(pool: JsPool) -> None:
    src = ("function(doc){ emit(require('views/lib/util').twice(doc.n),"
           " require('views/lib/more').quad(doc.n)) }")
    assert map1(pool, src, [{"_id": "a", "n": 3}]) == [[(6, 12)]]


def test_map_functions_cannot_require_outside_views_lib(pool: JsPool) -> None:
    src = "function(doc){ emit(require('lib/greet').hello(1), 1) }"
    assert map1(pool, src, [{"_id": "a"}]) == [[]]


def test_helpers_isarray_tojson_sum(pool: JsPool) -> None:
    src = ("function(doc){ emit(isArray(doc.xs),"
           " [isArray(doc), toJSON(doc.xs), sum(doc.xs), JSON.stringify({a: 1})]) }")
    expected = [[(True, [False, "[1,2,3.5]", 6.5, '{"a":1}'])]]
    assert map1(pool, src, [{"_id": "a", "xs": [1, 2, 3.5]}]) == expected


def test_reduce_and_rereduce(pool: JsPool) -> None:
    src = ("function(keys, values, rereduce){"
           " var ns = values.map(function(v){ return rereduce ? v.n : v });"
           " return {n: sum(ns), keys: keys, rereduce: rereduce} }")
    keys = [["k", "a"], ["k", "b"]]
    first = pool.reduce("db|_design/app|1-a", DDOC, src, keys, [1, 2], False)
    assert first == {"n": 3, "keys": [["k", "a"], ["k", "b"]], "rereduce": False}
    again = pool.reduce("db|_design/app|1-a", DDOC, src, None, [{"n": 3}, {"n": 4}], True)
    assert again == {"n": 7, "keys": None, "rereduce": True}


def test_reduce_overflow_error(pool: JsPool) -> None:
    src = "function(keys, values){ return values.join('') }"
    values = ["x" * 100] * 50
    with pytest.raises(ReduceOverflow) as info:
        keys = [[i, str(i)] for i in range(50)]
        pool.reduce("db|_design/app|1-a", DDOC, src, keys, values, False)
    assert info.value.error == "reduce_overflow_error"
    assert info.value.reason.startswith("Reduce output must shrink more rapidly: input size: ")
    with JsPool(size=1, reduce_limit=False) as lenient:
        assert len(lenient.reduce("k", DDOC, src, None, values, True)) == 5000


RUNAWAYS = [
    ("function(doc){ while(true){} }", JsTimeout),
    ("function(doc){ var a = []; while(true) a.push(new Array(100000).fill(doc._id)) }", JsMemory),
    ("function(doc){ function f(n){ return f(n + 1) + 1 } emit(f(0), null) }", JsMemory),
    ("function(doc){ emit(/(a+)+$/.test('a'.repeat(40) + 'b'), null) }", JsTimeout),
]


@pytest.mark.parametrize(("source", "failure"), RUNAWAYS,
                         ids=["loop", "alloc", "recursion", "regex"])
def test_runaway_functions_are_stopped(
    solo: JsPool, source: str, failure: type[Exception]
) -> None:
    assert map1(solo, "function(doc){ emit(1, 1) }", [{"_id": "warm"}]) == [[(1, 1)]]
    (victim,) = solo.pids()
    start = time.monotonic()
    with pytest.raises(failure):
        map1(solo, source, [{"_id": "a"}], key="db|_design/bad|1-a")
    assert time.monotonic() - start < TIME_LIMIT + 2
    assert gone(victim) and victim not in solo.pids()
    assert map1(solo, "function(doc){ emit(doc._id, 1) }", [{"_id": "after"}]) == [[("after", 1)]]
    (fresh,) = solo.pids()
    assert fresh != victim


def test_a_global_in_one_context_is_invisible_in_another(solo: JsPool) -> None:
    setter = {"_id": "_design/x",
              "validate_doc_update": "function(doc){ globalThis.leak = doc; leak2 = 1 }"}
    solo.call("dbA|_design/x|1-a", setter, ["validate_doc_update"], [{"s": 1}, None, {}, {}])
    src = "function(doc){ emit(typeof leak, typeof leak2) }"
    in_a = map1(solo, src, [{"_id": "a"}], key="dbA|_design/x|1-a", ddoc=setter)
    in_b = map1(solo, src, [{"_id": "a"}], key="dbB|_design/x|1-a", ddoc=setter)
    assert in_a == [[("object", "number")]]
    assert in_b == [[("undefined", "undefined")]]


def test_mutating_doc_is_invisible_to_other_functions(pool: JsPool) -> None:
    fns = [("function(doc){ 'use strict'; doc.x = 'changed'; doc.nested.y = 2; delete doc.gone;"
           " emit(doc.x, doc.nested.y) }"),
           "function(doc){ emit(doc.x, [doc.nested.y, doc.gone]) }"]
    doc = {"_id": "a", "x": "orig", "nested": {"y": 1}, "gone": True}
    out = pool.map_docs("db|_design/app|1-a", DDOC, fns, [doc])
    assert out == [[[("changed", 2)], [("orig", [1, True])]]]
    assert doc == {"_id": "a", "x": "orig", "nested": {"y": 1}, "gone": True}


def test_compile_errors(pool: JsPool) -> None:
    with pytest.raises(JsCompileError) as info:
        map1(pool, "function(doc){ emit(", [{"_id": "a"}])
    assert info.value.error == "compilation_error" and "SyntaxError" in info.value.reason
    with pytest.raises(JsCompileError, match="does not eval to a function"):
        map1(pool, "42", [{"_id": "a"}])
    with pytest.raises(JsCompileError):
        pool.reduce("db|_design/app|1-a", DDOC, "function(k, v) {", None, [], True)
    assert map1(pool, "function(doc){ emit(1, 2); };\n", [{"_id": "a"}]) == [[(1, 2)]]


def test_concurrent_calls_from_four_threads(pool: JsPool) -> None:
    failures: list[BaseException] = []

    def work(t: int) -> None:
        try:
            for i in range(25):
                docs: list[dict[str, Any]] = [{"_id": f"{t}-{i}-{j}", "n": j} for j in range(20)]
                src = "function(doc){ emit(doc._id, doc.n * 2) }"
                rows = map1(pool, src, docs, key=f"db{t % 2}|d|1")
                assert rows == [[(d["_id"], d["n"] * 2)] for d in docs]
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(30)
    assert not failures
    assert len(pool.pids()) <= 2


def test_call_validate_doc_update(pool: JsPool) -> None:
    key = "db|_design/app|1-a"
    assert pool.call(key, DDOC, ["validate_doc_update"], [{"ok": True}, None, {}, {}]) is None
    with pytest.raises(JsThrow) as info:
        pool.call(key, DDOC, ["validate_doc_update"], [{}, None, {}, {}])
    assert info.value.value == {"forbidden": "no"} and info.value.reason == "no"


def test_call_filters_require_this_and_errors(pool: JsPool) -> None:
    key = "db|_design/app|1-a"
    assert pool.call(key, DDOC, ["filters", "greet"], [{"_id": "bob"}, {}]) == "hello bob"
    assert pool.call(key, DDOC, ["filters", "self"], [{}, {}]) == "_design/app"
    with pytest.raises(JsError, match="TypeError"):
        pool.call(key, DDOC, ["filters", "broken"], [{}, {}])
    with pytest.raises(JsMissingFunction,
                       match="missing filters function nope on design doc _design/app"):
        pool.call(key, DDOC, ["filters", "nope"], [{}, {}])


def test_tampered_context_is_rebuilt(solo: JsPool) -> None:
    tamper = ("function(doc){ Array.prototype.map = function(){ throw new Error('tampered') };"
              " emit(1, 1) }")
    assert map1(solo, tamper, [{"_id": "a"}]) == [[(1, 1)]]
    with pytest.raises(JsError, match="tampered"):
        map1(solo, "function(doc){ emit(2, 2) }", [{"_id": "a"}])
    src = "function(doc){ emit(3, [1].map(function(x){ return x })) }"
    assert map1(solo, src, [{"_id": "a"}]) == [[(3, [1])]]


def test_a_dead_child_is_replaced(solo: JsPool) -> None:
    map1(solo, "function(doc){ emit(1, 1) }", [{"_id": "a"}])
    (pid,) = solo.pids()
    os.kill(pid, signal.SIGKILL)
    time.sleep(0.1)
    assert map1(solo, "function(doc){ emit(1, 1) }", [{"_id": "a"}]) == [[(1, 1)]]
    assert solo.pids() != [pid]


def test_close_kills_children() -> None:
    p = JsPool(size=2)
    map1(p, "function(doc){ emit(1, 1) }", [{"_id": "a"}])
    pids = p.pids()
    p.close()
    assert pids and all(gone(pid) for pid in pids)
