// PouchDB 9 with the pouchdb-find plugin against a live settee: `node pouchdb_find.mjs URL DB`.
//
// createIndex (created, then exists), getIndexes, find with a range selector sorted both ways,
// paging by limit/skip and by bookmark, fields, explain, and deleteIndex.  Exits 1 with
// `STEP ... FAILED` lines on any mismatch.

import PouchDB from 'pouchdb-core';
import HttpAdapter from 'pouchdb-adapter-http';
import Find from 'pouchdb-find';
import { Steps, assert, assertEqual, parseArgs } from './lib.mjs';

PouchDB.plugin(HttpAdapter).plugin(Find);

const opts = parseArgs(process.argv.slice(2), ['url', 'db']);
const steps = new Steps(opts);
const remote = new PouchDB(`${opts.url}/${encodeURIComponent(opts.db)}`);
const N = 40;
const ids = (res) => res.docs.map((d) => d._id);
const expectedIds = (from, to) =>
  Array.from({ length: to - from }, (_, i) => `p${String(from + i).padStart(2, '0')}`);

await steps.run('create-index', async () => {
  await remote.info();
  const docs = Array.from({ length: N }, (_, i) => ({
    _id: `p${String(i).padStart(2, '0')}`, n: i, kind: i % 2 ? 'odd' : 'even', name: `n${i}` }));
  const res = await remote.bulkDocs(docs);
  assert(res.every((r) => r.ok), `bulkDocs: ${JSON.stringify(res.slice(0, 2))}`);
  const made = await remote.createIndex({ index: { fields: ['n'] }, ddoc: 'by-n', name: 'n' });
  assertEqual(made, { result: 'created', id: '_design/by-n', name: 'n' }, 'createIndex');
  const again = await remote.createIndex({ index: { fields: ['n'] }, ddoc: 'by-n', name: 'n' });
  assertEqual(again.result, 'exists', 'createIndex twice');
  await remote.createIndex({ index: { fields: ['kind', 'n'] }, ddoc: 'by-kind', name: 'kind' });
});

await steps.run('get-indexes', async () => {
  const res = await remote.getIndexes();
  assertEqual(res.total_rows, 3, 'total_rows');
  assertEqual(res.indexes.map((i) => i.name), ['_all_docs', 'kind', 'n'], 'index names');
  assertEqual(res.indexes[2].def, { fields: [{ n: 'asc' }] }, 'index def');
});

await steps.run('find-sort', async () => {
  const up = await remote.find({ selector: { n: { $gte: 10, $lt: 15 } }, sort: ['n'] });
  assertEqual(ids(up), expectedIds(10, 15), 'ascending');
  assert(up.warning === undefined, `unexpected warning ${up.warning}`);
  const down = await remote.find({ selector: { n: { $gte: 10, $lt: 15 } }, sort: [{ n: 'desc' }] });
  assertEqual(ids(down), expectedIds(10, 15).reverse(), 'descending');
  const odd = await remote.find({ selector: { kind: 'odd', n: { $gt: 30 } }, sort: ['kind', 'n'],
    fields: ['_id', 'n'] });
  assertEqual(odd.docs, [31, 33, 35, 37, 39].map((n) => ({ _id: `p${n}`, n })), 'fields');
});

await steps.run('find-paging', async () => {
  const seen = [];
  for (let skip = 0; skip < N; skip += 7) {
    const page = await remote.find({ selector: { n: { $gte: 0 } }, sort: ['n'], limit: 7, skip });
    seen.push(...ids(page));
  }
  assertEqual(seen, expectedIds(0, N), 'limit/skip pages');
  const marked = [];
  let bookmark;
  for (;;) {
    const page = await remote.find({ selector: { n: { $gte: 0 } }, sort: ['n'], limit: 9, bookmark });
    if (page.docs.length === 0) break;
    marked.push(...ids(page));
    bookmark = page.bookmark;
  }
  assertEqual(marked, expectedIds(0, N), 'bookmark pages');
});

await steps.run('explain', async () => {
  const plan = await remote.explain({ selector: { n: { $gt: 5 } } });
  assertEqual(plan.index.ddoc, '_design/by-n', 'explain index');
  assertEqual(plan.mrargs.start_key, [5], 'explain start_key');
  const none = await remote.find({ selector: { name: 'n3' } });
  assertEqual(ids(none), ['p03'], 'unindexed find');
  assert(/No matching index found/.test(none.warning || ''), `warning: ${none.warning}`);
});

await steps.run('delete-index', async () => {
  const { indexes } = await remote.getIndexes();
  const res = await remote.deleteIndex(indexes.find((i) => i.name === 'n'));
  assertEqual(res, { ok: true }, 'deleteIndex');
  const after = await remote.getIndexes();
  assertEqual(after.indexes.map((i) => i.name), ['_all_docs', 'kind'], 'after delete');
  await remote.destroy();
});

steps.finish();
