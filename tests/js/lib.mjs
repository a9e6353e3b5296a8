// Shared helpers for the client scripts run by tests/test_npm_clients.py.
//
// Every script reports each step on stdout as `STEP <name> ok|FAILED: <why>` and exits non-zero
// when any step failed, so the pytest side can show exactly which part broke.  A step can be
// declared a known settee bug (`--known-bug STEP`): it still runs and prints `KNOWN-BUG` instead
// of `FAILED` when it fails, or `UNEXPECTED-PASS` when it passes (both exit non-zero for the
// unexpected case only, see `finish`).

import { Buffer } from 'node:buffer';

export class Mismatch extends Error {}

/** Thrown by a step that found what it tests is absent; the step printed why. */
export class Skip extends Error {}

export function parseArgs(argv, names) {
  const positional = [];
  const opts = { knownBugs: new Set(), skip: new Set() };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--known-bug') opts.knownBugs.add(argv[++i]);
    else if (a === '--skip') opts.skip.add(argv[++i]);
    else if (a.startsWith('--')) opts[a.slice(2)] = argv[++i];
    else positional.push(a);
  }
  if (positional.length < names.length) {
    console.error(`usage: node ${process.argv[1]} ${names.map((n) => n.toUpperCase()).join(' ')}` +
      ' [--known-bug STEP]... [--skip STEP]...');
    process.exit(2);
  }
  names.forEach((n, i) => { opts[n] = positional[i]; });
  opts.url = opts.url.replace(/\/+$/, '');
  return opts;
}

export function assert(cond, message) {
  if (!cond) throw new Mismatch(message);
}

export function assertEqual(actual, expected, what) {
  const a = JSON.stringify(actual);
  const e = JSON.stringify(expected);
  if (a !== e) throw new Mismatch(`${what}: expected ${e}, got ${a}`);
}

/** A JSON-ish HTTP call straight to settee (node's fetch), returning {status, headers, body, text}. */
export async function http(base, method, path, body, headers = {}) {
  const init = { method, headers: { ...headers } };
  if (body !== undefined) {
    if (Buffer.isBuffer(body) || typeof body === 'string') init.body = body;
    else {
      init.body = JSON.stringify(body);
      init.headers['Content-Type'] = 'application/json';
    }
  }
  const res = await fetch(base + path, init);
  const buf = Buffer.from(await res.arrayBuffer());
  let json;
  try { json = JSON.parse(buf.toString('utf8')); } catch { json = undefined; }
  return { status: res.status, headers: res.headers, body: json, raw: buf, text: buf.toString('utf8'),
    describe() { return `${method} ${path} -> ${res.status} ${buf.toString('utf8').slice(0, 600)}`; } };
}

export async function waitFor(what, fn, timeoutMs = 30000, intervalMs = 100) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    last = await fn();
    if (last === true || last === undefined || last === null) return;
    if (Date.now() > deadline) throw new Mismatch(`${what}: not reached within ${timeoutMs} ms: ${last}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

export function sleep(ms) { return new Promise((r) => setTimeout(r, ms)); }

export class Steps {
  constructor(opts) {
    this.opts = opts;
    this.failed = [];
    this.unexpectedPasses = [];
  }

  async run(name, fn) {
    if (this.opts.skip.has(name)) {
      console.log(`STEP ${name} SKIPPED (--skip)`);
      return;
    }
    const known = this.opts.knownBugs.has(name);
    const t0 = Date.now();
    const limit = Number(this.opts['step-timeout-ms'] || 45000);
    let timer;
    try {
      await Promise.race([fn(), new Promise((resolve, reject) => {
        timer = setTimeout(() => reject(new Mismatch(`step did not finish within ${limit} ms`)), limit);
      })]);
      if (known) {
        this.unexpectedPasses.push(name);
        console.log(`STEP ${name} UNEXPECTED-PASS (declared a known bug) (${Date.now() - t0} ms)`);
      } else {
        console.log(`STEP ${name} ok (${Date.now() - t0} ms)`);
      }
    } catch (err) {
      if (err instanceof Skip) return;
      const why = err instanceof Mismatch ? err.message : (err && err.stack) || String(err);
      if (known) console.log(`STEP ${name} KNOWN-BUG: ${why}`);
      else {
        this.failed.push(name);
        console.log(`STEP ${name} FAILED: ${why}`);
      }
    } finally {
      clearTimeout(timer);
    }
  }

  finish() {
    if (this.failed.length) console.log(`FAILED STEPS: ${this.failed.join(' ')}`);
    if (this.unexpectedPasses.length) {
      console.log(`UNEXPECTED PASSES: ${this.unexpectedPasses.join(' ')}`);
    }
    const code = this.failed.length || this.unexpectedPasses.length ? 1 : 0;
    if (!code) console.log('ALL STEPS PASSED');
    process.exit(code);
  }
}
