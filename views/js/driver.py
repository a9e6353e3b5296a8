"""The JavaScript evaluated once into every QuickJS context: CouchDB's design-function environment.

Evaluating `DRIVER_JS` defines the globals a design function may use (`emit`, `log`, `isArray`,
`toJSON`, `sum`; `JSON` is built in) and returns one private dispatcher function,
`dispatch(op, header, payload) -> string`, that the child process keeps a handle on. Nothing of the
driver's own state is reachable from globals, so a design function can spoil only its own context.

Operations (header and payload are JSON text; every answer is one JSON object as a string):

- `setup`: payload is the design document; it is deep-frozen and kept for `require` and `call`.
- `map`: header `{"fns": [source, ...]}`, payload a JSON array of documents. Each function gets its
  own fresh parse of the batch, so a function that mutates `doc` changes nothing another function
  (or the next batch) sees. A function that throws for a document yields no rows for it and the
  error is reported in `errors`, as CouchDB logs it. Answer `{"rows": [[rows of fn 0, ...], ...]}`
  where each emitted row is `[key, value]`, serialised right after the function returns.
- `reduce`: header `{"src", "rereduce", "limit"}`, payload `[keys, values]`. Answer `{"result":
  [value]}` or, when `limit` is set and the output exceeds 4096 characters and half the input,
  `{"overflow": [input length, output length]}` (CouchDB's `reduce_limit` rule).
- `call`: header `{"path": [...]}`, payload the argument array; the function at that path in the
  design document runs with `this` bound to the design document. Answer `{"result": [value]}`,
  `{"thrown": value}` for a thrown non-Error, `{"error": "Name: message"}` for an Error, or
  `{"missing": reason}`.

Every answer also carries `logs` (from `log()`) and `errors` (exceptions a map or reduce swallowed).
A bad function source answers `{"compile_error": reason}`. Resource exhaustion (`null` thrown by an
out-of-memory runtime, `InternalError` for stack overflow or interrupt) is re-thrown so the child
reports it as fatal and the parent replaces the process.
"""

from __future__ import annotations

DRIVER_JS = r"""
(function () {
  "use strict";
  const parse = JSON.parse, stringify = JSON.stringify, isArray = Array.isArray;
  const freeze = Object.freeze, hasOwn = Object.prototype.hasOwnProperty;
  const MakeFunction = Function, InternalErrorType = InternalError;
  const TRAILING = " \t\r\n;";
  const compiled = new Map();
  const modules = new Map();
  let ddoc = {};
  let rows = null;
  let logs = [];
  let errors = [];

  class CompileFailure {
    constructor(reason) { this.reason = reason; }
  }

  function isFatal(e) {
    return e === null || e instanceof InternalErrorType;
  }

  function describe(e) {
    if (e instanceof Error) return e.name + ": " + e.message;
    try {
      const text = stringify(e);
      return text === undefined ? String(e) : text;
    } catch (_) {
      return String(e);
    }
  }

  function deepFreeze(value) {
    if (typeof value === "object" && value !== null) {
      freeze(value);
      for (const k in value) deepFreeze(value[k]);
    }
    return value;
  }

  globalThis.emit = function emit(key, value) {
    if (rows === null) throw new Error("emit() may only be called from a map function");
    rows.push([key, value]);
  };
  globalThis.log = function log(message) {
    if (typeof message !== "string") message = stringify(message);
    logs.push(String(message));
  };
  globalThis.isArray = function (value) { return isArray(value); };
  globalThis.toJSON = function (value) { return stringify(value); };
  globalThis.sum = function sum(values) {
    let total = 0;
    for (const i in values) total += values[i];
    return total;
  };

  // CommonJS modules: `require("views/lib/util")` resolves a path of properties from the root
  // (for map functions CouchDB exposes only `views.lib`), "./" and "../" relative to the module
  // doing the requiring. Modules are cached per context by root and id.
  function lookup(root, segments, name) {
    let current = root;
    for (const s of segments) {
      if (typeof current !== "object" || current === null || !hasOwn.call(current, s)) {
        throw new Error("invalid_require_path: Object has no property \"" + s +
                        "\" (" + name + ")");
      }
      current = current[s];
    }
    if (typeof current !== "string") {
      throw new Error("invalid_require_path: Must require a JavaScript string, not: " +
                      typeof current);
    }
    return current;
  }

  function makeRequire(kind, root, baseDir) {
    return function require(name) {
      if (root === null) throw new Error("require() is not available in reduce functions");
      name = String(name);
      const parts = name.split("/");
      const segments = (parts[0] === "." || parts[0] === "..") ? baseDir.slice() : [];
      for (const p of parts) {
        if (p === "." || p === "") continue;
        if (p === "..") {
          if (segments.length === 0) {
            throw new Error("invalid_require_path: Object has no parent (" + name + ")");
          }
          segments.pop();
        } else {
          segments.push(p);
        }
      }
      const id = segments.join("/");
      const key = kind + "\u0000" + id;
      const cached = modules.get(key);
      if (cached !== undefined) return cached.exports;
      const source = lookup(root, segments, name);
      let body;
      try {
        body = new MakeFunction("module", "exports", "require", source);
      } catch (e) {
        if (isFatal(e)) throw e;
        throw new CompileFailure("Module require('" + name + "') raised error " + describe(e));
      }
      const module = { id: id, exports: {} };
      modules.set(key, module);
      try {
        const inner = makeRequire(kind, root, segments.slice(0, -1));
        body.call(module.exports, module, module.exports, inner);
      } catch (e) {
        modules.delete(key);
        throw e;
      }
      return module.exports;
    };
  }

  function requireRoot(kind) {
    if (kind === "reduce") return null;
    if (kind === "map") {
      const views = ddoc.views;
      const lib = (typeof views === "object" && views !== null) ? views.lib : undefined;
      return { views: { lib: lib } };
    }
    return ddoc;
  }

  function compile(source, kind) {
    const key = kind + "\u0000" + source;
    const hit = compiled.get(key);
    if (hit !== undefined) return hit;
    if (typeof source !== "string" || source.trim() === "") {
      throw new CompileFailure("missing function");
    }
    let end = source.length;
    while (end > 0 && TRAILING.indexOf(source[end - 1]) >= 0) end--;
    const body = source.slice(0, end);
    let fn;
    try {
      const wrapper = new MakeFunction("require", "return (" + body + "\n);");
      fn = wrapper(makeRequire(kind, requireRoot(kind), []));
    } catch (first) {
      if (isFatal(first)) throw first;
      try {
        fn = (0, eval)(source);
      } catch (e) {
        if (isFatal(e)) throw e;
        throw new CompileFailure(describe(first) + " (" + source + ")");
      }
    }
    if (typeof fn !== "function") {
      throw new CompileFailure("Expression does not eval to a function. (" + source + ")");
    }
    compiled.set(key, fn);
    return fn;
  }

  function answer(fields) {
    return "{" + fields + ',"logs":' + stringify(logs) + ',"errors":' + stringify(errors) + "}";
  }

  function map(header, payload) {
    const fns = header.fns.map(function (src) { return compile(src, "map"); });
    let count = -1;
    let out = null;
    for (let j = 0; j < fns.length; j++) {
      const docs = parse(payload);
      if (out === null) {
        count = docs.length;
        out = new Array(count);
        for (let i = 0; i < count; i++) out[i] = new Array(fns.length);
      }
      const fn = fns[j];
      for (let i = 0; i < count; i++) {
        const doc = docs[i];
        rows = [];
        try {
          fn(doc);
          out[i][j] = stringify(rows);
        } catch (e) {
          if (isFatal(e)) throw e;
          out[i][j] = "[]";
          const id = (typeof doc === "object" && doc !== null) ? doc._id : undefined;
          errors.push("function raised exception " + describe(e) + " with doc._id " + id);
        } finally {
          rows = null;
        }
      }
    }
    if (out === null) out = parse(payload).map(function () { return []; });
    const lines = new Array(out.length);
    for (let i = 0; i < out.length; i++) lines[i] = "[" + out[i].join(",") + "]";
    return answer('"rows":[' + lines.join(",") + "]");
  }

  function reduce(header, payload) {
    const fn = compile(header.src, "reduce");
    const input = parse(payload);
    let result = null;
    try {
      result = fn(input[0], input[1], header.rereduce === true);
    } catch (e) {
      if (isFatal(e)) throw e;
      errors.push("function raised exception " + describe(e));
      result = null;
    }
    const line = stringify([result]);
    if (header.limit && line.length > 4096 && line.length * 2 > payload.length) {
      return answer('"overflow":' + stringify([payload.length, line.length]));
    }
    return answer('"result":' + line);
  }

  function call(header, payload) {
    const path = header.path;
    let point = ddoc;
    for (const p of path) {
      const found = typeof point === "object" && point !== null && hasOwn.call(point, p);
      point = found ? point[p] : undefined;
    }
    if (typeof point !== "string") {
      const id = ddoc._id === undefined ? "" : ddoc._id;
      return answer('"missing":' + stringify("missing " + path[0] + " function " +
                    path[path.length - 1] + " on design doc " + id));
    }
    const fn = compile(point, "ddoc");
    const args = parse(payload);
    let result;
    try {
      result = fn.apply(ddoc, args);
    } catch (e) {
      if (isFatal(e) || e instanceof CompileFailure) throw e;
      if (e instanceof Error) return answer('"error":' + stringify(describe(e)));
      let text;
      try { text = stringify([e]); } catch (_) { text = stringify([describe(e)]); }
      return answer('"thrown":' + text.slice(1, -1));
    }
    return answer('"result":' + stringify([result]));
  }

  return function dispatch(op, headerText, payload) {
    logs = [];
    errors = [];
    try {
      if (op === "setup") {
        ddoc = deepFreeze(parse(payload));
        return answer('"ok":true');
      }
      const header = parse(headerText);
      if (op === "map") return map(header, payload);
      if (op === "reduce") return reduce(header, payload);
      if (op === "call") return call(header, payload);
      throw new Error("unknown operation " + op);
    } catch (e) {
      if (e instanceof CompileFailure) return answer('"compile_error":' + stringify(e.reason));
      throw e;
    }
  };
})()
"""
