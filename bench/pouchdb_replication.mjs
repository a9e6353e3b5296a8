// PouchDB replication of N docs to and from settee (or any CouchDB), timed in both directions.
//
//   node bench/pouchdb_replication.mjs URL [--docs 10000] [--batch-size 100] [--db NAME] [--json]
//
// Uses the PouchDB 9 packages installed for the client tests (`tests/js/node_modules`: run
// `npm ci` in tests/js, or any `make test` run that reached the npm client tests, first).
// push: an in-memory PouchDB holding N docs of ~100 bytes replicates to a new, empty DB
//       (`local.replicate.to(remote)`, one-shot, PouchDB's default batch size 100).
// pull: a new, empty in-memory PouchDB replicates the same DB back (`replicate.from`).
// Each direction is timed from the call to `complete`; both sides' doc counts are checked.
// The DB is deleted at the end.  Target (issue 5): 10,000 docs in under 10 s each way.

import { createRequire } from 'node:module';

const require = createRequire(new URL('../tests/js/package.json', import.meta.url));
let PouchDB;
try {
  PouchDB = require('pouchdb-core');
  PouchDB.plugin(require('pouchdb-adapter-http')).plugin(require('pouchdb-adapter-memory'))
    .plugin(require('pouchdb-replication'));
} catch (err) {
  console.error(`PouchDB is not installed: run \`npm ci\` in tests/js first (${err.message})`);
  process.exit(2);
}

const args = process.argv.slice(2);
const flag = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : dflt;
};
const url = args.find((a, i) => !a.startsWith('--') && !(i > 0 && args[i - 1].startsWith('--')));
if (!url) {
  console.error('usage: node bench/pouchdb_replication.mjs URL [--docs N] [--batch-size N] [--db NAME] [--json]');
  process.exit(2);
}
const DOCS = Number(flag('docs', 10000));
const BATCH = Number(flag('batch-size', 100));
const DB = flag('db', `pouch-bench-${Date.now().toString(36)}`);
const TARGET_S = 10;
const base = url.replace(/\/+$/, '');
const remoteUrl = `${base}/${encodeURIComponent(DB)}`;

async function timed(label, fn) {
  const t0 = process.hrtime.bigint();
  const out = await fn();
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  console.error(`${label}: ${seconds.toFixed(2)} s`);
  return [seconds, out];
}

function replicate(from, to) {
  return new Promise((resolve, reject) => {
    const rep = PouchDB.replicate(from, to, { batch_size: BATCH });
    rep.on('complete', (info) => (info.ok === false ? reject(new Error(JSON.stringify(info))) : resolve(info)));
    rep.on('denied', (err) => reject(new Error(`denied: ${JSON.stringify(err)}`)));
    rep.on('error', reject);
  });
}

const put = await fetch(remoteUrl, { method: 'PUT' });
if (put.status !== 201) {
  console.error(`PUT ${remoteUrl} -> ${put.status} ${await put.text()} (use --db with a new name)`);
  process.exit(1);
}
let failed = false;
const result = { docs: DOCS, batch_size: BATCH, url: base };
try {
  const source = new PouchDB(`bench-src-${DB}`, { adapter: 'memory' });
  const docs = [];
  for (let i = 0; i < DOCS; i++) {
    docs.push({ _id: `doc-${String(i).padStart(6, '0')}`, i, name: `item ${i}`, tags: ['x', 'y'],
      payload: 'p'.repeat(40) });
  }
  for (let i = 0; i < DOCS; i += 1000) await source.bulkDocs(docs.slice(i, i + 1000));
  const remote = new PouchDB(remoteUrl);

  const [pushS, pushInfo] = await timed('push', () => replicate(source, remote));
  const rinfo = await remote.info();
  if (rinfo.doc_count !== DOCS || pushInfo.docs_written !== DOCS) {
    throw new Error(`push: settee holds ${rinfo.doc_count} docs, ${pushInfo.docs_written} written, expected ${DOCS}`);
  }
  const target = new PouchDB(`bench-dst-${DB}`, { adapter: 'memory' });
  const [pullS, pullInfo] = await timed('pull', () => replicate(remote, target));
  const tinfo = await target.info();
  if (tinfo.doc_count !== DOCS || pullInfo.docs_written !== DOCS) {
    throw new Error(`pull: PouchDB holds ${tinfo.doc_count} docs, ${pullInfo.docs_written} written, expected ${DOCS}`);
  }
  Object.assign(result, {
    push_s: +pushS.toFixed(3), push_docs_per_s: Math.round(DOCS / pushS),
    pull_s: +pullS.toFixed(3), pull_docs_per_s: Math.round(DOCS / pullS),
    target_s: TARGET_S, meets_target: pushS < TARGET_S && pullS < TARGET_S,
  });
} catch (err) {
  failed = true;
  console.error(`FAILED: ${err.stack || err}`);
} finally {
  await fetch(remoteUrl, { method: 'DELETE' });
}
if (!failed) {
  if (args.includes('--json')) console.log(JSON.stringify(result));
  else {
    console.log(`PouchDB replication of ${DOCS} docs (batch_size ${BATCH}) with ${base}`);
    console.log(`  push (PouchDB -> server): ${result.push_s.toFixed(2)} s  ${result.push_docs_per_s} docs/s`);
    console.log(`  pull (server -> PouchDB): ${result.pull_s.toFixed(2)} s  ${result.pull_docs_per_s} docs/s`);
    console.log(`  target < ${TARGET_S} s each way: ${result.meets_target ? 'met' : 'NOT MET'}`);
  }
}
process.exit(failed ? 1 : 0);
